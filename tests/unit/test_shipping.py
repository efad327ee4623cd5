"""What we ship, checked without a cluster or a Docker engine: the Dockerfile's rules, the
manifests (least-privilege RBAC against what the code does, a restricted operator pod, one image
reference), the kind configuration, the Make targets, and the quickstart sample.

These are static checks. The image itself is built without a registry, and run under the
manifests' securityContext, by tests/realnode/test_image.py (testenv/image); the RBAC and Pod
Security claims are proven on a real API server by tests/integration/test_rbac.py and
test_pod_security.py."""

from __future__ import annotations

import argparse
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from haoperator.api import HAService
from haoperator.cli import build_parser
from haoperator.controller import handlers
from haoperator.controller.kube import RESOURCES
from haoperator.core import render
from haoperator.core.render import sidecar
from haoperator.core.vocabulary import DEFAULT_IMAGE
from testenv.harness.cluster import REPO
from tests.unit import pod_security
from tests.unit.kubernetes_schemas import assert_valid

MANIFESTS = REPO / "manifests"
QUICKSTART = MANIFESTS / "samples" / "quickstart"
KUSTOMIZE_FILES = {"kustomization.yaml", "kustomizeconfig.yaml"}
Rule = dict[str, list[str]]


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest(kind: str) -> dict[str, Any]:
    found = [
        doc
        for path in sorted(MANIFESTS.glob("*.yaml"))
        if path.name not in KUSTOMIZE_FILES
        for doc in documents(path)
        if doc["kind"] == kind
    ]
    assert len(found) == 1, f"{len(found)} {kind}s in manifests/"
    return found[0]


# -- the Dockerfile ------------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    joined: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        joined.append(current + stripped)
        current = ""
    pairs = []
    for line in joined:
        word, _, rest = line.partition(" ")
        pairs.append((word.upper(), rest.strip()))
    return pairs


DOCKERFILE = instructions((REPO / "Dockerfile").read_text())


def stages(steps: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The build stages, each from its FROM on; the ARGs before the first FROM are not in any."""
    found: list[list[tuple[str, str]]] = []
    for step in steps:
        if step[0] == "FROM":
            found.append([])
        elif not found:
            assert step[0] == "ARG", "the Dockerfile must start with FROM, or ARGs for FROM"
            continue
        found[-1].append(step)
    return found


def base_arguments(steps: list[tuple[str, str]]) -> dict[str, str]:
    """The build arguments FROM lines may use (those before the first FROM), with defaults."""
    found = {}
    for word, args in steps:
        if word == "FROM":
            break
        name, equals, default = args.partition("=")
        assert equals, f"ARG {name} has no default: a plain build must not need it"
        found[name] = default
    return found


def default_base(from_args: str) -> str:
    """What a FROM line names when no build argument is given: ${NAME} is NAME's default."""
    defaults = base_arguments(DOCKERFILE)
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults[m[1] or m[2]], from_args)


def base_problems(image: str) -> list[str]:
    """What is wrong with a FROM image reference: no tag or digest, or `latest`."""
    name = image.split()[0]
    if "@sha256:" in name:
        return []
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    if not tag:
        return [f"{name}: no tag"]
    if tag == "latest":
        return [f"{name}: the latest tag"]
    return []


def test_the_image_is_built_in_two_stages() -> None:
    build, runtime = stages(DOCKERFILE)  # exactly two
    assert " AS " in build[0][1].upper()
    build_name = build[0][1].split()[-1]
    copies = [args for word, args in runtime if word == "COPY"]
    assert copies == [f"--from={build_name} /venv /venv"]


def test_every_base_image_names_a_version() -> None:
    bases = [default_base(args) for word, args in DOCKERFILE if word == "FROM"]
    assert bases
    for base in bases:
        assert base_problems(base) == []


def test_each_base_is_a_build_argument_testenv_sets() -> None:
    """A plain build pulls the public bases (the arguments' defaults); testenv/image passes
    its own, made from Debian packages, by the same names."""
    build, runtime = stages(DOCKERFILE)
    assert build[0][1] == "${BUILD_BASE} AS build"
    assert runtime[0][1] == "${RUNTIME_BASE}"
    assert set(base_arguments(DOCKERFILE)) == {"BUILD_BASE", "RUNTIME_BASE"}
    script = (REPO / "testenv" / "image").read_text()
    for name in base_arguments(DOCKERFILE):
        assert f'--build-arg {name}="${name}"' in script


