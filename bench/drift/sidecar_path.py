"""The sidecar's CPU per row on the server's real path, in-process and stage by stage.

The bodies are built exactly as ``mlsteward serve`` builds them (``feed._Pending`` and the binary
body of contracts §4): 20 float32 features in one feature-major block, a request id per request
with ``request_rows`` when requests carry several rows, labels as indices into ``label_names``,
scores, times and sequence numbers. Each body then goes through what ``POST /v1/rows`` does once
it is read: ``batches.decode_binary``, ``batches.parse`` and ``Monitor.ingest`` (staging, binning,
the label join buffer, window evaluations at the default tumbling 10,000-row window), with the
monitor's clock advanced by the batch. Labels for a tenth of the requests are posted every ten
batches, as ``POST /v1/labels`` would. HTTP is not included (``http_ingest.py --server-bodies``
measures the whole sidecar process).

Prints one JSON line per rows-per-request setting: CPU µs per row (``time.process_time``, best of
``--repeat``) for the whole path and for each stage measured alone on the same bodies.

Usage::

    .venv/bin/python bench/drift/sidecar_path.py [--rows 200000] [--repeat 5] [--request-rows 1,32]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mlsteward.monitoring import batches, monitors, profiles, profiling, summaries, verdicts, windows
from mlsteward.serving import feed

FEATURES = [f"x{i:02d}" for i in range(20)]
BATCH_ROWS = 1024  # the server's default --monitor-batch-rows


SCHEMA = {
    "task": "classification",
    "target": "y",
    "features": [{"name": name, "kind": "numeric"} for name in FEATURES],
    "classes": ["0", "1"],
    "positive_class": "1",
    "sensitive": [],
}


def reference_document(seed: int = 0) -> dict[str, Any]:
    """Like bench/serving/monitor_cost.py's reference: 20 numeric features, label and score."""
    rng = np.random.default_rng(seed)
    frame = rng.normal(size=(20_000, len(FEATURES)))
    score = rng.beta(2.0, 2.0, len(frame))
    return profiling.profile(
        {name: frame[:, j] for j, name in enumerate(FEATURES)},
        prediction_label=["1" if value >= 0.5 else "0" for value in score],
        prediction_score=score,
    )


def reference() -> profiles.Reference:
    return profiles.parse_reference(reference_document(), SCHEMA)


def server_bodies(rows: int, request_rows: int, seed: int = 1) -> tuple[list[bytes], list[list[str]]]:
    """Binary bodies of ``rows`` rows as the server's feed sends them, and each body's request ids."""
    rng = np.random.default_rng(seed)
    bodies: list[bytes] = []
    ids: list[list[str]] = []
    requests = rows // request_rows
    sent = 0
    pending = feed._Pending("1", "0" * 64, "champion", 1)
    for number in range(requests):
        block = rng.normal(size=(len(FEATURES), request_rows, 1)).astype(np.float32)
        probability = rng.beta(2.0, 2.0, request_rows).astype(np.float32)
        outputs = {
            "label": (probability >= 0.5).astype(np.int64),
            "probabilities": np.stack([1.0 - probability, probability], axis=1),
        }
        columns = dict(zip(FEATURES, block, strict=True))
        pending.add(
            1.0e9 + number, f"req-{number}", request_rows, sent,
            columns=columns, block=block, outputs=outputs, metadata={}, reason_codes=None,
        )  # fmt: skip
        sent += request_rows
        if pending.rows >= BATCH_ROWS or number == requests - 1:
            bodies.append(pending.body("0123456789abcdef"))
            ids.append(list(pending.request_ids))
            pending = feed._Pending("1", "0" * 64, "champion", 1)
    return bodies, ids


