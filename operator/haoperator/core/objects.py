"""Reading plain Kubernetes objects (parsed JSON): their labels, conditions, owner, version.

Every part of the operator and the elector reads objects the same few ways; doing it here once
keeps a missing `metadata` or a null list from being handled in one place and not another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from haoperator.core.vocabulary import ConditionType

Object = dict[str, Any]


def meta(obj: Object | None) -> dict[str, Any]:
    return (obj or {}).get("metadata") or {}


def labels_of(obj: Object | None) -> dict[str, str]:
    return meta(obj).get("labels") or {}


def annotations_of(obj: Object | None) -> dict[str, str]:
    return meta(obj).get("annotations") or {}


def deleting(obj: Object) -> bool:
    """Being deleted: it is gone for every purpose but the node-loss one."""
    return bool(meta(obj).get("deletionTimestamp"))


def controller(obj: Object | None) -> dict[str, Any] | None:
    """The owner reference that controls it, if any."""
    return next((r for r in meta(obj).get("ownerReferences") or [] if r.get("controller")), None)


def condition(obj: Object | None, type_: str) -> dict[str, Any] | None:
    """Its status condition of that type, if it has one."""
    found = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in found if c.get("type") == type_), None)


def condition_true(obj: Object | None, type_: str) -> bool:
    found = condition(obj, type_)
    return found is not None and found.get("status") == "True"


def is_ready(pod: Object) -> bool:
    """A pod that is Ready and not being deleted."""
    return not deleting(pod) and condition_true(pod, ConditionType.READY)


def older(version: str | None, than: str | None) -> bool:
    """Whether resourceVersion `version` is older than `than`. They are opaque, but etcd's are one
    increasing counter across all objects; when either does not read as one, not older."""
    try:
        return version is not None and than is not None and int(version) < int(than)
    except ValueError:
        return False


@dataclass(frozen=True)
class ObjectRef:
    """What an event is about."""

    kind: str
    namespace: str
    name: str
    uid: str
    api_version: str = ""

    @classmethod
    def of(cls, obj: Object) -> ObjectRef:
        data = obj["metadata"]
        return cls(
            obj["kind"],
            data.get("namespace", ""),
            data["name"],
            data.get("uid", ""),
            obj.get("apiVersion", ""),
        )
