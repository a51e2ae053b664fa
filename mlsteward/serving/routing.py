"""The routing file (contracts §5): parse it, notice when it changes, and split traffic by it.

The file is usually a mounted ConfigMap: the kubelet writes a new ``..<timestamp>`` directory and
swaps the ``..data`` symlink, so the path we read keeps its name while the file behind it is a new
inode. :class:`FileWatch` therefore ``stat``s through the symlinks and compares (device, inode,
mtime, size), then the bytes, so a swap is seen within one poll and a touch without a change is
ignored.

Splitting is exact: without a request id, the n-th request goes to the challenger when that
keeps the challenger's count at ``floor(n * share / 100)``; with an id, a stable hash of the id
decides, so a client retrying the same id always reaches the same version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import re
from typing import Any, Literal

import orjson

from mlsteward.serving import models

Mode = Literal["split", "shadow"]
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class RoutingError(ValueError):
    """The routing file is missing or not a contracts §5 document."""


@dataclasses.dataclass(frozen=True)
class Challenger:
    ref: models.VersionRef
    share: float
    """Percent of requests sent to the challenger (split mode); unused in shadow mode."""
    mode: Mode


@dataclasses.dataclass(frozen=True)
class RoutingConfig:
    model: str
    champion: models.VersionRef
    challenger: Challenger | None


def parse(raw: bytes, model_name_override: str = "") -> RoutingConfig:
    """Parse the routing file's bytes; raises RoutingError naming the field."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise RoutingError(f"routing file is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise RoutingError("routing file must hold a JSON object")
    model = model_name_override or document.get("model")
    if not isinstance(model, str) or not _VERSION.match(model):
        raise RoutingError(f"routing file 'model' must be a model name, got {document.get('model')!r}")
    champion = _ref(document.get("champion"), "champion")
    raw_challenger = document.get("challenger")
    challenger = None
    if raw_challenger is not None:
        ref = _ref(raw_challenger, "challenger")
        share = raw_challenger.get("share", 0)
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 100:
            raise RoutingError(
                f"routing file 'challenger.share' must be a number from 0 to 100, got {share!r}"
            )
        mode = raw_challenger.get("mode", "split")
        if mode not in ("split", "shadow"):
            raise RoutingError(f"routing file 'challenger.mode' must be 'split' or 'shadow', got {mode!r}")
        if ref.version == champion.version:
            raise RoutingError(f"routing file: challenger and champion are both version {ref.version!r}")
        challenger = Challenger(ref, float(share), mode)
    return RoutingConfig(model, champion, challenger)


def _ref(value: Any, where: str) -> models.VersionRef:
    if not isinstance(value, dict):
        raise RoutingError(f"routing file '{where}' must be an object with 'version' and 'digest'")
    version, digest = value.get("version"), value.get("digest")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not _VERSION.match(version):
        raise RoutingError(f"routing file '{where}.version' must be a short version string, got {version!r}")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise RoutingError(f"routing file '{where}.digest' must be 64 lowercase hex digits, got {digest!r}")
    return models.VersionRef(version, digest)


class Splitter:
    """Decides per request whether the challenger answers (split mode)."""

    def __init__(self, share: float) -> None:
        self.share = share
        self._seen = 0
        self._sent = 0

    def to_challenger(self, request_id: str | None) -> bool:
        if self.share <= 0:
            return False
        if request_id is not None:
            bucket = (
                int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=4).digest(), "big") % 10_000
            )
            return bucket < self.share * 100
        self._seen += 1
        if self._sent < int(self._seen * self.share / 100):
            self._sent += 1
            return True
        return False


class FileWatch:
    """Tells whether a file (followed through symlinks) changed since the last call; returns its bytes."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int, int] | None = None
        self._content: bytes | None = None

    def changed(self) -> bytes | None:
        """The new content when the file changed, else None. Raises OSError when it cannot be read."""
        status = os.stat(self.path)  # follows ..data -> ..2026_... like the kubelet's swap needs
        stamp = (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size)
        if stamp == self._stamp:
            return None
        content = self.path.read_bytes()
        self._stamp = stamp
        if content == self._content:
            return None
        self._content = content
        return content

    def forget(self) -> None:
        """Make the next call report the file again (after a failed load, to retry it)."""
        self._stamp = None
        self._content = None
