"""Artifacts are content-addressed, appear whole or not at all, and are verified before use."""

from __future__ import annotations

import os
import pathlib
import time

import pytest

from mlsteward.store import artifacts, stores


def _files() -> dict[str, bytes | pathlib.Path]:
    return {"model.onnx": b"\x08\x07onnx-bytes", "profile.json": b'{"rows": 3}\n'}


def test_written_artifact_opens_and_reads_back(tmp_path: pathlib.Path) -> None:
    ref = artifacts.write_artifact(tmp_path, _files())
    assert ref.path is not None
    assert ref.path == tmp_path / "artifacts" / "sha256" / ref.digest
    opened = artifacts.open_artifact_in_store(tmp_path, ref.digest)
    assert opened.read("model.onnx") == b"\x08\x07onnx-bytes"
    assert set(opened.files) == {"model.onnx", "profile.json"}
    assert ref.uri.startswith("file:///")


def test_the_same_content_gives_the_same_digest_and_one_copy(tmp_path: pathlib.Path) -> None:
    first = artifacts.write_artifact(tmp_path, _files())
    second = artifacts.write_artifact(tmp_path, _files())
    assert first.digest == second.digest
    assert list((tmp_path / "artifacts" / "sha256").iterdir()) == [first.path]
    assert list((tmp_path / "artifacts" / ".staging").iterdir()) == []


def test_a_file_given_as_a_path_is_copied(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(b"from a file")
    ref = artifacts.write_artifact(tmp_path / "store", {"model.onnx": source})
    assert ref.path is not None
    assert artifacts.open_artifact(ref.path, ref.digest).read("model.onnx") == b"from a file"


def test_a_tampered_file_is_refused(tmp_path: pathlib.Path) -> None:
    ref = artifacts.write_artifact(tmp_path, _files())
    assert ref.path is not None
    (ref.path / "model.onnx").write_bytes(b"evil")
    with pytest.raises(artifacts.ArtifactError, match=r"model\.onnx does not match its sha256"):
        artifacts.open_artifact(ref.path, ref.digest)


def test_a_file_changed_after_opening_is_refused_on_read(tmp_path: pathlib.Path) -> None:
    ref = artifacts.write_artifact(tmp_path, _files())
    assert ref.path is not None
    opened = artifacts.open_artifact(ref.path, ref.digest)
    (ref.path / "profile.json").write_bytes(b"{}")
    with pytest.raises(artifacts.ArtifactError, match="changed after it was verified"):
        opened.read("profile.json")


def test_a_different_expected_digest_is_refused(tmp_path: pathlib.Path) -> None:
    ref = artifacts.write_artifact(tmp_path, _files())
    assert ref.path is not None
    with pytest.raises(artifacts.ArtifactError, match="manifest digest is"):
        artifacts.open_artifact(ref.path, "0" * 64)


def test_a_missing_listed_file_is_refused(tmp_path: pathlib.Path) -> None:
    ref = artifacts.write_artifact(tmp_path, _files())
    assert ref.path is not None
    (ref.path / "profile.json").unlink()
    with pytest.raises(artifacts.ArtifactError, match=r"profile\.json is missing"):
        artifacts.open_artifact(ref.path, ref.digest)


def test_a_directory_without_a_manifest_is_not_an_artifact(tmp_path: pathlib.Path) -> None:
    with pytest.raises(artifacts.ArtifactError, match=r"manifest\.json is missing"):
        artifacts.open_artifact(tmp_path, "a" * 64)


@pytest.mark.parametrize("digest", ["", "abc", "A" * 64, "../" + "a" * 61])
def test_a_malformed_digest_is_refused_before_touching_the_disk(tmp_path: pathlib.Path, digest: str) -> None:
    with pytest.raises(artifacts.ArtifactError, match="malformed artifact digest"):
        artifacts.open_artifact_in_store(tmp_path, digest)


@pytest.mark.parametrize("name", ["../escape", "manifest.json", "", ".hidden", "a/b"])
def test_an_unsafe_file_name_writes_nothing(tmp_path: pathlib.Path, name: str) -> None:
    with pytest.raises(artifacts.ArtifactError, match="invalid artifact file name"):
        artifacts.write_artifact(tmp_path, {name: b"x"})
    assert not (tmp_path / "artifacts" / "sha256").exists()


def test_a_failure_while_writing_leaves_no_partial_artifact(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "does-not-exist.onnx"
    with pytest.raises(FileNotFoundError):
        artifacts.write_artifact(tmp_path / "store", {"a.json": b"{}", "model.onnx": missing})
    assert list((tmp_path / "store" / "artifacts" / ".staging").iterdir()) == []
    assert not (tmp_path / "store" / "artifacts" / "sha256").exists()


def test_a_write_removes_staging_directories_abandoned_for_longer_than_the_age(
    tmp_path: pathlib.Path,
) -> None:
    """What a writer killed midway leaves: a staging directory that no write touches again."""
    staging = tmp_path / "artifacts" / ".staging"
    abandoned, active = staging / "artifact-killed", staging / "artifact-writing"
    for directory in (abandoned, active):
        (directory / "model.onnx").parent.mkdir(parents=True)
        (directory / "model.onnx").write_bytes(b"partial")
    long_ago = time.time() - 120
    for path in (abandoned / "model.onnx", abandoned, active):
        os.utime(path, (long_ago, long_ago))  # the active one's file was written just now
    finished = stores.LocalArtifactStore(tmp_path, abandoned_after_s=60).put(_files())
    assert sorted(p.name for p in staging.iterdir()) == ["artifact-writing"]
    assert stores.LocalArtifactStore(tmp_path).exists(finished.digest)
    # With the default age (an hour) nothing younger is touched.
    os.utime(active / "model.onnx", (long_ago, long_ago))
    assert stores.LocalArtifactStore(tmp_path).collect_abandoned() == []
    assert stores.LocalArtifactStore(tmp_path).collect_abandoned(60) == ["artifact-writing"]
