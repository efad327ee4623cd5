"""Carries out `spec.recovery` for one HAService: the I/O half of recovery.py's decisions.

Runs inside each reconcile, on the cached pods and nodes, so a crash loop or a lost node is acted
on as soon as a watch event shows it, and a grace period or a ban that has to run out brings the
HAService back through `requeue_after`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from haoperator.api import HAService
from haoperator.controller import metrics
from haoperator.controller.kube import ApiError, Kube
from haoperator.controller.store import Key, Snapshot
from haoperator.core import recovery
from haoperator.core.objects import ObjectRef
from haoperator.core.vocabulary import Annotation, Label, Role


@dataclass
class RecoveryResult:
    limited: list[str] = field(default_factory=list)
    """Pods past their restart limit under `onLimit: Notify`."""
    requeue_after: float | None = None

    def later(self, seconds: float) -> None:
        seconds = max(seconds, 0.5)
        self.requeue_after = (
            seconds if self.requeue_after is None else min(self.requeue_after, seconds)
        )


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Recoverer:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.started_at = time.time()
        self._failures_reported: set[tuple[str, str, float]] = set()
        self._losses_reported: set[tuple[Key, str, float]] = set()

    def run(
        self,
        key: Key,
        snapshot: Snapshot,
        haservice: HAService,
        ref: ObjectRef,
        nodes: dict[str, dict[str, Any]],
        logger: Any,
    ) -> RecoveryResult:
        result = RecoveryResult()
        now = time.time()
        policy = haservice.spec.recovery
        self._lift_bans(ref, nodes, now, result)
        pods = [p for p in snapshot.pods if not p["metadata"].get("deletionTimestamp")]
        for pod in pods:
            self._report_failures(ref, pod, logger)
            self._restart_budget(ref, pod, policy.restart, now, result, logger)
        self._node_loss(key, ref, snapshot.pods, haservice, nodes, now, result, logger)
        return result

    # -- failures and the restart budget -------------------------------------------------------

    def _report_failures(self, ref: ObjectRef, pod: dict[str, Any], logger: Any) -> None:
        for failure in recovery.terminations(pod):
            seen = (pod["metadata"]["uid"], failure.container, failure.finished_at)
            # Before we started, it was reported by whoever ran then (or nobody is listening).
            if seen in self._failures_reported or failure.finished_at < self.started_at - 1:
                continue
            self._failures_reported.add(seen)
            message = (
                f"pod {failure.pod}: container {failure.container} exited with code "
                f"{failure.exit_code} ({failure.reason})"
            )
            logger.warning("pod failed", message=message)
            self.kube.record_event(ref, "Warning", "PodFailed", message)
            self.kube.record_event(ObjectRef.of(pod), "Warning", "PodFailed", message)
            metrics.RECOVERY_ACTIONS.labels("pod_failed").inc()
        if len(self._failures_reported) > 10_000:
            self._failures_reported.clear()

    def _restart_budget(
        self,
        ref: ObjectRef,
        pod: dict[str, Any],
        policy: Any,
        now: float,
        result: RecoveryResult,
        logger: Any,
    ) -> None:
        window = float(policy.window_seconds)
        updated = recovery.updated_history(pod, now, window)
        if updated is not None:
            self.kube.patch(
                "Pod",
                ref.namespace,
                pod["metadata"]["name"],
                {"metadata": {"annotations": {Annotation.RESTARTS: updated.to_annotation()}}},
            )
        hist = updated or recovery.history(pod)
        count = recovery.restarts_in_window(hist, now, window)
        if count <= policy.max_restarts:
            if hist.times:
                result.later(min(hist.times) + window - now)  # when the oldest restart ages out
            return
        name = pod["metadata"]["name"]
        limit = f"pod {name} restarted more than {policy.max_restarts} times within {int(window)} s"
        if policy.on_limit == "Notify":
            result.limited.append(name)
            self.kube.record_event(ref, "Warning", "RecoveryLimitReached", limit)
            metrics.RECOVERY_ACTIONS.labels("recovery_limit").inc()
            result.later(min(hist.times) + window - now)
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return
        until = now + window
        self.kube.patch(
            "Node",
            None,
            node,
            {
                "metadata": {
                    "labels": {recovery.avoid_label(ref.namespace, ref.name): str(int(until))}
                }
            },
        )
        self.kube.delete("Pod", ref.namespace, name, uid=pod["metadata"].get("uid"))
        logger.warning("recovery limit reached; pod migrated", pod=name, node=node)
        self.kube.record_event(ref, "Warning", "RecoveryLimitReached", f"{limit}: migrating it")
        self.kube.record_event(
            ref,
            "Normal",
            "PodMigrated",
            f"deleted pod {name} from node {node}; node {node} avoided until {_stamp(until)}",
        )
        metrics.RECOVERY_ACTIONS.labels("recovery_limit").inc()
        metrics.RECOVERY_ACTIONS.labels("pod_migrated").inc()
        result.later(window)

    def _lift_bans(
        self, ref: ObjectRef, nodes: dict[str, dict[str, Any]], now: float, result: RecoveryResult
    ) -> None:
        """Lift every ban that has run out — this HAService's, and those of HAServices deleted
        while no operator watched (whoever reconciles first sweeps them) — and come back when
        this one's next ban ends."""
        own = recovery.avoid_label(ref.namespace, ref.name)
        for name, node in nodes.items():
            labels = node["metadata"].get("labels") or {}
            expired = recovery.expired_bans(labels, now)
            if expired:
                self._unlabel(name, expired)
            value = labels.get(own)
            if value is not None and own not in expired:
                result.later(float(value) - now)

    def forget(self, key: Key, nodes: dict[str, dict[str, Any]]) -> None:
        """The HAService is gone: lift its bans now rather than leave its labels on the nodes."""
        label = recovery.avoid_label(*key)
        for name, node in nodes.items():
            if label in (node["metadata"].get("labels") or {}):
                self._unlabel(name, [label])

    def _unlabel(self, node: str, labels: list[str]) -> None:
        try:
            self.kube.patch(
                "Node", None, node, {"metadata": {"labels": dict.fromkeys(labels, None)}}
            )
        except ApiError as exc:
            if exc.status != 404:  # the node went away meanwhile: nothing left to lift
                raise

    # -- node loss -------------------------------------------------------------------------------

    def _node_loss(
        self,
        key: Key,
        ref: ObjectRef,
        pods: list[dict[str, Any]],
        haservice: HAService,
        nodes: dict[str, dict[str, Any]],
        now: float,
        result: RecoveryResult,
        logger: Any,
    ) -> None:
        policy = haservice.spec.recovery.node_loss
        by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                by_node.setdefault(node, []).append(pod)
        for node, on_it in sorted(by_node.items()):
            lost_for = recovery.node_lost_for(nodes.get(node), now)
            if lost_for is None:
                continue  # Ready (again): never act
            if lost_for < policy.grace_seconds:
                result.later(policy.grace_seconds - lost_for)
                continue
            since = round(now - lost_for, 3)
            names = sorted(p["metadata"]["name"] for p in on_it)
            if (key, node, since) not in self._losses_reported:
                self._losses_reported.add((key, node, since))
                message = (
                    f"node {node} has been NotReady for more than {policy.grace_seconds} s; "
                    f"it runs pods {', '.join(names)}"
                )
                logger.warning("node lost", node=node, pods=names)
                self.kube.record_event(ref, "Warning", "NodeLost", message)
                metrics.RECOVERY_ACTIONS.labels("node_lost").inc()
            for pod in on_it:
                labels = pod["metadata"].get("labels") or {}
                if (
                    haservice.spec.category == "ActivePassive"
                    and labels.get(Label.ROLE) == Role.ACTIVE
                ):
                    self.kube.patch(
                        "Pod",
                        ref.namespace,
                        pod["metadata"]["name"],
                        {"metadata": {"labels": {Label.ROLE: Role.STANDBY}}},
                    )
                if policy.action != "ForceDelete":
                    continue
                try:
                    deleted = self.kube.delete(
                        "Pod",
                        ref.namespace,
                        pod["metadata"]["name"],
                        uid=pod["metadata"].get("uid"),
                        grace=0,
                    )
                except ApiError as exc:
                    logger.warning(
                        "force delete failed", pod=pod["metadata"]["name"], error=str(exc)
                    )
                    continue
                if deleted:
                    self.kube.record_event(
                        ref,
                        "Warning",
                        "PodForceDeleted",
                        f"force-deleted pod {pod['metadata']['name']} from lost node {node}",
                    )
                    metrics.RECOVERY_ACTIONS.labels("pod_force_deleted").inc()
