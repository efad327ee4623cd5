"""Prometheus metrics of the operator (`--metrics-port`, default 9090; 0 turns them off)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter(
    "haoperator_reconcile_total", "Reconciles of HAServices, by result.", ["result"]
)
RECONCILE_SECONDS = Histogram(
    "haoperator_reconcile_seconds",
    "Time one reconcile took.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECOVERY_ACTIONS = Counter(
    "haoperator_recovery_actions_total",
    "Recovery actions taken: pod_failed, recovery_limit, pod_migrated, node_lost, "
    "pod_force_deleted, split_brain_prevented.",
    ["action"],
)
API_REQUESTS = Counter(
    "haoperator_api_requests_total",
    "Requests the operator made to the API server (watches excepted), by HTTP method.",
    ["method"],
)
FAILOVERS = Counter("haoperator_failovers_total", "Changes of the active pod (ActivePassive).")
FAILOVER_SECONDS = Histogram(
    "haoperator_failover_seconds",
    "Seconds without an active pod in a failover, as the electors measured them.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34),
)
HASERVICES = Gauge(
    "haoperator_haservices", "HAServices watched, by category and readiness.", ["category", "ready"]
)


class ServiceCounts:
    """Keeps haoperator_haservices in step with the last verdict on each HAService."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[str, str]] = {}

    def set(self, key: tuple[str, str], category: str, ready: bool) -> None:
        value = (category, "true" if ready else "false")
        old = self._last.get(key)
        if old == value:
            return
        if old is not None:
            HASERVICES.labels(*old).dec()
        HASERVICES.labels(*value).inc()
        self._last[key] = value

    def forget(self, key: tuple[str, str]) -> None:
        old = self._last.pop(key, None)
        if old is not None:
            HASERVICES.labels(*old).dec()


def serve(port: int) -> None:
    if port:
        start_http_server(port)
