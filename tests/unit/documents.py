"""Small valid HAService documents for tests to start from and break on purpose."""

from __future__ import annotations

from typing import Any

from haoperator.api import HAService


def document(category: str = "LoadBalanced", *, name: str = "web", **spec: Any) -> dict[str, Any]:
    """An HAService as it arrives on the wire; `spec` keys (camelCase) are added to its spec."""
    return {
        "apiVersion": "haoperator.dev/v1alpha1",
        "kind": "HAService",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {
            "category": category,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "docker.io/library/nginx:1.27"}]},
            },
            **spec,
        },
    }


def haservice(category: str = "LoadBalanced", *, name: str = "web", **spec: Any) -> HAService:
    return HAService.model_validate(document(category, name=name, **spec))
