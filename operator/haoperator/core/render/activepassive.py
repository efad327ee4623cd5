"""ActivePassive: one active pod, standbys ready to take over (what pacemaker and keepalived did).

Every pod runs the `ha-elector` sidecar; the one holding the Lease `<name>` labels itself
haoperator.dev/role=active, and the Service `<name>` selects only that label. The children: the
elector's ServiceAccount, its Lease, Role and RoleBinding, the Service when `spec.service` is
given, a Deployment and a PodDisruptionBudget.
"""

from __future__ import annotations

from haoperator.api import HAService
from haoperator.core.render import common, sidecar
from haoperator.core.render.common import Manifest
from haoperator.core.vocabulary import Label, Role


def pod_template(haservice: HAService, elector_image: str) -> Manifest:
    template = common.pod_template(haservice)
    spec = template["spec"]
    if sidecar.creates_service_account(haservice):
        spec["serviceAccountName"] = sidecar.name(haservice)
        spec.setdefault("automountServiceAccountToken", False)
    spec["initContainers"] = [
        *spec.get("initContainers", []),
        sidecar.container(haservice, elector_image),
    ]
    spec["volumes"] = [*spec.get("volumes", []), sidecar.token_volume()]
    return template


def deployment(haservice: HAService, elector_image: str) -> Manifest:
    """Rolling updates add the new pod before removing an old one, so a standby always exists."""
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    return common.deployment(haservice, pod_template(haservice, elector_image), strategy=strategy)


def service(haservice: HAService) -> Manifest:
    """Traffic goes to the active pod only."""
    selector = {**common.selector_labels(haservice), Label.ROLE: Role.ACTIVE}
    return common.client_service(haservice, selector)


def pod_disruption_budget(haservice: HAService) -> Manifest:
    budget = haservice.spec.disruption_settings.max_unavailable
    return common.pod_disruption_budget(haservice, max_unavailable=budget)


def children(haservice: HAService, elector_image: str) -> list[Manifest]:
    front = [service(haservice)] if haservice.spec.service is not None else []
    return [
        *sidecar.access(haservice),
        *front,
        deployment(haservice, elector_image),
        pod_disruption_budget(haservice),
    ]
