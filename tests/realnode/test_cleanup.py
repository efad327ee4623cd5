"""Cleanup leaves nothing behind, even after a crash.

Each test kills processes with SIGKILL, as a crash or an OOM kill would, while a pod runs on the
real node; the containers themselves live on as orphans. The cleanup must then remove every
process, mount, cgroup, bridge, network namespace, iptables chain, state directory and
/etc/hosts line, and put back the sysctls the kubelet changed. Whatever happens, what was
stopped is started again.

The second test stops the whole shared cluster (control plane, kwok nodes, provisioner): these
tests run last in a session (RESTARTS_CLUSTER), and never beside another test session on the
same machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from testenv.harness.cluster import kubeconfig_path, wait_until
from tests.realnode.support import (
    REAL_NODE,
    container_pid,
    node_paths,
    restricted_namespace,
    restricted_pod,
    run_testenv,
    running_pod,
)

RESTARTS_CLUSTER = True
pytestmark = pytest.mark.cluster
KWOK_NODES = ("kwok-node-a", "kwok-node-b", "kwok-node-c")


def test_node_down_after_its_processes_are_killed_leaves_nothing_behind() -> None:
    paths = node_paths()
    with crash_scene(paths) as scene:
        killed = hard_kill(node_pids(paths))
        assert alive(scene.container), "the container should outlive its killed runtime"
        run_testenv("node", "down", timeout=300)
        assert leftovers(paths, scene, killed, control_plane=False) == []


def test_cluster_down_after_everything_is_killed_leaves_nothing_behind() -> None:
    paths = node_paths()
    with crash_scene(paths) as scene:
        killed = hard_kill(control_plane_pids(paths) + node_pids(paths))
        assert alive(scene.container), "the container should outlive its killed runtime"
        run_testenv("cluster", "down", timeout=300)
        assert leftovers(paths, scene, killed, control_plane=True) == []


class Scene:
    """What ran before the crash: a container's pid, the bridge's ports, the sysctls the
    kubelet found, and the named network namespaces there were."""

    def __init__(self, container: int, ports: list[str], sysctls: dict[str, str]) -> None:
        self.container = container
        self.ports = ports
        self.sysctls = sysctls
        self.netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


@pytest.fixture(autouse=True)
def cluster_again() -> Iterator[None]:
    """Whatever a test stopped is started again (a no-op when all is up), with the three kwok
    nodes and the real node Ready."""
    yield
    run_testenv("cluster", "up", timeout=900)
    core = fresh_core()
    wait_until(
        lambda: all(ready(core, name) for name in (*KWOK_NODES, REAL_NODE)),
        timeout=120,
        what="the kwok nodes and the real node Ready again",
    )


@contextlib.contextmanager
def crash_scene(paths: dict[str, str]) -> Iterator[Scene]:
    """`cluster up`, then a pod on the real node; its namespace goes when the test ends."""
    run_testenv("cluster", "up", timeout=900)
    core = fresh_core()
    namespace = restricted_namespace(core, "rn-cleanup")
    try:
        core.create_namespaced_pod(namespace, restricted_pod("victim"))
        pod = wait_until(
            lambda: running_pod(core, namespace, "victim"), timeout=90, what="pod Running"
        )
        bridge = Path("/sys/class/net") / paths["BRIDGE"] / "brif"
        saved = Path(paths["NODE_ROOT"]) / "sysctls"
        sysctls = dict(line.split("=", 1) for line in saved.read_text().splitlines())
        yield Scene(container_pid(pod, "main"), sorted(os.listdir(bridge)), sysctls)
    finally:
        # A cluster that was taken down took the namespace along.
        with contextlib.suppress(Exception):
            fresh_core().delete_namespace(namespace, propagation_policy="Background")


def fresh_core() -> client.CoreV1Api:
    """A client for the cluster as it is now (a recreated cluster has new credentials)."""
    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig_path())))


def ready(core: client.CoreV1Api, name: str) -> bool:
    try:
        node = core.read_node(name)
    except client.ApiException:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def read_pids(directory: Path) -> list[int]:
    return [int(f.read_text()) for f in sorted(directory.glob("*.pid")) if f.read_text().strip()]


def node_pids(paths: dict[str, str]) -> list[int]:
    """The real node's daemons (kubelet, kube-proxy, containerd) and containerd's shims."""
    pids = read_pids(Path(paths["PIDS"]))
    for hierarchy in cgroup_hierarchies():
        procs = hierarchy / paths["CGROUP"] / "daemons" / "cgroup.procs"
        if procs.exists():
            pids += [int(p) for p in procs.read_text().split()]
    return sorted(set(pids))


def control_plane_pids(paths: dict[str, str]) -> list[int]:
    """etcd and the control plane (kwokctl's pid files), the kwok nodes and the provisioner."""
    return read_pids(Path(paths["KWOK_CLUSTER"]) / "pids") + read_pids(Path(paths["STATE"]) / "run")


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def hard_kill(pids: list[int]) -> list[int]:
    assert pids, "nothing to kill: is the cluster up?"
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not any(alive(p) for p in pids), timeout=30, what="the killed to die")
    return pids


