"""From what an importer understood (a `Plan`) to an HAService manifest, the same way for every
source.

The importers decide what a resource *is* (category, replicas, ports, addresses, monitoring);
this module decides how that looks as an HAService, so all three produce the same shape: a pod
template that the `restricted` Pod Security Standard admits (non-root, no privilege escalation,
all capabilities dropped, read-only root filesystem with a writable /tmp, requests and a memory
limit), ports by name, probes only where there is a port to check. Each manifest is validated with
the HAService model before it is handed out: a manifest that fails is a bug here, never output.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from haoperator.api import API_VERSION, KIND, HAService
from haoperator.api.behaviour import RestartPolicy
from haoperator.api.messages import describe
from haoperator.importers.backoff import (
    BACKOFF_CAP_SECONDS,
    BACKOFF_INITIAL_SECONDS,
    window_for_restarts,
)
from haoperator.importers.common import Names, Options, Report, Unreadable

ANNOTATION_SOURCE = "haoperator.dev/imported-from"
ANNOTATION_ADDRESSES = "haoperator.dev/imported-addresses"
PLACEHOLDER_REGISTRY = "replace-me.invalid"
"""`.invalid` can never resolve (RFC 2606): a pod with a placeholder image fails visibly."""
RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
CLAIM_SIZE = "1Gi"
SECRET_SUFFIX = "-secrets"
"""The Secret an HAService's secret values go in: `<name>-secrets`, created by the user."""


@dataclass
class Port:
    name: str
    container_port: int
    service_port: int | None = None
    """The port on the Service; None for a port only the pods or their peers use."""
    protocol: str = "TCP"
    peer: bool = False
    """Used between cluster members: on the peers Service when the category is Clustered."""


@dataclass
class Probe:
    """How the original checked the service: every `period` seconds, `timeout` each."""

    period: int
    timeout: int
    kind: Literal["tcp", "http", "https"] = "tcp"
    port: int | str | None = None
    """None: the container's first port."""
    path: str = "/"
    failure_threshold: int | None = None
    startup_seconds: int | None = None
    """How long a start may take: a startupProbe holds the liveness probe off that long."""
    origin: str = "monitor"


@dataclass
class Mount:
    volume: str
    path: str
    persistent: bool = False
    """Data that outlived restarts: a volume claim for Clustered, an emptyDir (with a warning)
    otherwise."""


@dataclass
class ContainerPlan:
    name: str
    ids: tuple[str, ...] = ()
    """Keys an image map may use for this container."""
    image: str | None = None
    image_origin: str = ""
    command: list[str] = field(default_factory=list)
    working_dir: str | None = None
    env: list[tuple[str, str]] = field(default_factory=list)
    secret_env: list[tuple[str, str]] = field(default_factory=list)
    """Variables read from the HAService's Secret `<name>-secrets` (key = the variable's name),
    with where the source had the value (`Environment REDIS_AUTH`, `ExecStart --requirepass`):
    rendered before `env`, so its values and the command can use them as `$(VAR)`."""
    ports: list[Port] = field(default_factory=list)
    probe: Probe | None = None
    mounts: list[Mount] = field(default_factory=list)


@dataclass
class Plan:
    source: str
    """`pacemaker clone httpd-clone`: where the HAService came from, for its annotation."""
    subject: str
    """How the report names it."""
    ids: tuple[str, ...]
    raw_name: str
    category: str
    containers: list[ContainerPlan]
    replicas: int | None = None
    addresses: list[str] = field(default_factory=list)
    session_affinity: str | None = None
    spread: str | None = None
    ordered: bool = False
    restart: dict[str, Any] | None = None
    active_passive: dict[str, Any] | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None


