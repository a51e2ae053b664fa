"""The CRDs on a real API server: install, explain, list, accept the examples, reject bad input."""

from __future__ import annotations

import copy
import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from mlsteward.dev import controlplane

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

Manifest = dict[str, Any]


def _model() -> Manifest:
    return {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "credit"},
        "spec": {
            "task": "classification",
            "dataset": {
                "uri": "/data/credit.csv",
                "target": "default",
                "features": ["income", "debt_ratio", "purpose"],
                "categorical": ["purpose"],
                "sensitive": ["sex"],
            },
            "estimator": {"className": "LogisticRegression", "params": {"C": 1.0}},
        },
    }


def _deployment() -> Manifest:
    return {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": "credit"},
        "spec": {"modelRef": {"name": "credit", "alias": "champion"}, "replicas": 1},
    }


def _monitor() -> Manifest:
    return {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Monitor",
        "metadata": {"name": "credit"},
        "spec": {"deploymentRef": {"name": "credit"}, "window": {"size": 5000, "minSamples": 1000}},
    }


def _apply(cp: controlplane.ControlPlane, namespace: str, manifest: Manifest) -> tuple[int, str]:
    result = cp.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(manifest), check=False)
    return result.returncode, result.stderr


def _set(path: str, value: Any) -> Callable[[Manifest], None]:
    def mutate(manifest: Manifest) -> None:
        node = manifest
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    return mutate


def _delete(path: str) -> Callable[[Manifest], None]:
    def mutate(manifest: Manifest) -> None:
        node = manifest
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[key]
        del node[leaf]

    return mutate


_FEATURES = ["income", "debt_ratio", "purpose"]

# (case id, base manifest, mutation, text the error must contain: the offending field)
INVALID: list[tuple[str, Callable[[], Manifest], Callable[[Manifest], object], str]] = [
    (
        "unknown estimator",
        _model,
        _set("spec.estimator.className", "XGBClassifier"),
        "spec.estimator.className",
    ),
    (
        "regressor for a classification task",
        _model,
        _set("spec.estimator.className", "Ridge"),
        "spec.estimator.className",
    ),
    (
        "column both feature and sensitive",
        _model,
        _set("spec.dataset.sensitive", ["income"]),
        "spec.dataset.features",
    ),
    ("sex as a feature", _model, _set("spec.dataset.features", [*_FEATURES, "sex"]), "spec.dataset.features"),
    ("age as a feature", _model, _set("spec.dataset.features", [*_FEATURES, "age"]), "spec.dataset.features"),
    (
        "race as a feature",
        _model,
        _set("spec.dataset.features", [*_FEATURES, "race"]),
        "spec.dataset.features",
    ),
    (
        "marital_status as a feature",
        _model,
        _set("spec.dataset.features", [*_FEATURES, "marital_status"]),
        "spec.dataset.features",
    ),
    (
        "a synonym: Gender as a feature",
        _model,
        _set("spec.dataset.features", [*_FEATURES, "Gender"]),
        "spec.dataset.features",
    ),
    (
        "an additional protected column as a feature",
        _model,
        lambda m: (
            _set("spec.protectedAttributes", {"additional": ["zip_code"]})(m),
            _set("spec.dataset.features", [*_FEATURES, "zip_code"])(m),
        ),
        "spec.dataset.features",
    ),
    ("malformed digest", _model, _set("spec.dataset.sha256", "abc123"), "spec.dataset.sha256"),
    ("empty dataset URI", _model, _set("spec.dataset.uri", ""), "spec.dataset.uri"),
    ("relative dataset path", _model, _set("spec.dataset.uri", "data/credit.csv"), "spec.dataset.uri"),
    ("target also a feature", _model, _set("spec.dataset.target", "income"), "spec.dataset.target"),
    (
        "categorical column not a feature",
        _model,
        _set("spec.dataset.categorical", ["colour_of_car"]),
        "spec.dataset.categorical",
    ),
    ("no features", _model, _set("spec.dataset.features", []), "spec.dataset.features"),
    ("missing dataset", _model, _delete("spec.dataset"), "spec.dataset"),
    ("test fraction 0.9", _model, _set("spec.split", {"testFraction": 0.9}), "spec.split.testFraction"),
    (
        "ROC AUC gate above 1",
        _model,
        _set("spec.qualityGates", {"minRocAuc": 2}),
        "spec.qualityGates.minRocAuc",
    ),
    ("negative seed", _model, _set("spec.estimator.seed", -1), "spec.estimator.seed"),
    (
        "memory quantity that is not one",
        _model,
        _set("spec.resources", {"requests": {"memory": "lots"}}),
        "spec.resources.requests.memory",
    ),
    ("unknown field", _model, _set("spec.learningRate", 0.1), "learningRate"),
    (
        "canary share 150",
        _deployment,
        _set("spec.canary", {"trafficPercent": 150}),
        "spec.canary.trafficPercent",
    ),
    ("canary step 0", _deployment, _set("spec.canary", {"steps": [0, 50]}), "spec.canary.steps"),
    ("negative replicas", _deployment, _set("spec.replicas", -1), "spec.replicas"),
    ("version and alias together", _deployment, _set("spec.modelRef.version", 3), "spec.modelRef.version"),
    (
        "autoscaling minimum above maximum",
        _deployment,
        lambda m: (
            m["spec"].pop("replicas"),
            m["spec"].update(autoscaling={"minReplicas": 5, "maxReplicas": 2}),
        ),
        "spec.autoscaling.minReplicas",
    ),
    (
        "model name that is not a DNS label",
        _deployment,
        _set("spec.modelRef.name", "Credit_Model"),
        "spec.modelRef.name",
    ),
    ("zero window", _monitor, _set("spec.window", {"size": 0}), "spec.window.size"),
    (
        "threshold out of range",
        _monitor,
        _set("spec.drift", {"numericThreshold": 1.5}),
        "spec.drift.numericThreshold",
    ),
    (
        "minimum samples above the window size",
        _monitor,
        _set("spec.window", {"size": 500, "minSamples": 1000}),
        "spec.window.minSamples",
    ),
    ("unknown drift test", _monitor, _set("spec.drift", {"numericTest": "t-test"}), "spec.drift.numericTest"),
    (
        "evaluation interval 0",
        _monitor,
        _set("spec.evaluationIntervalSeconds", 0),
        "spec.evaluationIntervalSeconds",
    ),
    (
        "malformed duration",
        _monitor,
        _set("spec.actions", {"cooldown": "six hours"}),
        "spec.actions.cooldown",
    ),
]


