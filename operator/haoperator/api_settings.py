"""The HA behaviour settings of an HAService: placement, disruption budget, clustering, election,
recovery."""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from haoperator.api_workload import PeerPort, VolumeClaimTemplate, unique_port_names
from haoperator.apitypes import (
    INT32_MAX,
    PERCENT,
    ApiModel,
    IntOrString,
    ProblemCollector,
    Rule,
    cel_rules,
)

QUORUM_VALUE = Rule(
    "type(self) == int ? self >= 1 : self in ['Majority', 'All']",
    "must be Majority, All or an integer of at least 1",
    name="quorum",
)
MAX_UNAVAILABLE_VALUE = Rule(
    f"type(self) == int ? self >= 1 : self.matches('{PERCENT}')",
    "must be an integer of at least 1 or a percentage from 1% to 100%: "
    "a budget of 0 would block every node drain",
    name="maxUnavailable",
)


class Placement(ApiModel):
    """Where the replicas run relative to each other."""

    spread: Literal["Required", "Preferred", "None"] = Field(
        "Preferred",
        description="Spread replicas over distinct topology domains. Required: never two in one "
        "domain while others are free (pods stay Pending otherwise); Preferred: best effort; "
        "None: no spreading.",
    )
    topology_key: str = Field(
        "kubernetes.io/hostname",
        min_length=1,
        max_length=317,
        description="Node label whose values are the domains, e.g. kubernetes.io/hostname or "
        "topology.kubernetes.io/zone.",
    )


