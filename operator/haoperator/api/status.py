"""The HAService's status: what the operator observed, shaped for kubectl, the scale subresource and
HPAs.

Only the operator writes it. Unknown fields are ignored rather than rejected so that an older
operator can still read a status a newer one wrote.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from haoperator.api.base import CONDITION_REASON, CONDITION_TYPE, ApiModel

DATE_TIME: JsonDict = {"format": "date-time"}


class StatusModel(ApiModel):
    """Base of the status models: tolerant of fields it does not know."""

    model_config = ConfigDict(extra="ignore")


class Condition(StatusModel):
    """A condition in the standard Kubernetes shape (metav1.Condition)."""

    type: str = Field(
        max_length=316,
        pattern=CONDITION_TYPE,
        description="Ready, Progressing, Degraded or QuorumLost.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON,
        description="Why the condition has this status, in CamelCase (e.g. InvalidSpec).",
    )
    message: str = Field(max_length=32768, description="Details for humans.")
    last_transition_time: str = Field(
        description="When the status last changed.", json_schema_extra=DATE_TIME
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation the condition was computed for."
    )


class Failover(StatusModel):
    """The last change of the active pod (ActivePassive)."""

    time: str = Field(description="When the new pod became active.", json_schema_extra=DATE_TIME)
    from_: str = Field(alias="from", description="The pod that was active before.")
    to: str = Field(description="The pod that became active.")
    seconds: float = Field(
        ge=0, description="Seconds without an active pod: from losing the old one to the new one."
    )
    reason: str | None = Field(
        None,
        description="Why it moved: PodDeleted, ElectorStopped, ApplicationUnhealthy, Switchover, "
        "Preempted, ElectorTerminated or LeaseExpired.",
    )


class Failsafe(StatusModel):
    """The last outage of the API server the active pod rode out (ActivePassive failsafe)."""

    time: str = Field(
        description="When the API server answered again.", json_schema_extra=DATE_TIME
    )
    pod: str = Field(description="The pod that kept the active role.")
    seconds: float = Field(ge=0, description="How long its elector could not reach the API server.")
    peers: int = Field(ge=0, description="The other pods that confirmed, every retry period.")


class HAServiceStatus(StatusModel):
    """The observed state, written by the operator."""

    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation the status was computed for."
    )
    selector: str | None = Field(
        None,
        description="Label selector of the pods, as a string (for the scale subresource and HPAs).",
    )
    desired_replicas: int | None = Field(
        None,
        ge=0,
        description="Pods wanted: spec.replicas, or the category's default when it is unset.",
    )
    replicas: int | None = Field(None, ge=0, description="Pods that exist.")
    ready_replicas: int | None = Field(None, ge=0, description="Pods that are ready.")
    active_pod: str | None = Field(
        None, description="The pod that holds the Lease and receives traffic (ActivePassive)."
    )
    failovers: int | None = Field(
        None, ge=0, description="How many times the active pod changed (ActivePassive)."
    )
    last_failover: Failover | None = Field(
        None, description="The last change of the active pod (ActivePassive)."
    )
    last_failsafe: Failsafe | None = Field(
        None,
        description="The last outage of the API server the active pod kept its role through "
        "(ActivePassive).",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready, Progressing, Degraded and (Clustered) QuorumLost.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
