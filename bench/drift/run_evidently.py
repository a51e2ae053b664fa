"""(b) Evidently 0.7.23's default data drift report (run in bench/drift/.venv-peers).

Usage: .venv-peers/bin/python run_evidently.py ROWS. DataFrames are built before timing.
Per-column verdict: Evidently's ValueDrift value at or above its threshold (its defaults
for more than 1,000 reference rows: normed Wasserstein and Jensen-Shannon, both 0.1).
"""

from __future__ import annotations

import json
import sys
import time

import common
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def main() -> None:
    rows = int(sys.argv[1])
    definition = DataDefinition(numerical_columns=common.NUMERIC, categorical_columns=common.CATEGORICAL)
    reference = Dataset.from_pandas(pd.DataFrame(common.reference()), data_definition=definition)
    current = Dataset.from_pandas(pd.DataFrame(common.current(rows)), data_definition=definition)
    began, cpu_began = time.perf_counter(), time.process_time()
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    result = snapshot.dict()
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    verdicts: dict[str, bool] = {}
    scores: dict[str, float] = {}
    methods: dict[str, str] = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = float(metric["value"])
            verdicts[config["column"]] = float(metric["value"]) >= float(config["threshold"])
            methods[config["column"]] = config["method"]
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "verdicts": verdicts,
                "scores": scores,
                "methods": methods,
            }
        )
    )


if __name__ == "__main__":
    main()
