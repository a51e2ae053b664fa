"""Routing files, exact splits, ConfigMap-style watching, settings, profile medians, feed bodies, batching."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from mlsteward.serving import batching, feed, metrics, models, routing, settings, signatures

DIGEST = "a" * 64


def test_the_routing_file_of_contracts_section_5_parses() -> None:
    raw = json.dumps(
        {
            "model": "credit",
            "champion": {"version": "3", "digest": DIGEST},
            "challenger": {"version": 4, "digest": "b" * 64, "share": 10, "mode": "shadow"},
        }
    ).encode()
    config = routing.parse(raw)
    assert config.model == "credit" and config.champion == models.VersionRef("3", DIGEST)
    assert config.challenger == routing.Challenger(models.VersionRef("4", "b" * 64), 10.0, "shadow")
    assert routing.parse(raw, model_name_override="other").model == "other"


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"model": "credit"}, "'champion' must be an object"),
        ({"model": "credit", "champion": {"version": "3", "digest": "xyz"}}, "64 lowercase hex"),
        (
            {
                "model": "credit",
                "champion": {"version": "3", "digest": DIGEST},
                "challenger": {"version": "4", "digest": DIGEST, "share": 101},
            },
            "0 to 100",
        ),
        (
            {
                "model": "credit",
                "champion": {"version": "3", "digest": DIGEST},
                "challenger": {"version": "4", "digest": DIGEST, "mode": "canary"},
            },
            "'split' or 'shadow'",
        ),
        (
            {
                "model": "credit",
                "champion": {"version": "3", "digest": DIGEST},
                "challenger": {"version": "3", "digest": DIGEST},
            },
            "both version '3'",
        ),
        ({"model": "../etc", "champion": {"version": "3", "digest": DIGEST}}, "'model' must be"),
    ],
)
def test_invalid_routing_files_are_refused_naming_the_field(document: dict[str, Any], fragment: str) -> None:
    with pytest.raises(routing.RoutingError, match=fragment.replace("(", r"\(")):
        routing.parse(json.dumps(document).encode())


@pytest.mark.parametrize("share", [0, 1, 10, 33.3, 50, 99, 100])
def test_the_splitter_sends_exactly_its_share_over_every_prefix(share: float) -> None:
    splitter = routing.Splitter(share)
    sent = 0
    for n in range(1, 1001):
        sent += splitter.to_challenger(None)
        assert sent == int(n * share / 100)


def test_request_ids_are_sticky_and_spread_near_the_share() -> None:
    splitter = routing.Splitter(20)
    assert all(splitter.to_challenger("same") == splitter.to_challenger("same") for _ in range(10))
    share = sum(splitter.to_challenger(f"id-{i}") for i in range(10_000)) / 10_000
    assert 0.18 < share < 0.22


def test_the_file_watch_sees_a_configmap_symlink_swap_and_ignores_touches(tmp_path: pathlib.Path) -> None:
    first, second = tmp_path / "..2026_1", tmp_path / "..2026_2"
    first.mkdir()
    second.mkdir()
    (first / "routing.json").write_text("one")
    (second / "routing.json").write_text("two")
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "routing.json").symlink_to("..data/routing.json")
    watch = routing.FileWatch(tmp_path / "routing.json")
    assert watch.changed() == b"one"
    assert watch.changed() is None
    os.utime(first / "routing.json")
    assert watch.changed() is None  # touched, same bytes
    (tmp_path / "..data_tmp").symlink_to(second.name)
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert watch.changed() == b"two"
    watch.forget()
    assert watch.changed() == b"two"


def test_every_settings_field_has_exactly_one_flag_and_one_variable() -> None:
    fields = {
        f"{section.name}.{field.name}"
        for section in dataclasses.fields(settings.ServeSettings)
        for field in dataclasses.fields(getattr(settings.ServeSettings(), section.name))
    }
    assert set(settings.FLAGS) == fields
    flags = [flag for flag, _ in settings.FLAGS.values()]
    assert len(flags) == len(set(flags))
    assert settings.env_name("--monitor-url") == "MLSTEWARD_SERVE_MONITOR_URL"


def test_flags_beat_variables_which_beat_defaults() -> None:
    environ = {
        "MLSTEWARD_SERVE_PORT": "9000",
        "MLSTEWARD_SERVE_MAX_BATCH_SIZE": "16",
        "MLSTEWARD_SERVE_OFFLOAD_INFERENCE": "true",
    }
    config = settings.from_args(["--port", "9100", "--routing", "r.json"], environ)
    assert config.server.port == 9100
    assert config.batching.max_batch_size == 16
    assert config.runtime.offload is True
    assert config.server.routing == pathlib.Path("r.json")
    assert config.monitor.queue_rows == settings.MonitorSettings().queue_rows


@pytest.mark.parametrize(
    ("argv", "environ", "fragment"),
    [
        (["--port", "x"], {}, "--port: cannot read 'x'"),
        ([], {"MLSTEWARD_SERVE_MAX_ROWS": "0"}, "--max-rows must be at least 1"),
        (["--monitor-url", "https://x"], {}, "http:// URL"),
        ([], {"MLSTEWARD_SERVE_REUSE_PORT": "maybe"}, "not a boolean"),
    ],
)
def test_bad_settings_are_refused_naming_the_flag_or_variable(
    argv: list[str], environ: dict[str, str], fragment: str
) -> None:
    with pytest.raises(settings.SettingsError, match=fragment):
        settings.from_args(argv, environ)


def test_the_reference_median_is_interpolated_from_the_profile_bins() -> None:
    signature = signatures.from_schema(
        {
            "task": "regression",
            "features": [{"name": "x", "kind": "numeric"}, {"name": "c", "kind": "categorical"}],
        }
    )
    profile = {
        "features": {
            "x": {"kind": "numeric", "edges": [0.0, 10.0, 20.0], "counts": [0, 50, 50, 0, 7]},
            "c": {"kind": "categorical", "categories": ["home", "car"], "counts": [5, 3, 0, 0, 0]},
        }
    }
    assert models.reference_values(signature, profile) == {"x": 10.0, "c": "home"}
    assert models.reference_values(signature, {}) == {"x": 0.0, "c": ""}


def _decoded(body: bytes) -> Any:
    """The body as the monitor reads it, with its arrays as lists (NaN as None), as in JSON."""
    from mlsteward.monitoring import batches

    return orjson.loads(orjson.dumps(batches.decode_binary(body), option=orjson.OPT_SERIALIZE_NUMPY))


def test_the_monitor_body_is_column_oriented_with_one_entry_per_row() -> None:
    first_probabilities = np.array([[0.2, 0.8]], np.float32)
    second_probabilities = np.array([[0.9, 0.1], [0.3, 0.7]], np.float32)
    pending = feed._Pending("3", "d" * 64, "champion", 1)
    pending.add(
        1.0,
        "a",
        1,
        10,
        columns={"x": np.array([[1.5]], np.float32), "c": np.array([["car"]], dtype=object)},
        block=None,
        outputs={"label": np.array([1]), "probabilities": first_probabilities},
        metadata={"sex": ["F"]},
        reason_codes=None,
    )
    pending.add(
        2.0, "b", 2, 11,
        columns={"x": np.array([[np.nan], [2.0]], np.float32), "c": np.array([[""], ["home"]], dtype=object)},
        block=None,
        outputs={"label": np.array([0, 1]), "probabilities": second_probabilities},
        metadata={},
        reason_codes=np.array([["x", "c"], ["c", "x"]], dtype=object),
    )  # fmt: skip
    document = _decoded(pending.body("stream-1"))
    assert document["request_ids"] == ["a", "b:0", "b:1"]
    assert document["features"] == {"x": [1.5, None, 2.0], "c": ["car", "", "home"]}
    assert document["prediction"]["label"] == ["1", "0", "1"]
    assert document["prediction"]["score"] == pytest.approx([0.8, 0.1, 0.7])
    assert document["metadata"] == {"sex": ["F", None, None]}
    assert document["time"] == 2.0 and document["route"] == "champion" and document["model_version"] == "3"
    assert document["model_digest"] == "d" * 64 and document["stream"] == "stream-1"
    assert document["seq"] == [10, 11, 12]
    assert document["times"] == [1.0, 2.0, 2.0]
    assert document["reason_codes"] == [None, ["x", "c"], ["c", "x"]]


def test_a_one_tensor_request_goes_into_the_body_through_its_feature_block() -> None:
    block = np.array([[[1.0], [2.0]], [[3.0], [4.0]]], np.float32)  # [F=2, rows=2, 1]
    outputs = {"variable": np.array([[0.5], [0.25]], np.float32)}
    pending = feed._Pending("1", "e" * 64, "shadow", None)
    pending.add(
        5.0, "r", 2, 0,
        columns=dict(zip(["u", "v"], block, strict=True)), block=block, outputs=outputs,
        metadata={}, reason_codes=None,
    )  # fmt: skip
    document = _decoded(pending.body("s"))
    assert document["features"] == {"u": [1.0, 2.0], "v": [3.0, 4.0]}
    assert document["prediction"] == {"label": None, "score": [0.5, 0.25]}
    assert document["route"] == "shadow" and document["seq"] == [0, 1]


def test_concurrent_requests_are_scored_in_one_batch_and_get_their_own_rows() -> None:
    calls: list[int] = []

    def run(columns: dict[str, Any]) -> dict[str, Any]:
        calls.append(len(columns["x"]))
        return {"y": columns["x"] * 2}

    registry = CollectorRegistry()
    histogram = metrics.ServingMetrics(registry).batch_observer("m", "1")

    async def scenario() -> list[Any]:
        batcher = batching.Batcher(run, max_batch_size=64, max_delay_s=0.0, on_batch=histogram.observe)
        requests = [{"x": np.full((rows, 1), float(rows))} for rows in (1, 2, 3)]
        return await asyncio.gather(*(batcher.submit(r, len(r["x"])) for r in requests))

    answers = asyncio.run(scenario())
    assert calls == [6]
    assert [a["y"].ravel().tolist() for a in answers] == [[2.0], [4.0, 4.0], [6.0, 6.0, 6.0]]
    assert (
        registry.get_sample_value("mlsteward_serving_batch_size_rows_sum", {"model": "m", "version": "1"})
        == 6
    )


def test_one_failing_request_does_not_fail_its_batch_neighbours() -> None:
    def run(columns: dict[str, Any]) -> dict[str, Any]:
        if np.isnan(columns["x"]).any():
            raise RuntimeError("model rejected NaN")
        return {"y": columns["x"]}

    async def scenario() -> tuple[Any, ...]:
        batcher = batching.Batcher(run, max_batch_size=64, max_delay_s=0.0)
        good, bad = {"x": np.ones((1, 1))}, {"x": np.full((1, 1), np.nan)}
        return tuple(
            await asyncio.gather(batcher.submit(good, 1), batcher.submit(bad, 1), return_exceptions=True)
        )

    good, bad = asyncio.run(scenario())
    assert good["y"].tolist() == [[1.0]]
    assert isinstance(bad, RuntimeError)
