"""kopf wiring: watch events feed the cache and the work queue; workers run reconciles.

Handlers here decide nothing. kopf watches the HAServices; their children and pods (filtered by
our managed-by label on the server) and the nodes are followed by lean informers (informer.py),
which cost a fraction of kopf's per-event machinery at thousands of events a minute. Each event
updates the cache and queues the owning HAService; a pool of workers reconciles queued
HAServices in threads.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kopf
import structlog
from kubernetes import client, config

from haoperator.controller import metrics
from haoperator.controller.executor import NotLeading
from haoperator.controller.informer import Informer
from haoperator.controller.kube import RESOURCES, Kube
from haoperator.controller.operator_lease import Leadership
from haoperator.controller.reconciler import Reconciler
from haoperator.controller.settings import Settings
from haoperator.controller.store import Key, Store
from haoperator.controller.workqueue import WorkQueue
from haoperator.core.vocabulary import OPERATOR, Label
from haoperator.core.world import Operator

log = structlog.get_logger("haoperator.operator")
OURS = f"{Label.MANAGED_BY}={OPERATOR}"
SELECTORS = {
    # Only ActivePassive reads where its Service routes. EndpointSlices carry their Service's
    # labels, so the server filters out the others, which change with every pod's readiness.
    "EndpointSlice": f"{OURS},{Label.CATEGORY}=ActivePassive",
}
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("", "v1", "services"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("", "v1", "serviceaccounts"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    # Not ours to make, ours to read: the electors' Lease, the Services' EndpointSlices.
    ("coordination.k8s.io", "v1", "leases"),
    ("discovery.k8s.io", "v1", "endpointslices"),
)
CHILD_KINDS = tuple(
    next(kind for kind, r in RESOURCES.items() if (r.group, r.plural) == (group, plural))
    for group, _, plural in CHILD_RESOURCES
)
PROBLEM_BASE_DELAY = 2.0
NOT_LEADING_DELAY = 1.0
"""A reconcile stopped because this instance no longer leads: looked at again after this, by
this instance if it leads again (its workers wait until then), else by nobody here."""
LIST_SECONDS = 60.0
"""How long one page of an informer's list may take (thousands of pods in one page)."""
FAILED_CREATES = "involvedObject.kind=StatefulSet,reason=FailedCreate"
"""A StatefulSet says why it cannot create a pod only in an event (a Deployment's ReplicaSet
says it in a condition, which its Deployment carries): rare, so cheap to follow."""


