"""The HA behaviour settings of an HAService: placement, disruption budget, clustering, election,
recovery."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic.config import JsonDict

from haoperator.api.base import (
    MAX_GRACE_SECONDS,
    MAX_LEASE_SECONDS,
    MAX_REPLICAS,
    MAX_RESTARTS,
    MAX_WINDOW_SECONDS,
    PERCENT,
    QUALIFIED_NAME,
    ApiModel,
    IntOrString,
    Rule,
    RuleCheck,
    cel_rules,
    cel_string,
)
from haoperator.api.workload import PeerPort, VolumeClaimTemplate, unique_port_names

DEFAULT_ELECTOR_PORT = 8099
MAX_UNHEALTHY_SECONDS = 3600
DEFAULT_FAILSAFE_SECONDS = 120
MAX_HEALTH_CONTAINERS = 16
MAX_NAME_PART = 63
MAX_PREFIX = 253

QUORUM_VALUE = Rule(
    "type(self) == int ? self >= 1 : self in ['Majority', 'All']",
    "must be Majority, All or an integer of at least 1",
    name="quorum",
    detail=" (got {})",
    shows="self",
)
MAX_UNAVAILABLE_VALUE = Rule(
    f"type(self) == int ? self >= 1 : self.matches('{PERCENT}')",
    "must be an integer of at least 1 or a percentage from 1% to 100%: "
    "a budget of 0 would block every node drain",
    name="maxUnavailable",
    detail=" (got {})",
    shows="self",
)
COUNT_BOUND: JsonDict = {"maximum": MAX_REPLICAS}
"""The bound of an int-or-string that counts pods. A plain schema maximum applies to the number
only, costs no CEL, and the API server's message shows the value."""


def at_most_max_replicas(value: int | str) -> int | str:
    """The models' side of COUNT_BOUND."""
    if isinstance(value, int) and value > MAX_REPLICAS:
        raise ValueError(f"must be at most {MAX_REPLICAS}")
    return value


TOPOLOGY_KEY = Rule(
    f"self.matches({cel_string(QUALIFIED_NAME)}) && (self.contains('/') ?"
    f" self.indexOf('/') <= {MAX_PREFIX} && self.size() - self.indexOf('/') <= {MAX_NAME_PART + 1}"
    f" : self.size() <= {MAX_NAME_PART})",
    f"must be a node label key: an optional DNS subdomain of at most {MAX_PREFIX} characters and "
    f"'/', then at most {MAX_NAME_PART} letters, digits, '-', '_' or '.', starting and ending "
    "with a letter or digit",
    name="topologyKey",
    detail=' (got "{}")',
    shows="self",
)


def is_label_key(key: str) -> bool:
    """Kubernetes' qualified name, as label keys are: what TOPOLOGY_KEY says in CEL."""
    prefix, _, name = key.rpartition("/")
    return (
        re.fullmatch(QUALIFIED_NAME, key) is not None
        and len(prefix) <= MAX_PREFIX
        and len(name) <= MAX_NAME_PART
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
        max_length=MAX_PREFIX + 1 + MAX_NAME_PART,
        description="Node label whose values are the domains, e.g. kubernetes.io/hostname or "
        "topology.kubernetes.io/zone.",
        json_schema_extra=cel_rules(TOPOLOGY_KEY),
    )

    @field_validator("topology_key")
    @classmethod
    def _topology_key_is_a_label_key(cls, key: str) -> str:
        if not is_label_key(key):
            raise ValueError(TOPOLOGY_KEY.explain(key))
        return key


