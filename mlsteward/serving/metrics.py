"""The server's Prometheus metrics, registered on a registry the program creates and passes in.

Never the global registry: tests build a fresh :class:`CollectorRegistry` per server and read
samples from it. Label children used on the hot path are cached, since ``labels()`` takes a lock
and builds a tuple on every call.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServingMetrics:
    """Every metric ``mlsteward serve`` exports.

    Usage::

        registry = CollectorRegistry()
        metrics = ServingMetrics(registry)
        metrics.request("credit", "3", 200, 0.0012)
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "mlsteward_serving_requests",
            "Inference requests answered, by model, version that answered and HTTP status code.",
            ["model", "version", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "mlsteward_serving_request_duration_seconds",
            "Time from a complete request body to the response, for inference requests, by model and "
            "version that answered (empty when none did).",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_rows = Histogram(
            "mlsteward_serving_batch_size_rows",
            "Rows scored per ONNX Runtime call (dynamic batching across requests).",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "mlsteward_serving_in_flight_requests", "Inference requests being processed.", registry=registry
        )
        self.load_failures = Counter(
            "mlsteward_serving_model_load_failures",
            "Model versions that failed to load, by reason (digest_mismatch, artifact_missing, "
            "store_unavailable, invalid_schema, invalid_graph, routing_invalid).",
            ["reason"],
            registry=registry,
        )
        self.ready = Gauge(
            "mlsteward_serving_ready",
            "1 when a champion is loaded and the server is not draining.",
            registry=registry,
        )
        self.model_info = Gauge(
            "mlsteward_serving_model_info",
            "The versions being served (value 1), with their artifact digest and route.",
            ["model", "version", "digest", "route"],
            registry=registry,
        )
        self.reloads = Counter(
            "mlsteward_serving_routing_reloads",
            "Routing file changes applied (outcome=applied) or refused (outcome=failed).",
            ["outcome"],
            registry=registry,
        )
        self.monitor_sent_rows = Counter(
            "mlsteward_serving_monitor_sent_rows",
            "Scored rows delivered to the drift monitor.",
            registry=registry,
        )
        self.monitor_dropped_rows = Counter(
            "mlsteward_serving_monitor_dropped_rows",
            "Scored rows not delivered to the drift monitor, by reason (queue_full, send_failed, rejected).",
            ["reason"],
            registry=registry,
        )
        self.monitor_feed_seconds = Counter(
            "mlsteward_serving_monitor_feed_seconds",
            "Event-loop time spent on the monitor feed (queueing rows, building and writing batches):"
            " its share of the server's time, measured where it is paid.",
            registry=registry,
        )
        self.shadow_rows = Counter(
            "mlsteward_serving_shadow_rows",
            "Rows scored by the shadow challenger, by outcome (agree, disagree, skipped).",
            ["outcome"],
            registry=registry,
        )
        # one cached pair of children per (model, version, code): a request costs one dict lookup
        self._requests: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._batches: dict[tuple[str, str], Histogram] = {}

    def request(self, model: str, version: str, code: int, seconds: float | None) -> None:
        key = (model, version, code)
        children = self._requests.get(key)
        if children is None:
            if len(self._requests) > 1000:  # unknown model names come from clients: bound the label set
                key = ("(other)", "", code)
            children = self._requests[key] = (
                self.requests.labels(key[0], key[1], str(code)),
                self.latency.labels(key[0], key[1]),
            )
        children[0].inc()
        if seconds is not None:
            children[1].observe(seconds)

    def batch_observer(self, model: str, version: str) -> Histogram:
        key = (model, version)
        histogram = self._batches.get(key)
        if histogram is None:
            histogram = self._batches[key] = self.batch_rows.labels(model, version)
        return histogram
