"""Fixtures for the evidence commands: one small model trained for real by `mlsteward train`."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from mlsteward.training import datasets

MLSTEWARD = pathlib.Path(sys.executable).parent / "mlsteward"
ROWS = 1500
FEATURES = ["income", "debt_ratio", "loan_amount", "purpose", "home_ownership"]


@dataclasses.dataclass(frozen=True)
class Trained:
    """A dataset file, the store it was trained into, and the artifact written."""

    dataset: pathlib.Path
    store: pathlib.Path
    digest: str
    outcome: dict[str, Any]

    @property
    def uri(self) -> str:
        return f"file://{self.store}/artifacts/sha256/{self.digest}"

    @property
    def directory(self) -> pathlib.Path:
        return self.store / "artifacts" / "sha256" / self.digest

    def json_file(self, name: str) -> Any:
        return json.loads((self.directory / name).read_text())


def credit_spec(uri: str) -> dict[str, Any]:
    columns: list[dict[str, Any]] = [
        {"name": datasets.TARGET, "type": "integer", "allowedValues": ["0", "1"], "nullable": False},
        *({"name": f, "type": "number"} for f in FEATURES[:3]),
        {"name": "purpose", "type": "string"},
        {"name": "home_ownership", "type": "string"},
        *({"name": s, "type": "integer" if s == "age" else "string"} for s in datasets.SENSITIVE),
    ]
    return {
        "task": "classification",
        "dataset": {
            "uri": uri,
            "target": datasets.TARGET,
            "features": FEATURES,
            "categorical": ["purpose", "home_ownership"],
            "sensitive": list(datasets.SENSITIVE),
        },
        "estimator": {"className": "LogisticRegression", "params": {"max_iter": 500}, "seed": 11},
        "fairnessGates": {"minGroupSize": 20, "maxDemographicParityDifference": 0.5},
        "qualityGates": {"minRocAuc": 0.55},
        "schema": {"version": "2026-12", "columns": columns},
        "card": {
            "intendedUse": "Rank <loan> applications for manual review & tests.",
            "owners": ["credit-risk-team"],
            "limitations": ["Synthetic data only."],
            "required": ["intendedUse", "owners", "limitations"],
        },
    }


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """One `mlsteward ...` process with a clean MLSTEWARD_* environment."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLSTEWARD_")}
    environment.update(env or {})
    return subprocess.run(
        [str(MLSTEWARD), *args], capture_output=True, text=True, timeout=timeout, check=False, env=environment
    )


def train(work: pathlib.Path, spec: dict[str, Any]) -> Trained:
    store = work / "store"
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    result = run_cli(
        "train", "--spec", str(spec_path), "--store", str(store), "--name", "credit", "--namespace", "risk"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    return Trained(pathlib.Path(spec["dataset"]["uri"]), store, outcome["artifact"]["digest"], outcome)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A 1,500-row credit model trained once per session (about 5 s)."""
    work = tmp_path_factory.mktemp("evidence")
    dataset = work / "credit.parquet"
    datasets.generate(ROWS, seed=5).to_parquet(dataset, index=False)
    return train(work, credit_spec(str(dataset)))
