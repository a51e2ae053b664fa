"""The dataset-usage query: exactly the versions trained on a digest, and where they served."""

from __future__ import annotations

from typing import Any

from mlsteward.evidence import usage

Json = dict[str, Any]
USED, OTHER = "a" * 64, "b" * 64


def model(namespace: str, name: str, versions: list[tuple[int, str]], champion: int | None = None) -> Json:
    return {
        "metadata": {"namespace": namespace, "name": name},
        "status": {
            "aliases": {"champion": champion} if champion else {},
            "versions": [
                {
                    "version": n,
                    "phase": "Succeeded",
                    "datasetSha256": data,
                    "createdAt": f"2026-12-0{n}T10:00:00Z",
                    "artifact": {"digest": f"{n}" * 64, "uri": "file:///s"},
                }
                for n, data in versions
            ],
        },
    }


def deployment(namespace: str, name: str, model_name: str, status: Json) -> Json:
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"modelRef": {"name": model_name}},
        "status": status,
    }


def test_only_versions_trained_on_the_digest_are_listed_across_namespaces() -> None:
    models = [
        model("risk", "credit", [(1, USED), (2, OTHER), (3, USED)], champion=3),
        model("retail", "churn", [(1, OTHER)]),
        model("audit", "credit", [(4, USED)]),
    ]

    answer = usage.find(models, [], USED)

    assert answer["dataset"] == f"sha256:{USED}"
    found = [(v["namespace"], v["model"], v["version"], v["aliases"]) for v in answer["versions"]]
    assert found == [
        ("audit", "credit", 4, []),
        ("risk", "credit", 1, []),
        ("risk", "credit", 3, ["champion"]),
    ]
    assert answer["versions"][1]["trained_at"] == "2026-12-01T10:00:00Z"


def test_history_records_of_matching_versions_are_reported_with_times_and_approvers() -> None:
    models = [model("risk", "credit", [(1, USED), (2, OTHER)])]
    history = [
        {
            "version": 1,
            "digest": "1" * 64,
            "at": "2026-12-01T11:00:00Z",
            "action": "started",
            "reason": "first",
        },
        {
            "version": 2,
            "digest": "2" * 64,
            "at": "2026-12-02T11:00:00Z",
            "action": "promoted",
            "approvedBy": "ana",
        },
        {
            "version": 1,
            "digest": "1" * 64,
            "at": "2026-12-03T11:00:00Z",
            "action": "rolledBack",
            "reason": "errors",
        },
    ]
    deployments = [
        deployment("risk", "credit-api", "credit", {"history": history, "activeVersion": 1}),
        # Same version number, another Model: not a user of the dataset.
        deployment("risk", "churn-api", "churn", {"activeVersion": 1}),
        # Same Model name in another namespace: a different Model.
        deployment("retail", "credit-api", "credit", {"activeVersion": 1}),
    ]

    answer = usage.find(models, deployments, USED)

    assert [(d["deployment"], d["version"], d["action"], d["at"]) for d in answer["deployments"]] == [
        ("credit-api", 1, "started", "2026-12-01T11:00:00Z"),
        ("credit-api", 1, "rolledBack", "2026-12-03T11:00:00Z"),
    ]
    assert {d["source"] for d in answer["deployments"]} == {"status.history"}


def test_without_history_the_active_and_canary_versions_are_reported() -> None:
    models = [model("risk", "credit", [(1, USED), (2, USED), (3, OTHER)])]
    status = {
        "history": [],  # the CRD's default: no record kept yet
        "activeVersion": 1,
        "canaryVersion": 2,
        "conditions": [
            {"type": "Ready", "lastTransitionTime": "2026-12-04T09:00:00Z"},
            {"type": "Reconciling", "lastTransitionTime": "2026-12-05T09:00:00Z"},
        ],
    }

    answer = usage.find(models, [deployment("risk", "credit-api", "credit", status)], USED)

    assert [(d["version"], d["action"], d["at"], d["source"]) for d in answer["deployments"]] == [
        (1, "serving (active)", "2026-12-05T09:00:00Z", "status.activeVersion"),
        (2, "serving (canary)", "2026-12-05T09:00:00Z", "status.canaryVersion"),
    ]


def test_a_digest_nobody_used_gives_an_empty_answer() -> None:
    answer = usage.find([model("risk", "credit", [(1, OTHER)])], [], USED)

    assert answer["versions"] == [] and answer["deployments"] == []
