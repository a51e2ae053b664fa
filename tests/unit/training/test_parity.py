"""The parity check's sample of the holdout and the comparison it feeds."""

from __future__ import annotations

import numpy as np

from mlsteward.api import model as api_model
from mlsteward.training import conversion, metrics


def test_a_small_holdout_is_compared_whole() -> None:
    target = np.r_[np.zeros(900, dtype=np.int64), np.ones(100, dtype=np.int64)]

    assert np.array_equal(
        conversion.parity_rows(target, "classification", seed=1, limit=1000), np.arange(1000)
    )


def test_a_large_holdout_is_sampled_seeded_and_stratified_by_class() -> None:
    target = np.r_[np.zeros(9000, dtype=np.int64), np.ones(1000, dtype=np.int64)]

    rows = conversion.parity_rows(target, "classification", seed=1, limit=2000)

    assert len(rows) == 2000 and len(np.unique(rows)) == 2000 and np.all(np.diff(rows) > 0)
    assert int(target[rows].sum()) == 200  # the class shares of the holdout, exactly
    assert np.array_equal(rows, conversion.parity_rows(target, "classification", seed=1, limit=2000))
    assert not np.array_equal(rows, conversion.parity_rows(target, "classification", seed=2, limit=2000))
    assert len(conversion.parity_rows(target.astype(np.float64), "regression", seed=1, limit=2000)) == 2000


def test_parity_on_the_sampled_rows_counts_label_flips_and_differences() -> None:
    labels = np.zeros(1000, dtype=np.int64)
    probabilities = np.tile([0.9, 0.1], (1000, 1))
    reference = conversion.Predictions(labels=labels, values=probabilities)
    flipped = labels.copy()
    flipped[:3] = 1
    shifted = probabilities.copy()
    shifted[:3] = [0.4, 0.6]
    rows = np.arange(0, 1000, 2)

    report = conversion.parity(
        reference.take(rows),
        conversion.Predictions(labels=flipped, values=shifted).take(rows),
        api_model.ParityLimits(),
        "classification",
    )

    assert report["rows"] == 500 and report["label_agreement"] == 1 - 2 / 500
    assert report["max_abs_difference"] == 0.5 and report["passed"] is False
    assert any("label agreement" in b for b in report["breaches"])


def test_class_codes_map_integer_and_text_labels_to_class_positions() -> None:
    assert metrics.class_codes(np.array([3, 1, 2, 7]), np.array([1, 3])).tolist() == [1, 0, -1, -1]
    text = np.array(["no", "yes", "maybe"], dtype=object)
    assert metrics.class_codes(text, np.array(["no", "yes"], dtype=object)).tolist() == [0, 1, -1]
