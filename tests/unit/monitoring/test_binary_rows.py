"""The binary ``POST /v1/rows`` body (contracts §4): what the server writes, the monitor reads back;
a damaged body is refused with a reason, never half-read."""

from __future__ import annotations

import numpy as np
import pytest

from mlsteward.monitoring import batches
from mlsteward.serving import feed


def test_arrays_round_trip_and_the_rest_stays_json() -> None:
    income = np.array([1.5, np.nan, 2.25], np.float32)
    body = feed.encode_binary(
        {
            "request_ids": ["a", "b", "c"],
            "seq": np.arange(3),
            "features": {"income": income, "purpose": ["x"] * 3},
        }
    )
    document = batches.decode_binary(body)
    assert document["request_ids"] == ["a", "b", "c"]
    assert document["seq"].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(document["features"]["income"], income)
    assert document["features"]["purpose"] == ["x", "x", "x"]


def test_request_rows_stay_one_id_per_request_and_label_names_expand_to_one_label_per_row() -> None:
    body = feed.encode_binary(
        {
            "request_ids": ["a", "b"],
            "request_rows": np.array([1, 3]),
            "prediction": {"label": np.array([1, 0, 1, 1], np.int32), "label_names": ["no", "yes"]},
        }
    )
    compact = batches.decode_binary(body, compact=True)  # what the sidecar reads
    assert compact["request_ids"] == ["a", "b"]  # the join buffer keeps one entry per request
    assert batches.row_ids(compact) == ["a", "b:0", "b:1", "b:2"]
    assert compact["prediction"] == {"label": ["yes", "no", "yes", "yes"]}
    expanded = batches.decode_binary(body)  # the JSON form's one id per row
    assert expanded["request_ids"] == ["a", "b:0", "b:1", "b:2"]
    assert "request_rows" not in expanded
    assert batches.row_ids(expanded) == ["a", "b:0", "b:1", "b:2"]


def framed(header: bytes) -> bytes:
    return len(header).to_bytes(4, "little") + header


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x01", "malformed_json"),
        ((100).to_bytes(4, "little") + b"{}", "malformed_json"),
        (framed(b"[]"), "bad_field"),
        (framed(b'{"seq": {"$array": ["<f4", 0]}}'), "bad_field"),
        (framed(b'{"seq": {"$array": ["<f4", 0, 99]}}') + b"\0" * 8, "length_mismatch"),
        (framed(b'{"seq": {"$array": ["<f4", -4, 1]}}') + b"\0" * 8, "bad_field"),
        (framed(b'{"seq": {"$array": ["object", 0, 1]}}'), "bad_field"),
        (framed(b'{"request_ids": ["a"], "request_rows": [2]}'), "bad_field"),
        (
            framed(b'{"request_ids": ["a"], "request_rows": {"$array": ["<i8", 0, 2]}}') + b"\1" + b"\0" * 15,
            "length_mismatch",
        ),
        (
            framed(b'{"request_ids": ["a"], "request_rows": {"$array": ["<i8", 0, 1]}}') + b"\0" * 8,
            "bad_field",
        ),
        (
            framed(b'{"prediction": {"label": {"$array": ["<i4", 0, 1]}, "label_names": ["0"]}}')
            + b"\1"
            + b"\0" * 7,
            "bad_field",
        ),
        (framed(b'{"prediction": {"label": ["0"], "label_names": ["0"]}}'), "wrong_type"),
    ],
)
def test_a_damaged_binary_body_is_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(batches.BatchError) as caught:
        batches.decode_binary(body)
    assert caught.value.reason == reason
