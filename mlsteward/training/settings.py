"""The trainer's settings: one object, each field a command-line flag and an ``MLSTEWARD_*`` variable.

Nothing here runs at import. :func:`from_args` reads flags and (for unset flags) the environment
it is given, so tests pass their own environment instead of patching ``os.environ``.

Flag ↔ field ↔ variable (kept in step by a unit test):

======================================  ==========================  ==================================
``--spec FILE``                          ``spec_path``               ``MLSTEWARD_SPEC``
(no flag: the spec itself as JSON/YAML)  ``spec_text``               ``MLSTEWARD_MODEL_SPEC``
``--store DIR``                          ``store``                   ``MLSTEWARD_STORE``
``--output-json FILE``                   ``output_json``             ``MLSTEWARD_OUTPUT_JSON``
``--termination-message-path FILE``      ``termination_message_path````MLSTEWARD_TERMINATION_MESSAGE_PATH``
``--name NAME``                          ``name``                    ``MLSTEWARD_NAME``
``--namespace NS``                       ``namespace``               ``MLSTEWARD_NAMESPACE``
``--image-digest SHA``                   ``image_digest``            ``MLSTEWARD_IMAGE_DIGEST``
``--proxy-sample-rows N``                ``proxy_sample_rows``       ``MLSTEWARD_PROXY_SAMPLE_ROWS``
``--reuse-artifact SHA``                 ``reuse_artifact``          ``MLSTEWARD_REUSE_ARTIFACT``
======================================  ==========================  ==================================
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
from collections.abc import Mapping, Sequence

DEFAULT_TERMINATION_LOG = pathlib.Path("/dev/termination-log")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything the trainer reads from outside the spec."""

    store: str
    """The content-addressed artifact store: a directory (a PVC mount in a Job), ``file://`` or
    ``s3://bucket/prefix`` (connection settings from the environment, see docs/store.md)."""
    spec_path: pathlib.Path | None = None
    """A file holding the Model spec (YAML or JSON; bare spec or a whole Model object)."""
    spec_text: str | None = None
    """The spec itself, used when ``spec_path`` is unset."""
    output_json: pathlib.Path | None = None
    """Also write the outcome object to this file."""
    termination_message_path: pathlib.Path | None = None
    """Where Kubernetes reads the pod's termination message; None writes nowhere."""
    name: str | None = None
    """The Model's name, recorded in the lineage."""
    namespace: str | None = None
    """The Model's namespace, recorded in the lineage."""
    image_digest: str | None = None
    """The trainer container image's digest, recorded in the lineage when known."""
    proxy_sample_rows: int = 5_000
    """Rows sampled to fit each proxy classifier (rows)."""
    reuse_artifact: str | None = None
    """Digest of an earlier artifact to reuse instead of training when it is still in the store
    and was trained from the same spec and pinned dataset (``mlsteward.training.reuse``)."""
    champion_artifact: str | None = None
    """The champion's store or artifact URI, scored on this holdout (``mlsteward.training.champion``)."""
    champion_digest: str | None = None
    """The champion artifact's sha256, verified before its model is used."""


# field -> (flag, environment variable, help)
FLAGS: dict[str, tuple[str, str, str]] = {
    "spec_path": ("--spec", "MLSTEWARD_SPEC", "Model spec file (YAML or JSON, bare spec or a whole Model)"),
    "store": ("--store", "MLSTEWARD_STORE", "artifact store: a directory, file:// or s3://bucket/prefix"),
    "output_json": ("--output-json", "MLSTEWARD_OUTPUT_JSON", "also write the outcome JSON to this file"),
    "termination_message_path": (
        "--termination-message-path",
        "MLSTEWARD_TERMINATION_MESSAGE_PATH",
        "termination message file (default /dev/termination-log when it exists)",
    ),
    "name": ("--name", "MLSTEWARD_NAME", "the Model's name, for the lineage"),
    "namespace": ("--namespace", "MLSTEWARD_NAMESPACE", "the Model's namespace, for the lineage"),
    "image_digest": ("--image-digest", "MLSTEWARD_IMAGE_DIGEST", "trainer image digest, for the lineage"),
    "proxy_sample_rows": (
        "--proxy-sample-rows",
        "MLSTEWARD_PROXY_SAMPLE_ROWS",
        "rows sampled per proxy classifier (default 5000)",
    ),
    "reuse_artifact": (
        "--reuse-artifact",
        "MLSTEWARD_REUSE_ARTIFACT",
        "sha256 of an earlier artifact to reuse if it is still stored and matches the spec",
    ),
    "champion_artifact": (
        "--champion-artifact",
        "MLSTEWARD_CHAMPION_ARTIFACT",
        "the champion's store (directory, file://, s3://) or artifact URI, scored on this holdout",
    ),
    "champion_digest": (
        "--champion-digest",
        "MLSTEWARD_CHAMPION_DIGEST",
        "sha256 of the champion artifact (required with --champion-artifact)",
    ),
}
SPEC_TEXT_ENV = "MLSTEWARD_MODEL_SPEC"


