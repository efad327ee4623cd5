"""What the operator has seen of HAServices, their children and their pods, kept from watch events.

Reconciles read from here instead of asking the API server, so an HAService with nothing to do
costs no request at all. Objects are stored whole minus managedFields (the biggest part, and
not ours to read); pods are kept to the fields status and recovery need.

The informers hand over what they have just parsed and keep nothing, so the store takes their
objects as they are; only kopf's HAService bodies, which kopf keeps, are copied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from haoperator.controller.kube import RESOURCES
from haoperator.core.objects import labels_of, meta
from haoperator.core.ownership import ChildKey
from haoperator.core.times import epoch
from haoperator.core.vocabulary import Label

Key = tuple[str, str]
"""(namespace, HAService name)."""


def owner_key(obj: dict[str, Any]) -> Key | None:
    """The HAService an object belongs to, by our label; None for objects that are not ours."""
    name = labels_of(obj).get(Label.SERVICE)
    return (meta(obj).get("namespace", ""), name) if name else None


def plain_copy(value: Any) -> Any:
    """A deep copy of parsed JSON (dicts, lists, scalars): what copy.deepcopy does here, several
    times faster, which matters at thousands of watch events a minute."""
    if type(value) is dict:
        return {key: plain_copy(item) for key, item in value.items()}
    if type(value) is list:
        return [plain_copy(item) for item in value]
    return value


def trim(obj: dict[str, Any]) -> dict[str, Any]:
    """The object minus managedFields; shares the rest with `obj`."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def typed(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The object with its kind and apiVersion: the items of a list carry neither, and an object
    held without them once looked different from its rendering (a false drift per child after
    every relist, re-applied on every operator restart)."""
    obj["kind"] = kind
    obj["apiVersion"] = RESOURCES[kind].api_version
    return obj


def trim_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """The fields status and recovery read; shares them with `pod`."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    return {
        "kind": "Pod",
        "metadata": {
            k: meta[k]
            for k in (
                "name",
                "namespace",
                "uid",
                "labels",
                "annotations",
                "deletionTimestamp",
                "creationTimestamp",
                "resourceVersion",
                "ownerReferences",
            )
            if k in meta
        },
        "spec": {k: spec[k] for k in ("nodeName", "affinity") if k in spec},
        "status": {
            k: status[k]
            for k in (
                "phase",
                "conditions",
                "containerStatuses",
                "initContainerStatuses",
                "podIP",
            )
            if k in status
        },
    }


UNREAD_FIELDS: dict[str, tuple[tuple[str, str | None], ...]] = {
    # An elector renews its Lease every retry period: a new renewTime says nothing new.
    "Lease": (("spec", "renewTime"),),
    # Workloads' status feeds ours and EndpointSlices say where the Service routes; of the other
    # children only what we render (and their metadata) can call for a reconcile.
    "Deployment": (),
    "StatefulSet": (),
    "EndpointSlice": (),
}
DEFAULT_UNREAD_FIELDS: tuple[tuple[str, str | None], ...] = (("status", None),)


