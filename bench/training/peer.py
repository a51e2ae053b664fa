"""The comparison script: read the data and fit the same pipeline as ``mlsteward train``, nothing else.

Run with the project venv for the plain baseline, or with ``.venv-peers`` and ``--mlflow`` for the
same fit under ``mlflow.sklearn.autolog()`` with a file-based tracking store. It imports no
mlsteward code, so it runs in the peers' venv; the pipeline below mirrors
``mlsteward/training/pipeline.py`` (median impute, scale for linear models, one-hot with
handle_unknown="ignore", dense) and the trainer's split (stratified, seeded).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

_MODULES = {
    "LogisticRegression": "sklearn.linear_model",
    "RandomForestClassifier": "sklearn.ensemble",
    "HistGradientBoostingClassifier": "sklearn.ensemble",
}


def build(spec: dict[str, Any]) -> Pipeline:
    dataset, estimator_spec = spec["dataset"], spec["estimator"]
    categorical = [f for f in dataset["features"] if f in set(dataset.get("categorical", []))]
    numeric = [f for f in dataset["features"] if f not in set(categorical)]
    cls = getattr(importlib.import_module(_MODULES[estimator_spec["className"]]), estimator_spec["className"])
    params = dict(estimator_spec.get("params", {}))
    if "random_state" in cls().get_params():
        params["random_state"] = estimator_spec.get("seed", 0)
    steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if estimator_spec["className"] == "LogisticRegression":
        steps.append(("scale", StandardScaler()))
    preprocess = ColumnTransformer(
        [
            ("numeric", Pipeline(steps), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ],
        sparse_threshold=0.0,
    )
    return Pipeline([("preprocess", preprocess), ("estimator", cls(**params))])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=pathlib.Path, required=True)
    parser.add_argument(
        "--mlflow", type=pathlib.Path, default=None, help="tracking directory: enable autolog"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    spec = yaml.safe_load(args.spec.read_text())
    dataset = spec["dataset"]
    if args.mlflow is not None:
        import mlflow  # type: ignore[import-not-found]  # only in .venv-peers

        mlflow.set_tracking_uri((args.mlflow.resolve() / "mlruns").as_uri())  # must not exist yet
        mlflow.sklearn.autolog()
    frame = pd.read_parquet(dataset["uri"], columns=[*dataset["features"], dataset["target"]])
    for column in dataset.get("categorical", []):
        frame[column] = frame[column].astype(object)
    target = frame[dataset["target"]].to_numpy()
    x_train, _, y_train, _ = train_test_split(
        frame[dataset["features"]],
        target,
        test_size=0.2,
        random_state=spec["estimator"].get("seed", 0),
        stratify=target,
    )
    model = build(spec)
    fit_cpu = time.process_time()
    if args.mlflow is not None:
        import mlflow

        with mlflow.start_run():
            model.fit(x_train, y_train)
    else:
        model.fit(x_train, y_train)
    fit_cpu = time.process_time() - fit_cpu
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "fit_cpu_s": fit_cpu,
                "classes": np.unique(y_train).size,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
