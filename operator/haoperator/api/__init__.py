"""The HAService API (haoperator.dev/v1alpha1): the pydantic models that are the single source of
truth for spec, status and the CRD (crd.py), and the words users read when an object breaks their
rules (messages.py).

- haservice.py: the resource, its metadata and its spec, with the rules between fields;
- workload.py: what the spec embeds from Kubernetes (pod template, Service, volume claims);
- behaviour.py: the HA settings (placement, disruption, clustering, election, recovery);
- status.py: the status the operator writes;
- base.py: the building blocks (strict camelCase models, `Rule`, bounds, patterns).
"""

from haoperator.api.base import MAX_REPLICAS
from haoperator.api.behaviour import (
    ActivePassiveSpec,
    ClusteredSpec,
    Disruption,
    Placement,
    Recovery,
)
from haoperator.api.haservice import (
    API_VERSION,
    GROUP,
    KIND,
    MAX_NAME_LENGTH,
    VERSION,
    Category,
    HAService,
    HAServiceSpec,
    ObjectMeta,
)
from haoperator.api.status import Condition, Failover, HAServiceStatus
from haoperator.api.workload import PodTemplate, ServiceSpec

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "MAX_NAME_LENGTH",
    "MAX_REPLICAS",
    "VERSION",
    "ActivePassiveSpec",
    "Category",
    "ClusteredSpec",
    "Condition",
    "Disruption",
    "Failover",
    "HAService",
    "HAServiceSpec",
    "HAServiceStatus",
    "ObjectMeta",
    "Placement",
    "PodTemplate",
    "Recovery",
    "ServiceSpec",
]
