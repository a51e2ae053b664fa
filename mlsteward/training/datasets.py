"""A synthetic consumer-credit dataset with protected columns, a planted bias and a proxy.

Columns: ``income``, ``debt_ratio``, ``loan_amount``, ``term_months``, ``employment_years``,
``credit_history_years``, ``delinquencies`` (numeric), ``purpose``, ``home_ownership``, ``region``
(categorical), the sensitive ``sex``, ``age``, ``race``, ``marital_status``, and the target
``default`` (1 = defaulted).

What is planted, so tests and demos have something real to find:

- bias: incomes are drawn lower for women and for two race groups, and the historical default
  label carries an extra penalty for those race groups; a model without the sensitive columns
  still selects those groups at different rates (the fairness report must see it);
- proxy: ``region`` follows ``race`` closely (a redlining pattern), so ``race`` is predictable from
  the features once ``region`` is one (the proxy report must flag it);
- missing values: a few percent of ``income`` and ``employment_years`` are empty;
- ``shift=True`` draws from a drifted population: lower incomes, higher debt ratios, larger
  loans, more debt consolidation and renting (for the drift monitor's tests and the demo).

Usage::

    python -m mlsteward.training.datasets --rows 10000 --out credit.parquet [--shift] [--seed 0]
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

SENSITIVE = ("sex", "age", "race", "marital_status")
CATEGORICAL = ("purpose", "home_ownership", "region")
NUMERIC = (
    "income",
    "debt_ratio",
    "loan_amount",
    "term_months",
    "employment_years",
    "credit_history_years",
    "delinquencies",
)
TARGET = "default"
# The features of the example Model (examples/credit-model.yaml): region is left out there.
EXAMPLE_CATEGORICAL = ("purpose", "home_ownership")
EXAMPLE_FEATURES = (*NUMERIC, *EXAMPLE_CATEGORICAL)

_RACES = ("white", "black", "hispanic", "asian", "other")
_RACE_P = (0.60, 0.14, 0.17, 0.06, 0.03)
_REGIONS = ("north", "south", "east", "west", "central")
_PURPOSES = (
    "debt_consolidation",
    "car",
    "home_improvement",
    "education",
    "medical",
    "small_business",
    "other",
)
_PURPOSE_P = (0.35, 0.18, 0.15, 0.08, 0.08, 0.06, 0.10)
_PURPOSE_P_SHIFT = (0.55, 0.12, 0.08, 0.06, 0.10, 0.04, 0.05)
_PURPOSE_RISK = (0.3, 0.0, -0.2, 0.1, 0.4, 0.6, 0.1)
_HOMES = ("rent", "mortgage", "own", "other")
_HOME_P = (0.40, 0.40, 0.17, 0.03)
_HOME_P_SHIFT = (0.60, 0.27, 0.10, 0.03)
_MARITAL = ("single", "married", "divorced", "widowed")


def example_spec(uri: str, **changes: Any) -> dict[str, Any]:
    """The example credit Model's training spec (camelCase, as on the wire) pointed at ``uri``.

    ``changes`` replace top-level keys; a dict value is merged into the default's dict (for
    example ``estimator={"params": {"max_iter": 300}}`` keeps the class name and seed).
    """
    spec: dict[str, Any] = {
        "task": "classification",
        "dataset": {
            "uri": uri,
            "target": TARGET,
            "features": list(EXAMPLE_FEATURES),
            "categorical": list(EXAMPLE_CATEGORICAL),
            "sensitive": list(SENSITIVE),
        },
        "estimator": {"className": "LogisticRegression", "params": {"max_iter": 500}, "seed": 7},
        "fairnessGates": {"minGroupSize": 30},
        "card": {"intendedUse": "Tests.", "owners": ["credit-risk-team"], "limitations": ["Synthetic data."]},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def generate(rows: int, seed: int = 0, shift: bool = False) -> pd.DataFrame:
    """``rows`` applicants drawn with ``seed``; ``shift`` draws from the drifted population."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(np.array(["F", "M"]), size=rows)
    age = np.clip(np.round(21 + rng.gamma(3.0, 7.0, size=rows)), 18, 85).astype(np.int64)
    race_index = rng.choice(len(_RACES), size=rows, p=_RACE_P)
    race = np.asarray(_RACES)[race_index]
    marital = np.where(
        age < 26,
        rng.choice(np.asarray(_MARITAL), size=rows, p=(0.8, 0.17, 0.03, 0.0)),
        rng.choice(np.asarray(_MARITAL), size=rows, p=(0.3, 0.5, 0.15, 0.05)),
    )
    # Region follows race 85% of the time: the proxy.
    region_index = np.where(rng.random(rows) < 0.85, race_index, rng.integers(0, len(_REGIONS), size=rows))
    region = np.asarray(_REGIONS)[region_index]
    disadvantaged = np.isin(race, ("black", "hispanic"))
    career = np.clip(age - 22, 0, 30)
    log_income = 10.4 + 0.02 * career + rng.normal(0, 0.45, size=rows)
    log_income += np.where(sex == "F", np.log(0.72), 0.0) + np.where(disadvantaged, np.log(0.75), 0.0)
    if shift:
        log_income += np.log(0.8)
    income = np.round(np.exp(log_income), -2)
    debt_ratio = np.clip(
        rng.beta(2.0, 5.0, size=rows) + 0.15 * (income < 35_000) + (0.1 if shift else 0.0), 0, 1.5
    )
    loan_amount = np.round(
        np.clip(income * rng.lognormal(-1.2, 0.5, size=rows) * (1.3 if shift else 1.0), 500, 250_000), -2
    )
    term_months = rng.choice(np.array([12, 24, 36, 48, 60]), size=rows, p=(0.1, 0.2, 0.35, 0.15, 0.2))
    employment_years = np.round(np.minimum(career + 2, rng.gamma(2.0, 3.0, size=rows)), 1)
    credit_history_years = np.round(np.clip(rng.normal(0.45 * (age - 18), 5.0), 0, None), 1)
    purpose_index = rng.choice(len(_PURPOSES), size=rows, p=_PURPOSE_P_SHIFT if shift else _PURPOSE_P)
    home = rng.choice(np.asarray(_HOMES), size=rows, p=_HOME_P_SHIFT if shift else _HOME_P)
    delinquencies = rng.poisson(0.2 + 1.2 * debt_ratio)
    logit = (
        -1.6
        + 3.0 * (debt_ratio - 0.3)
        - 1.1 * (np.log(income) - 10.4)
        + 1.2 * (loan_amount / income - 0.3)
        + 0.45 * delinquencies
        + 0.01 * (term_months - 36)
        - 0.04 * employment_years
        - 0.02 * credit_history_years
        + np.asarray(_PURPOSE_RISK)[purpose_index]
        + np.where(home == "own", -0.3, 0.0)
        + np.where(disadvantaged, 0.5, 0.0)  # historical label bias
    )
    default = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    frame = pd.DataFrame(
        {
            "income": income,
            "debt_ratio": np.round(debt_ratio, 4),
            "loan_amount": loan_amount,
            "term_months": term_months,
            "employment_years": employment_years,
            "credit_history_years": credit_history_years,
            "delinquencies": delinquencies,
            "purpose": np.asarray(_PURPOSES)[purpose_index],
            "home_ownership": home,
            "region": region,
            "sex": sex,
            "age": age,
            "race": race,
            "marital_status": marital,
            TARGET: default,
        }
    )
    frame.loc[rng.random(rows) < 0.02, "income"] = np.nan
    frame.loc[rng.random(rows) < 0.03, "employment_years"] = np.nan
    return frame


def write(frame: pd.DataFrame, path: pathlib.Path) -> None:
    """Write CSV or Parquet by the file's suffix (deterministic bytes for the same frame)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False, engine="pyarrow", compression="zstd")
    else:
        raise ValueError(f"unknown dataset suffix {suffix!r}: use .csv or .parquet")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlsteward.training.datasets", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=10_000, help="number of applicants (default 10000)")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="output file, .csv or .parquet")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--shift", action="store_true", help="draw from a drifted population")
    args: Any = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    write(generate(args.rows, args.seed, args.shift), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
