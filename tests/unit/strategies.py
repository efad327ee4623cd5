"""Hypothesis strategies for valid HAServices, as documents on the wire.

They build valid input by construction (replicas that fit the category, a quorum within the
replicas, timings that nest, ports that do not clash, target ports that name container ports)
rather than filtering, so examples stay cheap.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

CATEGORIES = ("LoadBalanced", "Clustered", "QueueWorker", "ActivePassive")
IMAGES = (
    "docker.io/library/haproxy:2.9",
    "docker.io/library/mariadb:11.4",
    "quay.io/openstack.kolla/nova-api:2024.1-ubuntu-jammy",
)
TOPOLOGY_KEYS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone", "rack")
NAMED_PORTS = ("http", "api")

dns_1035_names = st.from_regex(r"[a-z]([-a-z0-9]{0,50}[a-z0-9])?", fullmatch=True)
dns_labels = st.from_regex(r"[a-z]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True)
port_names = st.from_regex(r"[a-z]{1,6}", fullmatch=True)
label_keys = st.one_of(
    st.from_regex(r"[a-z]([a-z0-9]{0,8})", fullmatch=True),
    st.sampled_from(["example.com/team", "app.kubernetes.io/part-of", "haoperator.dev/role"]),
)
label_values = st.from_regex(r"([a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?)?", fullmatch=True)


container_names = dns_labels.filter(lambda name: name != "ha-elector")
cpu_quantities = st.one_of(st.integers(1, 64), st.sampled_from([0.5, "250m", "0.5", "1e0", "2"]))


def port_numbers(count: int, avoid: frozenset[int]) -> st.SearchStrategy[list[int]]:
    """`count` distinct port numbers, none in `avoid`."""
    free = st.integers(1, 65535).filter(lambda n: n not in avoid)
    return st.lists(free, min_size=count, max_size=count, unique=True)


@st.composite
def templates(draw: st.DrawFn, avoid_ports: frozenset[int] = frozenset()) -> dict[str, Any]:
    """A pod template whose containers listen on ports named `http` and `api` or on none; no
    port in `avoid_ports` (the elector's)."""
    names = draw(st.lists(container_names, min_size=1, max_size=3, unique=True))
    containers = [{"name": name, "image": draw(st.sampled_from(IMAGES))} for name in names]
    port_names = draw(st.lists(st.sampled_from(NAMED_PORTS), max_size=2, unique=True))
    numbers = draw(port_numbers(len(port_names), avoid_ports))
    for port_name, number in zip(port_names, numbers, strict=True):
        owner = draw(st.sampled_from(containers))
        owner.setdefault("ports", []).append({"name": port_name, "containerPort": number})
    if draw(st.booleans()):
        containers[0]["resources"] = {
            "requests": {"cpu": draw(cpu_quantities), "memory": "128Mi"},
            "limits": {"memory": "1Gi"},
        }
    spec: dict[str, Any] = {"containers": containers}
    if draw(st.booleans()):
        spec["serviceAccountName"] = draw(dns_labels)
    template: dict[str, Any] = {"spec": spec}
    if draw(st.booleans()):
        template["metadata"] = {
            "labels": draw(st.dictionaries(label_keys, label_values, max_size=3)),
            "annotations": draw(st.dictionaries(label_keys, st.text(max_size=10), max_size=2)),
        }
    return template


@st.composite
def services(
    draw: st.DrawFn,
    avoid_ports: frozenset[int] = frozenset(),
    target_names: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A Service whose named target ports are among `target_names` (the template's)."""
    names = draw(st.lists(port_names, min_size=1, max_size=3, unique=True))
    numbers = draw(port_numbers(len(names), avoid_ports))
    ports = []
    for name, number in zip(names, numbers, strict=True):
        port: dict[str, Any] = {"name": name, "port": number}
        targets = [st.none(), st.integers(1, 65535)]
        if target_names:
            targets.append(st.sampled_from(target_names))
        target = draw(st.one_of(*targets))
        if target is not None:
            port["targetPort"] = target
        ports.append(port)
    service: dict[str, Any] = {"ports": ports}
    if draw(st.booleans()):
        service["type"] = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]))
        service["sessionAffinity"] = draw(st.sampled_from(["None", "ClientIP"]))
        service["annotations"] = draw(st.dictionaries(label_keys, label_values, max_size=2))
    return service


budgets = st.one_of(st.integers(1, 10), st.integers(1, 100).map(lambda n: f"{n}%"))


@st.composite
def clustered(draw: st.DrawFn, replicas: int) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "quorum": draw(st.one_of(st.sampled_from(["Majority", "All"]), st.integers(1, replicas))),
        "podManagementPolicy": draw(st.sampled_from(["Parallel", "OrderedReady"])),
    }
    peers = draw(st.lists(st.integers(4000, 4999), max_size=3, unique=True))
    settings["peerPorts"] = [
        {"name": f"peer{index}", "port": port} for index, port in enumerate(peers)
    ]
    if draw(st.booleans()):
        settings["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ]
    return settings


@st.composite
def timings(draw: st.DrawFn) -> dict[str, Any]:
    lease = draw(st.integers(3, 60))
    renew = draw(st.integers(2, lease - 1))
    retry = draw(st.integers(1, renew - 1))
    return {
        "leaseDurationSeconds": lease,
        "renewDeadlineSeconds": renew,
        "retryPeriodSeconds": retry,
        "preempt": draw(st.booleans()),
        "electorPort": draw(st.integers(1024, 65535)),
    }


@st.composite
def haservices(draw: st.DrawFn) -> dict[str, Any]:
    """A valid HAService document of any category."""
    category = draw(st.sampled_from(CATEGORIES))
    minimum = 2 if category == "ActivePassive" else 1
    replicas = draw(st.one_of(st.none(), st.integers(minimum, 7)))
    effective = replicas if replicas is not None else (3 if category == "Clustered" else 2)
    spec: dict[str, Any] = {"category": category}
    elector_port = 8099
    if category == "ActivePassive" and draw(st.booleans()):
        spec["activePassive"] = draw(timings())
        elector_port = spec["activePassive"]["electorPort"]
    spec["template"] = draw(templates(frozenset({elector_port})))
    named = tuple(
        port["name"]
        for container in spec["template"]["spec"]["containers"]
        for port in container.get("ports", [])
    )
    if replicas is not None:
        spec["replicas"] = replicas
    if category == "Clustered":
        spec["clustered"] = draw(clustered(effective))
    if category != "QueueWorker" and draw(st.booleans()):
        peer_ports = frozenset(p["port"] for p in spec.get("clustered", {}).get("peerPorts", []))
        spec["service"] = draw(services(peer_ports, named))
        if category == "Clustered":
            spec["service"]["ports"] = [
                {**port, "name": f"svc{port['name']}"} for port in spec["service"]["ports"]
            ]
    if draw(st.booleans()):
        spec["placement"] = {
            "spread": draw(st.sampled_from(["Required", "Preferred", "None"])),
            "topologyKey": draw(st.sampled_from(TOPOLOGY_KEYS)),
        }
    if category != "Clustered" and draw(st.booleans()):
        spec["disruption"] = {"maxUnavailable": draw(budgets)}
    metadata: dict[str, Any] = {"name": draw(dns_1035_names), "namespace": draw(dns_labels)}
    if draw(st.booleans()):
        metadata["uid"] = str(draw(st.uuids()))
    return {
        "apiVersion": "haoperator.dev/v1alpha1",
        "kind": "HAService",
        "metadata": metadata,
        "spec": spec,
    }
