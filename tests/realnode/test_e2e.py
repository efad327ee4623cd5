"""The e2e suite (tests/e2e), the one `make kind-e2e` runs on kind, run here on the real node
against the operator this tier installed: HAOPERATOR_E2E_NODE puts its pods on the real node,
HAOPERATOR_E2E_IMAGES gives them images the node has (there is no registry), and its
ActivePassive pods run their real ha-elector sidecars (no stand-ins: the node runs containers).

It runs as its own pytest process: its fixtures, its namespaces and its report are its own, as
on kind, while the operator it expects is this session's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testenv.harness.cluster import REPO, kubeconfig_path
from tests.realnode.conftest import Operator
from tests.realnode.support import NGINX_IMAGE, PAUSE_IMAGE, QUICKSTART_IMAGE, REAL_NODE

pytestmark = pytest.mark.cluster
E2E_TIMEOUT = 900
# tests/integration/haservices.py's default container image, and the quickstart's.
IMAGES = {"registry.k8s.io/pause:3.10": PAUSE_IMAGE, QUICKSTART_IMAGE: NGINX_IMAGE}


def test_the_e2e_suite_passes_on_the_real_node_with_the_installed_operator(
    installed: Operator,
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HAOPERATOR_E2E_LOCAL_OPERATOR", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST")
    }
    env |= {
        "KUBECONFIG": str(kubeconfig_path()),
        "HAOPERATOR_E2E_NODE": REAL_NODE,
        "HAOPERATOR_E2E_IMAGES": ",".join(f"{old}={new}" for old, new in IMAGES.items()),
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/e2e", "-q", "-p", "no:cacheprovider", "-rfE"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=E2E_TIMEOUT,
        check=False,
    )
    print(result.stdout[-4000:])  # shown with -rP, and on failure
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-4000:]
    assert " passed" in result.stdout.splitlines()[-1]