def worth_a_reconcile(kind: str, old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Whether a child's change can change what a reconcile does or reports. Each reconcile of
    an ActivePassive service was once woken every second by its Lease's renewal."""
    if old is None:
        return True
    return _read_part(kind, old) != _read_part(kind, new)


def _read_part(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    part = {**obj, "metadata": meta}
    for top, inner in UNREAD_FIELDS.get(kind, DEFAULT_UNREAD_FIELDS):
        if inner is None:
            part.pop(top, None)
        elif isinstance(part.get(top), dict):
            part[top] = {k: v for k, v in part[top].items() if k != inner}
    return part


@dataclass
class Entry:
    haservice: dict[str, Any] | None = None
    children: dict[ChildKey, dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_create: tuple[str, float] | None = None
    """Its StatefulSet's last FailedCreate event: (message, when, epoch seconds)."""


@dataclass(frozen=True)
class Snapshot:
    """One HAService's world at one moment: safe to read from a worker thread."""

    haservice: dict[str, Any] | None
    children: dict[ChildKey, dict[str, Any]]
    pods: list[dict[str, Any]]
    failed_create: tuple[str, float] | None = None


def event_time(event: dict[str, Any]) -> float:
    """When an Event last happened (its series, lastTimestamp or eventTime), epoch seconds."""
    stamp = (
        (event.get("series") or {}).get("lastObservedTime")
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
    )
    return epoch(stamp) or 0.0


def trim_node(node: dict[str, Any]) -> dict[str, Any]:
    meta = node.get("metadata") or {}
    return {
        "kind": "Node",
        "metadata": {k: meta[k] for k in ("name", "labels", "uid") if k in meta},
        "status": {"conditions": (node.get("status") or {}).get("conditions") or []},
    }


class Store:
    """Written by watch handlers on the event loop, read by reconciles in worker threads."""

    def __init__(self) -> None:
        self._entries: dict[Key, Entry] = {}
        self._nodes: dict[str, dict[str, Any]] = {}
        self._deleted: set[Key] = set()
        """HAServices seen deleted and not yet forgotten by a reconcile (not: not seen yet)."""
        self._lock = threading.Lock()

    def put_node(self, obj: dict[str, Any]) -> list[Key]:
        """Keep a node; returns the HAServices with pods on it, which its change concerns."""
        name = obj["metadata"]["name"]
        with self._lock:
            self._nodes[name] = trim_node(obj)
            return self._keys_on(name)

    def remove_node(self, obj: dict[str, Any]) -> list[Key]:
        name = obj["metadata"]["name"]
        with self._lock:
            self._nodes.pop(name, None)
            return self._keys_on(name)

    def _keys_on(self, node: str) -> list[Key]:
        return [
            key
            for key, entry in self._entries.items()
            if entry.haservice is not None
            and any((p.get("spec") or {}).get("nodeName") == node for p in entry.pods.values())
        ]

    def nodes(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._nodes)

    def _entry(self, key: Key) -> Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = Entry()
        return entry

    def _drop_if_empty(self, key: Key) -> None:
        entry = self._entries.get(key)
        if entry and entry.haservice is None and not entry.children and not entry.pods:
            del self._entries[key]

    def put_haservice(self, obj: dict[str, Any]) -> Key:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self._lock:
            self._entry(key).haservice = plain_copy(trim(obj))  # kopf keeps its body
            self._deleted.discard(key)
        return key

    def remove_haservice(self, obj: dict[str, Any]) -> Key:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self._lock:
            self._deleted.add(key)
            if key in self._entries:
                self._entries[key].haservice = None
                self._drop_if_empty(key)
        return key

    def take_deleted(self, key: Key) -> bool:
        """Whether `key` was deleted (rather than never seen): true once, for the one reconcile
        that cleans up after it."""
        with self._lock:
            if key in self._deleted:
                self._deleted.discard(key)
                return True
            return False

    def put_child(self, obj: dict[str, Any], kind: str | None = None) -> Key | None:
        """Keep a child; `kind` for listed items, which carry none. Returns the HAService
        to reconcile, or None: not ours, or nothing a reconcile reads has changed."""
        key = owner_key(obj)
        if key is None:
            return None
        kept = typed(trim(obj), kind or obj["kind"])
        child_key = (kept["kind"], obj["metadata"]["name"])
        with self._lock:
            children = self._entry(key).children
            old = children.get(child_key)
            children[child_key] = kept
        return key if worth_a_reconcile(kept["kind"], old, kept) else None

    def remove_child(self, obj: dict[str, Any], kind: str | None = None) -> Key | None:
        key = owner_key(obj)
        if key is not None:
            with self._lock:
                entry = self._entries.get(key)
                if entry:
                    entry.children.pop((kind or obj["kind"], obj["metadata"]["name"]), None)
                    self._drop_if_empty(key)
        return key

    def put_pod(self, obj: dict[str, Any]) -> Key | None:
        key = owner_key(obj)
        if key is not None:
            with self._lock:
                self._entry(key).pods[obj["metadata"]["name"]] = trim_pod(obj)
        return key

    def remove_pod(self, obj: dict[str, Any]) -> Key | None:
        key = owner_key(obj)
        if key is not None:
            with self._lock:
                entry = self._entries.get(key)
                if entry:
                    entry.pods.pop(obj["metadata"]["name"], None)
                    self._drop_if_empty(key)
        return key

    def put_failed_create(self, event: dict[str, Any]) -> Key | None:
        """Keep the FailedCreate event of a StatefulSet that is one of ours (StatefulSets are named
        after their HAService); the HAService to look at again, or None."""
        involved = event.get("involvedObject") or {}
        key = (involved.get("namespace", ""), involved.get("name", ""))
        at = event_time(event)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.haservice is None:
                return None
            if entry.failed_create is not None and entry.failed_create[1] > at:
                return None
            entry.failed_create = (str(event.get("message") or ""), at)
        return key

    # -- relists: what a fresh list says replaces what was held --------------------------------

    def resync_failed_creates(
        self, namespace: str | None, events: list[dict[str, Any]]
    ) -> list[Key]:
        with self._lock:
            for key, entry in self._entries.items():
                if namespace is None or key[0] == namespace:
                    entry.failed_create = None
        return sorted({k for k in map(self.put_failed_create, events) if k is not None})

    def resync_children(
        self, kind: str, namespace: str | None, objs: list[dict[str, Any]]
    ) -> list[Key]:
        """Replace the children of `kind` held for `namespace` (None: everywhere) with a fresh
        list; the HAServices concerned, which must be looked at again."""
        kept = [(owner_key(o), typed(trim(o), kind)) for o in objs]
        with self._lock:
            affected = self._forget(namespace, lambda e: e.children, lambda ck: ck[0] == kind)
            for key, child in kept:
                if key is not None:
                    self._entry(key).children[(kind, child["metadata"]["name"])] = child
                    affected.add(key)
            for key in affected:
                self._drop_if_empty(key)
        return sorted(affected)

    def resync_pods(self, namespace: str | None, objs: list[dict[str, Any]]) -> list[Key]:
        kept = [(owner_key(o), trim_pod(o)) for o in objs]
        with self._lock:
            affected = self._forget(namespace, lambda e: e.pods, lambda _: True)
            for key, pod in kept:
                if key is not None:
                    self._entry(key).pods[pod["metadata"]["name"]] = pod
                    affected.add(key)
            for key in affected:
                self._drop_if_empty(key)
        return sorted(affected)

    def resync_nodes(self, objs: list[dict[str, Any]]) -> list[Key]:
        with self._lock:
            self._nodes = {o["metadata"]["name"]: trim_node(o) for o in objs}
            return [k for k, e in self._entries.items() if e.haservice is not None and e.pods]

    def _forget(
        self,
        namespace: str | None,
        part: Callable[[Entry], dict[Any, Any]],
        matches: Callable[[Any], bool],
    ) -> set[Key]:
        affected: set[Key] = set()
        for key, entry in self._entries.items():
            if namespace is not None and key[0] != namespace:
                continue
            held = part(entry)
            for item in [i for i in held if matches(i)]:
                del held[item]
                affected.add(key)
        return affected

    def snapshot(self, key: Key) -> Snapshot:
        with self._lock:
            entry = self._entries.get(key) or Entry()
            return Snapshot(
                entry.haservice,
                dict(entry.children),
                list(entry.pods.values()),
                entry.failed_create,
            )

    def keys(self) -> list[Key]:
        with self._lock:
            return [k for k, e in self._entries.items() if e.haservice is not None]
