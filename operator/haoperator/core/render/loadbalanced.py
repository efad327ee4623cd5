"""LoadBalanced: N interchangeable copies behind a Service (what haproxy in front of API services
did): a Deployment, the Service when `spec.service` is given, and a PodDisruptionBudget."""

from __future__ import annotations

from haoperator.api import HAService
from haoperator.core.render import common
from haoperator.core.render.common import Manifest


def deployment(haservice: HAService) -> Manifest:
    return common.deployment(haservice, common.pod_template(haservice))


def service(haservice: HAService) -> Manifest:
    return common.client_service(haservice, common.selector_labels(haservice))


def pod_disruption_budget(haservice: HAService) -> Manifest:
    budget = haservice.spec.disruption_settings.max_unavailable
    return common.pod_disruption_budget(haservice, max_unavailable=budget)


def children(haservice: HAService) -> list[Manifest]:
    front = [service(haservice)] if haservice.spec.service is not None else []
    return [*front, deployment(haservice), pod_disruption_budget(haservice)]
