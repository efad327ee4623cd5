"""Pure: which objects an HAService may write, and which of its children refer to which.

The operator never takes over, writes or binds to an object it does not own. A child it finds
is ours when the HAService controls it (its owner reference), or when it is an orphan that
carries our labels for this HAService (made by its electors, like the Lease, or left by an
HAService deleted with `--cascade=orphan`): that one is adopted. Anything else of the same name
is someone else's: left untouched, reported as NameConflict, and every child that would refer to
it (a RoleBinding to a Role, pods to a ServiceAccount, a Role to a Lease) is withheld too, so
that a foreign Role is never bound and a foreign ServiceAccount never runs our pods.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from haoperator.core.objects import controller, labels_of
from haoperator.core.vocabulary import OPERATOR, Label

ChildKey = tuple[str, str]
"""(kind, name) of a child."""


class Verdict(Enum):
    OURS = "ours"
    ADOPT = "adopt"
    FOREIGN = "foreign"


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    ref = controller(obj)
    return ref is not None and ref.get("uid") == uid


def judge(obj: dict[str, Any], uid: str, name: str) -> Verdict:
    """Whether the existing object `obj` is the HAService (`uid`, `name`)'s to write."""
    if owned_by(obj, uid):
        return Verdict.OURS
    labels = labels_of(obj)
    if (
        controller(obj) is None
        and labels.get(Label.SERVICE) == name
        and labels.get(Label.MANAGED_BY) == OPERATOR
    ):
        return Verdict.ADOPT
    return Verdict.FOREIGN


def whose(obj: dict[str, Any]) -> str:
    """Who an object we may not write belongs to, for the message."""
    ref = controller(obj)
    if ref is not None:
        return f"it belongs to {ref.get('kind')} {ref.get('name')}"
    return "it is not owned by this HAService"


def references(child: dict[str, Any]) -> set[ChildKey]:
    """The objects of the same namespace a rendered child names: a RoleBinding its Role and its
    ServiceAccounts, a workload its pods' ServiceAccount, a Role the Leases it grants."""
    kind = child["kind"]
    namespace = child["metadata"].get("namespace")
    found: set[ChildKey] = set()
    if kind == "RoleBinding":
        role = child.get("roleRef") or {}
        if role.get("kind") == "Role":
            found.add(("Role", role["name"]))
        for subject in child.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount" and subject.get("namespace") == namespace:
                found.add(("ServiceAccount", subject["name"]))
    elif kind == "Role":
        for rule in child.get("rules") or []:
            if "leases" in (rule.get("resources") or []):
                found.update(("Lease", name) for name in rule.get("resourceNames") or [])
    elif kind in ("Deployment", "StatefulSet"):
        account = child["spec"]["template"]["spec"].get("serviceAccountName")
        if account:
            found.add(("ServiceAccount", account))
    return found


GRANTS = ("Role", "RoleBinding")
"""Children that grant access: withheld ones that exist are deleted, not merely left alone,
since what they grant now points at someone else's object."""
