"""The operator's settings: command-line flags, each with an environment variable as its default
(HAOPERATOR_<FLAG>), so a Deployment can set them either way."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from haoperator.api.base import MAX_REPLICAS
from haoperator.core.election import Timing
from haoperator.core.vocabulary import DEFAULT_IMAGE


def env(name: str, default: str) -> str:
    return os.environ.get(f"HAOPERATOR_{name}", default)


@dataclass(frozen=True)
class Settings:
    namespaces: list[str] = field(default_factory=list)
    all_namespaces: bool = False
    kubeconfig: str | None = None
    elector_image: str = DEFAULT_IMAGE
    liveness_port: int = 8080
    metrics_port: int = 9090
    workers: int = 8
    max_replicas: int = MAX_REPLICAS
    log_format: str = "auto"
    log_level: str = "info"
    leader_elect: bool = False
    """Only the holder of the Lease `haoperator` in `leader_elect_namespace` reconciles."""
    leader_elect_namespace: str = ""
    leader_elect_timing: Timing = field(
        default_factory=lambda: Timing(lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)
    )
    identity: str = "haoperator"
    """This instance: the events' reportingInstance, the Lease's holder, haoperator_leader's
    label (the pod's name in a cluster)."""
