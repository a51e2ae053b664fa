"""``mlsteward train`` end to end as a real process: artifacts, reports, determinism, transports."""

from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess
import sys

import numpy as np
import onnxruntime
import pandas as pd
import pytest
from sklearn import datasets as sk_datasets

from mlsteward.store import artifacts
from mlsteward.training import datasets
from tests.component.training.conftest import MLSTEWARD, credit_spec, train

pytestmark = pytest.mark.timeout(300)


def test_a_credit_model_becomes_a_verified_artifact_that_follows_the_contract(
    tmp_path: pathlib.Path, credit_parquet: pathlib.Path
) -> None:
    store = tmp_path / "store"
    termination = tmp_path / "termination-log"
    spec = credit_spec(
        str(credit_parquet),
        estimator={"className": "HistGradientBoostingClassifier", "params": {"max_iter": 30}},
    )
    run = train(
        store,
        spec,
        env={"MLSTEWARD_IMAGE_DIGEST": "sha256:" + "ab" * 32},
        args=["--termination-message-path", str(termination), "--name", "credit", "--namespace", "risk"],
    )

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.outcome["outcome"] == "succeeded"
    digest = run.outcome["artifact"]["digest"]
    verified = artifacts.open_artifact_in_store(store, digest)
    assert sorted(verified.files) == sorted(
        [
            "model.onnx",
            "schema.json",
            "profile.json",
            "metrics.json",
            "lineage.json",
            "card.json",
            "card.md",
            "spec.json",
        ]
    )
    termination_bytes = termination.read_bytes()
    assert json.loads(termination_bytes) == run.outcome and len(termination_bytes) < 4096
    assert run.outcome["metrics"]["roc_auc"] > 0.6

    schema = run.json_file("schema.json")
    assert [f["name"] for f in schema["features"]] == list(datasets.EXAMPLE_FEATURES)
    assert schema["classes"] == ["0", "1"] and schema["positive_class"] == "1"
    session = onnxruntime.InferenceSession(verified.read("model.onnx"), providers=["CPUExecutionProvider"])
    kinds = {f["name"]: f["kind"] for f in schema["features"]}
    assert [(i.name, i.type, i.shape[1]) for i in session.get_inputs()] == [
        (name, "tensor(string)" if kinds[name] == "categorical" else "tensor(float)", 1) for name in kinds
    ]
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]

    profile = run.json_file("profile.json")
    assert profile["schema"] == "mlsteward.io/profile/v1" and profile["rows"] == 3200
    income = profile["features"]["income"]
    assert len(income["counts"]) == len(income["edges"]) + 2 and sum(income["counts"]) == 3200
    assert income["counts"][-1] > 0  # the generator leaves 2% of incomes empty
    purpose = profile["features"]["purpose"]
    assert len(purpose["counts"]) == len(purpose["categories"]) + 3
    assert profile["prediction"]["label"]["categories"] and profile["prediction"]["score"]["edges"]

    lineage = run.json_file("lineage.json")
    assert lineage["dataset"]["sha256"] == hashlib.sha256(credit_parquet.read_bytes()).hexdigest()
    assert lineage["model_onnx_sha256"] == hashlib.sha256(verified.read("model.onnx")).hexdigest()
    assert lineage["image_digest"] == "sha256:" + "ab" * 32 and lineage["model"] == {
        "name": "credit",
        "namespace": "risk",
    }
    assert {"python", "mlsteward", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy"} <= set(
        lineage["versions"]
    )
    assert lineage["estimator"]["params"]["random_state"] == 7 and lineage["split"]["stratified"] is True
    assert "credit-risk-team" in (run.artifact_dir() / "card.md").read_text()
    assert run.json_file("metrics.json")["parity"]["passed"] is True


