"""What is being served and how a request reaches a model: the live snapshot, hot reload, routing, shadow.

A :class:`Snapshot` is immutable: the model name, the champion, the optional challenger and the
splitter. A routing change loads whatever versions are new (reusing loaded ones by digest) on
a worker thread, warms them up, and only then replaces the snapshot in one assignment; requests
already in flight finish on the snapshot they started with, so a swap drops nothing. A change
that fails to load (bad digest, missing artifact, invalid file) leaves the current snapshot
serving; with no snapshot at all the server stays not ready.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

import numpy as np

from mlsteward.serving import errors, feed, metrics, models, protocol, routing, settings
from mlsteward.store import stores
from mlsteward.store.errors import StoreError

_log = logging.getLogger("mlsteward.serving.service")
_RETRY_FAILED_S = 15.0
_SHADOW_MAX_PENDING_ROWS = 1024
_AnyArray = np.ndarray[Any, Any]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    model: str
    champion: models.LoadedModel
    challenger: models.LoadedModel | None
    mode: routing.Mode
    splitter: routing.Splitter

    def by_version(self, version: str) -> models.LoadedModel | None:
        if version == self.champion.version:
            return self.champion
        if self.challenger is not None and version == self.challenger.version:
            return self.challenger
        return None

    def versions(self) -> list[str]:
        return [self.champion.version] + ([self.challenger.version] if self.challenger else [])


@dataclasses.dataclass(slots=True)
class Answer:
    model: models.LoadedModel
    route: str
    request_id: str
    outputs: dict[str, _AnyArray]


class Service:
    """The serving state shared by every request.

    Usage::

        service = Service(config, metrics)
        await service.reload_once()          # initial load (not ready if it fails)
        task = asyncio.create_task(service.watch_routing())
        answer = await service.infer(document, version=None, parse=...)
    """

    def __init__(
        self,
        config: settings.ServeSettings,
        serving_metrics: metrics.ServingMetrics,
        monitor: feed.MonitorFeed | None,
    ) -> None:
        self.config = config
        self.metrics = serving_metrics
        self.monitor = monitor
        self.snapshot: Snapshot | None = None
        self.draining = False
        self.not_ready_reason = "the routing file has not been loaded yet"
        self._watch = routing.FileWatch(config.server.routing)
        self._failed_at: float | None = None
        self._loaded: dict[str, models.LoadedModel] = {}
        self._store: stores.ArtifactStore | None = None  # opened on the first load, off the loop
        self._id_prefix = f"{time.time_ns() & 0xFFFFFFFF:08x}"
        self._next_id = 0
        self._shadow_tasks: set[asyncio.Task[None]] = set()

    @property
    def ready(self) -> bool:
        return self.snapshot is not None and not self.draining

    # --- loading ------------------------------------------------------------------------------

    async def reload_once(self) -> None:
        """Apply the routing file if it changed; never raises (failures are logged and counted)."""
        if self._failed_at is not None and time.monotonic() - self._failed_at > _RETRY_FAILED_S:
            self._watch.forget()  # retry: the artifact may have arrived in the store since
            self._failed_at = None
        try:
            raw = self._watch.changed()
        except OSError as error:
            if self.snapshot is None:
                self.not_ready_reason = f"cannot read the routing file {self.config.server.routing}: {error}"
            return
        if raw is None:
            return
        try:
            config = routing.parse(raw, self.config.routing.model_name)
            snapshot = await asyncio.to_thread(self._build, config)
        except (routing.RoutingError, models.LoadError) as error:
            reason = error.reason if isinstance(error, models.LoadError) else "routing_invalid"
            message = error.message if isinstance(error, models.LoadError) else str(error)
            _log.error("routing change refused (%s): %s; %s", reason, message, self._keeping())
            self.metrics.load_failures.labels(reason).inc()
            self.metrics.reloads.labels("failed").inc()
            self._failed_at = time.monotonic()
            if self.snapshot is None:
                self.not_ready_reason = f"model load failed ({reason}): {message}"
            return
        self._swap(snapshot)

    def _keeping(self) -> str:
        if self.snapshot is None:
            return "the server stays not ready"
        return f"still serving {self.snapshot.model} version(s) {', '.join(self.snapshot.versions())}"

    def _build(self, config: routing.RoutingConfig) -> Snapshot:
        champion = self._load(config.model, config.champion)
        challenger = self._load(config.model, config.challenger.ref) if config.challenger else None
        mode: routing.Mode = config.challenger.mode if config.challenger else "split"
        share = config.challenger.share if config.challenger and mode == "split" else 0.0
        return Snapshot(config.model, champion, challenger, mode, routing.Splitter(share))

    def _load(self, name: str, ref: models.VersionRef) -> models.LoadedModel:
        cached = self._loaded.get(ref.digest)
        if cached is not None and cached.name == name and cached.version == ref.version:
            return cached
        runtime_config = self.config.runtime
        if self._store is None:
            try:
                self._store = models.open_store(self.config.server.store)
            except StoreError as error:
                raise models.LoadError("store_unavailable", str(error)) from error
        return models.load(
            self._store,
            self.config.server.cache_dir,
            name,
            ref,
            intra_op_threads=self.config.resolved_intra_op_threads(),
            inter_op_threads=runtime_config.inter_op_threads,
            warmup_rows=runtime_config.warmup_rows,
            max_batch_size=self.config.batching.max_batch_size,
            max_delay_s=self.config.batching.max_delay_ms / 1000.0,
            on_batch=self.metrics.batch_observer(name, ref.version).observe,
            offload=runtime_config.offload,
        )

    def _swap(self, snapshot: Snapshot) -> None:
        old = self.snapshot
        self.snapshot = snapshot
        live = {snapshot.champion.digest: snapshot.champion}
        if snapshot.challenger is not None:
            live[snapshot.challenger.digest] = snapshot.challenger
        for digest, model in self._loaded.items():
            if digest not in live:
                model.batcher.close()
        self._loaded = live
        self.metrics.model_info.clear()
        self.metrics.model_info.labels(
            snapshot.model, snapshot.champion.version, snapshot.champion.digest, "champion"
        ).set(1)
        if snapshot.challenger is not None:
            self.metrics.model_info.labels(
                snapshot.model,
                snapshot.challenger.version,
                snapshot.challenger.digest,
                "shadow" if snapshot.mode == "shadow" else "challenger",
            ).set(1)
        self.metrics.ready.set(0 if self.draining else 1)
        self.metrics.reloads.labels("applied").inc()
        before = f" (was {', '.join(old.versions())})" if old else ""
        challenger = (
            f", challenger {snapshot.challenger.version} ({snapshot.mode}"
            + (f" {snapshot.splitter.share:g}%)" if snapshot.mode == "split" else ")")
            if snapshot.challenger
            else ""
        )
        _log.info(
            "serving %s: champion %s%s%s", snapshot.model, snapshot.champion.version, challenger, before
        )

    async def watch_routing(self) -> None:
        while True:
            await asyncio.sleep(self.config.routing.poll_interval_s)
            await self.reload_once()

    def start_draining(self) -> None:
        self.draining = True
        self.metrics.ready.set(0)

    # --- requests -----------------------------------------------------------------------------

    def live(self, name: str) -> Snapshot:
        snapshot = self.snapshot
        if snapshot is None:
            raise errors.UnavailableError(f"no model is ready: {self.not_ready_reason}")
        if name != snapshot.model:
            raise errors.NotFoundError(f"unknown model {name!r}; this server serves {snapshot.model!r}")
        return snapshot

    def pick(
        self, snapshot: Snapshot, version: str | None, rid: str | None
    ) -> tuple[models.LoadedModel, str]:
        if version is not None:
            model = snapshot.by_version(version)
            if model is None:
                known = ", ".join(snapshot.versions())
                raise errors.NotFoundError(
                    f"model {snapshot.model!r} has no version {version!r}; versions: {known}"
                )
            return model, "champion" if model is snapshot.champion else "challenger"
        if (
            snapshot.challenger is not None
            and snapshot.mode == "split"
            and snapshot.splitter.to_challenger(rid)
        ):
            return snapshot.challenger, "challenger"
        return snapshot.champion, "champion"

    def new_id(self) -> str:
        self._next_id += 1
        return f"{self._id_prefix}-{self._next_id}"

    async def score(
        self,
        snapshot: Snapshot,
        model: models.LoadedModel,
        route: str,
        request: protocol.InferRequest,
        reason_codes_top_k: int | None = None,
    ) -> Answer:
        """Score ``request``; with ``reason_codes_top_k``, add the reason codes to the outputs
        (before the rows go to the monitor, so the decision log records them too)."""
        rid = request.id if request.id is not None else self.new_id()
        feeds = model.runtime.feeds(request.columns, request.matrix)
        outputs = await model.batcher.submit(feeds, request.rows)
        if reason_codes_top_k is not None:
            from mlsteward.serving import explain  # only requests that ask pay for it

            codes = await explain.reason_codes(model, request.columns, outputs, reason_codes_top_k)
            outputs = {**outputs, protocol.REASON_CODES: codes}
        if self.monitor is not None:
            self._offer(model, route, rid, request, outputs)
        if snapshot.mode == "shadow" and route == "champion" and snapshot.challenger is not None:
            self._shadow(snapshot.challenger, request, outputs, rid)
        return Answer(model, route, rid, outputs)

    def _offer(
        self,
        model: models.LoadedModel,
        route: str,
        rid: str,
        request: protocol.InferRequest,
        outputs: dict[str, _AnyArray],
    ) -> None:
        assert self.monitor is not None
        self.monitor.offer(
            version=model.version,
            digest=model.digest,
            route=route,
            request_id=rid,
            rows=request.rows,
            columns=request.columns,
            block=request.block,
            outputs=outputs,
            positive=model.signature.positive_index(),
            metadata=request.metadata,
            reason_codes=outputs.get(protocol.REASON_CODES),
        )

    def _shadow(
        self,
        challenger: models.LoadedModel,
        request: protocol.InferRequest,
        answered: dict[str, _AnyArray],
        rid: str,
    ) -> None:
        """Score the same rows on the challenger after the champion answered; measure agreement."""
        if challenger.batcher.pending_rows > _SHADOW_MAX_PENDING_ROWS:
            self.metrics.shadow_rows.labels("skipped").inc(request.rows)
            return
        task = asyncio.get_running_loop().create_task(self._shadow_score(challenger, request, answered, rid))
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow_score(
        self,
        challenger: models.LoadedModel,
        request: protocol.InferRequest,
        answered: dict[str, _AnyArray],
        rid: str,
    ) -> None:
        try:
            # The matrix is in the champion's feature order: only a challenger with the same order takes it.
            same_order = challenger.signature.names == tuple(request.columns)
            feeds = challenger.runtime.feeds(request.columns, request.matrix if same_order else None)
            outputs = await challenger.batcher.submit(feeds, request.rows)
        except Exception as error:
            _log.warning("shadow scoring on version %s failed: %s", challenger.version, error)
            self.metrics.shadow_rows.labels("skipped").inc(request.rows)
            return
        key = "label" if "label" in outputs else "variable"
        if key == "label":
            same = np.asarray(outputs[key]).reshape(-1) == np.asarray(answered[key]).reshape(-1)
        else:
            ours, theirs = outputs[key].reshape(-1), answered[key].reshape(-1)
            same = np.isclose(ours, theirs, rtol=0.01, atol=1e-6)
        agree = int(np.count_nonzero(same))
        self.metrics.shadow_rows.labels("agree").inc(agree)
        self.metrics.shadow_rows.labels("disagree").inc(request.rows - agree)
        if self.monitor is not None:
            self._offer(challenger, "shadow", rid, request, outputs)
