"""Removing what killed uploads leave behind, bounded and never an upload still being written.

A writer killed midway (SIGKILL, a node lost) leaves its temporary files: a staging directory
in a local store, an ``artifacts/objects/<upload-id>/`` folder (and perhaps an incomplete
multipart upload) in a bucket. Nothing names them, so no reader ever sees them, but they
would stay forever. Every ``put`` therefore ends by collecting such leftovers, judged by age:
a leftover is abandoned when its newest activity (the newest file or object in it, the newest
part of a multipart upload under it) is older than ``abandoned_after_s`` (default one hour).
A live upload writes a file or a part at least every few seconds, so it is never taken; an
upload that stalls longer than the age would be, and then fails without a manifest.

In a bucket, a folder is in use when a manifest names it. Every upload writes an empty marker
``artifacts/sha256/<digest>/.upload-<upload-id>`` before its manifest, so one listing of
``artifacts/sha256/`` tells which folder each manifest names; where that is ambiguous (no
marker: artifacts written before markers existed, or two racing uploads of the same content)
the manifest's metadata is read. Ages come from the server's clock (the listing's ``Date``),
so a skewed client clock cannot make a live upload look old.

Usage::

    removed = collect_staging(root / "artifacts" / ".staging", abandoned_after_s=3600)
    removed = collect_uploads(client, "bucket", "prefix/artifacts", abandoned_after_s=3600)
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import email.utils
import logging
import os
import pathlib
import re
import shutil
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger("mlsteward.store.cleanup")

ABANDONED_AFTER_S = 3600.0
"""Default age after which a leftover upload counts as abandoned."""
MAX_PER_PASS = 100
"""Leftovers removed by one pass at most, so one ``put`` never turns into a long sweep."""
MARKER_PREFIX = ".upload-"
OBJECTS_METADATA = "objects"
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


def collect_staging(staging: pathlib.Path, abandoned_after_s: float) -> list[str]:
    """Remove directories under ``staging`` with nothing written for ``abandoned_after_s``."""
    cutoff = time.time() - abandoned_after_s
    removed: list[str] = []
    try:
        entries = sorted(staging.iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        if len(removed) >= MAX_PER_PASS:
            break
        try:
            if not entry.is_dir() or _newest_mtime(entry) > cutoff:
                continue
        except FileNotFoundError:
            continue  # its writer finished or another pass removed it meanwhile
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    if removed:
        log.info("removed %d abandoned staging directories under %s", len(removed), staging)
    return removed


def _newest_mtime(directory: pathlib.Path) -> float:
    newest = directory.stat().st_mtime
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in (*dirnames, *filenames):
            try:
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
            except FileNotFoundError:
                continue
    return newest


@dataclasses.dataclass
class _Folder:
    keys: list[str] = dataclasses.field(default_factory=list)
    newest: datetime.datetime | None = None
    multipart: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (key, upload id)

    def touch(self, when: datetime.datetime) -> None:
        self.newest = when if self.newest is None else max(self.newest, when)


def collect_uploads(
    client: S3Client, bucket: str, artifacts_prefix: str, abandoned_after_s: float
) -> list[str]:
    """Remove upload folders under ``<artifacts_prefix>/objects/`` that no manifest names and
    that saw no write for ``abandoned_after_s``; return their upload ids."""
    objects = f"{artifacts_prefix}/objects/" if artifacts_prefix else "objects/"
    now, folders = _list_folders(client, bucket, objects)
    cutoff = now - datetime.timedelta(seconds=abandoned_after_s)
    _add_multipart(client, bucket, objects, folders, cutoff)
    idle = {upload for upload, folder in folders.items() if folder.newest is None or folder.newest <= cutoff}
    if not idle:
        return []
    manifests = f"{artifacts_prefix}/sha256/" if artifacts_prefix else "sha256/"
    abandoned = sorted(idle - _named_folders(client, bucket, manifests, idle, cutoff))[:MAX_PER_PASS]
    for upload in abandoned:
        _remove(client, bucket, folders[upload])
    if abandoned:
        log.info("removed %d abandoned upload folders under s3://%s/%s", len(abandoned), bucket, objects)
    return abandoned


def _list_folders(
    client: S3Client, bucket: str, objects: str
) -> tuple[datetime.datetime, dict[str, _Folder]]:
    """(the server's time, upload id -> its objects and newest write)."""
    folders: dict[str, _Folder] = collections.defaultdict(_Folder)
    now: datetime.datetime | None = None
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=objects):
        now = now or _server_time(page)
        for item in page.get("Contents", []):
            upload = item["Key"][len(objects) :].partition("/")[0]
            if _UPLOAD_ID.match(upload):
                folders[upload].keys.append(item["Key"])
                folders[upload].touch(item["LastModified"])
    return now or datetime.datetime.now(datetime.UTC), folders


