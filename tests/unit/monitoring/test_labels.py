"""The label join buffer is bounded in size and in age; AUC and RMSE from mergeable counts."""

from __future__ import annotations

import numpy as np
import pytest

from mlsteward.monitoring import labels


def test_a_label_joins_the_prediction_remembered_for_its_request_id() -> None:
    buffer = labels.JoinBuffer(capacity=10, timeout_s=60.0)
    buffer.remember(["a"], ["1"], [0.9], now=0.0, version="1")
    buffer.remember(["b"], ["0"], [0.2], now=0.0, version="2")

    positions, predicted, scores, versions = buffer.join(["b", "x", "a"], now=1.0)

    assert positions == [0, 2]
    assert predicted == ["0", "1"]
    assert scores == [0.2, 0.9]
    assert versions == ["2", "1"]
    assert len(buffer) == 0


def test_predictions_older_than_the_timeout_expire_and_are_counted() -> None:
    buffer = labels.JoinBuffer(capacity=10, timeout_s=60.0)
    buffer.remember(["old"], ["1"], [0.9], now=0.0)
    buffer.remember(["new"], ["1"], [0.9], now=50.0)

    positions, _, _, _ = buffer.join(["old", "new"], now=70.0)

    assert positions == [1]
    assert buffer.expired == 1


def test_a_full_buffer_forgets_the_oldest_predictions_first() -> None:
    buffer = labels.JoinBuffer(capacity=3, timeout_s=60.0)
    buffer.remember([f"r{i}" for i in range(5)], None, None, now=0.0)

    positions, _, _, _ = buffer.join(["r0", "r1", "r2", "r3", "r4"], now=1.0)

    assert positions == [2, 3, 4]
    assert buffer.evicted == 2


def test_rmse_and_mae_for_regression() -> None:
    counts = labels.PerformanceCounts()
    counts.add_regression([1.0, 2.0, None, 4.0], [1.0, 4.0, 9.0, 2.0])

    report = labels.report(counts, "regression")

    assert report.labeled == 3
    assert report.rmse == pytest.approx(np.sqrt(8.0 / 3.0))
    assert report.mae == pytest.approx(4.0 / 3.0)


def test_roc_auc_of_a_perfect_and_of_a_useless_ranking() -> None:
    perfect = labels.PerformanceCounts()
    perfect.add_classification(["1", "0"] * 50, ["1", "0"] * 50, [0.9, 0.1] * 50, "1")
    useless = labels.PerformanceCounts()
    useless.add_classification(["1"] * 100, ["1", "0"] * 50, [0.5] * 100, "1")

    assert labels.roc_auc(perfect) == 1.0
    assert labels.roc_auc(useless) == 0.5


def test_the_ring_wraps_and_keeps_exactly_the_newest_rows_over_many_batches() -> None:
    buffer = labels.JoinBuffer(capacity=5, timeout_s=60.0)
    for batch in range(4):  # 12 rows through 5 slots, batches straddling the wrap
        ids = [f"r{3 * batch + i}" for i in range(3)]
        buffer.remember(ids, [str(i) for i in range(3)], [0.5] * 3, now=float(batch), version=str(batch))
    buffer.join(["r8"], now=4.0)  # joined already: the next join does not find it again

    positions, predicted, _, versions = buffer.join([f"r{i}" for i in range(12)], now=4.0)

    assert positions == [7, 9, 10, 11]
    assert predicted == ["1", "0", "1", "2"]
    assert versions == ["2", "3", "3", "3"]
    assert buffer.evicted == 7
    assert len(buffer) == 0


def test_a_request_id_remembered_twice_joins_its_newest_row_once() -> None:
    buffer = labels.JoinBuffer(capacity=4, timeout_s=60.0)
    buffer.remember(["a"], ["0"], [0.1], now=0.0, version="1")
    buffer.remember(["a"], ["1"], [0.9], now=0.0, version="2")  # the shadow challenger's row

    positions, predicted, _, versions = buffer.join(["a", "a"], now=1.0)

    assert (positions, predicted, versions) == ([0], ["1"], ["2"])
    buffer.remember(["x", "y", "z", "w"], None, None, now=2.0)  # evicts both "a" rows, already joined
    assert buffer.evicted == 0


