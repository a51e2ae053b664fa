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
from mlsteward.store import artifacts, stores
from mlsteward.store.errors import StoreError


class ReferenceError(Exception):
    """The artifact cannot be trusted or its profile cannot be used."""


def load(path: pathlib.Path, digest: str) -> profiles.Reference:
    """``path``: the artifact's directory, or its ``s3://.../artifacts/sha256/<digest>`` URI."""
    try:
        if str(path).startswith("s3:/"):
            profile, schema = _from_object_store(str(path), digest)
        else:
            artifact = artifacts.open_artifact(path, digest)
            profile = orjson.loads(artifact.read("profile.json"))
            schema = orjson.loads(artifact.read("schema.json")) if "schema.json" in artifact.files else None
    except (artifacts.ArtifactError, StoreError) as error:
        raise ReferenceError(str(error)) from error
    except orjson.JSONDecodeError as error:
        raise ReferenceError(
            f"artifact {digest}: profile.json or schema.json is not JSON: {error}"
        ) from error
    try:
        return profiles.parse_reference(profile, schema)
    except profiles.ProfileError as error:
        raise ReferenceError(f"artifact {digest}: {error}") from error


def _from_object_store(uri: str, digest: str) -> tuple[object, object]:
    """profile.json and schema.json read one by one, each verified (the model is not downloaded)."""
    # pathlib folds "s3://" into "s3:/".
    location, named = stores.split_artifact_uri("s3://" + uri.removeprefix("s3:/").lstrip("/"))
    if named != digest:
        raise ReferenceError(f"--profile-artifact names artifact {named}, --digest says {digest}")
    store = stores.open_store(location)
    profile = orjson.loads(store.read(digest, "profile.json"))
    try:
        schema = orjson.loads(store.read(digest, "schema.json"))
    except StoreError as error:
        if error.reason != "ObjectMissing":
            raise
        schema = None
    return profile, schema