class Session:
    """One import: names handed out so far, the image map and categories used, the report."""

    def __init__(self, options: Options, report: Report) -> None:
        self.options = options
        self.report = report
        self.names = Names(report)
        self.haservices: list[dict[str, Any]] = []
        self._used: set[str] = set()

    def add(self, plan: Plan) -> None:
        _distinct(plan, self.report)
        name = self.names.allocate(plan.raw_name, plan.subject)
        category = self._category(plan, (*plan.ids, name))
        document = self._document(plan, name, category)
        try:
            HAService.model_validate(
                {**document, "metadata": {"namespace": "x", **document["metadata"]}}
            )
        except ValidationError as error:  # pragma: no cover - a bug, never a user error
            raise RuntimeError(
                f"imported {name} is not valid: {'; '.join(describe(error))}"
            ) from error
        self.haservices.append(document)

    def finish(self) -> list[dict[str, Any]]:
        """The HAServices; fails on a --category that named nothing, warns on unused images."""
        for key in self.options.categories:
            if key not in self._used:
                raise Unreadable(f"--category {key}", "names no imported service")
        for key in sorted(self.options.images):
            if f"image:{key}" not in self._used:
                self.report.warning(f"--image-map {key}", "matches no imported container")
        if self.haservices:
            self.report.note(
                "pod templates",
                "restricted Pod Security: non-root (set runAsUser when the image's user is not "
                "numeric), read-only root filesystem with /tmp writable; the requests (100m CPU, "
                "128Mi) and the 256Mi memory limit are placeholders to size",
            )
        return self.haservices

    def _category(self, plan: Plan, keys: Iterable[str]) -> str:
        for key in keys:
            wanted = self.options.categories.get(key)
            if wanted is not None:
                self._used.add(key)
                if wanted != plan.category:
                    self.report.note(
                        plan.subject, f"category {wanted} (--category), not {plan.category}"
                    )
                return wanted
        return plan.category

    def _image(self, plan: Plan, container: ContainerPlan, name: str) -> str:
        keys = [*container.ids, container.name]
        if len(plan.containers) == 1:
            keys += [*plan.ids, name]
        for key in keys:
            if key in self.options.images:
                self._used.add(f"image:{key}")
                return self.options.images[key]
        if container.image:
            self.report.note(
                plan.subject,
                f"image {container.image} taken from {container.image_origin}: check that the "
                "cluster can pull it",
            )
            return container.image
        placeholder = f"{PLACEHOLDER_REGISTRY}/{container.name}:latest"
        self.report.warning(
            plan.subject,
            f"no image known for container {container.name}: placeholder {placeholder}; "
            f"give one with --image-map ({keys[0]}: IMAGE)",
        )
        return placeholder

    def _document(self, plan: Plan, name: str, category: str) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name}
        if self.options.namespace:
            metadata["namespace"] = self.options.namespace
        annotations = {ANNOTATION_SOURCE: plan.source}
        if plan.addresses:
            annotations[ANNOTATION_ADDRESSES] = ",".join(plan.addresses)
        metadata["annotations"] = annotations
        spec: dict[str, Any] = {"category": category}
        replicas = plan.replicas
        if category == "ActivePassive" and (replicas or 0) < 2:
            if replicas is not None:
                self.report.note(
                    plan.subject, f"2 replicas, not {replicas}: one active, one standby"
                )
            replicas = 2
        if replicas is not None:
            spec["replicas"] = replicas
        spec["template"] = self._template(plan, name, category)
        service = self._service(plan, category, name)
        if service:
            spec["service"] = service
        if plan.spread:
            spec["placement"] = {"spread": plan.spread}
        if category == "Clustered":
            spec["clustered"] = self._clustered(plan)
        if category == "ActivePassive" and plan.active_passive:
            spec["activePassive"] = dict(plan.active_passive)
        elif plan.active_passive and category != plan.category:
            self.report.note(plan.subject, "activePassive settings left out with this category")
        restart = dict(plan.restart) if plan.restart else self._default_restart(plan)
        if restart:
            spec["recovery"] = {"restart": restart}
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}

    def _default_restart(self, plan: Plan) -> dict[str, Any] | None:
        """The HAService's default restart limit, written out with a window that can hold its
        restarts under the kubelet's back-off when the default window cannot (5 restarts take
        670 s, the default window is 600 s): a source without a limit of its own must not get
        one that never fires."""
        default = RestartPolicy()
        needed = window_for_restarts(default.max_restarts + 1)
        if needed <= default.window_seconds:
            return None
        self.report.note(
            plan.subject,
            f"no restart limit in the source: maxRestarts {default.max_restarts}, onLimit "
            f"{default.on_limit}, windowSeconds {needed}, not the default "
            f"{default.window_seconds}: the kubelet waits {BACKOFF_INITIAL_SECONDS} s before "
            f"restarting a crashed container, doubling up to {BACKOFF_CAP_SECONDS} s, so "
            f"{default.max_restarts + 1} restarts take "
            f"{needed} s; the default window could never see them",
        )
        return {
            "maxRestarts": default.max_restarts,
            "windowSeconds": needed,
            "onLimit": default.on_limit,
        }

    def _service(self, plan: Plan, category: str, name: str) -> dict[str, Any] | None:
        ports = [port for c in plan.containers for port in c.ports if port.service_port is not None]
        if category == "QueueWorker":
            dropped = [f"port {p.service_port}" for p in ports] + list(plan.addresses)
            if dropped:
                self.report.warning(
                    plan.subject, f"QueueWorker takes no Service: {', '.join(dropped)} left out"
                )
            return None
        if not ports:
            if plan.addresses:
                self.report.warning(
                    plan.subject,
                    f"address {', '.join(plan.addresses)} but no known port: add spec.service "
                    "with the ports clients use",
                )
            return None
        service: dict[str, Any] = {"ports": [_service_port(port) for port in ports]}
        if plan.session_affinity:
            service["sessionAffinity"] = plan.session_affinity
        if plan.addresses:
            self.report.note(
                plan.subject,
                f"address {', '.join(plan.addresses)} becomes the cluster IP of Service {name}; "
                "to keep the address, use type LoadBalancer and your load balancer's address "
                "annotation",
            )
        return service

    def _clustered(self, plan: Plan) -> dict[str, Any]:
        clustered: dict[str, Any] = {"quorum": "Majority"}
        if plan.ordered:
            clustered["podManagementPolicy"] = "OrderedReady"
        peers = [port for c in plan.containers for port in c.ports if port.peer]
        if peers:
            clustered["peerPorts"] = [
                {"name": p.name, "port": p.container_port}
                | ({"protocol": p.protocol} if p.protocol != "TCP" else {})
                for p in peers
            ]
        claims = [mount for c in plan.containers for mount in c.mounts if mount.persistent]
        if claims:
            clustered["volumeClaimTemplates"] = [
                {
                    "metadata": {"name": mount.volume},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": CLAIM_SIZE}},
                    },
                }
                for mount in claims
            ]
            self.report.warning(
                plan.subject,
                f"volume claims {', '.join(m.volume for m in claims)} ask for {CLAIM_SIZE} "
                "each: size them (and pick a storage class) before the first apply",
            )
        return clustered

    def _template(self, plan: Plan, name: str, category: str) -> dict[str, Any]:
        pod_security: dict[str, Any] = {"runAsNonRoot": True}
        if plan.run_as_user is not None:
            pod_security["runAsUser"] = plan.run_as_user
        if plan.run_as_group is not None:
            pod_security["runAsGroup"] = plan.run_as_group
        pod_security["seccompProfile"] = {"type": "RuntimeDefault"}
        volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
        containers = []
        for container in plan.containers:
            containers.append(self._container(plan, container, name))
            for mount in container.mounts:
                if mount.persistent and category == "Clustered":
                    continue
                if mount.persistent:
                    self.report.warning(
                        plan.subject,
                        f"{mount.path} was kept on the host; it is an emptyDir now and lost with "
                        "the pod: use a PersistentVolumeClaim if it must survive",
                    )
                if all(volume["name"] != mount.volume for volume in volumes):
                    volumes.append({"name": mount.volume, "emptyDir": {}})
        return {
            "spec": {"securityContext": pod_security, "containers": containers, "volumes": volumes}
        }

    def _container(self, plan: Plan, container: ContainerPlan, name: str) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": container.name,
            "image": self._image(plan, container, name),
        }
        if container.command:
            spec["command"] = list(container.command)
        if container.working_dir:
            spec["workingDir"] = container.working_dir
        env = self._secret_env(plan, container, name) + [
            {"name": key, "value": value} for key, value in container.env
        ]
        if env:
            spec["env"] = env
        if container.ports:
            spec["ports"] = [
                {"name": p.name, "containerPort": p.container_port}
                | ({"protocol": p.protocol} if p.protocol != "TCP" else {})
                for p in container.ports
            ]
        low = [str(p.container_port) for p in container.ports if p.container_port < 1024]
        if low:
            self.report.note(
                plan.subject,
                f"port {', '.join(low)} of {container.name} is below 1024: as non-root it needs "
                "capability NET_BIND_SERVICE (restricted allows adding it), or another port",
            )
        spec.update(self._probes(plan, container))
        spec["resources"] = {key: dict(value) for key, value in RESOURCES.items()}
        spec["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        spec["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}] + [
            {"name": mount.volume, "mountPath": mount.path} for mount in container.mounts
        ]
        return spec

    def _secret_env(self, plan: Plan, container: ContainerPlan, name: str) -> list[dict[str, Any]]:
        """env entries from the Secret `<name>-secrets`, and the warning to create it: the values
        were left in the source, only the variables' names and origins are said."""
        if not container.secret_env:
            return []
        secret = f"{name}{SECRET_SUFFIX}"
        keys = list(dict.fromkeys(variable for variable, _ in container.secret_env))
        origins = list(dict.fromkeys(origin for _, origin in container.secret_env))
        self.report.warning(
            plan.subject,
            f"create Secret {secret} with key{'s' if len(keys) > 1 else ''} {', '.join(keys)} "
            f"before applying: {', '.join(origins)} held secrets, not copied; container "
            f"{container.name} reads them with env valueFrom.secretKeyRef",
        )
        return [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for key in keys
        ]

    def _probes(self, plan: Plan, container: ContainerPlan) -> dict[str, Any]:
        probe = container.probe
        if probe is None:
            return {}
        port = probe.port
        if port is None:
            tcp = [p for p in container.ports if p.protocol == "TCP"]
            if not tcp:
                self.report.note(
                    plan.subject,
                    f"{probe.origin} every {probe.period}s has no port to check: no probe; "
                    f"add one to container {container.name} that runs the same check",
                )
                return {}
            port = tcp[0].name
        if probe.kind == "tcp":
            action: dict[str, Any] = {"tcpSocket": {"port": port}}
        else:
            action = {"httpGet": {"path": probe.path, "port": port}}
            if probe.kind == "https":
                action["httpGet"]["scheme"] = "HTTPS"
        timing = {"periodSeconds": probe.period, "timeoutSeconds": probe.timeout}
        if probe.failure_threshold is not None:
            timing["failureThreshold"] = probe.failure_threshold
        probes = {"readinessProbe": copy.deepcopy(action) | timing}
        probes["livenessProbe"] = copy.deepcopy(action) | timing
        if probe.startup_seconds is not None and probe.startup_seconds > probe.period:
            probes["startupProbe"] = copy.deepcopy(action) | {
                "periodSeconds": probe.period,
                "failureThreshold": math.ceil(probe.startup_seconds / probe.period),
            }
        return probes


