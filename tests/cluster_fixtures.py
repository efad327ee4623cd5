"""Session fixtures every cluster tier shares (integration, e2e): the API client for the cluster
in KUBECONFIG (the local one by default) and typed APIs over it. A tier that cannot reach its
cluster fails with the reason; nothing is skipped."""

from __future__ import annotations

import pytest
from kubernetes import client, config
from kubernetes.client import ApiClient

from testenv.harness.cluster import kubeconfig_path


@pytest.fixture(scope="session")
def api_client() -> ApiClient:
    path = kubeconfig_path()
    if not path.exists():
        pytest.fail(
            f"no cluster: {path} is missing; run `make cluster` or set KUBECONFIG", pytrace=False
        )
    api = config.new_client_from_config(str(path))
    try:
        client.VersionApi(api).get_code(_request_timeout=10)
    except Exception as exc:  # any failure to reach the server is the same verdict
        pytest.fail(f"no cluster: cannot reach the API server in {path}: {exc}", pytrace=False)
    return api


@pytest.fixture(scope="session")
def core(api_client: ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def apps(api_client: ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture(scope="session")
def custom(api_client: ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)
