"""One reconcile of one HAService: make the children match the spec, then report the status.

Level-based: it does not matter which event woke it. It renders the desired children, applies
(server-side) those that are missing, out of date or drifted, deletes owned children that are no
longer desired, and writes the status only when it changed. Reads come from the watch cache;
an HAService whose world has not changed costs no request.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from pydantic import ValidationError

from haoperator.api import HAService
from haoperator.api.base import MAX_REPLICAS
from haoperator.api.messages import describe
from haoperator.controller import metrics
from haoperator.controller.kube import ApiError, Kube, now_iso
from haoperator.controller.recovery_actions import Recoverer
from haoperator.controller.store import Key, Snapshot, Store
from haoperator.core import ownership, render, status
from haoperator.core.diff import differences
from haoperator.core.objects import ObjectRef, is_ready
from haoperator.core.ownership import ChildKey, Verdict
from haoperator.core.vocabulary import Annotation, Label, Role

APPLIED_HASH = Annotation.APPLIED_HASH
WORKLOADS = ("Deployment", "StatefulSet")
FAILED_CREATE_FRESH = 600.0
"""How long a StatefulSet's FailedCreate event explains its missing pods: its controller retries
with a backoff of minutes, and says it again each time."""
log = structlog.get_logger("haoperator.reconcile")


@dataclass
class Outcome:
    """What the worker should do next with this key."""

    requeue_after: float | None = None
    backoff: bool = False


def status_ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@dataclass
class _Passive:
    """What the ActivePassive checks found, for the status."""

    lease: dict[str, Any] | None
    routed: set[str] | None
    electing: bool
    requeue_after: float | None


@dataclass
class _Changes:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    problem: status.Problem | None = None

    def refuse(self, reason: str, message: str) -> None:
        """Record a child the operator could not make as asked; several join in one message,
        under the first one's reason."""
        if self.problem is None:
            self.problem = status.Problem(reason, message)
        else:
            self.problem = status.Problem(self.problem.reason, f"{self.problem.message}; {message}")

    def summary(self) -> str:
        parts = []
        for verb, items in (
            ("created", self.created),
            ("updated", self.updated),
            ("deleted", self.deleted),
        ):
            if items:
                parts.append(f"{verb} {', '.join(items)}")
        text = "; ".join(parts)
        return text[:1].upper() + text[1:]


def applied_hash(obj: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:20]


def _older_version(version: str | None, than: str) -> bool:
    """resourceVersions are opaque, but etcd's are increasing integers; if not, not older."""
    try:
        return version is not None and int(version) < int(than)
    except ValueError:
        return False


def _fresh(failed_create: tuple[str, float] | None) -> str | None:
    if failed_create is None:
        return None
    message, at = failed_create
    return message if time.time() - at < FAILED_CREATE_FRESH else None


def refusal(exc: ApiError) -> str | None:
    """The reason to report for a child the API server would not take, or None when retrying
    may help (an outage, a conflict): InvalidSpec when the object itself is wrong, Forbidden
    when a policy refuses it (RBAC, a quota, an admission webhook)."""
    if exc.invalid:
        return "InvalidSpec"
    if exc.status == 403:
        return "Forbidden"
    return None