RESERVED = {"ha-elector", "ha-elector-token", "tmp"}
"""Names the operator (the elector sidecar and its token) or this module (/tmp) already use."""


def declare_once(subject: str, containers: list[ContainerPlan], report: Report) -> None:
    """Declare each port of a pod once: a port (number and protocol) that an earlier container
    already declares is dropped from the later ones, its Service port going to the first when
    that has none (and is no peer port, which a Service port may not share). The containers of a
    pod share one network, where only one of them can listen on a port (the API server warns of
    a duplicate port definition). Said once per port, naming the containers it was dropped from.
    Running it again changes nothing."""
    first: dict[tuple[int, str], tuple[ContainerPlan, Port]] = {}
    dropped: dict[tuple[int, str], list[str]] = {}
    for container in containers:
        kept: list[Port] = []
        for port in container.ports:
            key = (port.container_port, port.protocol)
            owner = first.setdefault(key, (container, port))
            if owner[0] is container:
                kept.append(port)
                continue
            declared = owner[1]
            if declared.service_port is None and not declared.peer:
                declared.service_port = port.service_port
            if container.name not in dropped.setdefault(key, []):
                dropped[key].append(container.name)
        container.ports = kept
    for (number, protocol), names in dropped.items():
        holder, declared = first[(number, protocol)]
        shown = f"{number}/{protocol}" if protocol != "TCP" else str(number)
        others = ", ".join(names)
        service = " (and once on the Service)" if declared.service_port is not None else ""
        report.warning(
            subject,
            f"port {shown} of container{'s' if len(names) > 1 else ''} {others} is already "
            f"declared by container {holder.name}: the containers of a pod share one network, "
            "where only one of them can listen on a port; declared once, in "
            f"{holder.name}{service}; if {others} "
            f"{'listens' if len(names) == 1 else 'listen'} on another port, declare that one",
        )


