"""The image a user runs, built here without a registry, runs under the manifests' restricted
securityContext: uid/gid 65532, a read-only root filesystem, no capabilities, no privilege
escalation.

`testenv/image build` makes the image (or reuses it when nothing it is made of changed) and
exports the docker archive that containerd imports. These tests unpack that very archive into a
root filesystem and run it with runc, without Kubernetes: each container gets what its manifest
asks, read from the manifest itself (the operator's Deployment; the ha-elector sidecar the
renderer adds to the quickstart's pods): command and arguments, environment, securityContext and
volumes (an emptyDir is a tmpfs, the service-account token a read-only directory). Each has its
own network namespace with only loopback, so the in-cluster API address answers nothing: the
processes start and serve their probes, with no cluster to reach.

Needs root (runc here, mmdebstrap and buildah in the build); fails, never skips, without it.
"""

from __future__ import annotations

import itertools
import json
import os
import posixpath
import shutil
import signal
import struct
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from haoperator import __version__
from haoperator.api import HAService
from haoperator.core import render
from haoperator.core.render import sidecar
from testenv.harness.cluster import REPO, wait_until
from tests.realnode.support import run_testenv

BUILD_TIMEOUT = 1500  # a cold build makes both bases and downloads the locked wheels
RUN_TIMEOUT = 120
MANIFESTS = REPO / "manifests"
# What the downward API gives the containers' fieldRef variables.
FIELDS = {"metadata.name": "haoperator-image-test", "metadata.namespace": "haoperator-system"}
_ids = itertools.count()
Manifest = dict[str, Any]


@dataclass(frozen=True)
class Image:
    archive: Path
    rootfs: Path
    config: Manifest  # the image config's "config": User, Env, Entrypoint, Cmd, WorkingDir
    scratch: Path  # bundles, runc's state, the fake service account

    @property
    def user(self) -> tuple[int, int]:
        uid, gid = self.config["User"].split(":")
        return int(uid), int(gid)


# -- the image, unpacked ------------------------------------------------------------------------


def unpack(archive: Path, rootfs: Path) -> Manifest:
    """Apply a docker archive's layers in order, whiteouts included; return its image config."""
    with tarfile.open(archive) as outer:
        (manifest,) = json.load(_member(outer, "manifest.json"))
        config: Manifest = json.load(_member(outer, manifest["Config"]))
        for name in manifest["Layers"]:
            with tarfile.open(fileobj=_member(outer, name)) as layer:
                _apply(layer, rootfs)
    return config


def _member(archive: tarfile.TarFile, name: str) -> Any:
    file = archive.extractfile(name)
    assert file is not None, f"{name} is not a file in the archive"
    return file


