"""The schema check itself: it must know the version we target and catch what the API rejects."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.unit.kubernetes_schemas import KUBERNETES_VERSION, assert_valid


def test_schemas_for_the_targeted_kubernetes_version_ship() -> None:
    assert (
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}},
            KUBERNETES_VERSION,
            strict=True,
        )
        == KUBERNETES_VERSION
    )


def test_an_unknown_field_is_caught() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"prot": 1},
    }
    with pytest.raises(AssertionError, match="Service/x is not valid Kubernetes"):
        assert_valid(service)