class Disruption(ApiModel):
    """The PodDisruptionBudget: how many replicas voluntary disruptions (node drains) may take at
    once."""

    max_unavailable: IntOrString = Field(
        1,
        description="Replicas that may be down at once during drains: a number (at least 1) or a "
        "percentage (at least 1%). Not used by Clustered, whose budget follows the quorum.",
        json_schema_extra=cel_rules(MAX_UNAVAILABLE_VALUE),
    )

    @field_validator("max_unavailable")
    @classmethod
    def _leaves_drains_possible(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(MAX_UNAVAILABLE_VALUE.reason)
        if isinstance(value, str) and re.fullmatch(PERCENT[1:-1], value) is None:
            raise ValueError(MAX_UNAVAILABLE_VALUE.reason)
        return value


class ClusteredSpec(ApiModel):
    """Settings for category Clustered: members that know each other and need a quorum."""

    quorum: IntOrString = Field(
        "Majority",
        description="Members that must be up for the cluster to work: Majority (floor(n/2)+1), "
        "All, or a number from 1 to replicas. Sets the PodDisruptionBudget's minAvailable and "
        "QuorumLost.",
        json_schema_extra=cel_rules(QUORUM_VALUE),
    )
    pod_management_policy: Literal["Parallel", "OrderedReady"] = Field(
        "Parallel",
        description="Parallel starts all members at once; OrderedReady one after another, as the "
        "StatefulSet field. Immutable.",
    )
    peer_ports: list[PeerPort] = Field(
        default_factory=list,
        max_length=32,
        description="Extra ports on the headless peers Service <name>-peers (e.g. Galera 4567, "
        "4568, 4444), besides the service ports.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    volume_claim_templates: list[VolumeClaimTemplate] = Field(
        default_factory=list,
        max_length=16,
        description="Standard PersistentVolumeClaim templates, passed to the StatefulSet: one "
        "volume per member that survives its restarts. Cannot be changed once the StatefulSet "
        "exists.",
    )

    def quorum_size(self, replicas: int) -> int:
        """The number of members that must be up: Majority and All resolved for `replicas`."""
        if self.quorum == "Majority":
            return replicas // 2 + 1
        if self.quorum == "All":
            return replicas
        return int(self.quorum)

    @field_validator("quorum")
    @classmethod
    def _quorum_is_known(cls, value: int | str) -> int | str:
        if (isinstance(value, int) and value < 1) or (
            isinstance(value, str) and value not in ("Majority", "All")
        ):
            raise ValueError(QUORUM_VALUE.reason)
        return value

    @field_validator("peer_ports")
    @classmethod
    def _peer_port_names_unique(cls, ports: list[PeerPort]) -> list[PeerPort]:
        return unique_port_names(ports)


RENEW_BEFORE_LEASE = Rule(
    "self.renewDeadlineSeconds < self.leaseDurationSeconds",
    "must be less than leaseDurationSeconds",
    field="renewDeadlineSeconds",
)
RETRY_BEFORE_RENEW = Rule(
    "self.retryPeriodSeconds < self.renewDeadlineSeconds",
    "must be less than renewDeadlineSeconds",
    field="retryPeriodSeconds",
)


class ActivePassiveSpec(
    ApiModel, json_schema_extra=cel_rules(RENEW_BEFORE_LEASE, RETRY_BEFORE_RENEW)
):
    """Settings for category ActivePassive: one active pod holds the Lease <name>, the others stand
    by.

    The timings are those of Kubernetes leader election: a failed active pod is replaced within
    about leaseDurationSeconds.
    """

    lease_duration_seconds: int = Field(
        5,
        ge=2,
        le=3600,
        description="How long a lease is valid without renewal: the failover time.",
    )
    renew_deadline_seconds: int = Field(
        3,
        ge=1,
        le=3600,
        description="How long the active pod keeps trying to renew before it gives the role up; "
        "less than leaseDurationSeconds, so it steps down before another pod can take over.",
    )
    retry_period_seconds: int = Field(
        1,
        ge=1,
        le=3600,
        description="How often to try to acquire or renew; less than renewDeadlineSeconds.",
    )
    elector_port: int = Field(
        8099,
        ge=1024,
        le=65535,
        description="Port of the ha-elector sidecar in each pod: GET /healthz, and GET /leader "
        "(200 on the active pod, 503 on standbys) for the application. Change it if the "
        "application uses 8099.",
    )
    preempt: bool = Field(
        False,
        description="false (keepalived nopreempt): a recovered pod does not take the role back. "
        "true: the longest-running healthy pod reclaims it.",
    )

    @model_validator(mode="after")
    def _timings_nest(self) -> Self:
        problems = ProblemCollector()
        problems.require(
            self.renew_deadline_seconds < self.lease_duration_seconds,
            RENEW_BEFORE_LEASE,
            f" ({self.lease_duration_seconds})",
        )
        problems.require(
            self.retry_period_seconds < self.renew_deadline_seconds,
            RETRY_BEFORE_RENEW,
            f" ({self.renew_deadline_seconds})",
        )
        problems.raise_if_any()
        return self


class RestartPolicy(ApiModel):
    """Like systemd's Restart= with StartLimitBurst, or pacemaker's migration-threshold."""

    max_restarts: int = Field(
        5,
        ge=0,
        le=INT32_MAX,
        description="Container restarts of one pod allowed within windowSeconds.",
    )
    window_seconds: int = Field(
        600,
        ge=1,
        le=INT32_MAX,
        description="The window restarts are counted in, like StartLimitIntervalSec or "
        "pacemaker's failure-timeout.",
    )
    on_limit: Literal["Migrate", "Notify"] = Field(
        "Migrate",
        description="Migrate: replace the pod on another node and avoid that node for the window. "
        "Notify: only record a warning.",
    )


class NodeLossPolicy(ApiModel):
    """What to do with this service's pods on a node that stopped reporting."""

    grace_seconds: int = Field(
        60,
        ge=0,
        le=INT32_MAX,
        description="How long a node may be NotReady or Unknown before acting.",
    )
    action: Literal["Wait", "ForceDelete"] = Field(
        "Wait",
        description="Wait: leave it to Kubernetes. ForceDelete: delete this service's pods stuck "
        "on the lost node so replacements start elsewhere (fencing through the API).",
    )


class Recovery(ApiModel):
    """How failures are handled beyond what Kubernetes does by itself."""

    restart: RestartPolicy = Field(
        default_factory=RestartPolicy, description="Limits on container restarts of one pod."
    )
    node_loss: NodeLossPolicy = Field(
        default_factory=NodeLossPolicy, description="Handling of pods on a lost node."
    )