class Disruption(ApiModel):
    """The PodDisruptionBudget: how many replicas voluntary disruptions (node drains) may take at
    once."""

    max_unavailable: IntOrString = Field(
        1,
        description="Replicas that may be down at once during drains: a number (1 to "
        f"{MAX_REPLICAS}) or a percentage (at least 1%). Not used by Clustered, whose budget "
        "follows the quorum.",
        json_schema_extra={**cel_rules(MAX_UNAVAILABLE_VALUE), **COUNT_BOUND},
    )

    @field_validator("max_unavailable")
    @classmethod
    def _leaves_drains_possible(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(MAX_UNAVAILABLE_VALUE.explain(value))
        if isinstance(value, str) and re.fullmatch(PERCENT[1:-1], value) is None:
            raise ValueError(MAX_UNAVAILABLE_VALUE.explain(value))
        return at_most_max_replicas(value)


class ClusteredSpec(ApiModel):
    """Settings for category Clustered: members that know each other and need a quorum."""

    quorum: IntOrString = Field(
        "Majority",
        description="Members that must be up for the cluster to work: Majority (floor(n/2)+1), "
        "All, or a number from 1 to replicas. Sets the PodDisruptionBudget's minAvailable and "
        "QuorumLost.",
        json_schema_extra={**cel_rules(QUORUM_VALUE), **COUNT_BOUND},
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
            raise ValueError(QUORUM_VALUE.explain(value))
        return at_most_max_replicas(value)

    @field_validator("peer_ports")
    @classmethod
    def _peer_port_names_unique(cls, ports: list[PeerPort]) -> list[PeerPort]:
        return unique_port_names(ports)


RENEW_BEFORE_LEASE = Rule(
    "self.renewDeadlineSeconds < self.leaseDurationSeconds",
    "must be less than leaseDurationSeconds",
    field="renewDeadlineSeconds",
    detail=" ({})",
    shows="self.leaseDurationSeconds",
)
RETRY_BEFORE_RENEW = Rule(
    "self.retryPeriodSeconds < self.renewDeadlineSeconds",
    "must be less than renewDeadlineSeconds",
    field="retryPeriodSeconds",
    detail=" ({})",
    shows="self.renewDeadlineSeconds",
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
        le=MAX_LEASE_SECONDS,
        description="How long a lease is valid without renewal: the failover time. At most "
        f"{MAX_LEASE_SECONDS}.",
    )
    renew_deadline_seconds: int = Field(
        3,
        ge=1,
        le=MAX_LEASE_SECONDS,
        description="How long the active pod keeps trying to renew before it gives the role up; "
        "less than leaseDurationSeconds, so it steps down before another pod can take over.",
    )
    retry_period_seconds: int = Field(
        1,
        ge=1,
        le=MAX_LEASE_SECONDS,
        description="How often to try to acquire or renew; less than renewDeadlineSeconds.",
    )
    elector_port: int = Field(
        DEFAULT_ELECTOR_PORT,
        ge=1024,
        le=65535,
        description="Port of the ha-elector sidecar in each pod: GET /healthz, and GET /leader "
        "(200 on the active pod, 503 on standbys) for the application. It must differ from the "
        f"TCP ports of the template's containers: change it if the application uses "
        f"{DEFAULT_ELECTOR_PORT}.",
    )
    preempt: bool = Field(
        False,
        description="false (keepalived nopreempt): a recovered pod does not take the role back. "
        "true: the longest-running healthy pod reclaims it.",
    )
    failsafe_seconds: int = Field(
        DEFAULT_FAILSAFE_SECONDS,
        ge=0,
        le=MAX_LEASE_SECONDS,
        description="How long the active pod may keep the role while the API server is "
        "unreachable, as long as every other pod answers that it cannot reach it either and is "
        "not leading (Patroni's failsafe mode). 0: off, the active pod steps down at the renew "
        "deadline. A pod created since the active pod's last renewal waits this much longer than "
        f"the lease before it takes an expired Lease. At most {MAX_LEASE_SECONDS}.",
    )
    unhealthy_seconds: int = Field(
        0,
        ge=0,
        le=MAX_UNHEALTHY_SECONDS,
        description="How long the active pod's application may be not Ready before the role moves "
        "to a ready standby (pacemaker's failed monitor, keepalived's track_script). 0: at once, "
        "since the readiness probe's failureThreshold already debounces and a not-Ready active pod "
        "serves nothing. With no ready standby the active pod keeps the role. At most "
        f"{MAX_UNHEALTHY_SECONDS}.",
    )
    health_containers: (
        list[Annotated[str, Field(max_length=63, description="A container name.")]] | None
    ) = Field(
        None,
        min_length=1,
        max_length=MAX_HEALTH_CONTAINERS,
        description="The containers whose readiness is the application's health (default: every "
        "container of the template). Each must be a container of the template.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _timings_nest(self) -> Self:
        check = RuleCheck()
        check.require(
            self.renew_deadline_seconds < self.lease_duration_seconds,
            RENEW_BEFORE_LEASE,
            self.lease_duration_seconds,
        )
        check.require(
            self.retry_period_seconds < self.renew_deadline_seconds,
            RETRY_BEFORE_RENEW,
            self.renew_deadline_seconds,
        )
        check.raise_if_any()
        return self


class RestartPolicy(ApiModel):
    """Like systemd's Restart= with StartLimitBurst, or pacemaker's migration-threshold."""

    max_restarts: int = Field(
        5,
        ge=0,
        le=MAX_RESTARTS,
        description="Container restarts of one pod allowed within windowSeconds, at most "
        f"{MAX_RESTARTS} (Kubernetes slows a crashing container to one restart every 5 minutes, "
        "so more cannot happen within a day). For no limit, use onLimit Notify.",
    )
    window_seconds: int = Field(
        600,
        ge=1,
        le=MAX_WINDOW_SECONDS,
        description="The window restarts are counted in, like StartLimitIntervalSec or "
        "pacemaker's failure-timeout; also how long a node is avoided. At most "
        f"{MAX_WINDOW_SECONDS} (a day).",
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
        le=MAX_GRACE_SECONDS,
        description="How long a node may be NotReady or Unknown before acting. At most "
        f"{MAX_GRACE_SECONDS} (an hour): Kubernetes itself evicts pods from such a node after 300.",
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