def label_posts(ids: list[list[str]], request_rows: int) -> list[batches.LabelBatch | None]:
    """After every tenth body, labels for every tenth request of it (row 0 of multi-row requests)."""
    posts: list[batches.LabelBatch | None] = []
    for number, body_ids in enumerate(ids):
        if number % 10 != 9:
            posts.append(None)
            continue
        chosen = body_ids[::10]
        row_ids = chosen if request_rows == 1 else [f"{rid}:0" for rid in chosen]
        posts.append(batches.LabelBatch(row_ids, ["1"] * len(row_ids)))
    return posts


def new_monitor(ref: profiles.Reference) -> monitors.Monitor:
    spec = windows.WindowSpec("tumbling", 10_000, None, 1_000)
    return monitors.Monitor(ref, verdicts.Rules(), spec, monitors.Options(), now=0.0)


def cpu_per_row(action: Callable[[], None], rows: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.process_time()
        action()
        best = min(best, time.process_time() - began)
    return best / rows * 1e6


def measure(ref: profiles.Reference, rows: int, request_rows: int, repeat: int) -> dict[str, Any]:
    bodies, ids = server_bodies(rows, request_rows)
    posts = label_posts(ids, request_rows)
    layout = new_monitor(ref).layout
    options = {"max_rows": 100_000, "max_missing_share": 0.5}
    documents = [batches.decode_binary(body, compact=True) for body in bodies]
    parsed = [batches.parse(batches.decode_binary(body, compact=True), layout, **options) for body in bodies]

    def whole() -> None:
        monitor = new_monitor(ref)
        for number, (body, post) in enumerate(zip(bodies, posts, strict=True)):
            batch = batches.parse(batches.decode_binary(body, compact=True), monitor.layout, **options)
            monitor.ingest(batch, now=number * 0.01)
            if post is not None:
                monitor.ingest_labels(post, now=number * 0.01)
        monitor.advance(len(bodies) * 0.01)

    def decode() -> None:
        for body in bodies:
            batches.decode_binary(body, compact=True)

    def parse() -> None:
        for document in documents:
            batches.parse(document, layout, **options)

    def ingest() -> None:
        monitor = new_monitor(ref)
        for number, batch in enumerate(parsed):
            monitor.ingest(batch, now=number * 0.01)
        monitor.advance(len(parsed) * 0.01)

    summary, scorer, rules = summaries.Summary.empty(layout), verdicts.Scorer(layout), verdicts.Rules()
    for batch in parsed[: 10_000 // BATCH_ROWS + 1]:  # one window's rows
        layout.bin_columns(batch.numeric, summary)
        for key, counts in batch.categorical.items():
            assert isinstance(counts, Mapping)
            layout.bin_categorical(layout.by_key[key], counts, summary)
        summary.rows += batch.rows

    def evaluate() -> None:
        for _ in range(rows // 10_000):  # one evaluation per 10,000-row window
            verdicts.evaluate(layout, summary, rules, None, number=1, started=0.0, ended=1.0, scorer=scorer)

    monitor = new_monitor(ref)
    joined = 0
    for number, (batch, post) in enumerate(zip(parsed, posts, strict=True)):
        monitor.ingest(batch, now=number * 0.01)
        if post is not None:
            joined += monitor.ingest_labels(post, now=number * 0.01)
    posted = sum(len(p.request_ids) for p in posts if p is not None)
    assert joined == posted, (joined, posted)  # every posted label finds its row
    return {
        "request_rows": request_rows,
        "rows": rows,
        "batches": len(bodies),
        "us_per_row": round(cpu_per_row(whole, rows, repeat), 3),
        "decode": round(cpu_per_row(decode, rows, repeat), 3),
        "parse": round(cpu_per_row(parse, rows, repeat), 3),
        "ingest": round(cpu_per_row(ingest, rows, repeat), 3),
        "evaluations_alone": round(cpu_per_row(evaluate, rows, repeat), 3),
        "labels_joined": joined,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--request-rows", default="1,32")
    args = parser.parse_args(argv)
    ref = reference()
    for request_rows in (int(n) for n in args.request_rows.split(",")):
        print(json.dumps(measure(ref, args.rows, request_rows, args.repeat)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