def test_the_build_stage_installs_python3_venv_only_where_the_base_lacks_it() -> None:
    build = stages(DOCKERFILE)[0]
    apt = [args for word, args in build if word == "RUN" and "apt-get install" in args]
    assert len(apt) == 1
    command = " ".join(apt[0].split())
    assert command.startswith("dpkg --status python3-venv >/dev/null 2>&1 || { apt-get update && ")
    assert "apt-get install --yes --no-install-recommends python3-venv" in command


def test_the_base_check_catches_floating_references() -> None:
    assert base_problems("python") == ["python: no tag"]
    assert base_problems("python:latest AS build") == ["python:latest: the latest tag"]
    assert base_problems("localhost:5000/python") == ["localhost:5000/python: no tag"]
    assert base_problems("python@sha256:" + "0" * 64) == []


def test_dependencies_come_only_from_the_lock_file_with_hashes() -> None:
    installs = [args for word, args in DOCKERFILE if word == "RUN" and "pip install" in args]
    locked = [i for i in installs if "--require-hashes" in i]
    assert locked
    assert all(re.search(r"-r \S*requirements/runtime\.lock\b", i) for i in locked)
    # Anything else pip installs is the project itself, without pulling dependencies.
    assert all("--no-deps" in i for i in installs if i not in locked)
    assert any("--no-deps" in i for i in installs)


def test_the_runtime_image_has_no_pip_and_no_shell() -> None:
    build, runtime = stages(DOCKERFILE)
    assert any(w == "RUN" and "pip uninstall --yes pip" in a for w, a in build)
    # Distroless: no shell, so no RUN (which would need one) in the runtime stage.
    assert default_base(runtime[0][1]).startswith("gcr.io/distroless/")
    assert [w for w, _ in runtime if w in ("RUN", "ADD")] == []


def test_both_stages_use_the_same_python() -> None:
    """The venv is copied, not rebuilt: Debian 12's Python 3.11 in both stages."""
    build, runtime = stages(DOCKERFILE)
    assert default_base(build[0][1]).startswith("docker.io/library/debian:12-")
    assert default_base(runtime[0][1]).startswith("gcr.io/distroless/python3-debian12:")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"


def dockerfile_user() -> tuple[int, int]:
    users = [args for word, args in stages(DOCKERFILE)[-1] if word == "USER"]
    assert len(users) == 1
    match = re.fullmatch(r"(\d+):(\d+)", users[0])
    assert match, f"USER {users[0]} is not numeric uid:gid"
    return int(match[1]), int(match[2])


def test_the_image_runs_as_the_sidecars_numeric_non_root_user() -> None:
    uid, gid = dockerfile_user()
    assert uid != 0
    assert gid != 0
    assert uid == sidecar.ELECTOR_USER_ID


