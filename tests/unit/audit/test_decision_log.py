"""The decision log end to end in one process: the server's real body builder, the sidecar's real
writer, real files in a temporary store, the verifier and the reader; time comes from a fake clock."""

from __future__ import annotations

import hashlib
import pathlib
import struct
import time
from typing import Any

import numpy as np
import orjson
import pytest
import zstandard

from mlsteward.audit import chains, locations, reader, records, retention, segments
from mlsteward.monitoring import batches, decisions
from mlsteward.serving import feed

NAMES = ["age", "income", "purpose"]
DIGEST = "ab" * 32
DAY = 86_400.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


NOW = 1_790_000_000.0


def scored(seq: int, rows: int, *, rid: str, codes: bool = False, at: float = NOW) -> Any:
    """One answered request as the server queues it (numeric block + a categorical column)."""
    rng = np.random.default_rng(seq)
    numeric = rng.normal(size=(2, rows, 1)).astype(np.float32)
    columns = {"age": numeric[0], "income": numeric[1], "purpose": np.array([["car"]] * rows, dtype=object)}
    probabilities = rng.uniform(size=(rows, 2)).astype(np.float32)
    labels = (probabilities[:, 1] > 0.5).astype(np.int64)
    outputs: dict[str, Any] = {"label": labels, "probabilities": probabilities}
    reason = np.array([["income", "age"]] * rows, dtype=object) if codes else None
    return {"at": at, "request_id": rid, "rows": rows, "seq": seq, "columns": columns, "block": None,
            "outputs": outputs, "metadata": {}, "reason_codes": reason}  # fmt: skip


def body(items: list[Any]) -> dict[str, Any]:
    """The batch the server would send for ``items`` (all one version and route), as decoded."""
    pending = feed._Pending("3", DIGEST, "champion", 1)
    for item in items:
        pending.add(**item)
    document: dict[str, Any] = batches.decode_binary(pending.body("stream-a"))
    return document


def writer(store: pathlib.Path, clock: Clock, **overrides: Any) -> decisions.DecisionLog:
    config = decisions.LogSettings(
        namespace="risk", deployment="credit", chain="pod-0", segment_max_records=4, **overrides
    )
    return decisions.DecisionLog(locations.LocalLocation(store), config, clock)


def segment_files(store: pathlib.Path) -> list[pathlib.Path]:
    return sorted((store / "decisions/risk/credit/pod-0/segments").iterdir())


def verify(store: pathlib.Path) -> chains.Report:
    return chains.verify(locations.LocalLocation(store), "risk", "credit")


@pytest.fixture
def written(tmp_path: pathlib.Path) -> pathlib.Path:
    """A closed chain: open, three record segments (10 decisions), close."""
    log = writer(tmp_path, Clock(NOW))
    log.start()
    items = [scored(i, 1, rid=f"r{i}", codes=i == 2) for i in range(8)] + [scored(8, 2, rid="multi")]
    for part in (items[:4], items[4:8], items[8:]):
        log.offer(body(part), sum(item["rows"] for item in part))
    log.close()
    return tmp_path


def test_every_decision_is_found_by_request_id_with_version_digest_output_and_input_digest(
    written: pathlib.Path,
) -> None:
    found, report = reader.decisions(
        locations.LocalLocation(written),
        namespace="risk",
        deployment="credit",
        start=0,
        end=2e9,
        request_id="r2",
    )
    assert report.verdict == "intact", report.findings
    assert report.records == 10
    assert len(found) == 1
    decision = found[0]
    item = scored(2, 1, rid="r2")
    assert decision["model_version"] == "3"
    assert decision["model_digest"] == DIGEST
    assert decision["route"] == "champion"
    assert decision["reason_codes"] == ["income", "age"]
    outputs = item["outputs"]
    assert decision["output"]["score"] == pytest.approx(float(outputs["probabilities"][0, 1]), rel=1e-6)
    assert decision["output"]["label"] == str(outputs["label"][0])
    assert "inputs" not in decision  # data minimisation by default
    row = {"age": item["columns"]["age"][0, 0], "income": item["columns"]["income"][0, 0], "purpose": "car"}
    assert decision["input_sha256"] == records.input_digest(row)
    multi, _ = reader.decisions(
        locations.LocalLocation(written), namespace="risk", deployment="credit", start=0, end=2e9
    )
    assert [d["request_id"] for d in multi][-2:] == ["multi:0", "multi:1"]