def client_configuration(settings: Settings) -> client.Configuration:
    """In a pod, its ServiceAccount; elsewhere --kubeconfig (or KUBECONFIG), as kubectl does."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(config_file=settings.kubeconfig, client_configuration=configuration)
    return configuration


def api_client(settings: Settings, pool_size: int) -> client.ApiClient:
    configuration = client_configuration(settings)
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


@kopf.on.login()
def login(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """kopf's watches use the same credentials as our own calls (not the client's global
    default, which reads KUBECONFIG once, at import)."""
    configuration = client_configuration(memo.settings)
    header = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
    scheme, token = (None, None)
    if header:
        parts = header.split(" ", 1)
        scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        trust_env=settings.networking.trust_env,
    )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    ours: Settings = memo.settings
    # kopf would post its own log lines as Events: every write must be one we mean.
    settings.posting.enabled = False
    # No CRD or namespace scanning: we name our resources and namespaces, and least-privilege
    # RBAC then needs no read access to CustomResourceDefinitions or Namespaces.
    settings.scanning.disabled = True
    settings.persistence.diffbase_storage = NoDiffBase()
    # A stalled watch is noticed and re-established instead of waiting forever.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60

    kube = Kube(api_client(ours, ours.workers + 4), instance=ours.identity)
    store = Store()
    queue: WorkQueue[Key] = WorkQueue(base_delay=PROBLEM_BASE_DELAY)
    executor = ThreadPoolExecutor(max_workers=ours.workers, thread_name_prefix="reconcile")
    loop = asyncio.get_running_loop()
    leading = asyncio.Event()
    leadership = None
    if ours.leader_elect:
        leadership = _leadership(ours, store, queue, loop, leading, lambda: reconciler)
    else:
        leading.set()
        metrics.LEADER.labels(ours.identity).set(1)
    reconciler = Reconciler(
        kube,
        store,
        Operator(
            elector_image=ours.elector_image,
            max_replicas=ours.max_replicas,
            started_at=time.time(),
        ),
        still_leading=leadership.still_leading if leadership else None,
    )
    memo.store, memo.queue, memo.executor = store, queue, executor
    memo.leadership = leadership
    memo.informers_stop = threading.Event()
    memo.informers = _start_informers(ours, store, queue, loop, memo.informers_stop)
    synced = asyncio.create_task(_synced(memo.informers, memo.informers_stop))
    memo.workers = [
        asyncio.create_task(_worker(queue, reconciler, executor, synced, leading))
        for _ in range(ours.workers)
    ]
    if leadership is not None:
        memo.contending = asyncio.create_task(_contend_once_synced(synced, leadership))
    log.info(
        "operator started",
        namespaces=ours.namespaces or "all",
        workers=ours.workers,
        metrics_port=ours.metrics_port or "off",
        identity=ours.identity,
        leader_elect=ours.leader_elect,
    )


async def _contend_once_synced(synced: asyncio.Task[None], leadership: Leadership) -> None:
    """A standby contends only once its caches are full: a pod a rollout just started does not
    take the lead over a warm one, and whoever leads can work at once."""
    await asyncio.shield(synced)
    leadership.start()


def _leadership(
    settings: Settings,
    store: Store,
    queue: WorkQueue[Key],
    loop: asyncio.AbstractEventLoop,
    leading: asyncio.Event,
    reconciler: Callable[[], Reconciler],
) -> Leadership:
    """The Lease contender; its callbacks (from its thread) open and close the workers' gate.
    Taking over queues every HAService the cache knows, with a fresh memory: the informers
    were kept warm, so the new leader starts at once."""

    metrics.SERVICES.reporting(False)  # a standby exports no HAService's series

    def started() -> None:
        def on_loop() -> None:
            reconciler().forget_all()
            metrics.SERVICES.reporting(True)
            leading.set()
            known = store.keys()  # every HAService the warm cache holds
            for key in known:
                queue.add(key)

        loop.call_soon_threadsafe(on_loop)

    def stopped() -> None:
        metrics.SERVICES.reporting(False)
        loop.call_soon_threadsafe(leading.clear)

    return Leadership(
        Kube(api_client(settings, 2), instance=settings.identity),
        namespace=settings.leader_elect_namespace,
        identity=settings.identity,
        timing=settings.leader_elect_timing,
        pod=os.environ.get("POD_NAME") or None,  # in a pod: label the operator's pods
        on_started=started,
        on_stopped=stopped,
    )


def _start_informers(
    settings: Settings,
    store: Store,
    queue: WorkQueue[Key],
    loop: asyncio.AbstractEventLoop,
    stop: threading.Event,
) -> list[Informer]:
    """One informer per watched kind and namespace (or one per kind cluster-wide), on their own
    connection pool: a watch holds its connection for minutes."""
    scopes: list[str | None] = [None] if settings.all_namespaces else list(settings.namespaces)
    watched = [(kind, scope) for kind in (*CHILD_KINDS, "Pod", "Event") for scope in scopes]
    kube = Kube(api_client(settings, len(watched) + 2), timeout=LIST_SECONDS)

    def queue_all(keys: list[Key]) -> None:
        for key in keys:
            loop.call_soon_threadsafe(queue.add, key)

    def child_informer(kind: str, scope: str | None) -> Informer:
        def on_list(objs: list[dict[str, Any]]) -> None:
            queue_all(store.resync_children(kind, scope, objs))

        def on_event(kind_: str, obj: dict[str, Any]) -> None:
            gone = kind_ == "DELETED"
            key = store.remove_child(obj, kind) if gone else store.put_child(obj, kind)
            if key is not None:
                loop.call_soon_threadsafe(queue.add, key)

        return Informer(
            kube, kind=kind, namespace=scope, selector=SELECTORS.get(kind, OURS),
            on_list=on_list, on_event=on_event, stop=stop,
        )  # fmt: skip

    def pod_informer(scope: str | None) -> Informer:
        def on_event(kind_: str, obj: dict[str, Any]) -> None:
            key = store.remove_pod(obj) if kind_ == "DELETED" else store.put_pod(obj)
            if key is not None:
                loop.call_soon_threadsafe(queue.add, key)

        return Informer(
            kube, kind="Pod", namespace=scope, selector=OURS,
            on_list=lambda objs: queue_all(store.resync_pods(scope, objs)),
            on_event=on_event, stop=stop,
        )  # fmt: skip

    def event_informer(scope: str | None) -> Informer:
        def on_event(kind_: str, obj: dict[str, Any]) -> None:
            key = None if kind_ == "DELETED" else store.put_failed_create(obj)
            if key is not None:
                loop.call_soon_threadsafe(queue.add, key)

        return Informer(
            kube, kind="Event", namespace=scope, selector=None,
            field_selector=FAILED_CREATES,
            on_list=lambda objs: queue_all(store.resync_failed_creates(scope, objs)),
            on_event=on_event, stop=stop,
        )  # fmt: skip

    def on_node(kind_: str, obj: dict[str, Any]) -> None:
        """Node readiness drives node-loss recovery and the end of bans."""
        queue_all(store.remove_node(obj) if kind_ == "DELETED" else store.put_node(obj))

    makers = {"Pod": pod_informer, "Event": event_informer}
    informers = [
        makers[kind](scope) if kind in makers else child_informer(kind, scope)
        for kind, scope in watched
    ]
    nodes = Informer(
        kube, kind="Node", namespace=None, selector=None,
        on_list=lambda objs: queue_all(store.resync_nodes(objs)), on_event=on_node, stop=stop,
    )  # fmt: skip
    informers.append(nodes)
    for informer in informers:
        informer.start()
    return informers


@kopf.on.probe(id="informers")
def informers_probe(memo: kopf.Memo, **_: Any) -> dict[str, str]:
    """The liveness endpoint fails when a watch has been failing for minutes: a restart is
    the remedy for what retries did not mend (credentials gone stale, say)."""
    now = time.monotonic()
    state: dict[str, str] = {}
    for informer in memo.get("informers", []):
        name = f"{informer.kind} {informer.namespace or '(all namespaces)'}"
        if informer.failing_since is not None and now - informer.failing_since > 300:
            failing = now - informer.failing_since
            raise RuntimeError(f"{name}: list/watch failing for {failing:.0f} s")
        state[name] = "synced" if informer.synced else "listing"
    return state


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    leadership: Leadership | None = memo.get("leadership")
    loop = asyncio.get_running_loop()
    if "contending" in memo:
        memo.contending.cancel()
    if leadership is not None:  # stop acting first: reconciles in flight stop before writing
        await loop.run_in_executor(None, leadership.shutdown)
    if "informers_stop" in memo:
        memo.informers_stop.set()
    for task in memo.get("workers", []):
        task.cancel()
    await asyncio.gather(*memo.get("workers", []), return_exceptions=True)
    if "executor" in memo:
        memo.executor.shutdown(wait=True, cancel_futures=True)
    if leadership is not None:  # nothing of ours writes any more: a standby may take over now
        await loop.run_in_executor(None, leadership.release)
    log.info("operator stopped")


async def _synced(informers: list[Informer], stop: threading.Event) -> None:
    """Until every informer has listed once, the cache lacks children that exist: a reconcile
    would try to create them again (a write per child, on every operator start)."""

    def wait() -> None:
        for informer in informers:
            while not informer.listed.wait(0.5):  # set once, by the informer's first list
                if stop.is_set():
                    return

    await asyncio.get_running_loop().run_in_executor(None, wait)
    log.info("caches synced", informers=len(informers))


async def _worker(
    queue: WorkQueue[Key],
    reconciler: Reconciler,
    executor: ThreadPoolExecutor,
    synced: asyncio.Task[None],
    leading: asyncio.Event,
) -> None:
    """Reconciles queued HAServices, only while this instance leads (`leading`: always set
    without leader election); a standby's queue just keeps what is waiting."""
    loop = asyncio.get_running_loop()
    await asyncio.shield(synced)
    while True:
        await leading.wait()
        key = await queue.get()
        if not leading.is_set():  # lost the lead while waiting: leave it for the next term
            queue.done(key)
            queue.add(key)
            continue
        started = time.monotonic()
        try:
            outcome = await loop.run_in_executor(executor, reconciler.reconcile, key)
        except NotLeading:  # stopped before its next write: whoever leads does it again
            metrics.RECONCILES.labels("not_leading").inc()
            queue.add_after(key, NOT_LEADING_DELAY)
        except Exception as exc:  # an outage or a bug must not kill the worker: retry later
            metrics.RECONCILES.labels("error").inc()
            delay = queue.backoff(key)
            log.warning(
                "reconcile failed; will retry",
                namespace=key[0],
                name=key[1],
                error=str(exc),
                retry_in=delay,
            )
            queue.add_after(key, delay)
        else:
            metrics.RECONCILES.labels("problem" if outcome.problem else "ok").inc()
            if outcome.backoff:
                queue.add_after(key, queue.backoff(key))
            else:
                queue.forget(key)
                if outcome.requeue_after is not None:
                    queue.add_after(key, outcome.requeue_after)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
            queue.done(key)


