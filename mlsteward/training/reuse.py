"""``--reuse-artifact DIGEST``: answer an earlier run's outcome instead of training, when it holds.

The operator's training cache skips a Job when a Model's spec hash and pinned dataset digest
match an earlier version and that version's artifact is still in the store. For an S3 store
the operator cannot look (it never reads the credentials Secret), so it starts the Job with
``--reuse-artifact`` and the Job checks: the artifact is fetched with every byte verified, its
lineage must record this spec hash and the pinned dataset digest, and the outcome is rebuilt
from its ``metrics.json``. When anything does not hold (artifact gone or damaged, another
spec, no pin) the Job trains as usual, so reuse can only save work, never change a result.
"""

from __future__ import annotations

import logging
import pathlib
import tempfile
from typing import Any

import orjson

from mlsteward.store import artifacts, s3, stores
from mlsteward.store.errors import StoreError
from mlsteward.training import outcome, settings, specs

log = logging.getLogger("mlsteward.training.reuse")


def earlier_outcome(config: settings.TrainSettings, digest: str) -> dict[str, Any] | None:
    """The outcome of the run that wrote ``digest``, if this spec may reuse it; else None."""
    try:
        spec = specs.parse_spec(specs.read_spec_text(config.spec_path, config.spec_text))
    except Exception:  # the training run reports a bad spec with its proper reason
        return None
    pinned, spec_hash = spec.dataset.sha256, specs.spec_hash(spec)
    if pinned is None:
        return None
    with tempfile.TemporaryDirectory(prefix="reuse-") as cache:
        try:
            store = stores.open_store(config.store)
            verified = store.fetch(digest, pathlib.Path(cache))
            lineage = orjson.loads(verified.read("lineage.json"))
            report = orjson.loads(verified.read("metrics.json"))
        except (StoreError, artifacts.ArtifactError, orjson.JSONDecodeError, OSError) as error:
            log.info("not reusing artifact %s: %s; training instead", digest, error)
            return None
        # A local store verifies in place; a copy in the temporary cache is no location.
        uri = store.uri(digest) if isinstance(store, s3.S3ArtifactStore) else verified.path.resolve().as_uri()
    recorded = (lineage.get("spec_hash"), (lineage.get("dataset") or {}).get("sha256"))
    if recorded != (spec_hash, pinned):
        log.info("not reusing artifact %s: it was trained from another spec or dataset", digest)
        return None
    gates = report.get("gates") or {}
    if not all(key in gates for key in ("quality", "fairness", "promotable")):
        return None
    holdout = {k: float(v) for k, v in (report.get("holdout") or {}).items() if isinstance(v, int | float)}
    log.info("artifact %s is in %s and verified: reusing it, no training", digest, config.store)
    return outcome.build(
        reason=None if gates["promotable"] else "GateFailed",
        message=f"reused the verified artifact sha256:{digest} of an earlier run (same spec and pinned "
        "dataset); no training",
        artifact={"digest": digest, "uri": uri},
        dataset_sha256=pinned,
        spec_hash=spec_hash,
        metrics=holdout,
        gates={k: gates[k] for k in ("quality", "fairness", "promotable")},
        reused=True,
    )