def cgroup_hierarchies() -> list[Path]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype in ("cgroup", "cgroup2"):
            found.append(Path(fields[4]))
    return found


def leftovers(
    paths: dict[str, str], scene: Scene, killed: list[int], *, control_plane: bool
) -> list[str]:
    """Everything of the cluster still on this machine, as one line each."""
    found: list[str] = []
    ours = [paths["NODE_ROOT"], paths["NODE_RUN"]]
    if control_plane:
        ours.append(paths["KWOK_CLUSTER"])
    cgroup = f"/{paths['CGROUP']}"

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or not alive(int(proc.name)):
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroups = (proc / "cgroup").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if any(f":{cgroup}/" in line or line.endswith(f":{cgroup}") for line in cgroups.split()):
            found.append(f"process {proc.name} in our cgroups: {cmdline}")
        elif any(path in cmdline for path in ours):
            found.append(f"process {proc.name}: {cmdline}")
    found += [f"killed process {pid} is running" for pid in killed if alive(pid)]
    if alive(scene.container):
        found.append(f"container process {scene.container} is running")

    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4]
        if any(mount_point.startswith(path + "/") or mount_point == path for path in ours):
            found.append(f"mount {mount_point}")

    found += [
        f"cgroup {h / paths['CGROUP']}"
        for h in cgroup_hierarchies()
        if (h / paths["CGROUP"]).exists()
    ]

    net = Path("/sys/class/net")
    found += [f"link {name}" for name in (paths["BRIDGE"], *scene.ports) if (net / name).exists()]
    if os.path.isdir("/run/netns"):
        found += [f"netns /run/netns/{n}" for n in set(os.listdir("/run/netns")) - scene.netns]

    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    found += [
        f"iptables: {line}"
        for line in rules.splitlines()
        if line.startswith((":KUBE-", f":{paths['GUARD']} ")) or "-j KUBE-" in line
    ]

    state = [*ours, paths["STATE"] + "/kubeconfig"] if control_plane else ours
    found += [f"directory {path}" for path in state if os.path.exists(path)]
    cni_cache = Path(paths["CNI_CACHE"])
    if cni_cache.is_dir():
        found += [
            f"CNI cache {f}" for f in cni_cache.iterdir() if paths["NODE_RUN"] in f.read_text()
        ]
    links = Path(paths["LOG_LINKS"])
    if links.is_dir():
        found += [
            f"log link {link}"
            for link in links.iterdir()
            if link.is_symlink() and os.readlink(link).startswith(paths["NODE_ROOT"])
        ]

    if paths["HOSTS_LINE"] in Path("/etc/hosts").read_text().splitlines():
        found.append(f"/etc/hosts line {paths['HOSTS_LINE']!r}")
    for key, value in scene.sysctls.items():
        now = Path("/proc/sys", *key.split(".")).read_text().strip()
        if now.split() != value.split():
            found.append(f"sysctl {key} = {now}, was {value}")
    return found