def test_the_entrypoint_is_the_console_script() -> None:
    runtime = dict(stages(DOCKERFILE)[-1])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(runtime["ENTRYPOINT"]) == ["haoperator"]
    assert "haoperator" in scripts
    assert json.loads(runtime["CMD"]) == ["run", "--all-namespaces"]
    build_parser().parse_args(["run", "--all-namespaces"])  # the image's default command


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore  # everything else (.venv, .testenv, .git, tests) stays out
    sources = [
        part
        for word, args in DOCKERFILE
        if word == "COPY" and not args.startswith("--from")
        for part in args.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert source.rstrip("/") in included, f"{source} is excluded by .dockerignore"
        assert (REPO / source).exists(), source


# -- the manifests -------------------------------------------------------------------------------


def test_the_kustomization_installs_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    files = sorted(p.name for p in MANIFESTS.glob("*.yaml") if p.name not in KUSTOMIZE_FILES)
    assert sorted(r for r in kustomization["resources"] if r != "../crds") == files
    assert "../crds" in kustomization["resources"]
    crds = yaml.safe_load((REPO / "crds" / "kustomization.yaml").read_text())
    assert crds["resources"] == ["haservice.yaml"]


@pytest.mark.parametrize(
    "path",
    sorted(p for p in MANIFESTS.glob("*.yaml") if p.name not in KUSTOMIZE_FILES),
    ids=lambda p: p.stem,
)
def test_the_manifest_is_valid_kubernetes(path: Path) -> None:
    for document in documents(path):
        assert_valid(document)


def test_the_image_is_named_once_and_is_the_sidecars_default() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert f"{image['newName']}:{image['newTag']}" == DEFAULT_IMAGE
    container = manifest("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image["name"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HAOPERATOR_ELECTOR_IMAGE"] == image["name"]  # rewritten with the image
    config = yaml.safe_load((MANIFESTS / "kustomizeconfig.yaml").read_text())
    assert {"path": "spec/template/spec/containers[]/env[]/value", "kind": "Deployment"} in config[
        "images"
    ]
    assert kustomization["configurations"] == ["kustomizeconfig.yaml"]


def test_the_namespace_enforces_the_restricted_standard() -> None:
    labels = manifest("Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert (
        manifest("Deployment")["metadata"]["namespace"] == manifest("Namespace")["metadata"]["name"]
    )


def operator_pod() -> dict[str, Any]:
    spec: dict[str, Any] = manifest("Deployment")["spec"]["template"]["spec"]
    return spec


def test_the_operator_pod_meets_the_restricted_standard() -> None:
    assert pod_security.violations(operator_pod()) == []
    (container,) = operator_pod()["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert operator_pod()["securityContext"]["runAsUser"] == dockerfile_user()[0]
    assert operator_pod()["securityContext"]["runAsGroup"] == dockerfile_user()[1]


def test_the_operator_pod_has_resources_a_probe_and_its_ports() -> None:
    (container,) = operator_pod()["containers"]
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "healthz": int(env["HAOPERATOR_LIVENESS_PORT"]),
        "metrics": int(env["HAOPERATOR_METRICS_PORT"]),
    }
    assert ports == {"healthz": 8080, "metrics": 9090}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert operator_pod()["serviceAccountName"] == manifest("ServiceAccount")["metadata"]["name"]


def test_the_operator_reads_every_setting_the_deployment_gives_it() -> None:
    """HAOPERATOR_<FLAG> variables name real `haoperator run` flags; the args parse."""
    (container,) = operator_pod()["containers"]
    parser = build_parser()
    parser.parse_args(container["args"])
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    run = commands.choices["run"]
    flags = {option for action in run._actions for option in action.option_strings}
    for variable in (e["name"] for e in container["env"]):
        if variable.startswith("HAOPERATOR_"):
            flag = "--" + variable.removeprefix("HAOPERATOR_").lower().replace("_", "-")
            assert flag in flags, variable


def test_one_operator_acts_at_a_time() -> None:
    """Two replicas, leader-elected (only the Lease holder reconciles), spread softly over nodes
    (a single node still runs both), a warm standby kept through a rollout, and a budget that
    never blocks a drain (every replica is Ready while it runs, leader or not)."""
    deployment = manifest("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    (container,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["HAOPERATOR_LEADER_ELECT"]["value"] == "true"
    assert env["HAOPERATOR_LEADER_ELECT_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}
    }
    spread = spec["template"]["spec"]["topologySpreadConstraints"]
    assert {c["whenUnsatisfiable"] for c in spread} == {"ScheduleAnyway"}
    assert "kubernetes.io/hostname" in {c["topologyKey"] for c in spread}
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"  # not leader-only
    budget = manifest("PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["minAvailable"] < spec["replicas"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= (
        spec["template"]["metadata"]["labels"].items()
    )
    assert budget["metadata"]["namespace"] == deployment["metadata"]["namespace"]


def test_the_lease_role_grants_the_operators_own_lease_only() -> None:
    role, binding = manifest("Role"), manifest("RoleBinding")
    assert rule_problems(role["rules"]) == []
    assert role["metadata"]["namespace"] == manifest("Deployment")["metadata"]["namespace"]
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["haoperator"],
            "verbs": ["get", "watch", "update"],
        },
    ]
    account = manifest("ServiceAccount")["metadata"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


def test_the_metrics_service_reaches_the_operators_metrics_port() -> None:
    service = manifest("Service")
    pod_labels = manifest("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_the_binding_grants_the_role_to_the_operators_account() -> None:
    binding = manifest("ClusterRoleBinding")
    account = manifest("ServiceAccount")["metadata"]
    assert binding["roleRef"]["name"] == manifest("ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


# -- least privilege -----------------------------------------------------------------------------

FORBIDDEN_RESOURCES = {"secrets", "configmaps", "serviceaccounts/token", "pods/exec"}
FORBIDDEN_VERBS = {"escalate", "bind", "impersonate", "deletecollection"}


def rule_problems(rules: list[Rule]) -> list[str]:
    """What makes these rules more than least privilege; empty when nothing does."""
    found = []
    for index, rule in enumerate(rules):
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            if any("*" in value for value in rule.get(field, [])):
                found.append(f"rule {index}: a wildcard in {field}")
        if "nonResourceURLs" in rule:
            found.append(f"rule {index}: nonResourceURLs")
        for resource in set(rule.get("resources", [])) & FORBIDDEN_RESOURCES:
            found.append(f"rule {index}: {resource}")
        for verb in set(rule.get("verbs", [])) & FORBIDDEN_VERBS:
            found.append(f"rule {index}: the {verb} verb")
    return found


def cluster_rules() -> list[Rule]:
    rules: list[Rule] = manifest("ClusterRole")["rules"]
    return rules


def allowed(rules: list[Rule]) -> dict[tuple[str, str], set[str]]:
    """(group, resource) -> verbs."""
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def test_the_cluster_role_is_least_privilege() -> None:
    assert rule_problems(cluster_rules()) == []


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}, "a wildcard in apiGroups"),
        ({"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}, "a wildcard in resources"),
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}, "a wildcard in verbs"),
        ({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}, "secrets"),
        ({"apiGroups": [""], "resources": ["pods/*"], "verbs": ["get"]}, "a wildcard"),
        ({"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
          "verbs": ["escalate"]}, "the escalate verb"),
    ],
)  # fmt: skip
def test_the_least_privilege_check_catches(rule: Rule, problem: str) -> None:
    assert any(problem in found for found in rule_problems([rule]))