def _distinct(plan: Plan, report: Report) -> None:
    """Make the names a pod needs unique — containers, ports, volumes —, declare each port once
    (`declare_once`) and drop a second Service port on the same number: two sanitised ids can
    meet, and the API server refuses doubles."""
    declare_once(plan.subject, plan.containers, report)
    containers: set[str] = set()
    ports: set[str] = set()
    volumes: dict[str, str] = {}
    exposed: set[tuple[int, str]] = set()
    for container in plan.containers:
        container.name = _free(container.name, containers, 63)
        for port in container.ports:
            port.name = _free(port.name, ports, 15)
            key = (port.service_port or 0, port.protocol)
            if port.service_port is not None and key in exposed:
                report.warning(
                    plan.subject,
                    f"port {port.service_port} of {container.name} is already on the Service, "
                    f"for another container port: only the first one is; {container.name} "
                    f"still declares its container port {port.container_port}",
                )
                port.service_port = None
            exposed.add(key)
        for mount in container.mounts:
            if mount.path not in volumes:
                volumes[mount.path] = _free(mount.volume, set(volumes.values()), 63)
            mount.volume = volumes[mount.path]


def _free(name: str, taken: set[str], limit: int) -> str:
    """`name`, or `name-2`, `name-3`... if taken (or reserved); recorded as taken."""
    candidate, counter = name, 2
    while candidate in taken or candidate in RESERVED:
        suffix = f"-{counter}"
        candidate = f"{name[: limit - len(suffix)].rstrip('-')}{suffix}"
        counter += 1
    taken.add(candidate)
    return candidate


def _service_port(port: Port) -> dict[str, Any]:
    assert port.service_port is not None
    service: dict[str, Any] = {
        "name": port.name,
        "port": port.service_port,
        "targetPort": port.name,
    }
    if port.protocol != "TCP":
        service["protocol"] = port.protocol
    return service
