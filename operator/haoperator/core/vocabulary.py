"""Every word the operator and its sidecar write or look for, said once: labels, annotations,
field managers, event reasons, condition types and reasons.

These words are a contract (API.md): users select pods by the labels, read the reasons in
`kubectl get events` and `kubectl wait --for=condition=Ready`, and an older operator or elector
must understand a newer one's annotations. Defining each once is what keeps the writer and the
reader of a word from drifting apart. The values are plain strings, so they serialise as they are
in manifests, YAML and JSON.
"""

from __future__ import annotations

from typing import Final

from haoperator import __version__

DOMAIN: Final = "haoperator.dev"
OPERATOR: Final = "haoperator"
"""The operator's name: its field manager, the value of the managed-by label, its events'
source component."""
ELECTOR: Final = "ha-elector"
"""The sidecar's name: its container in every ActivePassive pod and its field manager."""
DEFAULT_IMAGE: Final = f"ghcr.io/haoperator/haoperator:{__version__}"
"""The image of both the operator and the elector sidecar (one image, two commands)."""


class Label:
    """Labels on the children, the pods and the nodes."""

    NAME: Final = "app.kubernetes.io/name"
    MANAGED_BY: Final = "app.kubernetes.io/managed-by"
    SERVICE: Final = f"{DOMAIN}/service"
    """The HAService a child or pod belongs to: the pods' selector and the informers' filter."""
    CATEGORY: Final = f"{DOMAIN}/category"
    ROLE: Final = f"{DOMAIN}/role"
    """ActivePassive pods: `active` or `standby`, set by their elector; the Service selects
    `active`."""
    RESERVED_PREFIX: Final = f"{DOMAIN}/"
    """Labels under it are the operator's: a pod template's own are dropped."""
    AVOID_PREFIX: Final = f"avoid.{DOMAIN}/"
    """A node label that keeps one HAService's pods off that node (recovery's Migrate)."""
    ENDPOINT_SLICE_SERVICE: Final = "kubernetes.io/service-name"
    """Kubernetes' own: the Service an EndpointSlice belongs to."""


class Role:
    """Values of Label.ROLE."""

    ACTIVE: Final = "active"
    STANDBY: Final = "standby"


class Annotation:
    APPLIED_HASH: Final = f"{DOMAIN}/applied-hash"
    """On every child: a digest of what the operator last applied, so an unchanged rendering
    costs no request."""
    RESTARTS: Final = f"{DOMAIN}/restarts"
    """On pods: the restarts seen so far and when they happened (the restart budget)."""
    LAST_FAILOVER: Final = f"{DOMAIN}/last-failover"
    """On the Lease: the last takeover, as an elector measured it."""
    HANDOVER_TO: Final = f"{DOMAIN}/handover-to"
    """On the Lease: the pod a releasing leader hands over to (preempt)."""
    RELEASED_BY: Final = f"{DOMAIN}/released-by"
    """On the Lease: the pod that released it, so the next holder records a failover from it."""
    RELEASE_REASON: Final = f"{DOMAIN}/release-reason"
    """On the Lease: why it was released (a FailoverReason), recorded by the next holder."""
    HOLDER_STARTED: Final = f"{DOMAIN}/holder-started"
    """On the Lease: when the holder's elector process started (epoch seconds, its node's clock),
    so a standby can tell from the holder pod's container status that this process is gone."""
    SWITCHOVER_TO: Final = f"{DOMAIN}/switchover-to"
    """On the HAService (a user's request: a pod name, or `any`) and on the Lease (the operator's
    checked request to the leader: a pod name): hand the active role over to that pod."""
    FAILSAFE_MEMBERS: Final = f"{DOMAIN}/failsafe-members"
    """On the Lease: the pods its holder asks before it keeps the role through an unreachable API
    server (comma-separated); a pod not listed waits longer before taking an expired Lease."""
    LAST_FAILSAFE: Final = f"{DOMAIN}/last-failsafe"
    """On the Lease: the last outage of the API server its holder rode out, as it measured it."""
    PAUSED: Final = f"{DOMAIN}/paused"
    """On the HAService, set by a user: `"true"` pauses the operator for that HAService
    (maintenance): its children, pods and nodes are left as they are; the electors keep
    electing."""
    SWITCHOVER_REQUESTED: Final = f"{DOMAIN}/switchover-requested"
    """On the Lease, beside SWITCHOVER_TO: when the operator passed the request on; and on the
    HAService, the operator's mark that it did (the same time)."""


class EventType:
    NORMAL: Final = "Normal"
    WARNING: Final = "Warning"