def test_every_rule_says_why() -> None:
    """Each rule of the ClusterRole follows a comment."""
    lines = (MANIFESTS / "cluster-role.yaml").read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("- apiGroups:")]
    assert len(starts) == len(cluster_rules())
    for i in starts:
        assert lines[i - 1].startswith("# "), f"no comment above line {i + 1}: {lines[i]}"


def test_the_role_lets_kopf_watch_what_the_operator_watches() -> None:
    grants = allowed(cluster_rules())
    watched = [
        ("haoperator.dev", "haservices"),
        ("", "pods"),
        ("", "nodes"),
        ("", "events"),
        *((group, plural) for group, _, plural in handlers.CHILD_RESOURCES),
    ]
    for key in watched:
        assert {"list", "watch"} <= grants.get(key, set()), key


def _children(category: str, **spec: Any) -> list[dict[str, Any]]:
    body = {
        "apiVersion": "haoperator.dev/v1alpha1",
        "kind": "HAService",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "category": category,
            "template": {"spec": {"containers": [{"name": "app", "image": "example:1"}]}},
            **spec,
        },
    }
    return render.desired(HAService.model_validate(body))


def test_the_role_lets_the_operator_apply_and_prune_every_child() -> None:
    ports = {"ports": [{"name": "http", "port": 80}]}
    kinds = {
        child["kind"]
        for category, spec in [
            ("LoadBalanced", {"service": ports}),
            ("Clustered", {"service": ports}),
            ("QueueWorker", {}),
            ("ActivePassive", {"service": ports}),
        ]
        for child in _children(category, **spec)
    }
    assert kinds >= {"Deployment", "StatefulSet", "Service", "PodDisruptionBudget", "Role"}
    grants = allowed(cluster_rules())
    for kind in kinds:
        resource = RESOURCES[kind]
        assert {"get", "create", "patch", "delete"} <= grants[(resource.group, resource.plural)]
    assert grants[("haoperator.dev", "haservices/status")] == {"patch"}
    assert {"create", "patch"} <= grants[("", "events")]


