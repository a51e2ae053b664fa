"""Upload and download throughput: mlsteward's S3 artifact store vs plain boto3, same MinIO.

Usage: .venv/bin/python bench/store/run.py [--sizes-mb 50 500] [--repeats 3]

Ours streams each file once, hashing every part while earlier parts upload (multipart),
then writes the manifest last; on the way back it fetches byte ranges in
parallel and hashes them in order as they arrive, renaming into the cache only when every
digest matched. The baseline is boto3's own upload_file / download_file (multipart, threads)
with no verification, on a client configured as boto3 ships (payload signing on, which over
http hashes every body for the signature) except that neither side adds CRC32 checksums. A
second baseline turns payload signing off as ours does. Prints medians, the overhead ratio
(target: under 10%) and the load average before and after, since other work on the machine
skews both sides.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mlsteward.dev import minio, toolchain
from mlsteward.store import s3

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _plain_client(settings: s3.S3Settings, *, payload_signing: bool | None) -> S3Client:
    """boto3 as it ships (``payload_signing=None``), without CRC32 checksums like ours."""
    import boto3
    from botocore.config import Config

    signing = {} if payload_signing is None else {"payload_signing_enabled": payload_signing}
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        config=Config(
            region_name=settings.region,
            max_pool_connections=10,
            s3={"addressing_style": "path", **signing},  # type: ignore[arg-type]
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    return client


Row = tuple[int, str, float, float, float, float | None]


def _measure(settings: s3.S3Settings, work: pathlib.Path, size: int, repeats: int) -> list[Row]:
    """Median seconds for every side; each repeat runs them back to back so noise hits all."""
    client = _plain_client(settings, payload_signing=None)
    unsigned = _plain_client(settings, payload_signing=False)
    bucket = f"bench-{size}"
    client.create_bucket(Bucket=bucket)
    source = work / f"model-{size}.onnx"
    with source.open("wb") as sink:
        for _ in range(size):
            sink.write(os.urandom(1 << 20))
    store = s3.S3ArtifactStore(f"s3://{bucket}/ours", settings)
    cache, plain_target = work / "cache", work / "plain-download.bin"
    times: dict[str, list[float]] = {
        k: [] for k in ("plain-up", "unsigned-up", "ours-up", "plain-down", "ours-down")
    }
    digest = ""
    for _ in range(repeats):
        for item in client.list_objects_v2(Bucket=bucket, Prefix="ours/").get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
        times["plain-up"].append(_timed(lambda: client.upload_file(str(source), bucket, "plain/model.onnx")))
        times["unsigned-up"].append(
            _timed(lambda: unsigned.upload_file(str(source), bucket, "unsigned/model.onnx"))
        )
        started = time.perf_counter()
        digest = store.put({"model.onnx": source}).digest
        times["ours-up"].append(time.perf_counter() - started)
        plain_target.unlink(missing_ok=True)
        shutil.rmtree(cache, ignore_errors=True)
        times["plain-down"].append(
            _timed(lambda: client.download_file(bucket, "plain/model.onnx", str(plain_target)))
        )
        times["ours-down"].append(_timed(lambda d=digest: store.fetch(d, cache)))  # type: ignore[misc]
    source.unlink()
    plain_target.unlink(missing_ok=True)
    shutil.rmtree(cache, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in times.items()}

    def paired(ours: str, plain: str) -> float:
        # Each repeat runs both back to back: the median of per-repeat ratios is steadier
        # than a ratio of medians when other work on the machine comes and goes.
        return statistics.median(o / p for o, p in zip(times[ours], times[plain], strict=True))

    return [
        (
            size,
            "upload",
            median["plain-up"],
            median["ours-up"],
            paired("ours-up", "plain-up"),
            median["unsigned-up"],
        ),
        (
            size,
            "download",
            median["plain-down"],
            median["ours-down"],
            paired("ours-down", "plain-down"),
            None,
        ),
    ]


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    before = _load()
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-store-"))
    server = minio.start(work / "minio", toolchain.build())
    try:
        settings = s3.S3Settings.from_environment(server.env())
        rows = []
        for size in args.sizes_mb:
            rows += _measure(settings, work, size, args.repeats)
        print(
            f"\nS3 artifact store vs plain boto3 on a local MinIO (median of {args.repeats}; "
            f"{os.cpu_count()} CPUs; load average before {before}, after {_load()})\n"
        )
        print(
            "| size | direction | boto3 MB/s | mlsteward MB/s | mlsteward / boto3 time "
            "| median of per-repeat ratios | boto3 unsigned MB/s | mlsteward / boto3 unsigned time |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|---:|")
        for size, direction, plain, ours, ratio, unsigned in rows:
            extra = "| - | - |"
            if unsigned is not None:
                extra = f"| {size / unsigned:,.0f} | {ours / unsigned:.2f}x |"
            print(
                f"| {size} MB | {direction} | {size / plain:,.0f} | {size / ours:,.0f} "
                f"| {ours / plain:.2f}x | {ratio:.2f}x {extra}"
            )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