def test_the_input_digest_of_a_batch_equals_the_digest_of_each_row_recomputed_from_the_request() -> None:
    rng = np.random.default_rng(1)
    scored_values = (rng.normal(size=40) * 1e3).astype(np.float32)
    scored_values[3] = np.nan  # a missing number
    # What reaches the sidecar: the server's float32 values as JSON decimals, NaN as null.
    income = orjson.loads(orjson.dumps(scored_values, option=orjson.OPT_SERIALIZE_NUMPY))
    purpose = [["car", "home", "", "éducation"][i % 4] for i in range(40)]
    batch = records.input_digests({"purpose": purpose, "income": income}, 40)
    for i in range(40):
        # What an auditor holds: the request's values (a missing number as None).
        value = None if i == 3 else float(scored_values[i])
        assert batch[i] == records.input_digest({"income": value, "purpose": purpose[i]})
    interleaved = records.input_digests({"c": income, "b": purpose, "a": income}, 40)
    assert interleaved[7] == records.input_digest({"a": income[7], "b": purpose[7], "c": income[7]})
    numbers_only = records.input_digests({"b": income, "a": income}, 40)
    assert numbers_only[5] == records.input_digest({"a": income[5], "b": income[5]})
    canonical = struct.pack("<f", 41.0) + struct.pack("<I", 3) + b"car"
    assert records.input_digest({"purpose": "car", "age": 41.0}) == (
        "sha256:" + hashlib.sha256(canonical).hexdigest()
    )
    assert (
        records.canonical_row({"x": None})
        == records.canonical_row({"x": float("nan")})
        == b"\x00\x00\xc0\x7f"
    )


def test_inputs_are_logged_only_when_the_policy_says_so(tmp_path: pathlib.Path) -> None:
    log = writer(tmp_path, Clock(NOW), log_inputs=True)
    log.start()
    log.offer(body([scored(0, 1, rid="x")]), 1)
    log.close()
    found, _ = reader.decisions(
        locations.LocalLocation(tmp_path), namespace="risk", deployment="credit", start=0, end=2e9
    )
    assert set(found[0]["inputs"]) == set(NAMES)
    assert found[0]["inputs"]["purpose"] == "car"


def test_an_edited_byte_in_any_segment_is_named_as_altered(written: pathlib.Path) -> None:
    files = segment_files(written)
    assert len(files) == 5  # open, 3 x records, close
    for target in (files[1], files[-1]):
        original = target.read_bytes()
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0x01
        target.write_bytes(bytes(damaged))
        report = verify(written)
        assert report.tampered
        assert [f.segment for f in report.findings if f.kind == "altered"] == [target.name]
        target.write_bytes(original)
    assert verify(written).verdict == "intact"


def test_a_re_encoded_segment_breaks_the_link_to_the_next_one(written: pathlib.Path) -> None:
    target = segment_files(written)[2]
    decoded = segments.decode(target.name, target.read_bytes())
    header = decoded.header
    stored_plain = zstandard.ZstdDecompressor().decompress(target.read_bytes())
    blocks = [orjson.loads(line) for line in stored_plain.splitlines()[1:]]
    forged = [segments.encode_block({**block, "score": [0.99] * len(block["score"])}) for block in blocks]
    name, stored, _ = segments.encode(
        namespace="risk", deployment="credit", chain="pod-0", seq=header.seq, prev_sha256=header.prev_sha256,
        kind=header.kind, epoch=header.epoch, blocks=forged, records=header.records,
        first_time=header.first_time, last_time=header.last_time,
    )  # fmt: skip
    assert name == target.name
    target.write_bytes(stored)
    report = verify(written)
    altered = [f for f in report.findings if f.kind == "altered"]
    assert [f.segment for f in altered] == [target.name]
    assert "changed after it was written" in altered[0].message


def test_a_deleted_segment_is_named_as_missing(written: pathlib.Path) -> None:
    files = segment_files(written)
    files[2].unlink()
    report = verify(written)
    assert report.verdict == "tampered"
    missing = [f for f in report.findings if f.kind == "missing"]
    assert [f.segment for f in missing] == ["#2"]
    assert files[1].name in missing[0].message and files[3].name in missing[0].message