def _apply(layer: tarfile.TarFile, rootfs: Path) -> None:
    keep = []
    for member in layer.getmembers():
        parent, base = posixpath.split(posixpath.normpath(member.name))
        if base == ".wh..wh..opq":  # an opaque directory: what lower layers put there is gone
            if (rootfs / parent).is_dir():
                for child in (rootfs / parent).iterdir():
                    _remove(child)
        elif base.startswith(".wh."):
            _remove(rootfs / parent / base.removeprefix(".wh."))
        else:
            target = rootfs / member.name
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()
            keep.append(member)
    # Our own image: owners, modes and absolute symlinks as they are (PEP 706's other filters
    # would change them); a Python without the filters (before 3.11.4) does the same.
    if hasattr(tarfile, "fully_trusted_filter"):
        layer.extractall(rootfs, members=keep, numeric_owner=True, filter="fully_trusted")
    else:
        layer.extractall(rootfs, members=keep, numeric_owner=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    assert os.geteuid() == 0, "the image tests need root: runc, mmdebstrap and buildah run as root"
    assert shutil.which("runc"), "runc is missing: testenv/image build installs it (Debian runc)"
    archive = Path(run_testenv("image", "build", timeout=BUILD_TIMEOUT).stdout.strip())
    scratch = tmp_path_factory.mktemp("image")
    (scratch / "rootfs").mkdir()
    config = unpack(archive, scratch / "rootfs")["config"]
    # What the kubelet projects into the elector's token volume; nothing will accept the token.
    account = scratch / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("not-a-real-token")
    (account / "namespace").write_text(FIELDS["metadata.namespace"])
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", account / "ca.crt")
    yield Image(archive, scratch / "rootfs", config, scratch)
    shutil.rmtree(scratch)  # the unpacked image: over 200 MB


# -- pods, as runc bundles ----------------------------------------------------------------------


def operator_pod() -> Manifest:
    deployment = yaml.safe_load((MANIFESTS / "deployment.yaml").read_text())
    pod: Manifest = deployment["spec"]["template"]["spec"]
    return pod


def quickstart_pod() -> Manifest:
    """The quickstart's ActivePassive pod, as the operator renders it: with the ha-elector."""
    path = MANIFESTS / "samples" / "quickstart" / "hello.yaml"
    (body,) = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "HAService"]
    body["metadata"].setdefault("namespace", "haoperator-demo")
    children = render.desired(HAService.model_validate(body))
    (workload,) = [c for c in children if c["kind"] in ("Deployment", "StatefulSet")]
    pod: Manifest = workload["spec"]["template"]["spec"]
    return pod


def container(pod: Manifest, name: str) -> Manifest:
    found: list[Manifest] = [
        c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == name
    ]
    assert len(found) == 1, f"{len(found)} containers named {name}"
    return found[0]


def security(pod: Manifest, container_: Manifest, image: Image) -> tuple[int, int, Manifest]:
    """uid, gid and the container's securityContext, as the kubelet resolves them."""
    pod_context = pod.get("securityContext", {})
    context: Manifest = {**pod_context, **container_.get("securityContext", {})}
    uid = context.get("runAsUser", image.user[0])
    gid = context.get("runAsGroup", image.user[1])
    return uid, gid, context


def environment(container_: Manifest, image: Image) -> list[str]:
    values = dict(item.split("=", 1) for item in image.config["Env"])
    for item in container_.get("env", []):
        if "value" in item:
            values[item["name"]] = item["value"]
        else:
            values[item["name"]] = FIELDS[item["valueFrom"]["fieldRef"]["fieldPath"]]
    # The kubelet's: the API server's Service. Nothing listens there in this network namespace.
    values |= {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    return [f"{name}={value}" for name, value in values.items()]


def mounts(pod: Manifest, container_: Manifest, image: Image) -> list[Manifest]:
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    found = []
    for mount in container_.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit", "64Mi").replace("Mi", "m")
            found.append(
                {
                    "destination": mount["mountPath"],
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": ["nosuid", "nodev", "mode=1777", f"size={size}"],
                }
            )
        elif any(
            "serviceAccountToken" in x for x in volume.get("projected", {}).get("sources", [])
        ):
            found.append(_service_account(mount["mountPath"], image))
        else:
            raise AssertionError(f"volume {mount['name']}: this test does not model it")
    # The ServiceAccount admission plugin mounts the token there unless the pod opts out.
    if pod.get("automountServiceAccountToken", True) and not any(
        m["destination"] == sidecar.TOKEN_MOUNT_PATH for m in found
    ):
        found.append(_service_account(sidecar.TOKEN_MOUNT_PATH, image))
    return found


def _service_account(path: str, image: Image) -> Manifest:
    return {
        "destination": path,
        "type": "bind",
        "source": str(image.scratch / "serviceaccount"),
        "options": ["rbind", "ro", "nosuid", "nodev", "noexec"],
    }


def bundle(image: Image, pod: Manifest, name: str, command: Sequence[str] | None = None) -> Path:
    """An OCI bundle running container `name` of `pod` on the image as its manifest says
    (or, with `command`, that command under the same rules)."""
    container_ = container(pod, name)
    uid, gid, context = security(pod, container_, image)
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True
    assert uid != 0
    directory = image.scratch / f"bundle-{next(_ids)}"
    directory.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(directory)], check=True)
    spec: Manifest = json.loads((directory / "config.json").read_text())
    if command is None:
        command = [
            *(container_.get("command") or image.config["Entrypoint"]),
            *(container_.get("args") or ([] if "command" in container_ else image.config["Cmd"])),
        ]
    spec["root"] = {"path": str(image.rootfs), "readonly": True}
    spec["process"] |= {
        "terminal": False,
        "args": list(command),
        "env": environment(container_, image),
        "cwd": image.config.get("WorkingDir") or "/",
        "user": {"uid": uid, "gid": gid},
        "noNewPrivileges": True,
        "capabilities": {
            kind: [] for kind in ("bounding", "effective", "inheritable", "permitted", "ambient")
        },
    }
    spec["mounts"] += mounts(pod, container_, image)
    spec.pop("hostname", None)
    (directory / "config.json").write_text(json.dumps(spec))
    return directory


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def _runc(image: Image) -> list[str]:
    return ["runc", "--root", str(image.scratch / "runc")]


