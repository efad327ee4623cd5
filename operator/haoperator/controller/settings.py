"""The operator's settings: command-line flags, each with an environment variable as its default
(HAOPERATOR_<FLAG>), so a Deployment can set them either way."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from haoperator.api.base import MAX_REPLICAS
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
