"""QueueWorker: N workers that pull from a queue (conductor, scheduler, engine) and take no traffic:
a Deployment and a PodDisruptionBudget, no Service."""

from __future__ import annotations

from haoperator.api import HAService
from haoperator.core.render import common
from haoperator.core.render.common import Manifest


def deployment(haservice: HAService) -> Manifest:
    return common.deployment(haservice, common.pod_template(haservice))


def pod_disruption_budget(haservice: HAService) -> Manifest:
    budget = haservice.spec.disruption_settings.max_unavailable
    return common.pod_disruption_budget(haservice, max_unavailable=budget)


def children(haservice: HAService) -> list[Manifest]:
    return [deployment(haservice), pod_disruption_budget(haservice)]
