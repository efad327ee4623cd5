"""`haoperator render` and `haoperator crd`: what users type, what they read, how they exit."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from haoperator.cli import main
from testenv.harness.cluster import REPO
from tests.unit.documents import document

ACTIVE_PASSIVE = yaml.safe_dump(document("ActivePassive", name="haproxy"))


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "input.yaml"
    path.write_text(text)
    return str(path)


def test_render_prints_the_children_as_multi_document_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["render", "-f", write(tmp_path, ACTIVE_PASSIVE)], capsys)
    assert (code, err) == (0, "")
    kinds = [child["kind"] for child in yaml.safe_load_all(out)]
    assert kinds == [
        "ServiceAccount",
        "Lease",
        "Role",
        "RoleBinding",
        "Deployment",
        "PodDisruptionBudget",
    ]
    assert out.startswith("---\n")


def test_render_reads_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(yaml.safe_dump(document("QueueWorker"))))
    code, out, _ = run(["render", "-f", "-"], capsys)
    assert code == 0
    assert [child["kind"] for child in yaml.safe_load_all(out)] == [
        "Deployment",
        "PodDisruptionBudget",
    ]


def test_render_takes_the_namespace_option_when_the_document_names_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = document()
    del raw["metadata"]["namespace"]
    _, out, _ = run(["render", "-f", write(tmp_path, yaml.safe_dump(raw)), "-n", "prod"], capsys)
    assert {child["metadata"]["namespace"] for child in yaml.safe_load_all(out)} == {"prod"}


def test_render_uses_the_elector_image_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, ACTIVE_PASSIVE)
    _, out, _ = run(["render", "-f", path, "--elector-image", "registry.local/ha:dev"], capsys)
    deployment = next(c for c in yaml.safe_load_all(out) if c["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["initContainers"][0]["image"] == (
        "registry.local/ha:dev"
    )


def test_bad_input_exits_2_with_one_line_per_problem_and_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = document("ActivePassive", replicas=1, activePassive={"renewDeadlineSeconds": 5})
    code, out, err = run(["render", "-f", write(tmp_path, yaml.safe_dump(raw))], capsys)
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "spec.activePassive.renewDeadlineSeconds: must be less than leaseDurationSeconds (5)"
    ]


def test_problems_in_several_documents_say_which_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = yaml.safe_dump_all(
        [document("QueueWorker", name="ok"), document("Stateful", name="db"), document(name="Bad")]
    )
    code, _, err = run(["render", "-f", write(tmp_path, text)], capsys)
    assert code == 2
    assert err.splitlines() == [
        "document 2 (db): spec.category: must be 'LoadBalanced', 'Clustered', 'QueueWorker' or "
        "'ActivePassive' (got \"Stateful\")",
        "document 3 (Bad): metadata.name: must be a DNS-1035 label: lowercase letters, digits "
        "and '-', starting with a letter and ending with a letter or digit",
    ]


def test_invalid_yaml_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "kind: HAService\nspec: [unclosed\n")
    code, _, err = run(["render", "-f", path], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith(f"{path}: not valid YAML (line 3)")


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["render", "-f", str(tmp_path / "nowhere.yaml")], capsys)
    assert code == 2
    assert err == f"{tmp_path / 'nowhere.yaml'}: cannot read it: No such file or directory\n"


def test_documents_of_other_api_groups_are_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}
    text = yaml.safe_dump_all([config_map, document("QueueWorker")])
    code, out, _ = run(["render", "-f", write(tmp_path, text)], capsys)
    assert code == 0
    assert "ConfigMap" not in out
    code, _, err = run(["render", "-f", write(tmp_path, yaml.safe_dump(config_map))], capsys)
    assert code == 2
    assert err.endswith(": no HAService in it\n")


def test_a_wrong_kind_in_our_group_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = document()
    raw["kind"] = "HaService"
    code, _, err = run(["render", "-f", write(tmp_path, yaml.safe_dump(raw))], capsys)
    assert code == 2
    assert err == "kind: must be 'HAService' (got \"HaService\")\n"


def test_crd_prints_the_committed_crd(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["crd"], capsys)
    assert code == 0
    assert out == (REPO / "crds" / "haservice.yaml").read_text()


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([], capsys)
    assert code == 2
    assert "render" in err
    assert "crd" in err


def test_the_installed_command_exits_2_on_bad_input(tmp_path: Path) -> None:
    path = write(tmp_path, yaml.safe_dump(document("ActivePassive", replicas=1)))
    result = subprocess.run(
        [sys.executable, "-m", "haoperator.cli", "render", "-f", path],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("spec.replicas: must be at least 2")


def test_strings_kubectl_would_read_as_booleans_are_quoted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = document("QueueWorker")
    raw["spec"]["template"]["spec"]["containers"][0]["name"] = "y"
    raw["spec"]["template"]["metadata"]["labels"]["enabled"] = "on"
    _, out, _ = run(["render", "-f", write(tmp_path, yaml.safe_dump(raw))], capsys)
    assert "- name: 'y'\n" in out
    assert "enabled: 'on'\n" in out


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.mark.parametrize("flag", ["--liveness-port", "--metrics-port"])
def test_run_stops_at_once_naming_a_port_that_is_taken(tmp_path: Path, flag: str) -> None:
    """It once retried its startup every minute, never serving, when the metrics port was taken
    (and died with a traceback when the liveness port was)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--metrics-port" if flag == "--liveness-port" else "--liveness-port"
        result = subprocess.run(
            [sys.executable, "-m", "haoperator.cli", "run", "-n", "ns",
             "--kubeconfig", str(kubeconfig), flag, str(port), other, "0"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"on port {port}: Address already in use" in result.stderr
    assert flag in result.stderr.splitlines()[-1]


def test_elect_without_any_credentials_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither in a pod nor given a kubeconfig: it ended in a ConfigException traceback."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    missing = str(tmp_path / "no-such-kubeconfig")
    with pytest.raises(SystemExit) as stopped:
        main(["elect", "--lease", "vip", "--pod", "p", "--namespace", "n", "--kubeconfig", missing])
    assert str(stopped.value).startswith("haoperator elect: cannot configure access to Kubernetes")
