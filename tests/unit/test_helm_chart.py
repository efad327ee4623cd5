"""The Helm chart, charts/haoperator/: written by charts/generate.py from manifests/ and committed
as it writes it; at its default values `helm template` gives the objects `kubectl kustomize
manifests/` gives, but for Helm's own labels; its values reach every place they name.

helm and kubectl are the ones testenv/build puts in its cache (`testenv/build helm` builds helm
alone): without them these tests fail, naming the command that builds them. Nothing here needs a
cluster."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from testenv.harness.cluster import REPO
from tests.unit.kubernetes_schemas import assert_valid

CHART = REPO / "charts" / "haoperator"
MANIFESTS = REPO / "manifests"
Doc = dict[str, Any]
Key = tuple[str, str, str]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "chart_generator", REPO / "charts" / "generate.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


generator = _generator()
HELM_LABELS = set(generator.HELM_LABELS)


# -- the tools ------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    lines = (REPO / "testenv" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def cache() -> Path:
    """testenv/build's cache, found as it finds it."""
    if os.environ.get("HAOPERATOR_CACHE"):
        return Path(os.environ["HAOPERATOR_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "haoperator"


def tool(name: str, entry: str, build: str) -> str:
    """$HAOPERATOR_<NAME>, else testenv/build's cached binary; fail saying how to build it."""
    override = os.environ.get(f"HAOPERATOR_{name.upper()}")
    if override:
        return override
    path = cache() / entry / name
    if not path.is_file():
        pytest.fail(
            f"no {name} at {path}: `{build}` builds it (once per machine), "
            f"or set HAOPERATOR_{name.upper()} to one",
            pytrace=False,
        )
    return str(path)


@pytest.fixture(scope="module")
def helm_bin() -> str:
    return tool("helm", f"helm-{versions()['HELM_VERSION']}", "testenv/build helm")


@pytest.fixture(scope="module")
def kubectl_bin() -> str:
    return tool("kubectl", f"k8s-{versions()['K8S_VERSION']}", "testenv/build")


def run(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        # Helm's own state stays out of the user's home; no cluster is asked anything.
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(home / "no-kubeconfig"),
    }
    result = subprocess.run(
        list(args), capture_output=True, text=True, env=env, timeout=120, check=False
    )
    if check:
        assert result.returncode == 0, f"{' '.join(args)}:\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


def parsed(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def helm_template(helm: str, home: Path, *flags: str, chart: Path = CHART) -> list[Doc]:
    return parsed(
        run(helm, "template", "haoperator", str(chart), "--include-crds", *flags, home=home).stdout
    )


def key(doc: Doc) -> Key:
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


def by_key(docs: list[Doc]) -> dict[Key, Doc]:
    found = {key(doc): doc for doc in docs}
    assert len(found) == len(docs), "two objects of the same kind, namespace and name"
    return found


def without_helm_labels(doc: Doc) -> Doc:
    """The object but for Helm's own labels, which it must carry (the CRD in crds/ excepted)."""
    labels = dict(doc["metadata"].get("labels") or {})
    if doc["kind"] != "CustomResourceDefinition":
        assert set(labels) >= HELM_LABELS, f"{key(doc)} lacks Helm's labels"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == "haoperator"
    stripped = {k: v for k, v in labels.items() if k not in HELM_LABELS}
    return {**doc, "metadata": {**doc["metadata"], "labels": stripped}}


def differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            yield from differences(a.get(k), b.get(k), f"{path}/{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from differences(x, y, f"{path}/{index}")
    elif a != b:
        yield f"{path}: {a!r} != {b!r}"


def assert_same_objects(helm: list[Doc], kustomize: list[Doc]) -> None:
    ours, theirs = by_key(helm), by_key(kustomize)
    assert sorted(ours) == sorted(theirs)
    for k, doc in theirs.items():
        found = list(differences(without_helm_labels(ours[k]), doc))
        assert found == [], f"{k}: helm template and kubectl kustomize differ:\n" + "\n".join(found)


def deployment(docs: list[Doc]) -> Doc:
    (found,) = [d for d in docs if d["kind"] == "Deployment"]
    return found


def operator_container(docs: list[Doc]) -> Doc:
    (container,) = deployment(docs)["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def env(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


# -- one source of truth --------------------------------------------------------------------------


def test_the_committed_chart_is_what_the_generator_writes() -> None:
    found = generator.differences(generator.render(), generator.on_disk())
    assert found == [], (
        "charts/haoperator/ is not what charts/generate.py writes from manifests/ now; run "
        "`.venv/bin/python charts/generate.py` and commit the result:\n" + "\n".join(found)
    )


def test_the_crd_is_the_one_in_crds_verbatim() -> None:
    assert (CHART / "crds" / "haservice.yaml").read_text() == (
        REPO / "crds" / "haservice.yaml"
    ).read_text()
    assert not list((CHART / "templates").glob("*crd*")), "the CRD belongs in crds/ only"


def test_helm_template_at_default_values_is_kubectl_kustomize_but_helms_labels(
    helm_bin: str, kubectl_bin: str, home: Path
) -> None:
    kustomized = parsed(run(kubectl_bin, "kustomize", str(MANIFESTS), home=home).stdout)
    assert_same_objects(helm_template(helm_bin, home), kustomized)


def test_helm_lint_passes_strict(helm_bin: str, home: Path) -> None:
    result = run(helm_bin, "lint", "--strict", str(CHART), home=home)
    assert "0 chart(s) failed" in result.stdout


def test_the_values_schema_refuses_what_the_chart_does_not_know(helm_bin: str, home: Path) -> None:
    for bad in [
        "watchNamespace=demo",
        "logFormat=xml",
        "metrics.port=0",
        "image.pullPolicy=Sometimes",
    ]:
        result = run(helm_bin, "template", "x", str(CHART), "--set", bad, home=home, check=False)
        assert result.returncode != 0, f"--set {bad} was accepted"
        assert "schema" in result.stderr, result.stderr


# -- values ---------------------------------------------------------------------------------------


def test_watched_namespaces_become_the_operators_arguments(helm_bin: str, home: Path) -> None:
    assert operator_container(helm_template(helm_bin, home))["args"] == ["run", "--all-namespaces"]
    docs = helm_template(helm_bin, home, "--set", "watchNamespaces={team-a,team-b}")
    assert operator_container(docs)["args"] == [
        "run", "--namespace", "team-a", "--namespace", "team-b"
    ]  # fmt: skip


def test_the_image_is_the_operators_and_the_sidecars(helm_bin: str, home: Path) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert chart["appVersion"] == str(image["newTag"])
    for flags, want, policy in [
        ((), f"{image['newName']}:{image['newTag']}", "IfNotPresent"),
        (("--set", "image.tag=9.9.9"), f"{image['newName']}:9.9.9", "IfNotPresent"),
        (
            ("--set", "image.repository=registry.example/ha/op,image.pullPolicy=Always"),
            f"registry.example/ha/op:{image['newTag']}",
            "Always",
        ),
        (
            ("--set", f"image.digest=sha256:{'a' * 64}"),
            f"{image['newName']}@sha256:{'a' * 64}",
            None,
        ),
    ]:
        container = operator_container(helm_template(helm_bin, home, *flags))
        assert container["image"] == want
        assert env(container)["HAOPERATOR_ELECTOR_IMAGE"] == want
        if policy:
            assert container["imagePullPolicy"] == policy


def test_the_metrics_port_reaches_the_operator_its_pod_and_its_service(
    helm_bin: str, home: Path
) -> None:
    docs = helm_template(helm_bin, home, "--set", "metrics.port=9191")
    container = operator_container(docs)
    assert env(container)["HAOPERATOR_METRICS_PORT"] == "9191"
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"] == 9191
    (service,) = [d for d in docs if d["kind"] == "Service"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9191, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_log_format_and_resources(helm_bin: str, home: Path) -> None:
    docs = helm_template(
        helm_bin, home,
        "--set", "logFormat=console",
        "--set-json", 'resources={"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": null}',
    )  # fmt: skip
    container = operator_container(docs)
    assert env(container)["HAOPERATOR_LOG_FORMAT"] == "console"
    assert container["resources"] == {"requests": {"cpu": "50m", "memory": "96Mi"}}


def test_the_operators_namespace_is_one_value_everywhere(helm_bin: str, home: Path) -> None:
    docs = helm_template(helm_bin, home, "--set", "namespace.name=ops")
    namespaced = [d for d in docs if "namespace" in d["metadata"]]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"ops"}
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"] == ["ops"]
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "haoperator", "namespace": "ops"}
    ]
    assert "haoperator-system" not in yaml.safe_dump_all(
        [d for d in docs if d["kind"] != "CustomResourceDefinition"]
    )
    kept = helm_template(helm_bin, home, "--set", "namespace.name=ops,namespace.create=false")
    assert [d for d in kept if d["kind"] == "Namespace"] == []
    assert {d["metadata"]["namespace"] for d in kept if "namespace" in d["metadata"]} == {"ops"}


def test_scheduling_values_and_pull_secrets(helm_bin: str, home: Path) -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "role", "operator": "In", "values": ["infra"]}]}
                ]
            }
        }
    }
    toleration = {"key": "infra", "operator": "Exists", "effect": "NoSchedule"}
    docs = helm_template(
        helm_bin, home,
        "--set-json", f"affinity={json.dumps(affinity)}",
        "--set-json", f"tolerations=[{json.dumps(toleration)}]",
        "--set-json", 'nodeSelector={"role": "infra"}',
        "--set-json", 'imagePullSecrets=[{"name": "regcred"}]',
    )  # fmt: skip
    pod = deployment(docs)["spec"]["template"]["spec"]
    assert pod["affinity"] == affinity
    assert pod["tolerations"] == [toleration]
    # Helm merges a map value into the default (null removes a key); a list replaces it.
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "role": "infra"}
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    for doc in docs:
        if doc["kind"] != "CustomResourceDefinition":
            assert_valid(doc)
    default = deployment(helm_template(helm_bin, home))["spec"]["template"]["spec"]
    assert "affinity" not in default
    assert "imagePullSecrets" not in default