def _changed_beyond_status(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Our own status writes come back as events; they must not wake a reconcile."""
    if old is None:
        return True
    before, after = old.get("metadata", {}), new.get("metadata", {})
    return any(
        before.get(field) != after.get(field)
        for field in ("generation", "uid", "deletionTimestamp", "labels", "annotations")
    )


def _raw(event: kopf.RawEvent) -> dict[str, Any]:
    """The event's object as parsed. Read-only: the store keeps trimmed copies of its own."""
    return cast(dict[str, Any], event["object"])


class NoDiffBase(kopf.DiffBaseStorage):
    """We register only on.event handlers, which need no "what changed since last handled".
    kopf would still deep-copy every object of every watch event to build that diff base: at a
    few thousand pod events a minute, the largest CPU cost of the operator after the requests."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.event("haoperator.dev", "v1alpha1", "haservices")
async def haservice_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    store: Store = memo.store
    obj = _raw(event)
    if event["type"] == "DELETED":
        # One last look: the reconciler forgets it and lifts its node bans.
        memo.queue.add(store.remove_haservice(obj))
        return
    previous = store.snapshot((obj["metadata"]["namespace"], obj["metadata"]["name"])).haservice
    key = store.put_haservice(obj)
    if _changed_beyond_status(previous, obj):
        memo.queue.add(key)
