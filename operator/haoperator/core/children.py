"""Pure: which children to apply, why, and which to delete; what to report about each.

For every rendered child, in rendering order (each before what refers to it):
- it would refer to an object that is not ours (a RoleBinding to a foreign Role): withheld, and
  a grant of ours that exists is deleted (ownership.py);
- the API server refused this very rendering (InvalidSpec, Forbidden): not applied again until
  the rendering changes or its backoff has passed; reported meanwhile;
- missing: created by a create-only apply (`create`, or `recreate` when a reconciled generation
  had it: someone deleted it, and DriftCorrected says so);
- someone else's: left alone, NameConflict;
- an orphan of ours: adopted; ours with another applied hash: updated;
- ours and as applied, but a field of ours differs on the server: drift, applied again
  (DriftCorrected names the fields).
Then children we own that the spec no longer asks for are deleted.
"""

from __future__ import annotations

import hashlib
import json

from haoperator.core import ownership
from haoperator.core.actions import Apply, ApplyReason, Delete, Draft, StepId
from haoperator.core.diff import differences
from haoperator.core.memory import Memory, Refusal
from haoperator.core.objects import Object
from haoperator.core.ownership import ChildKey, Verdict
from haoperator.core.vocabulary import Annotation, EventType, Reason
from haoperator.core.world import World


def applied_hash(child: Object) -> str:
    return hashlib.sha256(json.dumps(child, sort_keys=True).encode()).hexdigest()[:20]


def label(key: ChildKey) -> str:
    return f"{key[0]} {key[1]}"


def plan_children(
    draft: Draft,
    world: World,
    desired: list[Object],
    reconciled_before: bool,
    memory: Memory,
    now: float,
) -> dict[ChildKey, Refusal]:
    """Add the child steps and their reports to `draft`; the refusals to remember."""
    assert world.haservice is not None
    uid = world.haservice["metadata"]["uid"]
    name = world.haservice["metadata"]["name"]
    foreign: set[ChildKey] = set()
    refusals: dict[ChildKey, Refusal] = {}
    for child in desired:
        key: ChildKey = (child["kind"], child["metadata"]["name"])
        digest = applied_hash(child)
        child["metadata"].setdefault("annotations", {})[Annotation.APPLIED_HASH] = digest
        observed = world.observed(key)
        blockers = ownership.references(child) & foreign
        if blockers:
            # It would refer to someone else's object: never bind to it, run as it, grant it.
            foreign.add(key)
            _withhold(draft, key, observed, uid, blockers)
            continue
        refusal = _refusal(world, memory, key, digest, now)
        if refusal is not None:
            refusals[key] = refusal
            fresh = key in world.refused
            draft.refuse(refusal.reason, refusal.message, news=fresh, backoff=False)
            draft.look_again(max(refusal.retry_at - now, 0.0))
            continue
        if observed is None:
            # Not in the cache: not made yet, deleted, just made (cache lag), or not ours. A
            # create-only apply tells which without a read first.
            if reconciled_before:
                step = draft.step(_apply(child, "recreate"))
                _corrected(draft, step, f"{label(key)} was deleted; recreated")
            else:
                step = draft.step(_apply(child, "create"))
                draft.change(step, "created", label(key))
            continue
        verdict = ownership.judge(observed, uid, name)
        if verdict is Verdict.FOREIGN:
            foreign.add(key)
            draft.refuse(
                Reason.NAME_CONFLICT,
                f"{label(key)} already exists and {ownership.whose(observed)}; left untouched",
            )
            continue
        if verdict is Verdict.ADOPT:
            step = draft.step(_apply(child, "adopt"))
            draft.change(step, "updated", f"{label(key)} (adopted)", changed=False)
            continue
        if _hash_of(observed) != digest:
            version = observed["metadata"].get("resourceVersion")
            step = draft.step(_apply(child, "update", version))
            draft.change(step, "updated", label(key))
            continue
        drift = differences(child, observed)
        if drift:
            step = draft.step(_apply(child, "drift"))
            _corrected(draft, step, f"{label(key)}: {', '.join(drift)}")
    _prune(draft, world, {(c["kind"], c["metadata"]["name"]) for c in desired}, uid)
    return refusals


def _apply(child: Object, reason: ApplyReason, version: str | None = None) -> Apply:
    return Apply(child, reason, version)


def _corrected(draft: Draft, step: StepId, message: str) -> None:
    """DriftCorrected, once the apply that corrects it succeeded."""
    draft.event(EventType.NORMAL, Reason.DRIFT_CORRECTED, message, after=[step])


def _hash_of(obj: Object) -> str | None:
    return (obj["metadata"].get("annotations") or {}).get(Annotation.APPLIED_HASH)


def _refusal(
    world: World, memory: Memory, key: ChildKey, digest: str, now: float
) -> Refusal | None:
    """The refusal that keeps this rendering of the child from being applied now, if any: one
    the executor has just met (counted on top of the remembered ones of the same rendering), or
    a remembered one whose backoff is still running."""
    remembered = memory.refusals.get(key)
    if remembered is not None and remembered.applied_hash != digest:
        remembered = None  # the rendering changed: try it
    refused = world.refused.get(key)
    if refused is not None and refused.applied_hash == digest:
        attempts = remembered.attempts + 1 if remembered is not None else 1
        return Refusal(
            digest, refused.reason, refused.message, attempts, now + Refusal.delay(attempts)
        )
    if remembered is not None and now < remembered.retry_at:
        return remembered
    return None


def _withhold(
    draft: Draft, key: ChildKey, observed: Object | None, uid: str, blockers: set[ChildKey]
) -> None:
    """Leave the child unmade because an object it refers to is not ours; a grant of ours that
    exists already is revoked (it now names someone else's object)."""
    names = ", ".join(label(b) for b in sorted(blockers))
    what = "not applied"
    if key[0] in ownership.GRANTS and observed is not None and ownership.owned_by(observed, uid):
        step = draft.step(_delete(observed))
        draft.change(step, "deleted", label(key))
        what = "deleted"
    draft.refuse(Reason.NAME_CONFLICT, f"{label(key)} {what}: it would refer to {names}")


def _prune(draft: Draft, world: World, wanted: set[ChildKey], uid: str) -> None:
    """Delete children we own that the spec no longer asks for (e.g. `service` removed)."""
    for key, child in world.existing().items():
        if key in wanted or not ownership.owned_by(child, uid):
            continue
        step = draft.step(_delete(child))
        draft.change(step, "deleted", label(key))


def _delete(obj: Object) -> Delete:
    meta = obj["metadata"]
    return Delete(obj["kind"], meta.get("namespace"), meta["name"], meta.get("uid"))
