"""Loading the reference profile from a verified artifact (the one place the monitor reads it).

The artifact's manifest and every file are checked against ``--digest`` by
``mlsteward.store.artifacts.open_artifact`` before a byte is parsed; ``schema.json`` is used
when present (task, positive class, sensitive attributes), otherwise they are inferred
from the profile.
"""

from __future__ import annotations

import pathlib

import orjson

from mlsteward.monitoring import profiles
from mlsteward.store import artifacts


class ReferenceError(Exception):
    """The artifact cannot be trusted or its profile cannot be used."""


def load(path: pathlib.Path, digest: str) -> profiles.Reference:
    try:
        artifact = artifacts.open_artifact(path, digest)
        profile = orjson.loads(artifact.read("profile.json"))
        schema = orjson.loads(artifact.read("schema.json")) if "schema.json" in artifact.files else None
    except artifacts.ArtifactError as error:
        raise ReferenceError(str(error)) from error
    except orjson.JSONDecodeError as error:
        raise ReferenceError(
            f"artifact {digest}: profile.json or schema.json is not JSON: {error}"
        ) from error
    try:
        return profiles.parse_reference(profile, schema)
    except profiles.ProfileError as error:
        raise ReferenceError(f"artifact {digest}: {error}") from error