def test_the_fairness_report_finds_the_planted_bias_and_the_proxy_report_flags_region(
    tmp_path: pathlib.Path, credit_parquet: pathlib.Path
) -> None:
    features = [*datasets.EXAMPLE_FEATURES, "region"]
    spec = credit_spec(
        str(credit_parquet),
        dataset={"features": features, "categorical": ["purpose", "home_ownership", "region"]},
        fairnessGates={"minDemographicParityRatio": 0.8, "minGroupSize": 30},
        protectedAttributes={"maxProxyRocAuc": 0.8},
    )
    run = train(tmp_path / "store", spec)

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.outcome["reason"] == "GateFailed"
    assert run.outcome["gates"] == {"quality": "passed", "fairness": "failed", "promotable": False}
    report = run.json_file("metrics.json")
    sex = report["fairness"]["sex"]
    assert sex["groups"]["F"]["selection_rate"] > sex["groups"]["M"]["selection_rate"]
    assert sex["demographic_parity_ratio"] < 0.8 and sex["status"] == "failed"
    assert report["proxies"]["race"]["flagged"] is True and report["proxies"]["race"]["roc_auc"] > 0.8
    assert report["proxies"]["marital_status"]["flagged"] is False
    card = (run.artifact_dir() / "card.md").read_text()
    assert "'race'" in card and "not promotable" in card


def test_a_small_group_makes_fairness_inconclusive_not_passed(
    tmp_path: pathlib.Path, credit_parquet: pathlib.Path
) -> None:
    spec = credit_spec(
        str(credit_parquet),
        dataset={"sensitive": ["race"]},
        fairnessGates={"maxDemographicParityDifference": 1.0, "minGroupSize": 200},
    )
    run = train(tmp_path / "store", spec)

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.outcome["gates"]["fairness"] == "inconclusive" and run.outcome["gates"]["promotable"] is False
    assert "other" in run.json_file("metrics.json")["fairness"]["race"]["small_groups"]


def test_the_same_spec_and_data_give_a_byte_identical_model_in_two_processes(
    tmp_path: pathlib.Path, credit_parquet: pathlib.Path
) -> None:
    spec = credit_spec(
        str(credit_parquet),
        estimator={
            "className": "RandomForestClassifier",
            "params": {"n_estimators": 20, "max_depth": 6},
            "seed": 3,
        },
    )
    # Different hash seeds, so anything built from a set or dict order shows up as a difference.
    first = train(tmp_path / "one", spec, env={"PYTHONHASHSEED": "1"})
    second = train(tmp_path / "two", spec, env={"PYTHONHASHSEED": "2"})

    assert first.returncode == 0 and second.returncode == 0, first.stderr[-2000:]
    model_one = (first.artifact_dir() / "model.onnx").read_bytes()
    model_two = (second.artifact_dir() / "model.onnx").read_bytes()
    assert hashlib.sha256(model_one).hexdigest() == hashlib.sha256(model_two).hexdigest()
    assert first.outcome["artifact"]["digest"] == second.outcome["artifact"]["digest"]


def test_a_whole_model_object_in_the_environment_trains_on_csv_served_over_http(
    tmp_path: pathlib.Path, credit_frame: pd.DataFrame, http_root: tuple[pathlib.Path, str]
) -> None:
    root, base = http_root
    datasets.write(credit_frame.head(1500), root / "credit.csv")
    digest = hashlib.sha256((root / "credit.csv").read_bytes()).hexdigest()
    spec = credit_spec(f"{base}/credit.csv", dataset={"sha256": digest})
    model = {"apiVersion": "mlsteward.io/v1alpha1", "kind": "Model", "metadata": {"name": "c"}, "spec": spec}
    run = train(tmp_path / "store", env={"MLSTEWARD_MODEL_SPEC": json.dumps(model)})

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.outcome["dataset_sha256"] == digest
    assert run.json_file("lineage.json")["dataset"]["uri"] == f"{base}/credit.csv"


def test_a_file_uri_and_an_approved_exception_admit_age_as_a_feature(
    tmp_path: pathlib.Path, credit_parquet: pathlib.Path
) -> None:
    spec = credit_spec(
        credit_parquet.as_uri(),
        dataset={"features": [*datasets.EXAMPLE_FEATURES, "age"], "sensitive": ["sex", "race"]},
        protectedAttributes={
            "exceptions": [
                {
                    "attribute": "age",
                    "approvalRef": "risk-committee-2026-11",
                    "justification": "Empirically derived, statistically sound scoring system.",
                }
            ]
        },
    )
    run = train(tmp_path / "store", spec)

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.json_file("lineage.json")["policy_exceptions"][0]["approvalRef"] == "risk-committee-2026-11"
    assert "age" in [f["name"] for f in run.json_file("schema.json")["features"]]