def test_a_multi_row_request_is_one_entry_whose_rows_join_by_row_id_once_each() -> None:
    buffer = labels.JoinBuffer(capacity=10, timeout_s=60.0)
    buffer.remember(["a", "b"], ["1", "0", "1", "0"], [0.9, 0.1, 0.8, 0.2], now=0.0, request_rows=[1, 3])
    assert len(buffer) == 4

    found = buffer.join(["b", "b:3", "b:01", "b:2", "a", "b:0", "b:2", "a:0"], now=1.0)

    assert found == ([3, 4, 5], ["0", "1", "0"], [0.2, 0.9, 0.1], ["", "", ""])
    assert len(buffer) == 1
    assert buffer.join(["b:1"], now=1.0)[1] == ["1"]
    assert len(buffer) == 0


def test_the_row_bound_forgets_whole_requests_and_counts_their_waiting_rows() -> None:
    buffer = labels.JoinBuffer(capacity=4, timeout_s=60.0)
    buffer.remember(["a"], ["1", "0", "1"], None, now=0.0, request_rows=[3])
    buffer.join(["a:1"], now=0.0)
    buffer.remember(["b"], ["0", "0"], None, now=0.0, request_rows=[2])  # 5 rows > 4: "a" goes

    assert buffer.evicted == 2
    assert len(buffer) == 2
    assert buffer.join(["a:0", "b:0", "b:1"], now=0.0)[0] == [1, 2]
    buffer.remember(["c"], ["0"] * 6, None, now=0.0, request_rows=[6])  # larger than the buffer
    assert buffer.evicted == 8
    assert len(buffer) == 0


def test_expiry_drops_the_waiting_rows_of_old_requests() -> None:
    buffer = labels.JoinBuffer(capacity=10, timeout_s=60.0)
    buffer.remember(["old"], ["1", "1"], None, now=0.0, request_rows=[2])
    buffer.remember(["new"], ["1", "1"], None, now=50.0, request_rows=[2])
    buffer.join(["old:0"], now=10.0)

    assert buffer.join(["old:1", "new:1"], now=70.0)[0] == [1]
    assert buffer.expired == 1


def test_one_entry_per_request_joins_exactly_like_one_entry_per_row() -> None:
    """The compact form (one id + row count per request) against the same rows given one id each."""
    rng = np.random.default_rng(7)
    compact = labels.JoinBuffer(capacity=5_000, timeout_s=30.0)
    per_row = labels.JoinBuffer(capacity=5_000, timeout_s=30.0)
    remembered: list[str] = []
    counts: list[int] = []
    for step in range(60):
        first = counts[0] if counts else 1
        counts = rng.integers(1, 6, rng.integers(1, 40)).tolist()
        ids = [f"s{step}-{i}" for i in range(len(counts))]
        if step % 7 == 3:  # a shadow challenger's rows for the previous batch's first request
            ids[0], counts[0] = f"s{step - 1}-0", first
        rows = [f"{rid}:{i}" if n > 1 else rid for rid, n in zip(ids, counts, strict=True) for i in range(n)]
        predicted = [str(v) for v in rng.integers(0, 3, len(rows))]
        scores = rng.random(len(rows)).tolist()
        compact.remember(ids, predicted, scores, now=float(step), version=str(step % 2), request_rows=counts)
        per_row.remember(rows, predicted, scores, now=float(step), version=str(step % 2))
        remembered += rows
        asked = [remembered[i] for i in rng.integers(0, len(remembered), 25)] + ["nobody", "s0-0:x"]
        assert compact.join(asked, now=float(step)) == per_row.join(asked, now=float(step))
        assert (len(compact), compact.expired) == (len(per_row), per_row.expired)
