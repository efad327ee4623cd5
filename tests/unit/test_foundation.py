"""The foundation's promises that need no cluster: the CLI answers, the pins agree."""

from __future__ import annotations

import re
import subprocess
import sys

from haoperator import __version__
from testenv.harness.cluster import REPO


def test_version_flag_prints_the_package_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "haoperator.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"haoperator {__version__}"


def _versions() -> dict[str, str]:
    text = (REPO / "testenv" / "versions.env").read_text()
    return dict(re.findall(r"^([A-Z0-9_]+)=(\S+)$", text, flags=re.MULTILINE))


def test_wrapper_modules_pin_what_versions_env_says() -> None:
    versions = _versions()
    k8s = (REPO / "testenv" / "k8s" / "go.mod").read_text()
    assert _requires(k8s, "k8s.io/kubernetes") == versions["K8S_VERSION"]
    staging = "v0" + versions["K8S_VERSION"].removeprefix("v1")
    replaces = re.findall(r"^\s+(k8s\.io/\S+) => \1 (\S+)$", k8s, flags=re.MULTILINE)
    # Every staging module must be replaced, or the build fails with "unknown revision v0.0.0".
    assert len(replaces) == 31
    assert {version for _, version in replaces} == {staging}
    etcd = (REPO / "testenv" / "etcd" / "go.mod").read_text()
    assert _requires(etcd, "go.etcd.io/etcd/server/v3") == versions["ETCD_VERSION"]
    kwok = (REPO / "testenv" / "kwok" / "go.mod").read_text()
    assert _requires(kwok, "sigs.k8s.io/kwok") == versions["KWOK_VERSION"]


def _requires(go_mod: str, module: str) -> str | None:
    found = re.search(rf"^(?:require )?\s*{re.escape(module)} (v\S+)", go_mod, flags=re.MULTILINE)
    return found.group(1) if found else None