# -- monitoring: manifests/monitoring/ and docs/' Grafana dashboards, behind switches -------------


def values() -> Doc:
    loaded: Doc = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def test_monitoring_objects_are_behind_switches_that_are_off(helm_bin: str, home: Path) -> None:
    kinds = {d["kind"] for d in helm_template(helm_bin, home)}
    assert not kinds & {*generator.MONITORING_KINDS, "ConfigMap"}
    switches = {
        k for k in [*generator.MONITORING_KINDS.values(), "grafanaDashboard"] if k in values()
    }
    assert all(values()[k]["enabled"] is False for k in switches)
    # A switch exists exactly when there is something to switch on.
    monitored = {
        generator.MONITORING_KINDS[d["kind"]]
        for component in generator.monitoring_components()
        for entry in yaml.safe_load((component / "kustomization.yaml").read_text())["resources"]
        for d in parsed((component / entry).read_text())
    }
    assert switches - {"grafanaDashboard"} == monitored
    assert ("grafanaDashboard" in switches) == bool(generator.dashboards())


def test_the_monitoring_switches_render_the_monitoring_components(
    helm_bin: str, kubectl_bin: str, home: Path, tmp_path: Path
) -> None:
    """With every switch on, the chart is manifests/ with every component of manifests/monitoring
    (the electors' PodMonitor included), but for Helm's labels."""
    components = generator.monitoring_components()
    if not components:
        assert not list((CHART / "templates").glob("monitoring-*"))
        return
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(MANIFESTS, overlay)],
                "components": [os.path.relpath(c, overlay) for c in components],
            }
        )
    )
    kustomized = parsed(run(kubectl_bin, "kustomize", str(overlay), home=home).stdout)
    keys = [k for k in generator.MONITORING_KINDS.values() if k in values()]
    rendered = helm_template(helm_bin, home, "--set", ",".join(f"{k}.enabled=true" for k in keys))
    assert_same_objects(rendered, kustomized)
    # Their labels value adds labels (a Prometheus's selector), and nothing else.
    labelled = helm_template(
        helm_bin, home, "--set", ",".join(f"{k}.enabled=true,{k}.labels.release=prom" for k in keys)
    )
    monitors = [d for d in labelled if d["kind"] in generator.MONITORING_KINDS]
    assert {generator.MONITORING_KINDS[d["kind"]] for d in monitors} == set(keys)
    assert all(d["metadata"]["labels"]["release"] == "prom" for d in monitors)