class SettingsError(Exception):
    """Flags or environment that do not make a runnable configuration."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlsteward train",
        description="Train a Model spec into a verified, content-addressed ONNX artifact. "
        f"Without --spec the spec is read from ${SPEC_TEXT_ENV}. Every flag also reads the "
        "MLSTEWARD_* variable named in its help when the flag is absent.",
    )
    for field, (flag, env, help_text) in FLAGS.items():
        parser.add_argument(flag, dest=field, default=None, help=f"{help_text} [${env}]")
    return parser


def from_args(argv: Sequence[str], environ: Mapping[str, str]) -> TrainSettings:
    """Settings from flags, falling back to the environment for each flag left out."""
    namespace = build_parser().parse_args(list(argv))
    raw: dict[str, str | None] = {}
    for field, (_, env, _) in FLAGS.items():
        value = getattr(namespace, field)
        raw[field] = value if value is not None else (environ.get(env) or None)
    if raw["store"] is None:
        raise SettingsError("no artifact store: pass --store DIR (or set MLSTEWARD_STORE)")
    spec_text = environ.get(SPEC_TEXT_ENV) or None
    if raw["spec_path"] is None and spec_text is None:
        raise SettingsError(f"no Model spec: pass --spec FILE or set {SPEC_TEXT_ENV} to the spec JSON")
    termination = raw["termination_message_path"]
    if termination is not None:
        termination_path: pathlib.Path | None = pathlib.Path(termination)
    else:
        termination_path = DEFAULT_TERMINATION_LOG if DEFAULT_TERMINATION_LOG.exists() else None
    proxy_rows = raw["proxy_sample_rows"]
    try:
        proxy_sample_rows = int(proxy_rows) if proxy_rows is not None else TrainSettings.proxy_sample_rows
    except ValueError as error:
        raise SettingsError(f"--proxy-sample-rows must be an integer, got {proxy_rows!r}") from error
    if proxy_sample_rows < 100:
        raise SettingsError(f"--proxy-sample-rows must be at least 100, got {proxy_sample_rows}")
    reuse = raw["reuse_artifact"]
    if reuse is not None and (len(reuse) != 64 or any(c not in "0123456789abcdef" for c in reuse)):
        raise SettingsError(f"--reuse-artifact must be a sha256 (64 lowercase hex digits), got {reuse!r}")
    champion_location, champion_digest = raw["champion_artifact"], raw["champion_digest"]
    if (champion_location is None) != (champion_digest is None):
        raise SettingsError("--champion-artifact and --champion-digest go together: pass both or neither")
    if champion_digest is not None and not _is_sha256(champion_digest):
        raise SettingsError(
            f"--champion-digest must be a sha256 (64 lowercase hex digits), got {champion_digest!r}"
        )
    return TrainSettings(
        store=_store_location(raw["store"]),
        reuse_artifact=reuse,
        champion_artifact=champion_location,
        champion_digest=champion_digest,
        spec_path=pathlib.Path(raw["spec_path"]) if raw["spec_path"] is not None else None,
        spec_text=spec_text,
        output_json=pathlib.Path(raw["output_json"]) if raw["output_json"] is not None else None,
        termination_message_path=termination_path,
        name=raw["name"],
        namespace=raw["namespace"],
        image_digest=raw["image_digest"],
        proxy_sample_rows=proxy_sample_rows,
    )


def _store_location(value: str) -> str:
    """Object-store URIs as given; a directory as an absolute path (pathlib would mangle s3://)."""
    if value.startswith(("s3://", "file://")):
        return value
    return str(pathlib.Path(value).resolve())


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)