class ConditionType:
    READY: Final = "Ready"
    PROGRESSING: Final = "Progressing"
    DEGRADED: Final = "Degraded"
    QUORUM_LOST: Final = "QuorumLost"
    PAUSED: Final = "Paused"
    """Present only while the HAService is paused (Annotation.PAUSED)."""


class Reason:
    """CamelCase reasons of events and conditions (one word may be both)."""

    # The children
    RECONCILED: Final = "Reconciled"
    DRIFT_CORRECTED: Final = "DriftCorrected"
    INVALID_SPEC: Final = "InvalidSpec"
    FORBIDDEN: Final = "Forbidden"
    NAME_CONFLICT: Final = "NameConflict"
    REPLICAS_ABOVE_LIMIT: Final = "ReplicasAboveLimit"
    CREATING: Final = "Creating"
    ROLLING_OUT: Final = "RollingOut"
    STABLE: Final = "Stable"
    PAUSED: Final = "Paused"
    RESUMED: Final = "Resumed"
    # Replicas
    ALL_REPLICAS_READY: Final = "AllReplicasReady"
    MINIMUM_REPLICAS_READY: Final = "MinimumReplicasReady"
    NOT_ENOUGH_REPLICAS: Final = "NotEnoughReplicas"
    REPLICAS_UNAVAILABLE: Final = "ReplicasUnavailable"
    PODS_CANNOT_BE_CREATED: Final = "PodsCannotBeCreated"
    PODS_UNSCHEDULABLE: Final = "PodsUnschedulable"
    # Clustered
    QUORUM_REACHED: Final = "QuorumReached"
    QUORUM_LOST: Final = "QuorumLost"
    QUORUM_RESTORED: Final = "QuorumRestored"
    FORMING: Final = "Forming"
    # ActivePassive
    ACTIVE_POD_READY: Final = "ActivePodReady"
    NO_ACTIVE_POD: Final = "NoActivePod"
    LEADER_NOT_LABELLED: Final = "LeaderNotLabelled"
    SPLIT_BRAIN: Final = "SplitBrain"
    SPLIT_BRAIN_PREVENTED: Final = "SplitBrainPrevented"
    FAILING_OVER: Final = "FailingOver"
    SERVICE_MISSING: Final = "ServiceMissing"
    NOT_ROUTED: Final = "NotRouted"
    LEADER_ELECTED: Final = "LeaderElected"
    FAILOVER_COMPLETED: Final = "FailoverCompleted"
    SWITCHOVER_COMPLETED: Final = "SwitchoverCompleted"
    SWITCHOVER_REFUSED: Final = "SwitchoverRefused"
    SWITCHOVER_FAILED: Final = "SwitchoverFailed"
    ACTIVE_POD_UNHEALTHY: Final = "ActivePodUnhealthy"
    FAILSAFE_HELD: Final = "FailsafeHeld"
    # Recovery
    POD_FAILED: Final = "PodFailed"
    RECOVERY_LIMIT_REACHED: Final = "RecoveryLimitReached"
    POD_MIGRATED: Final = "PodMigrated"
    NODE_LOST: Final = "NodeLost"
    POD_FORCE_DELETED: Final = "PodForceDeleted"


class FailoverReason:
    """Why the active role moved: `reason` of status.lastFailover and of the Lease's record."""

    POD_DELETED: Final = "PodDeleted"  # the leader's pod was being deleted: it released
    ELECTOR_STOPPED: Final = "ElectorStopped"  # its ha-elector stopped (SIGTERM): it released
    APPLICATION_UNHEALTHY: Final = "ApplicationUnhealthy"  # its application was not Ready
    SWITCHOVER: Final = "Switchover"  # a user asked (haoperator switchover, the annotation)
    PREEMPTED: Final = "Preempted"  # preempt: an older ready pod takes the role back
    ELECTOR_TERMINATED: Final = "ElectorTerminated"  # the kubelet reported its elector dead
    LEASE_EXPIRED: Final = "LeaseExpired"  # it stopped renewing (node lost, partition, freeze)


class Action:
    """Labels of haoperator_recovery_actions_total: what the operator did to recover."""

    POD_FAILED: Final = "pod_failed"
    RECOVERY_LIMIT: Final = "recovery_limit"
    POD_MIGRATED: Final = "pod_migrated"
    NODE_LOST: Final = "node_lost"
    POD_FORCE_DELETED: Final = "pod_force_deleted"
    SPLIT_BRAIN_PREVENTED: Final = "split_brain_prevented"
