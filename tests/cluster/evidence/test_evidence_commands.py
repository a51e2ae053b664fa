"""`mlsteward lineage`, `verify` and `docs` reading a real API server through a kubeconfig.

No operator runs here: the tests write the Models' and Deployments' status themselves (through
the status subresource, as the operator would), so the answers can be checked exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import uuid
from typing import Any

import pytest
import yaml

from mlsteward.dev import controlplane
from mlsteward.training import datasets

MLSTEWARD = pathlib.Path(sys.executable).parent / "mlsteward"
Json = dict[str, Any]
FEATURES = ["income", "debt_ratio", "purpose"]


def run(*args: str, kubeconfig: pathlib.Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTEWARD_")}
    env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run(
        [str(MLSTEWARD), *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def model_spec(uri: str) -> Json:
    return {
        "task": "classification",
        "dataset": {
            "uri": uri,
            "target": datasets.TARGET,
            "features": FEATURES,
            "categorical": ["purpose"],
            "sensitive": ["sex"],
        },
        "estimator": {"className": "LogisticRegression", "params": {"max_iter": 300}, "seed": 3},
        "card": {"intendedUse": "Tests.", "owners": ["risk-team"], "limitations": ["Synthetic."]},
    }


def fake_digest() -> str:
    return hashlib.sha256(uuid.uuid4().bytes).hexdigest()


def apply(cp: controlplane.ControlPlane, obj: Json, status: Json | None = None) -> None:
    cp.kubectl(
        "apply", "--server-side", "--field-manager=mlsteward-tests", "-f", "-", input_text=yaml.safe_dump(obj)
    )
    if status is not None:
        kind = {"Model": "models", "Deployment": "deployments", "Monitor": "monitors"}[obj["kind"]]
        cp.kubectl(
            "patch",
            f"{kind}.mlsteward.io",
            obj["metadata"]["name"],
            "-n",
            obj["metadata"]["namespace"],
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )


def model(
    cp: controlplane.ControlPlane, namespace: str, name: str, versions: list[tuple[int, str, str]], uri: str
) -> None:
    """A Model whose status lists ``(number, dataset digest, artifact digest)`` versions."""
    records = [
        {
            "version": n,
            "phase": "Succeeded",
            "datasetSha256": data,
            "specHash": "e" * 64,
            "createdAt": f"2026-12-0{n}T10:00:00Z",
            "artifact": {"digest": artifact, "uri": f"{uri}/artifacts/sha256/{artifact}"},
            "gates": {"quality": "passed", "fairness": "passed", "promotable": True},
            "metrics": {"roc_auc": 0.7},
        }
        for n, data, artifact in versions
    ]
    body = {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": namespace},
        "spec": model_spec("/data/credit.parquet"),
    }
    apply(cp, body, {"versions": records, "latestVersion": max(n for n, _, _ in versions)})


def history(entries: list[tuple[int, str, str, str, str | None]]) -> list[Json]:
    """Hash-chained history records ``(version, digest, at, action, approvedBy)``."""
    records: list[Json] = []
    previous = None
    for version, digest, at, action, approver in entries:
        record = {
            "version": version,
            "digest": digest,
            "at": at,
            "action": action,
            "reason": f"{action} by test",
            "approvedBy": approver,
            "previousHash": previous,
        }
        previous = record["hash"] = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
        records.append(record)
    return records


def deployment(
    cp: controlplane.ControlPlane, namespace: str, name: str, model_name: str, status: Json
) -> None:
    body = {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"modelRef": {"name": model_name, "alias": "champion"}},
    }
    apply(cp, body, status)


@pytest.fixture
def other_namespace(control_plane: controlplane.ControlPlane) -> Any:
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_lineage_finds_exactly_the_versions_and_deployments_of_a_dataset(
    control_plane: controlplane.ControlPlane, namespace: str, other_namespace: str
) -> None:
    used, other = fake_digest(), fake_digest()
    a1, a2, a3, b1 = (fake_digest() for _ in range(4))
    model(control_plane, namespace, "credit", [(1, used, a1), (2, other, a2), (3, used, a3)], "file:///s")
    model(control_plane, namespace, "churn", [(1, other, a2)], "file:///s")
    model(control_plane, other_namespace, "credit", [(1, used, b1)], "file:///s")
    deployment(
        control_plane,
        namespace,
        "credit-api",
        "credit",
        {
            "activeVersion": 3,
            "history": history(
                [
                    (1, a1, "2026-12-01T12:00:00Z", "started", None),
                    (2, a2, "2026-12-02T12:00:00Z", "promoted", "ana"),
                    (3, a3, "2026-12-03T12:00:00Z", "promoted", "ben"),
                ]
            ),
        },
    )
    deployment(control_plane, namespace, "churn-api", "churn", {"activeVersion": 1})
    deployment(control_plane, other_namespace, "credit-api", "credit", {"activeVersion": 1})

    result = run(
        "lineage",
        "--dataset",
        f"sha256:{used}",
        "--all-namespaces",
        "--json",
        kubeconfig=control_plane.kubeconfig,
    )

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert sorted(
        (v["namespace"], v["model"], v["version"], v["artifact"]) for v in answer["versions"]
    ) == sorted(
        [(namespace, "credit", 1, a1), (namespace, "credit", 3, a3), (other_namespace, "credit", 1, b1)]
    )
    served = sorted(
        (d["namespace"], d["deployment"], d["version"], d["action"], d["at"]) for d in answer["deployments"]
    )
    assert served == sorted(
        [
            (namespace, "credit-api", 1, "started", "2026-12-01T12:00:00Z"),
            (namespace, "credit-api", 3, "promoted", "2026-12-03T12:00:00Z"),
            (other_namespace, "credit-api", 1, "serving (active)", None),
        ]
    )
    assert answer["unreadable_namespaces"] == []


def test_lineage_shows_only_the_namespaces_the_caller_may_read(
    control_plane: controlplane.ControlPlane, namespace: str, other_namespace: str, tmp_path: pathlib.Path
) -> None:
    used = fake_digest()
    model(control_plane, namespace, "credit", [(1, used, fake_digest())], "file:///s")
    model(control_plane, other_namespace, "credit", [(1, used, fake_digest())], "file:///s")
    reader = f"reader-{uuid.uuid4().hex[:6]}"
    rbac: list[Json] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": reader, "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": reader, "namespace": namespace},
            "rules": [
                {
                    "apiGroups": ["mlsteward.io"],
                    "resources": ["models", "deployments"],
                    "verbs": ["get", "list"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": reader, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": reader},
            "subjects": [{"kind": "ServiceAccount", "name": reader, "namespace": namespace}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": reader},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": reader},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": reader},
            "subjects": [{"kind": "ServiceAccount", "name": reader, "namespace": namespace}],
        },
    ]
    for obj in rbac:
        apply(control_plane, obj)
    token = control_plane.kubectl("create", "token", reader, "-n", namespace, "--duration=1h").stdout.strip()
    kubeconfig = tmp_path / "reader.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": control_plane.server,
                            "certificate-authority": str(control_plane.directory / "pki" / "ca.crt"),
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": namespace}}],
            }
        )
    )

    result = run("lineage", "--dataset", f"sha256:{used}", "-A", "--json", kubeconfig=kubeconfig)

    try:
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert [(v["namespace"], v["version"]) for v in answer["versions"]] == [(namespace, 1)]
        assert other_namespace in answer["unreadable_namespaces"]
    finally:
        control_plane.kubectl("delete", "clusterrole,clusterrolebinding", reader, check=False)


def test_verify_and_docs_read_the_version_from_the_cluster(
    control_plane: controlplane.ControlPlane, namespace: str, tmp_path: pathlib.Path
) -> None:
    dataset = tmp_path / "credit.parquet"
    datasets.generate(800, seed=2).to_parquet(dataset, index=False)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(model_spec(str(dataset))))
    store = tmp_path / "store"
    trained = run(
        "train",
        "--spec",
        str(spec_path),
        "--store",
        str(store),
        "--name",
        "credit",
        "--namespace",
        namespace,
        kubeconfig=control_plane.kubeconfig,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    outcome = json.loads(trained.stdout.strip().splitlines()[-1])
    digest = outcome["artifact"]["digest"]
    model(control_plane, namespace, "credit", [(1, outcome["dataset_sha256"], digest)], store.as_uri())
    deployment(
        control_plane,
        namespace,
        "credit-api",
        "credit",
        {
            "activeVersion": 1,
            "history": history(
                [
                    (1, digest, "2026-12-01T12:00:00Z", "promoted", "compliance-officer@example.org"),
                ]
            ),
        },
    )
    monitor = {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Monitor",
        "metadata": {"name": "credit-watch", "namespace": namespace},
        "spec": {"deploymentRef": {"name": "credit-api"}, "drift": {"numericThreshold": 0.15}},
    }
    apply(control_plane, monitor)
    approval = {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Approval",
        "metadata": {"name": "credit-v1", "namespace": namespace},
        "spec": {
            "deployment": "credit-api",
            "version": 1,
            "digest": digest,
            "approvedBy": "compliance-officer@example.org",
            "reason": "reviewed the bundle",
        },
    }
    apply(control_plane, approval)

    verified = run(
        "verify", "credit", "-n", namespace, "--version", "1", "--json", kubeconfig=control_plane.kubeconfig
    )
    docs = run(
        "docs",
        "credit",
        "-n",
        namespace,
        "--version",
        "1",
        "--out",
        str(tmp_path / "out"),
        kubeconfig=control_plane.kubeconfig,
    )
    missing = run("verify", "credit", "-n", namespace, "--version", "7", kubeconfig=control_plane.kubeconfig)

    assert verified.returncode == 0, verified.stderr[-2000:]
    report = json.loads(verified.stdout)
    assert (report["verdict"], report["model"], report["version"]) == ("identical", f"{namespace}/credit", 1)
    assert report["artifact_identical"] is True
    assert docs.returncode == 0, docs.stderr[-2000:]
    markdown = (tmp_path / "out" / "credit-v1.md").read_text()
    assert "# Documentation bundle: credit version 1" in markdown
    assert (
        "| 2026-12-01T12:00:00Z | credit-api | promoted | promoted by test | compliance-officer@example.org |"
        in markdown
    )
    assert "| credit-api | 1 | compliance-officer@example.org | reviewed the bundle |" in markdown
    assert "credit-watch (watches credit-api)" in markdown and '"numericThreshold": 0.15' in markdown
    assert missing.returncode == 2 and "has no version 7" in missing.stderr