def test_scikit_learn_datasets_train_for_regression_and_classification(tmp_path: pathlib.Path) -> None:
    diabetes = sk_datasets.load_diabetes(as_frame=True).frame
    diabetes.to_csv(tmp_path / "diabetes.csv", index=False)
    regression = {
        "task": "regression",
        "dataset": {
            "uri": str(tmp_path / "diabetes.csv"),
            "target": "target",
            # load_diabetes has age and sex columns: the policy keeps them out of the inputs.
            "features": [c for c in diabetes.columns[:-1] if c not in ("age", "sex")],
            "sensitive": ["age", "sex"],
        },
        "estimator": {"className": "Ridge", "params": {"alpha": 1.0}},
        "qualityGates": {"minR2": 0.2},
    }
    cancer = sk_datasets.load_breast_cancer(as_frame=True).frame
    cancer.columns = [c.replace(" ", "_") for c in cancer.columns]
    cancer.to_parquet(tmp_path / "cancer.parquet")
    classification = {
        "task": "classification",
        "dataset": {
            "uri": str(tmp_path / "cancer.parquet"),
            "target": "target",
            "features": list(cancer.columns[:-1]),
        },
        "estimator": {"className": "GradientBoostingClassifier", "params": {"n_estimators": 30}},
        "qualityGates": {"minAccuracy": 0.9, "minRocAuc": 0.95},
    }
    diabetes_run = train(tmp_path / "r", regression)
    cancer_run = train(tmp_path / "c", classification)

    assert diabetes_run.returncode == 0, diabetes_run.stderr[-3000:]
    assert (
        diabetes_run.outcome["gates"]["quality"] == "passed" and diabetes_run.outcome["metrics"]["r2"] > 0.2
    )
    assert {"rmse", "mae", "r2"} <= set(diabetes_run.outcome["metrics"])
    assert diabetes_run.json_file("profile.json")["prediction"]["label"] is None
    assert cancer_run.returncode == 0, cancer_run.stderr[-3000:]
    assert cancer_run.outcome["gates"] == {"quality": "passed", "fairness": "passed", "promotable": True}
    assert cancer_run.outcome["reason"] is None


def test_a_missed_quality_gate_keeps_the_artifact_but_marks_it_not_promotable(
    tmp_path: pathlib.Path, credit_parquet: pathlib.Path
) -> None:
    run = train(tmp_path / "store", credit_spec(str(credit_parquet), qualityGates={"minRocAuc": 0.99}))

    assert run.returncode == 0
    assert run.outcome["gates"]["quality"] == "failed" and run.outcome["gates"]["promotable"] is False
    assert "minRocAuc" in run.outcome["message"]
    assert (run.artifact_dir() / "model.onnx").is_file()


def test_the_dataset_generator_writes_drifted_data_with_shift(tmp_path: pathlib.Path) -> None:
    command = [sys.executable, "-m", "mlsteward.training.datasets", "--rows", "3000"]
    subprocess.run([*command, "--out", str(tmp_path / "ref.parquet")], check=True, timeout=60)
    subprocess.run([*command, "--out", str(tmp_path / "cur.csv"), "--shift"], check=True, timeout=60)

    reference, current = pd.read_parquet(tmp_path / "ref.parquet"), pd.read_csv(tmp_path / "cur.csv")
    assert list(reference.columns) == list(current.columns) and len(current) == 3000
    assert current["income"].median() < 0.9 * reference["income"].median()
    share = {
        name: frame["purpose"].eq("debt_consolidation").mean()
        for name, frame in (("r", reference), ("c", current))
    }
    assert share["c"] > share["r"] + 0.1
    assert np.isclose(reference[datasets.TARGET].mean(), 0.25, atol=0.08)


def test_train_help_lists_every_flag() -> None:
    result = subprocess.run(
        [str(MLSTEWARD), "train", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    for flag in ("--spec", "--store", "--output-json", "--termination-message-path", "--name", "--namespace"):
        assert flag in result.stdout
