"""Build the benchmark's models once: the same models as ONNX artifacts and as joblib files.

Three classifiers on a synthetic table of 20 numeric features: GradientBoosting (100 trees),
RandomForest (100 trees, depth 8) and LogisticRegression. Each fitted pipeline is (a) converted
by the trainer's own conversion into a contracts §1 artifact in ``<dir>/store`` (what mlsteward
serves) and (b) fitted again, identically (same data, same seed), as a pipeline that selects its
columns by position so that it takes the plain ``[N, 20]`` array MLServer and KServe hand it, and
dumped with joblib into ``<dir>/<name>/model.joblib``. The two fits are checked to predict the
same probabilities, so every server answers with the same model.

Usage::

    python bench/serving/models.py --out /tmp/bench-models   # prints a JSON index
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

import numpy as np
import pandas as pd

FEATURES = [f"x{i:02d}" for i in range(20)]
ESTIMATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "gbt": ("GradientBoostingClassifier", {"n_estimators": 100, "max_depth": 3}),
    "rf": ("RandomForestClassifier", {"n_estimators": 100, "max_depth": 8, "n_jobs": 1}),
    "logreg": ("LogisticRegression", {"max_iter": 500}),
}


def numeric_schema(features: list[str]) -> dict[str, Any]:
    """The schema section of the bench models' artifacts: binary classification over numerics."""
    return {
        "task": "classification",
        "target": "y",
        "features": [{"name": name, "kind": "numeric"} for name in features],
        "classes": ["0", "1"],
        "positive_class": "1",
        "sensitive": [],
    }


def make_data(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    logits = (
        x[:, :5] @ np.array([1.5, -1.0, 0.8, 0.5, -0.7]) + 0.5 * x[:, 5] * x[:, 6] + 0.3 * np.sin(3 * x[:, 7])
    )
    y = (logits + rng.logistic(size=rows) > 0).astype(np.int64)
    return pd.DataFrame(x, columns=FEATURES), y


def build(out: pathlib.Path, rows: int = 20_000) -> dict[str, Any]:
    import joblib  # type: ignore[import-untyped]
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from mlsteward.store import artifacts
    from mlsteward.training import conversion, pipeline, profiles

    classes = {
        "GradientBoostingClassifier": GradientBoostingClassifier,
        "RandomForestClassifier": RandomForestClassifier,
        "LogisticRegression": LogisticRegression,
    }
    frame, target = make_data(rows)
    index: dict[str, Any] = {"features": FEATURES, "models": {}}
    for name, (class_name, params) in ESTIMATORS.items():
        estimator = classes[class_name](**params, random_state=0)
        fitted = pipeline.build_pipeline(estimator, FEATURES, []).fit(frame, target)
        model_bytes = conversion.to_onnx(fitted, FEATURES, [], "classification")
        schema = numeric_schema(FEATURES)
        profile = profiles.build_features(frame, FEATURES, [])
        ref = artifacts.write_artifact(
            out / "store",
            {
                "model.onnx": model_bytes,
                "schema.json": artifacts.canonical_json(schema),
                "profile.json": artifacts.canonical_json(profile),
            },
        )
        positional = classes[class_name](**params, random_state=0)
        array = frame.to_numpy()
        positions: Any = list(range(len(FEATURES)))  # ColumnTransformer selects by position on arrays
        by_position = pipeline.build_pipeline(positional, positions, []).fit(array, target)
        sample = array[:500]
        gap = float(np.abs(fitted.predict_proba(frame.iloc[:500]) - by_position.predict_proba(sample)).max())
        if gap > 1e-9:
            raise SystemExit(f"{name}: the positional refit differs from the named fit by {gap}")
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(by_position, folder / "model.joblib")
        (folder / "model.onnx").write_bytes(model_bytes)
        index["models"][name] = {
            "digest": ref.digest,
            "class": class_name,
            "joblib": str(folder / "model.joblib"),
        }
    (out / "index.json").write_text(json.dumps(index, indent=2))
    return index


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(json.dumps(build(args.out, args.rows), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