def test_the_role_holds_what_the_elector_role_grants() -> None:
    """Creating a Role passes the API server's escalation check only if its creator holds
    every permission in it; the operator has no `escalate` verb."""
    grants = allowed(cluster_rules())
    haservice = HAService.model_validate(
        {
            "apiVersion": "haoperator.dev/v1alpha1",
            "kind": "HAService",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "category": "ActivePassive",
                "template": {"spec": {"containers": [{"name": "app", "image": "example:1"}]}},
            },
        }
    )
    for key, verbs in allowed(sidecar.role(haservice)["rules"]).items():
        assert verbs <= grants.get(key, set()), key


def test_the_role_grants_only_resources_the_code_names() -> None:
    known = {(r.group, r.plural) for r in RESOURCES.values()} | {
        ("haoperator.dev", "haservices/status")
    }
    assert set(allowed(cluster_rules())) <= known


# -- kind, make ----------------------------------------------------------------------------------


def test_the_kind_cluster_has_a_control_plane_and_a_worker_per_zone() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker", "worker"]
    zones = [n.get("labels", {}).get("topology.kubernetes.io/zone") for n in config["nodes"][1:]]
    assert zones == ["a", "b", "c"]


def make_recipe(target: str) -> str:
    """The commands of a Makefile target, continuation lines joined."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().removesuffix("\\"))
    return "\n".join(recipe)


def make_variable(name: str) -> str:
    text = (REPO / "Makefile").read_text()
    return text.split(f"\n{name} = ", 1)[1].splitlines()[0]


def test_kind_e2e_stops_first_without_docker() -> None:
    assert make_recipe("kind-e2e").splitlines()[0].startswith("@docker info")
    assert make_variable("NO_DOCKER").startswith("needs a Docker engine; none is running here")


def test_make_image_uses_docker_else_buildah_else_podman() -> None:
    """Where no Docker engine runs, the same Dockerfile is built daemonless; with none of the
    three, it says so and stops."""
    recipe = make_recipe("image")
    order = [
        "docker info",
        "docker build --tag $(IMAGE) .",
        "command -v buildah",
        "buildah bud --layers --tag $(IMAGE) .",
        "command -v podman",
        "podman build --layers --tag $(IMAGE) .",
        'echo "make image $(NO_BUILDER)"',
    ]
    positions = [recipe.find(part) for part in order]
    assert -1 not in positions, recipe
    assert positions == sorted(positions)
    assert make_variable("NO_BUILDER").startswith("needs a Docker engine, buildah or podman")


def test_make_image_local_builds_without_a_registry() -> None:
    assert make_recipe("image-local") == "testenv/image build"


# -- the quickstart sample -----------------------------------------------------------------------


def quickstart_haservice() -> dict[str, Any]:
    (haservice,) = [d for d in documents(QUICKSTART / "hello.yaml") if d["kind"] == "HAService"]
    return haservice


def test_the_quickstart_lists_its_files_and_enforces_restricted() -> None:
    kustomization = yaml.safe_load((QUICKSTART / "kustomization.yaml").read_text())
    files = sorted(p.name for p in QUICKSTART.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files
    (namespace,) = documents(QUICKSTART / "namespace.yaml")
    assert namespace["metadata"]["name"] == kustomization["namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_quickstart_is_an_active_passive_service_with_restricted_pods() -> None:
    body = {**quickstart_haservice()}
    body["metadata"] = {**body["metadata"], "namespace": "haoperator-demo"}
    haservice = HAService.model_validate(body)
    assert haservice.spec.category == "ActivePassive"
    children = render.desired(haservice)
    for child in children:
        assert_valid(child)
    (workload,) = [c for c in children if c["kind"] == "Deployment"]
    pod = workload["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == [sidecar.CONTAINER_NAME]
    assert pod_security.violations(pod) == []


def test_the_quickstart_mounts_what_its_read_only_server_writes_and_reads() -> None:
    documents_ = documents(QUICKSTART / "hello.yaml")
    config_maps = {d["metadata"]["name"] for d in documents_ if d["kind"] == "ConfigMap"}
    pod = quickstart_haservice()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert re.fullmatch(r"docker\.io/nginxinc/nginx-unprivileged:[\d.]+-alpine", container["image"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # pid file and temp files
    assert volumes[mounts["/etc/nginx/conf.d"]]["configMap"]["name"] in config_maps
