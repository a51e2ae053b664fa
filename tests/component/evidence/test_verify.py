"""`mlsteward verify` as a real process against real artifacts and dataset files.

A library-version change cannot be caused for real in one environment, so two tests simulate it
by writing a real artifact whose lineage records another scikit-learn version and whose
model.onnx was altered: once harmlessly (a doc string), once in its coefficients.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any

import onnx

from mlsteward.store import artifacts
from tests.component.evidence.conftest import Trained, run_cli


def verify(*args: str) -> tuple[int, dict[str, Any], str]:
    result = run_cli("verify", *args, "--json")
    lines = result.stdout.strip().splitlines()
    return result.returncode, (json.loads(lines[-1]) if lines else {}), result.stderr


def test_an_unchanged_dataset_retrains_to_identical_bytes(trained: Trained) -> None:
    code, report, stderr = verify("--artifact", trained.uri)

    assert code == 0, stderr[-2000:]
    assert report["verdict"] == "identical"
    recorded = trained.json_file("lineage.json")["model_onnx_sha256"]
    assert report["model_onnx_sha256"] == {"recorded": recorded, "rebuilt": recorded}
    assert report["artifact_identical"] is True and report["rebuilt_artifact"] == trained.digest
    assert report["versions_differing"] == {}


def test_a_changed_dataset_is_not_reproducible_and_both_digests_are_named(
    trained: Trained, tmp_path: pathlib.Path
) -> None:
    original = tmp_path / "original.parquet"
    shutil.copyfile(trained.dataset, original)
    recorded = trained.json_file("lineage.json")["dataset"]["sha256"]
    try:
        with trained.dataset.open("ab") as handle:
            handle.write(b"\0")  # one byte more: the file is no longer the one trained on
        now = artifacts.sha256_file(trained.dataset)
        code, report, _ = verify("--artifact", trained.uri)
    finally:
        shutil.copyfile(original, trained.dataset)

    assert code == 3
    assert report["verdict"] == "not-reproducible" and report["reason"] == "DigestMismatch"
    assert f"now has sha256 {now}" in report["message"]
    assert f"trained on sha256 {recorded}" in report["message"]


def _variant(trained: Trained, work: pathlib.Path, change_model: Any) -> str:
    """A real artifact: the trained one's files, model.onnx changed, another scikit-learn recorded."""
    files = {
        name: (trained.directory / name).read_bytes() for name in trained.json_file("manifest.json")["files"]
    }
    model = onnx.load_from_string(files["model.onnx"])
    change_model(model)
    files["model.onnx"] = model.SerializeToString()
    lineage = json.loads(files["lineage.json"])
    lineage["versions"]["scikit-learn"] = "1.0.0-recorded"
    files["lineage.json"] = artifacts.canonical_json(lineage)
    ref = artifacts.write_artifact(work / "store", files)
    return f"file://{work}/store/artifacts/sha256/{ref.digest}"


def test_other_bytes_under_another_library_version_are_equivalent_within_tolerance(
    trained: Trained, tmp_path: pathlib.Path
) -> None:
    def annotate(model: Any) -> None:
        model.doc_string = "converted by another skl2onnx"

    uri = _variant(trained, tmp_path, annotate)

    # An equivalent result exits 0, or 1 under --require-identical (the flag used here).
    code, report, stderr = verify("--artifact", uri, "--require-identical")

    assert report["verdict"] == "equivalent", stderr[-2000:]
    assert code == 1
    assert report["versions_differing"]["scikit-learn"]["recorded"] == "1.0.0-recorded"
    assert "scikit-learn 1.0.0-recorded ->" in report["message"]
    assert report["predictions"]["label_disagreement"] == 0.0
    assert report["predictions"]["max_score_difference"] == 0.0


def test_a_model_that_predicts_differently_is_reported_with_the_figures(
    trained: Trained, tmp_path: pathlib.Path
) -> None:
    def flip(model: Any) -> None:
        [node] = [n for n in model.graph.node if n.op_type == "LinearClassifier"]
        for attribute in node.attribute:
            if attribute.name in ("coefficients", "intercepts"):
                attribute.floats[:] = [-v for v in attribute.floats]

    code, report, _ = verify("--artifact", _variant(trained, tmp_path, flip))

    assert code == 1
    assert report["verdict"] == "differs"
    assert "of holdout labels differ" in report["message"] and "a holdout score differs" in report["message"]
    assert report["predictions"]["label_disagreement"] > 0.05


def test_an_altered_artifact_is_refused_before_retraining(trained: Trained, tmp_path: pathlib.Path) -> None:
    copy = tmp_path / "store" / "artifacts" / "sha256" / trained.digest
    shutil.copytree(trained.directory, copy)
    (copy / "spec.json").write_text("{}")

    result = run_cli("verify", "--artifact", f"file://{tmp_path}/store/artifacts/sha256/{trained.digest}")

    assert result.returncode == 2
    assert "cannot be opened and verified" in result.stderr and "spec.json" in result.stderr
