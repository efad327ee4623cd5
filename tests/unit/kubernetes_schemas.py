"""Check manifests against Kubernetes' own OpenAPI schemas (kubernetes-validate, strict: no field
the API does not know)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

KUBERNETES_VERSION = "1.34"


def assert_valid(manifest: dict[str, Any]) -> None:
    """Fail with the path and the reason when `manifest` is not a valid Kubernetes object."""
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path)
        kind, name = manifest.get("kind"), manifest.get("metadata", {}).get("name")
        message = f"{kind}/{name} is not valid Kubernetes: {where}: {error.message}"
        raise AssertionError(message) from None