def _label(kind: str, name: str) -> str:
    return f"{kind} {name}"


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        store: Store,
        *,
        elector_image: str,
        max_replicas: int = MAX_REPLICAS,
    ) -> None:
        self.kube = kube
        self.store = store
        self.elector_image = elector_image
        self.max_replicas = max_replicas
        self.recoverer = Recoverer(kube)
        self.counts = metrics.ServiceCounts()
        self._last_status: dict[Key, dict[str, Any]] = {}
        self._written: dict[Key, tuple[str, dict[str, Any]]] = {}
        """Our last status write per HAService: (resourceVersion it made, the status)."""
        self._without_active: dict[Key, float] = {}
        """ActivePassive: since when (monotonic) pods are ready but none serves as leader."""

    def reconcile(self, key: Key) -> Outcome:
        snapshot = self._read_own_writes(key, self.store.snapshot(key))
        obj = snapshot.haservice
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            self.counts.forget(key)
            self._last_status.pop(key, None)
            self._written.pop(key, None)
            self._without_active.pop(key, None)
            if self.store.take_deleted(key):
                # Owner references take the children; the node bans are ours to lift.
                self.recoverer.forget(key, self.store.nodes())
            return Outcome()
        logger = log.bind(namespace=key[0], name=key[1])
        ref = ObjectRef.of(obj)
        try:
            haservice = HAService.model_validate(obj)
        except ValidationError as exc:
            # Admission enforces the same rules, so this means a CRD older than this operator.
            message = "; ".join(describe(exc))
            return self._report(
                snapshot,
                ref,
                None,
                _Changes(problem=status.Problem("InvalidSpec", message)),
                logger,
            )
        wanted = haservice.spec.desired_replicas
        if wanted > self.max_replicas:
            limit = status.Problem(
                "ReplicasAboveLimit",
                f"spec.replicas {wanted} is above this operator's limit of {self.max_replicas} "
                "(haoperator run --max-replicas): children left as they are",
            )
            return self._report(snapshot, ref, None, _Changes(problem=limit), logger)

        desired = render.desired(haservice, elector_image=self.elector_image)
        changes = _Changes()
        self._apply_children(obj, snapshot, desired, changes, ref, logger)
        self._prune(obj, snapshot, desired, changes)
        passive = None
        if haservice.spec.category == "ActivePassive":
            passive = self._active_passive(key, snapshot, haservice, ref, logger)
        recovered = self.recoverer.run(key, snapshot, haservice, ref, self.store.nodes(), logger)
        outcome = self._report(
            snapshot, ref, haservice, changes, logger, passive, recovered.limited
        )
        later = recovered.requeue_after
        if later is not None and not outcome.backoff:
            current = outcome.requeue_after
            outcome.requeue_after = later if current is None else min(current, later)
        ready = status_ready({"status": self._last_status.get(key, {})})
        self.counts.set(key, haservice.spec.category, ready)
        return outcome

    # -- children ------------------------------------------------------------------------------

    def _apply_children(
        self,
        obj: dict[str, Any],
        snapshot: Snapshot,
        desired: list[dict[str, Any]],
        changes: _Changes,
        ref: ObjectRef,
        logger: Any,
    ) -> None:
        uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
        generation = obj["metadata"].get("generation", 0)
        reconciled_before = (obj.get("status") or {}).get("observedGeneration") == generation
        foreign: set[ChildKey] = set()
        for child in desired:
            kind, child_name = child["kind"], child["metadata"]["name"]
            label = _label(kind, child_name)
            child["metadata"].setdefault("annotations", {})[APPLIED_HASH] = applied_hash(child)
            observed = snapshot.children.get((kind, child_name))
            blockers = ownership.references(child) & foreign
            if blockers:
                # It would refer to someone else's object: never bind to it, run as it, grant it.
                foreign.add((kind, child_name))
                self._withhold(child, observed, uid, blockers, changes)
                continue
            try:
                if observed is None:
                    # Not in the cache: not made yet, deleted, just made (cache lag), or not ours.
                    observed = self._create(child)
                    if observed is None:
                        if reconciled_before:
                            changes.drift.append(f"{label} was deleted; recreated")
                        else:
                            changes.created.append(label)
                        continue
                verdict = ownership.judge(observed, uid, name)
                if verdict is Verdict.FOREIGN:
                    foreign.add((kind, child_name))
                    changes.refuse(
                        "NameConflict",
                        f"{label} already exists and {ownership.whose(observed)}; left untouched",
                    )
                    continue
                if verdict is Verdict.ADOPT or (
                    observed["metadata"].get("annotations", {}).get(APPLIED_HASH)
                    != child["metadata"]["annotations"][APPLIED_HASH]
                ):
                    result = self.kube.apply(child)
                    if verdict is Verdict.ADOPT:
                        changes.updated.append(f"{label} (adopted)")
                    elif result["metadata"].get("resourceVersion") != observed["metadata"].get(
                        "resourceVersion"
                    ):
                        changes.updated.append(label)
                    continue
                drift = differences(child, observed)
                if drift:
                    self.kube.apply(child)
                    changes.drift.append(f"{label}: {', '.join(drift)}")
            except ApiError as exc:
                reason = refusal(exc)
                if reason is None:
                    raise
                changes.refuse(reason, f"{label}: {exc.message}")
                logger.warning("child refused by the API server", child=label, error=exc.message)

    def _withhold(
        self,
        child: dict[str, Any],
        observed: dict[str, Any] | None,
        uid: str,
        blockers: set[ChildKey],
        changes: _Changes,
    ) -> None:
        """Leave `child` unmade because an object it refers to is not ours; a grant of ours that
        exists already is revoked (it now names someone else's object)."""
        kind, name = child["kind"], child["metadata"]["name"]
        names = ", ".join(_label(k, n) for k, n in sorted(blockers))
        what = "not applied"
        if (
            kind in ownership.GRANTS
            and observed is not None
            and ownership.owned_by(observed, uid)
            and self.kube.delete(
                kind, observed["metadata"].get("namespace"), name, uid=observed["metadata"]["uid"]
            )
        ):
            what = "deleted"
            changes.deleted.append(_label(kind, name))
        changes.refuse("NameConflict", f"{_label(kind, name)} {what}: it would refer to {names}")

    def _create(self, child: dict[str, Any]) -> dict[str, Any] | None:
        """Create `child` unless an object of its name exists: None when created, else the
        existing object, for the caller to judge whether it is ours."""
        kind, namespace, name = (
            child["kind"],
            child["metadata"].get("namespace"),
            child["metadata"]["name"],
        )
        for _ in range(2):
            if self.kube.create(child) is not None:
                return None
            existing = self.kube.get(kind, namespace, name)
            if existing is not None:
                return existing
            # Deleted between the two requests: try the create once more.
        raise ApiError(409, "Conflict", f"{_label(kind, name)} keeps appearing and vanishing")

    def _prune(
        self,
        obj: dict[str, Any],
        snapshot: Snapshot,
        desired: list[dict[str, Any]],
        changes: _Changes,
    ) -> None:
        """Delete children we own that the spec no longer asks for (e.g. `service` removed)."""
        uid = obj["metadata"]["uid"]
        wanted: set[ChildKey] = {(c["kind"], c["metadata"]["name"]) for c in desired}
        for (kind, name), child in snapshot.children.items():
            if (kind, name) in wanted or not ownership.owned_by(child, uid):
                continue
            if self.kube.delete(
                kind, child["metadata"].get("namespace"), name, uid=child["metadata"].get("uid")
            ):
                changes.deleted.append(_label(kind, name))

    # -- active/passive ------------------------------------------------------------------------

    def _active_passive(
        self,
        key: Key,
        snapshot: Snapshot,
        haservice: HAService,
        ref: ObjectRef,
        logger: Any,
    ) -> _Passive:
        lease = snapshot.children.get(("Lease", ref.name))
        fenced = status.to_fence(lease, snapshot.pods)
        for name in fenced:
            self.kube.patch(
                "Pod", ref.namespace, name, {"metadata": {"labels": {Label.ROLE: Role.STANDBY}}}
            )
        if fenced:
            holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
            message = (
                f"removed the active role from {', '.join(fenced)}: the Lease {ref.name} names "
                f"{holder or 'nobody'}"
            )
            logger.warning("split brain prevented", message=message)
            metrics.RECOVERY_ACTIONS.labels("split_brain_prevented").inc()
            self.kube.record_event(ref, "Warning", "SplitBrainPrevented", message)
        routed: set[str] | None = None
        if haservice.spec.service is not None:
            routed = {
                endpoint["targetRef"]["name"]
                for (kind, _), slice_ in snapshot.children.items()
                if kind == "EndpointSlice"
                and (slice_["metadata"].get("labels") or {}).get(Label.ENDPOINT_SLICE_SERVICE)
                == ref.name
                for endpoint in slice_.get("endpoints") or []
                if (endpoint.get("conditions") or {}).get("ready") and endpoint.get("targetRef")
            }
        lease_duration = float(haservice.spec.active_passive_settings.lease_duration_seconds)
        leaderless = status.serving_leader(lease, snapshot.pods) is None and any(
            is_ready(p) for p in snapshot.pods
        )
        now = time.monotonic()
        electing, requeue = False, None
        if not leaderless:
            self._without_active.pop(key, None)
        else:
            since = self._without_active.setdefault(key, now)
            remaining = since + lease_duration - now
            if remaining > 0:
                electing, requeue = True, remaining + 0.05
        return _Passive(lease=lease, routed=routed, electing=electing, requeue_after=requeue)

    # -- status and events ---------------------------------------------------------------------

    def _report(
        self,
        snapshot: Snapshot,
        ref: ObjectRef,
        haservice: HAService | None,
        changes: _Changes,
        logger: Any,
        passive: _Passive | None = None,
        limited: list[str] | None = None,
    ) -> Outcome:
        obj = snapshot.haservice or {}
        if changes.created or changes.updated or changes.deleted:
            message = changes.summary()
            logger.info("reconciled", changes=message)
            self.kube.record_event(ref, "Normal", "Reconciled", message)
        for drift in changes.drift:
            logger.info("drift corrected", drift=drift)
            self.kube.record_event(ref, "Normal", "DriftCorrected", drift)
        if changes.problem:
            logger.warning(changes.problem.reason, message=changes.problem.message)
            self.kube.record_event(ref, "Warning", changes.problem.reason, changes.problem.message)

        if haservice is not None:
            workload = next((c for (k, _), c in snapshot.children.items() if k in WORKLOADS), None)
            observed = status.Observed(
                name=ref.name,
                generation=obj["metadata"].get("generation", 0),
                spec=haservice.spec,
                workload=workload,
                pods=snapshot.pods,
                service_present=("Service", ref.name) in snapshot.children,
                problem=changes.problem,
                previous=obj.get("status") or {},
                lease=passive.lease if passive else None,
                routed=passive.routed if passive else None,
                electing=passive.electing if passive else False,
                limited=limited or [],
                failed_create=_fresh(snapshot.failed_create),
            )
            new = status.compute(observed, now_iso())
            if passive:
                self._leadership_events(ref, obj.get("status") or {}, new, logger)
            self._quorum_events(ref, obj.get("status") or {}, new)
            for reason, message in status.warnings(obj.get("status") or {}, new):
                logger.warning(reason, message=message)
                self.kube.record_event(ref, "Warning", reason, message)
        else:
            new = self._problem_only_status(obj, changes.problem)
        self._write_status(ref, obj.get("status") or {}, new)
        self._last_status[(ref.namespace, ref.name)] = new
        if changes.problem:
            return Outcome(backoff=True)
        return Outcome(requeue_after=passive.requeue_after if passive else None)

    def _quorum_events(self, ref: ObjectRef, before: dict[str, Any], after: dict[str, Any]) -> None:
        def lost(st: dict[str, Any]) -> bool | None:
            """True: lost (after having had it); False: quorate; None: unknown or forming."""
            for c in st.get("conditions") or []:
                if c.get("type") == "QuorumLost" and c.get("reason") != "Forming":
                    return bool(c.get("status") == "True")
            return None

        was, now = lost(before), lost(after)
        if now and was is False:  # had quorum and lost it (not: still forming)
            message = next(c["message"] for c in after["conditions"] if c["type"] == "QuorumLost")
            self.kube.record_event(ref, "Warning", "QuorumLost", message)
        elif was and now is False:
            message = next(c["message"] for c in after["conditions"] if c["type"] == "QuorumLost")
            self.kube.record_event(ref, "Normal", "QuorumRestored", message)

    def _leadership_events(
        self, ref: ObjectRef, before: dict[str, Any], after: dict[str, Any], logger: Any
    ) -> None:
        last = after.get("lastFailover")
        if last and last != before.get("lastFailover"):
            message = (
                f"active pod moved from {last['from']} to {last['to']} in {last['seconds']:.2f} s"
            )
            logger.info("failover completed", message=message)
            self.kube.record_event(ref, "Normal", "FailoverCompleted", message)
            metrics.FAILOVERS.inc()
            metrics.FAILOVER_SECONDS.observe(float(last["seconds"]))
        elif (
            after.get("activePod")
            and not before.get("activePod")
            and not before.get("lastFailover")
        ):
            message = f"pod {after['activePod']} is active"
            logger.info("leader elected", message=message)
            self.kube.record_event(ref, "Normal", "LeaderElected", message)

    @staticmethod
    def _problem_only_status(obj: dict[str, Any], problem: status.Problem | None) -> dict[str, Any]:
        previous = obj.get("status") or {}
        generation = obj["metadata"].get("generation", 0)
        assert problem is not None
        before: dict[str, Any] = next(
            (c for c in previous.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        unchanged = before.get("status") == "False" and before.get("reason") == problem.reason
        return {
            **previous,
            "observedGeneration": generation,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": problem.reason,
                    "message": problem.message,
                    "lastTransitionTime": before.get("lastTransitionTime")
                    if unchanged
                    else now_iso(),
                    "observedGeneration": generation,
                }
            ],
        }

    def _read_own_writes(self, key: Key, snapshot: Snapshot) -> Snapshot:
        """The cache learns of our status writes only when their watch event arrives; a
        reconcile before that would compare against the older status, write the same status
        again and repeat its events. Until the cache catches up, the status is what we wrote."""
        obj, written = snapshot.haservice, self._written.get(key)
        if obj is None or written is None:
            return snapshot
        version, written_status = written
        if not _older_version(obj["metadata"].get("resourceVersion"), version):
            return snapshot
        return replace(snapshot, haservice={**obj, "status": written_status})

    def _write_status(self, ref: ObjectRef, current: dict[str, Any], new: dict[str, Any]) -> None:
        if new == current:
            return  # the idle case: nothing changed, nothing written
        patch: dict[str, Any] = {k: None for k in current if k not in new}
        patch.update(new)
        try:
            written = self.kube.patch_status(ref.namespace, ref.name, patch)
        except ApiError as exc:
            if exc.status != 404:  # deleted meanwhile
                raise
            return
        self._written[(ref.namespace, ref.name)] = (
            written["metadata"]["resourceVersion"],
            written.get("status") or {},
        )