def run(image: Image, directory: Path) -> Ran:
    """Run the bundle to its end; what it printed."""
    name = f"haoperator-image-test-{os.getpid()}-{directory.name}"
    try:
        done = subprocess.run(
            [*_runc(image), "run", "--bundle", str(directory), name],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    finally:
        subprocess.run([*_runc(image), "delete", "--force", name], capture_output=True, check=False)
    return Ran(done.returncode, done.stdout, done.stderr)


def operator_runs(image: Image, *args: str) -> Ran:
    """The operator's container with these arguments to the image's entrypoint."""
    command = [*image.config["Entrypoint"], *args]
    return run(image, bundle(image, operator_pod(), "operator", command))


def python(image: Image, code: str) -> Ran:
    """Python code, run with the operator container's rules."""
    return run(image, bundle(image, operator_pod(), "operator", ["/venv/bin/python", "-c", code]))


PROBE = """
import urllib.error, urllib.request
try:
    answer = urllib.request.urlopen("{url}", timeout=5)
    print(answer.status, answer.read().decode(errors="replace"))
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode(errors="replace"))
except OSError as error:
    print(0, error)
"""


@dataclass
class Started:
    image: Image
    name: str
    log: Path

    def get(self, port: int, path: str) -> tuple[int, str]:
        """GET http://127.0.0.1:port/path from inside the container (its network namespace),
        as the kubelet's probe or the application next to it would; (0, why) if unanswered."""
        probe = PROBE.format(url=f"http://127.0.0.1:{port}{path}")
        done = subprocess.run(
            [*_runc(self.image), "exec", self.name, "/venv/bin/python", "-c", probe],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stderr or self.output()
        code, _, body = done.stdout.removesuffix("\n").partition(" ")
        return int(code), body

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def state(self) -> Manifest:
        done = subprocess.run(
            [*_runc(self.image), "state", self.name], capture_output=True, text=True, check=False
        )
        state: Manifest = json.loads(done.stdout) if done.returncode == 0 else {"status": "gone"}
        return state

    def running(self) -> bool:
        return bool(self.state()["status"] == "running")

    def terminate(self) -> None:
        """SIGTERM, as the kubelet stops a container; wait until the process has exited."""
        os.kill(self.state()["pid"], signal.SIGTERM)
        wait_until(lambda: not self.running(), timeout=60, what=f"{self.name} to stop on SIGTERM")


@pytest.fixture
def start(image: Image) -> Iterator[Any]:
    """start(pod, container name): the container running in the background."""
    started: list[Started] = []

    def _start(pod: Manifest, name: str) -> Started:
        directory = bundle(image, pod, name)
        log = directory / "output.log"
        runc_name = f"haoperator-image-test-{os.getpid()}-{directory.name}"
        with log.open("w") as out:
            subprocess.run(
                [*_runc(image), "run", "--detach", "--bundle", str(directory), runc_name],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                timeout=RUN_TIMEOUT,
                check=True,
            )
        started.append(Started(image, runc_name, log))
        return started[-1]

    yield _start
    for each in started:
        subprocess.run([*_runc(image), "delete", "--force", each.name], capture_output=True)
        assert each.state() == {"status": "gone"}, f"runc could not delete {each.name}"


# -- what the image is --------------------------------------------------------------------------


def test_the_image_runs_the_console_script_as_the_manifests_user(image: Image) -> None:
    assert image.user == (sidecar.ELECTOR_USER_ID, sidecar.ELECTOR_USER_ID)
    assert image.config["Entrypoint"] == ["haoperator"]
    assert image.config["Cmd"] == ["run", "--all-namespaces"]
    assert security(operator_pod(), container(operator_pod(), "operator"), image)[:2] == image.user


def test_the_runtime_has_python_where_the_venv_points_and_no_shell(image: Image) -> None:
    """The venv copied from the build stage runs the runtime base's /usr/bin/python3; like
    distroless, the local runtime base has no shell and no package manager."""
    assert "home = /usr/bin" in (image.rootfs / "venv" / "pyvenv.cfg").read_text()
    assert (image.rootfs / "usr" / "bin" / "python3").exists()
    for program in ("bin/sh", "bin/bash", "usr/bin/apt", "usr/bin/dpkg", "venv/bin/pip"):
        assert not (image.rootfs / program).exists(), program


SANDBOX = """
import json, os
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
try:
    open("/venv/written", "w")
    root = "writable"
except OSError as error:
    root = error.strerror
open("/tmp/scratch", "w").write("ok")
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "effective": status["CapEff"].strip(), "bounding": status["CapBnd"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(), "root": root, "tmp": open("/tmp/scratch").read(),
}))
"""


def test_the_containers_run_non_root_read_only_without_capabilities(image: Image) -> None:
    """What the other tests run in is the restricted sandbox the manifests describe."""
    ran = python(image, SANDBOX)
    assert ran.code == 0, ran.err
    seen = json.loads(ran.out)
    assert (seen["uid"], seen["gid"], seen["groups"]) == (*image.user, [])
    assert seen["effective"] == seen["bounding"] == "0000000000000000"
    assert seen["no_new_privs"] == "1"
    assert seen["root"] == "Read-only file system"
    assert seen["tmp"] == "ok"  # the Deployment's emptyDir


# -- the commands -------------------------------------------------------------------------------


def test_version(image: Image) -> None:
    ran = operator_runs(image, "--version")
    assert (ran.code, ran.out.strip()) == (0, f"haoperator {__version__}"), ran.err


@pytest.mark.parametrize("command", ["run", "elect"])
def test_help(image: Image, command: str) -> None:
    ran = operator_runs(image, command, "--help")
    assert ran.code == 0, ran.err
    assert ran.out.startswith(f"usage: haoperator {command} ")
    assert ran.err == ""


def test_crd_prints_the_shipped_crd(image: Image) -> None:
    ran = operator_runs(image, "crd")
    assert ran.code == 0, ran.err
    assert yaml.safe_load(ran.out) == yaml.safe_load((REPO / "crds" / "haservice.yaml").read_text())


IMPORT_ALL = """
import importlib, pkgutil, sys, haoperator
names = [m.name for m in pkgutil.walk_packages(haoperator.__path__, "haoperator.")]
for name in names:
    importlib.import_module(name)
import kopf, kubernetes, aiohttp, pydantic_core, yaml, ssl, sqlite3, zoneinfo
zoneinfo.ZoneInfo("Europe/Paris")
print(len(names), sys.version.split()[0])
"""


def test_every_module_imports_with_the_runtimes_libraries(image: Image) -> None:
    """What --help does not load: every haoperator module and the native extensions
    (pydantic-core, aiohttp's, PyYAML's, ssl) against the runtime base's libraries."""
    ran = python(image, IMPORT_ALL)
    assert ran.code == 0, ran.err
    count, version = ran.out.split()
    assert int(count) > 10
    assert version.startswith("3.11.")


# -- the processes, running ---------------------------------------------------------------------


def test_the_operator_container_runs_and_serves_its_metrics(image: Image, start: Any) -> None:
    """The Deployment's container, as it is: `haoperator run --all-namespaces` with its
    environment, starts, serves /metrics and keeps trying to reach the API server; SIGTERM
    stops it."""
    pod = operator_pod()
    env = {e["name"]: e.get("value") for e in container(pod, "operator")["env"]}
    operator = start(pod, "operator")
    metrics = int(env["HAOPERATOR_METRICS_PORT"])
    code, body = wait_until(
        lambda: (answer := operator.get(metrics, "/metrics"))[0] and answer,
        timeout=60,
        what=f"the operator's /metrics on port {metrics}",
    )
    assert code == 200, body
    assert "# TYPE haoperator_failovers_total counter" in body
    assert operator.running(), operator.output()
    assert "Read-only file system" not in operator.output()
    operator.terminate()


def test_the_elector_sidecar_runs_and_serves_its_probes(image: Image, start: Any) -> None:
    """The ha-elector sidecar the renderer adds to the quickstart's pods, as it is rendered:
    it serves /healthz (its liveness probe) and, with no API server to win a Lease from,
    answers /leader with 503; SIGTERM stops it."""
    pod = quickstart_pod()
    elector = container(pod, sidecar.CONTAINER_NAME)
    port = elector["ports"][0]["containerPort"]
    started = start(pod, sidecar.CONTAINER_NAME)
    wait_until(
        lambda: started.get(port, "/healthz") == (200, "ok\n"),
        timeout=60,
        what=f"the elector's /healthz on port {port}",
    )
    assert started.get(port, "/leader") == (503, "standby\n")
    assert started.running(), started.output()
    started.terminate()


def test_the_bytecode_in_the_image_is_valid_for_its_sources(image: Image) -> None:
    """Every .pyc the build compiled is the one Python uses. A timestamp-based .pyc is valid only
    while its source's mtime (whole seconds) and size are what it recorded; where a layer's tar
    stores mtimes rounded to the second (buildah's do), every source written in the second half
    of a second ends up a second later than its .pyc says: 12% to 88% of the venv in builds
    here, differently at each build. Python then compiles those modules again at every start,
    in memory (the root is read-only, PYTHONDONTWRITEBYTECODE is set): kubernetes' 4.4 MB
    core_v1_api.py alone took ~75 MB of heap, and the ha-elector sidecar (memory limit 128Mi)
    was OOMKilled at start on the real node while its watches imported it. Hash-based .pyc
    (`compileall --invalidation-mode unchecked-hash`) do not depend on mtimes at all."""
    site = image.rootfs / "venv" / "lib" / "python3.11" / "site-packages"
    stale, checked = [], 0
    for pyc in site.rglob("__pycache__/*.cpython-311.pyc"):
        source = pyc.parent.parent / (pyc.name.split(".", 1)[0] + ".py")
        if not source.exists():
            continue
        checked += 1
        flags, mtime, size = struct.unpack("<III", pyc.read_bytes()[4:16])
        stat = source.stat()
        if flags == 0 and (mtime, size) != (int(stat.st_mtime), stat.st_size & 0xFFFFFFFF):
            stale.append(str(source.relative_to(site)))
    assert checked > 1000, f"only {checked} compiled modules in the venv"
    assert stale == [], f"{len(stale)} of {checked} .pyc are stale, e.g. {sorted(stale)[:5]}"