def _server_time(page: Any) -> datetime.datetime | None:
    date = page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return email.utils.parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None


def _add_multipart(
    client: S3Client, bucket: str, objects: str, folders: dict[str, _Folder], cutoff: datetime.datetime
) -> None:
    """Incomplete multipart uploads count as activity: their newest part, else their start."""
    # No Prefix: MinIO lists a prefix's multipart uploads only when it is a whole key.
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for item in page.get("Uploads", []):
            upload = item["Key"][len(objects) :].partition("/")[0]
            if not item["Key"].startswith(objects) or not _UPLOAD_ID.match(upload):
                continue
            folder = folders[upload]
            folder.multipart.append((item["Key"], item["UploadId"]))
            folder.touch(item["Initiated"])
            if item["Initiated"] <= cutoff:  # a long upload: look at when its last part landed
                parts = client.list_parts(Bucket=bucket, Key=item["Key"], UploadId=item["UploadId"])
                for part in parts.get("Parts", []):
                    folder.touch(part["LastModified"])


def _named_folders(
    client: S3Client, bucket: str, manifests: str, wanted: set[str], cutoff: datetime.datetime
) -> set[str]:
    """The upload ids among ``wanted`` that a manifest names."""
    markers: dict[str, list[tuple[str, datetime.datetime]]] = collections.defaultdict(list)
    has_manifest: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=manifests):
        for item in page.get("Contents", []):
            digest, _, name = item["Key"][len(manifests) :].partition("/")
            if name == "manifest.json":
                has_manifest.add(digest)
            elif name.startswith(MARKER_PREFIX):
                markers[digest].append((name.removeprefix(MARKER_PREFIX), item["LastModified"]))
    named: set[str] = set()
    for digest in has_manifest:
        uploads = [upload for upload, _ in markers.get(digest, [])]
        if len(uploads) == 1:
            named.add(uploads[0])
        elif not uploads or set(uploads) & wanted:
            named |= _read_manifest_folder(client, bucket, f"{manifests}{digest}/manifest.json")
    # A marker without its manifest is what an upload killed just before the manifest leaves.
    for digest, found in markers.items():
        for upload, written in found:
            if digest not in has_manifest and written <= cutoff and upload in wanted:
                _delete_quietly(client, bucket, [f"{manifests}{digest}/{MARKER_PREFIX}{upload}"])
    return named


def _read_manifest_folder(client: S3Client, bucket: str, key: str) -> set[str]:
    try:
        metadata = client.head_object(Bucket=bucket, Key=key).get("Metadata", {})
    except Exception:  # gone meanwhile: names nothing
        return set()
    upload = metadata.get(OBJECTS_METADATA, "").removeprefix("objects/")
    return {upload} if _UPLOAD_ID.match(upload) else set()


def _remove(client: S3Client, bucket: str, folder: _Folder) -> None:
    for key, upload_id in folder.multipart:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as error:  # only space is lost; the next pass tries again
            log.warning("could not abort the multipart upload of s3://%s/%s: %s", bucket, key, error)
    _delete_quietly(client, bucket, folder.keys)


def _delete_quietly(client: S3Client, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        try:
            client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})  # type: ignore[typeddict-item]
        except Exception as error:
            log.warning("could not delete %d leftover objects in s3://%s: %s", len(batch), bucket, error)