def test_reordered_segments_are_named_as_misplaced(written: pathlib.Path) -> None:
    files = segment_files(written)
    first, second = files[1].read_bytes(), files[2].read_bytes()
    files[1].write_bytes(second)
    files[2].write_bytes(first)
    report = verify(written)
    assert report.tampered
    assert {f.segment for f in report.findings if f.kind == "misplaced"} == {files[1].name, files[2].name}


def test_retention_deletes_only_whole_expired_segments_and_the_verifier_accepts_it(
    tmp_path: pathlib.Path,
) -> None:
    clock = Clock(NOW)
    log = writer(tmp_path, clock, retention_s=10 * DAY, retention_check_s=1e12)
    log.start()
    log.offer(body([scored(i, 1, rid=f"old{i}") for i in range(3)]), 3)
    log.offer(body([scored(i, 1, rid=f"old{i}") for i in range(3, 6)]), 3)
    log._flush()
    clock.now += 30 * DAY
    log.offer(body([scored(i, 1, rid=f"new{i}", at=clock.now) for i in range(6, 9)]), 3)
    log.close()
    before = {path.name for path in segment_files(tmp_path)}
    deleted = retention.expire(locations.LocalLocation(tmp_path), "risk", "credit", 10 * DAY, clock.now)
    assert len(deleted) == 2  # the open segment and the one with the six old decisions
    kept = {path.name for path in segment_files(tmp_path)}
    assert kept == before - set(deleted)
    assert all(segments.parse_name(name).last_time < clock.now - 10 * DAY for name in deleted)
    assert all(segments.parse_name(name).last_time >= clock.now - 10 * DAY for name in kept)
    report = verify(tmp_path)
    assert report.verdict == "intact", report.findings
    assert report.expired == 2
    found, _ = reader.decisions(
        locations.LocalLocation(tmp_path), namespace="risk", deployment="credit", start=0, end=2e9
    )
    assert [d["request_id"] for d in found] == ["new6", "new7", "new8"]
    # the writer carries on after retention removed everything before it
    again = writer(tmp_path, clock)
    again.start()
    again.close()
    assert verify(tmp_path).verdict == "intact"


def test_a_killed_writer_shows_as_an_unclean_end_and_its_lost_rows_as_a_gap(tmp_path: pathlib.Path) -> None:
    clock = Clock(NOW)
    first = writer(tmp_path, clock)
    first.start()
    first.offer(body([scored(i, 1, rid=f"a{i}") for i in range(4)]), 4)
    first._flush()
    first.offer(body([scored(i, 1, rid=f"b{i}") for i in range(4, 7)]), 3)  # never flushed: "killed"
    second = writer(tmp_path, clock)
    second.start()
    second.offer(body([scored(i, 1, rid=f"c{i}") for i in range(7, 9)]), 2)
    second.close()
    report = verify(tmp_path)
    assert report.verdict == "intact-with-losses"
    kinds = {f.kind: f for f in report.findings}
    assert first.epoch in kinds["unclean_end"].message
    assert "3 scored rows were never logged (seq 4..6)" in kinds["lost_records"].message


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: pathlib.Path) -> None:
    log = writer(tmp_path, Clock(NOW), max_queued_records=5)
    document = body([scored(i, 1, rid=f"r{i}") for i in range(4)])
    started = time.perf_counter()
    for _ in range(100):
        log.offer(document, 4)
    assert time.perf_counter() - started < 0.05
    assert log.queued == 4
    assert log.dropped == 99 * 4


def test_a_store_that_fails_at_start_is_retried_and_nothing_queued_is_lost(tmp_path: pathlib.Path) -> None:
    store = tmp_path / "store"
    store.write_text("a file where the store's directory should be")  # every write fails for real
    log = writer(store, Clock(NOW))
    log.start()  # does not raise: the sidecar keeps serving
    log.offer(body([scored(i, 1, rid=f"r{i}") for i in range(3)]), 3)
    log._flush()
    assert log.write_failures >= 2 and log.written_records == 0 and log.queued == 3
    store.unlink()
    log.close()
    report = verify(store)
    assert report.verdict == "intact", report.findings
    assert report.records == 3