@pytest.mark.parametrize(("base", "mutate", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_an_invalid_resource_is_rejected_with_a_message_naming_the_field(
    control_plane: controlplane.ControlPlane,
    namespace: str,
    base: Callable[[], Manifest],
    mutate: Callable[[Manifest], object],
    field: str,
) -> None:
    manifest = copy.deepcopy(base())
    mutate(manifest)
    code, stderr = _apply(control_plane, namespace, manifest)
    assert code != 0, f"the API server accepted an invalid {manifest['kind']}"
    assert field in stderr, stderr
    kind = manifest["kind"].lower() + "s.mlsteward.io"
    listed = control_plane.kubectl("get", kind, "-n", namespace, "-o", "name").stdout
    assert listed.strip() == "", "a rejected object must not be stored"


def test_the_valid_bases_of_the_invalid_cases_are_accepted(
    control_plane: controlplane.ControlPlane, namespace: str
) -> None:
    for manifest in (_model(), _deployment(), _monitor()):
        code, stderr = _apply(control_plane, namespace, manifest)
        assert code == 0, stderr


def test_a_protected_attribute_is_accepted_with_an_approved_exception(
    control_plane: controlplane.ControlPlane, namespace: str
) -> None:
    manifest = _model()
    manifest["spec"]["dataset"]["features"].append("age")
    manifest["spec"]["protectedAttributes"] = {
        "exceptions": [
            {
                "attribute": "age",
                "approvalRef": "age-exception-2026",
                "justification": "Regulation B permits age in an empirically derived, sound scoring system.",
            }
        ]
    }
    code, stderr = _apply(control_plane, namespace, manifest)
    assert code == 0, stderr


def test_every_example_is_accepted(control_plane: controlplane.ControlPlane, namespace: str) -> None:
    examples = sorted((REPO_ROOT / "examples").glob("*.yaml"))
    assert examples, "examples/ is empty"
    for path in examples:
        result = control_plane.kubectl(
            "apply", "--server-side", "-n", namespace, "-f", str(path), check=False
        )
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def test_kubectl_get_mlsteward_lists_all_three_kinds(
    control_plane: controlplane.ControlPlane, namespace: str
) -> None:
    for manifest in (_model(), _deployment(), _monitor()):
        assert _apply(control_plane, namespace, manifest)[0] == 0
    names = control_plane.kubectl("get", "mlsteward", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(names) == [
        "deployment.mlsteward.io/credit",
        "model.mlsteward.io/credit",
        "monitor.mlsteward.io/credit",
    ]
    short = control_plane.kubectl("get", "mldeploy,mlm,mlmon", "-n", namespace, "-o", "name").stdout.split()
    assert len(short) == 3


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("models.spec.dataset", "Dataset location"),
        ("models.spec.protectedAttributes.preset", "Regulation B"),
        ("deployments.spec.canary.trafficPercent", "Share of requests"),
        ("monitors.spec.window.minSamples", "insufficient data"),
    ],
)
def test_kubectl_explain_teaches_the_api(
    control_plane: controlplane.ControlPlane, resource: str, expected: str
) -> None:
    output = control_plane.kubectl("explain", resource, "--api-version=mlsteward.io/v1alpha1").stdout
    assert expected in output


def test_kubectl_wait_for_ready_follows_the_status_conditions(
    control_plane: controlplane.ControlPlane, namespace: str
) -> None:
    assert _apply(control_plane, namespace, _model())[0] == 0
    generation = int(
        control_plane.kubectl(
            "get", "models", "credit", "-n", namespace, "-o", "jsonpath={.metadata.generation}"
        ).stdout
    )
    status = {
        "status": {
            "observedGeneration": generation,
            "phase": "Ready",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "VersionServed",
                    "message": "version 1 is ready",
                    "lastTransitionTime": "2026-11-23T00:00:00Z",
                    "observedGeneration": generation,
                },
            ],
        }
    }
    control_plane.kubectl(
        "patch",
        "models",
        "credit",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    control_plane.kubectl("wait", "models/credit", "-n", namespace, "--for=condition=Ready", "--timeout=10s")
    printed = control_plane.kubectl("get", "models", "credit", "-n", namespace).stdout
    header, row = printed.splitlines()[:2]
    # Printer columns are aligned; empty ones (no champion yet) leave gaps, so cut by offset.
    assert row[header.index("READY") :].split()[0] == "True"
