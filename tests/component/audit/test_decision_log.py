"""The decision log on real processes and real stores: ``mlsteward serve`` feeding ``mlsteward
monitor``, which writes segments to a local directory or to MinIO; ``mlsteward audit decisions``
reads them back and verifies the chain."""

from __future__ import annotations

import pathlib
import shutil
import time
from typing import Any

import numpy as np

from mlsteward.audit import locations, records, retention
from mlsteward.dev import minio
from mlsteward.store import s3
from tests.component.audit.conftest import (
    PairFactory,
    Trained,
    audit,
    infer,
    monitor_metric,
    wait_written,
)
from tests.component.monitoring.conftest import stop, wait_until
from tests.component.serving.test_endpoints import ROW


def expected_input_digest() -> str:
    """What the server scored for ROW: numbers as float32, categories as strings."""
    row: dict[str, Any] = {k: np.float32(v) if isinstance(v, float) else v for k, v in ROW.items()}
    return records.input_digest(row)


def test_a_decision_is_found_by_request_id_and_a_sigkill_loses_only_a_visible_tail(
    pair_factory: PairFactory, trained: Trained, tmp_path: pathlib.Path
) -> None:
    store = tmp_path / "decisions"
    pair = pair_factory(
        str(store), "--decision-log-flush-seconds", "3600", "--decision-log-segment-records", "5"
    )
    answers = {}
    for i in range(5):
        parameters = {"parameters": {"reason_codes": True}} if i == 2 else {}
        answers[f"loan-{i}"] = infer(pair.server, f"loan-{i}", **parameters).json()
    wait_written(pair.monitor, 5)  # a full segment is written at once
    for i in range(3):
        infer(pair.server, f"tail-{i}")  # held in memory: the flush interval is an hour
    wait_until(
        lambda: monitor_metric(pair.monitor, "mlsteward_monitor_rows_total") >= 8,
        10.0,
        pair.monitor.log.read_text()[-2000:],
    )
    assert "\nmlsteward_audit_decisions_dropped_total 0.0\n" in pair.monitor.get("/metrics").text
    pair.sigkill_monitor()
    restarted = pair.start_monitor()
    for i in range(2):
        infer(pair.server, f"after-{i}")
    wait_until(
        lambda: monitor_metric(restarted, "mlsteward_monitor_rows_total") >= 2,
        10.0,
        restarted.log.read_text(),
    )
    stop(restarted.process)  # SIGTERM: the writer flushes and closes its epoch

    code, document = audit(str(store), "--request-id", "loan-2")
    assert code == 0
    (decision,) = document["decisions"]
    answer = {output["name"]: output["data"] for output in answers["loan-2"]["outputs"]}
    assert decision["model_version"] == "1" and decision["model_digest"] == trained.digest
    assert decision["route"] == "champion"
    assert decision["output"]["label"] == str(answer["label"][0])
    assert decision["output"]["score"] == answer["probabilities"][1]
    assert decision["reason_codes"] == answer["reason_codes"]
    assert decision["input_sha256"] == expected_input_digest()
    assert "inputs" not in decision

    code, document = audit(str(store))
    verification = document["verification"]
    assert code == 0 and verification["verdict"] == "intact-with-losses", verification
    ids = [d["request_id"] for d in document["decisions"]]
    assert ids == [f"loan-{i}" for i in range(5)] + ["after-0", "after-1"]
    kinds = {finding["kind"]: finding for finding in verification["findings"]}
    assert set(kinds) == {"unclean_end", "lost_records"}
    assert "killed or crashed" in kinds["unclean_end"]["message"]
    assert "3 scored rows were never logged (seq 5..7)" in kinds["lost_records"]["message"]

    # Tampering with any segment is detected and the segment named (exit code 3).
    segments_dir = store / "decisions/risk/credit/credit-7f9c-0/segments"
    files = sorted(segments_dir.iterdir())
    pristine = tmp_path / "pristine"
    shutil.copytree(segments_dir, pristine)
    damaged = bytearray(files[1].read_bytes())
    damaged[-5] ^= 0xFF
    files[1].write_bytes(bytes(damaged))
    code, document = audit(str(store))
    assert code == 3
    altered = [f for f in document["verification"]["findings"] if f["kind"] == "altered"]
    assert [f["segment"] for f in altered] == [files[1].name]
    shutil.copy(pristine / files[1].name, files[1])
    files[2].unlink()
    code, document = audit(str(store))
    missing = [f for f in document["verification"]["findings"] if f["kind"] == "missing"]
    assert code == 3 and [f["segment"] for f in missing] == ["#2"]


def test_on_s3_retention_deletes_only_whole_expired_segments_and_the_chain_stays_intact(
    pair_factory: PairFactory, minio_server: minio.MinioServer, bucket: str, s3_settings: s3.S3Settings
) -> None:
    uri = f"s3://{bucket}/audit"
    env = minio_server.env()
    pair = pair_factory(uri, "--decision-log-flush-seconds", "0.2", env=env)
    for i in range(3):
        infer(pair.server, f"early-{i}")
    wait_written(pair.monitor, 3)
    time.sleep(0.3)
    middle = time.time()
    time.sleep(0.3)
    for i in range(2):
        infer(pair.server, f"late-{i}")
    wait_written(pair.monitor, 5)
    stop(pair.monitor.process)

    code, document = audit(uri, "--request-id", "early-1", env=env)
    assert code == 0 and document["verification"]["verdict"] == "intact", document["verification"]
    assert document["decisions"][0]["input_sha256"] == expected_input_digest()

    location = locations.S3Location(uri, s3_settings)
    before = location.list("decisions/risk/credit/credit-7f9c-0/segments")
    deleted = retention.expire(location, "risk", "credit", retention_s=1.0, now=middle + 1.0)
    after = location.list("decisions/risk/credit/credit-7f9c-0/segments")
    assert deleted and set(after) == set(before) - set(deleted)
    assert location.list("decisions/risk/credit/credit-7f9c-0/deletions")

    code, document = audit(uri, env=env)
    verification = document["verification"]
    assert code == 0 and verification["verdict"] == "intact", verification
    assert verification["expired_segments"] == len(deleted)
    assert [d["request_id"] for d in document["decisions"]] == ["late-0", "late-1"]