def test_the_dashboard_switch_renders_each_dashboard_in_a_config_map(
    helm_bin: str, home: Path
) -> None:
    found = generator.dashboards()
    if not found:
        assert not (CHART / "templates" / "grafana-dashboard.yaml").exists()
        return
    docs = helm_template(helm_bin, home, "--set", "grafanaDashboard.enabled=true")
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config_map["metadata"]["namespace"] == values()["namespace"]["name"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert sorted(config_map["data"]) == sorted(p.name for p in found)
    for path in found:
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())
    assert_valid(config_map)
    elsewhere = helm_template(
        helm_bin, home, "--set", "grafanaDashboard.enabled=true,grafanaDashboard.namespace=grafana"
    )
    (config_map,) = [d for d in elsewhere if d["kind"] == "ConfigMap"]
    assert config_map["metadata"]["namespace"] == "grafana"


# -- the generator's own rules --------------------------------------------------------------------


def test_literal_template_braces_survive_helm(helm_bin: str, home: Path, tmp_path: Path) -> None:
    """A PrometheusRule's own `{{ $labels.x }}` is text for Prometheus, not for Helm."""
    chart = tmp_path / "chart"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: braces\nversion: 0.1.0\n")
    (chart / "templates").mkdir()
    annotation = "{{ $labels.namespace }}/{{ $labels.name }} failed over {{ $value }} times"
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
           "data": {"summary": annotation, "plain": "}} {{"}}  # fmt: skip
    (chart / "templates" / "x.yaml").write_text(generator.Templating().render(doc))
    (rendered,) = helm_template(helm_bin, home, chart=chart)
    assert rendered["data"] == doc["data"]


def test_the_generator_refuses_what_it_cannot_mirror(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [a.yaml]\npatches:\n- path: p.yaml\n")
    with pytest.raises(generator.GeneratorError, match="patches"):
        generator.kustomization(tmp_path, generator.KUSTOMIZATION_FIELDS)


def test_the_helm_wrapper_module_pins_what_versions_env_says() -> None:
    """testenv/build refuses to build a helm other than HELM_VERSION; this says so sooner."""
    go_mod = (REPO / "testenv" / "helm" / "go.mod").read_text()
    pinned = [
        line.split()[1]
        for line in go_mod.splitlines()
        if line.split()[:1] == ["helm.sh/helm/v3"]
        or line.split()[:2] == ["require", "helm.sh/helm/v3"]
    ]
    assert [p for p in pinned if p.startswith("v")] == [versions()["HELM_VERSION"]]
    assert "tool helm.sh/helm/v3/cmd/helm" in go_mod
    assert (REPO / "testenv" / "helm" / "go.sum").exists()
