"""Render an HAService into the Kubernetes objects that implement it.

Pure and deterministic: the same HAService gives the same list of manifests, in the same order
(access first, then Services, the workload, the disruption budget), with no timestamps, so the
operator can apply them as they are and golden files can pin them.
"""

from __future__ import annotations

from haoperator.api import HAService
from haoperator.core.render import activepassive, clustered, loadbalanced, queueworker
from haoperator.core.render.common import Manifest
from haoperator.core.vocabulary import DEFAULT_IMAGE


def desired(haservice: HAService, *, elector_image: str = DEFAULT_IMAGE) -> list[Manifest]:
    """The children the HAService should have. `elector_image` runs the ActivePassive sidecar."""
    category = haservice.spec.category
    if category == "LoadBalanced":
        return loadbalanced.children(haservice)
    if category == "Clustered":
        return clustered.children(haservice)
    if category == "QueueWorker":
        return queueworker.children(haservice)
    return activepassive.children(haservice, elector_image)


__all__ = ["Manifest", "desired"]
