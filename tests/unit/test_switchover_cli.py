"""`haoperator switchover`: the checks it makes before asking, the request it writes, how it
waits for the operator's answer, what users read and how it exits. The API server is a fake
holding objects as dicts; the operator's answer comes while the command sleeps."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import pytest

from haoperator import switchover_cli
from haoperator.cli import main
from haoperator.controller.kube import ApiError
from haoperator.core.vocabulary import Annotation, Label

NS = "prod"
TO = Annotation.SWITCHOVER_TO
Obj = dict[str, Any]


def pod(name: str, *, ready: bool = True, created: str = "2027-01-01T00:00:00Z") -> Obj:
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {Label.SERVICE: "vip"},
            "creationTimestamp": created,
        },
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


class FakeKube:
    """The few calls the command makes, on objects held by (kind, name)."""

    def __init__(self, category: str = "ActivePassive", holder: str | None = "vip-a") -> None:
        self.objects: dict[tuple[str, str], Obj] = {
            ("HAService", "vip"): {
                "kind": "HAService",
                "metadata": {"name": "vip", "namespace": NS, "uid": "u1", "resourceVersion": "7"},
                "spec": {"category": category},
                "status": {"activePod": holder},
            },
            ("Lease", "vip"): {
                "kind": "Lease",
                "metadata": {"name": "vip", "namespace": NS, "annotations": {}},
                "spec": {"holderIdentity": holder},
            },
        }
        self.pods = [pod("vip-a"), pod("vip-b", created="2027-01-01T00:00:01Z"), pod("vip-c")]
        self.events: list[Obj] = []
        self.patches: list[tuple[str, str, Obj]] = []
        self.conflict = False

    @property
    def haservice(self) -> Obj:
        return self.objects[("HAService", "vip")]

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        assert namespace == NS
        return self.objects.get((kind, name))

    def list(self, kind: str, namespace: str | None, selector: str = "") -> list[Obj]:
        assert (kind, namespace, selector) == ("Pod", NS, f"{Label.SERVICE}=vip")
        return self.pods

    def list_page(self, kind: str, namespace: str | None, query: dict[str, str]) -> Obj:
        assert (kind, namespace) == ("Event", NS)
        assert query == {"fieldSelector": "involvedObject.kind=HAService,involvedObject.name=vip"}
        return {"items": self.events}

    def patch(self, kind: str, namespace: str | None, name: str, patch: Obj) -> Obj:
        if self.conflict:
            raise ApiError(409, "Conflict", "the object has been modified")
        self.patches.append((kind, name, patch))
        meta = self.objects[(kind, name)]["metadata"]
        meta.setdefault("annotations", {}).update(patch["metadata"].get("annotations", {}))
        return self.objects[(kind, name)]

    def event(self, reason: str, message: str, *, count: int = 1, name: str = "vip.1") -> None:
        self.events = [e for e in self.events if e["metadata"]["name"] != name]
        self.events.append(
            {
                "metadata": {"name": name},
                "involvedObject": {"kind": "HAService", "name": "vip", "uid": "u1"},
                "reason": reason,
                "message": message,
                "count": count,
            }
        )

    def switched(self, to: str, reason: str = "Switchover", seconds: float = 0.31) -> None:
        self.haservice["status"]["lastFailover"] = {
            "time": "2027-01-15T08:00:00Z",
            "from": "vip-a",
            "to": to,
            "seconds": seconds,
            "reason": reason,
        }


def run(
    kube: FakeKube,
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    operator: Callable[[int], None] | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, str, str]:
    """`haoperator switchover ARGS` against `kube`; `operator(n)` acts at the n-th poll."""
    assert monkeypatch is not None

    def connect(kubeconfig: str | None, namespace: str | None) -> tuple[Any, str]:
        return kube, namespace or NS

    polls = [0]
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        polls[0] += 1
        if operator is not None:
            operator(polls[0])

    monkeypatch.setattr(switchover_cli, "connect", connect)
    monkeypatch.setattr(
        switchover_cli,
        "switchover",
        functools.partial(switchover_cli.switchover, clock=lambda: now[0], sleep=sleep),
    )
    code = main(["switchover", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    def call(
        kube: FakeKube, *args: str, operator: Callable[[int], None] | None = None
    ) -> tuple[int, str, str]:
        return run(kube, list(args), capsys, operator, monkeypatch)

    return call


# -- refused before asking -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrange", "args", "line"),
    [
        (lambda k: k.pods.__setitem__(1, pod("vip-b", ready=False)), ["--to", "vip-b"],
         "pod vip-b is not ready: refusing to switch over to it"),
        (lambda k: None, ["--to", "vip-x"],
         "pod vip-x is not a pod of vip: refusing to switch over to it"),
        (lambda k: None, ["--to", "vip-a"], "pod vip-a is already active: nothing to switch over"),
        (lambda k: k.objects[("Lease", "vip")]["spec"].update(holderIdentity=None), [],
         "no pod holds the Lease vip: no active pod to switch over from"),
        (lambda k: k.pods.__setitem__(slice(1, None), []), [],
         "no ready standby to switch over to: pod vip-a stays active"),
        (lambda k: k.objects.pop(("HAService", "vip")), [], "no HAService vip in namespace prod"),
        (lambda k: k.haservice["metadata"].update(annotations={TO: "vip-c"}), ["--to", "vip-b"],
         f"a switchover of vip is already under way (to vip-c): wait for it, or withdraw it with "
         f"kubectl annotate haservice vip {TO}-"),
    ],
)  # fmt: skip
def test_a_request_bound_to_be_refused_is_refused_here_with_exit_1(
    cli: Callable[..., tuple[int, str, str]],
    arrange: Callable[[FakeKube], None],
    args: list[str],
    line: str,
) -> None:
    kube = FakeKube()
    arrange(kube)
    code, out, err = cli(kube, "vip", *args)
    assert (code, out, err) == (1, "", f"haoperator switchover: {line}\n")
    assert kube.patches == []  # nothing asked


def test_only_an_active_passive_service_switches_over(
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    kube = FakeKube(category="LoadBalanced")
    code, _, err = cli(kube, "vip", "--to", "vip-b")
    assert code == 1
    assert err.startswith("haoperator switchover: vip is LoadBalanced: a switchover moves")


def test_an_api_error_is_one_line_and_exit_1(cli: Callable[..., tuple[int, str, str]]) -> None:
    kube = FakeKube()

    def refuse(*_: Any) -> Obj:
        raise ApiError(403, "Forbidden", 'haservices.haoperator.dev "vip" is forbidden')

    kube.get = refuse  # type: ignore[method-assign]
    code, _, err = cli(kube, "vip")
    assert (code, err) == (
        1,
        'haoperator switchover: haservices.haoperator.dev "vip" is forbidden\n',
    )


# -- the request ---------------------------------------------------------------------------------


def test_the_request_is_the_annotation_on_the_version_checked(
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    kube = FakeKube()
    code, out, err = cli(kube, "vip", "--to", "vip-b", "--no-wait")
    assert (code, out, err) == (0, "switchover of vip to vip-b requested\n", "")
    assert kube.patches == [
        ("HAService", "vip", {"metadata": {"resourceVersion": "7", "annotations": {TO: "vip-b"}}})
    ]


def test_without_to_it_asks_for_any(cli: Callable[..., tuple[int, str, str]]) -> None:
    kube = FakeKube()
    code, out, _ = cli(kube, "vip", "--no-wait")
    assert (code, out) == (0, "switchover of vip to any requested\n")
    assert kube.patches[0][2]["metadata"]["annotations"] == {TO: "any"}


def test_a_request_written_meanwhile_is_not_overwritten(
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    kube = FakeKube()
    kube.conflict = True
    code, _, err = cli(kube, "vip", "--no-wait")
    assert (code, err) == (
        1,
        "haoperator switchover: HAService vip changed while it was checked: try again\n",
    )


# -- waiting for the operator's answer -----------------------------------------------------------


def test_it_waits_for_the_switchover_and_says_how_long_it_took(
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    kube = FakeKube()
    kube.switched("vip-c", reason="LeaseExpired")  # an earlier failover: not this one

    def operator(poll: int) -> None:
        if poll == 3:
            kube.switched("vip-b", seconds=0.274)

    code, out, err = cli(kube, "vip", "--to", "vip-b", operator=operator)
    assert (code, out, err) == (0, "switched over from vip-a to vip-b in 0.27 s\n", "")


def test_any_is_done_whichever_standby_took_it(cli: Callable[..., tuple[int, str, str]]) -> None:
    kube = FakeKube()
    code, out, _ = cli(kube, "vip", operator=lambda poll: kube.switched("vip-c"))
    assert (code, out) == (0, "switched over from vip-a to vip-c in 0.31 s\n")


def test_a_failover_for_another_reason_is_not_the_answer(
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    kube = FakeKube()

    def operator(poll: int) -> None:
        if poll == 1:
            kube.switched("vip-c", reason="LeaseExpired")
        if poll == 2:
            kube.event("SwitchoverFailed", "switchover to vip-b abandoned: the Lease vip no ...")

    code, out, err = cli(kube, "vip", "--to", "vip-b", operator=operator)
    assert (code, out) == (1, "")
    assert err == ("haoperator switchover: switchover to vip-b abandoned: the Lease vip no ...\n")


@pytest.mark.parametrize("reason", ["SwitchoverRefused", "SwitchoverFailed"])
def test_the_operators_refusal_or_failure_ends_it_with_exit_1(
    cli: Callable[..., tuple[int, str, str]], reason: str
) -> None:
    kube = FakeKube()
    message = "pod vip-b did not take the active role within 10 s of the request: ..."
    code, _, err = cli(kube, "vip", "--to", "vip-b", operator=lambda _: kube.event(reason, message))
    assert (code, err) == (1, f"haoperator switchover: {message}\n")


def test_an_answer_to_an_earlier_request_is_not_this_ones(
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    """The same message again is the same Event, its count bumped: only a bump answers."""
    kube = FakeKube()
    kube.event("SwitchoverRefused", "pod vip-b is not ready: refusing to switch over to it")

    def operator(poll: int) -> None:
        if poll == 2:
            kube.switched("vip-b")

    code, out, _ = cli(kube, "vip", "--to", "vip-b", operator=operator)
    assert (code, out) == (0, "switched over from vip-a to vip-b in 0.31 s\n")

    again = FakeKube()
    again.event("SwitchoverRefused", "pod vip-b is not ready: refusing to switch over to it")
    code, _, err = cli(
        again,
        "vip",
        "--to",
        "vip-b",
        operator=lambda _: again.event(
            "SwitchoverRefused", "pod vip-b is not ready: refusing to switch over to it", count=2
        ),
    )
    assert (code, err) == (
        1,
        "haoperator switchover: pod vip-b is not ready: refusing to switch over to it\n",
    )


def test_no_answer_within_the_timeout_exits_1_and_says_how_to_withdraw(
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    kube = FakeKube()
    code, _, err = cli(kube, "vip", "--to", "vip-b", "--timeout", "2")
    assert code == 1
    assert err == (
        "haoperator switchover: no answer within 2 s; the request stays on HAService vip for "
        f"the operator (is it running?): withdraw it with kubectl annotate haservice vip {TO}-\n"
    )


def test_the_haservice_deleted_while_waiting(cli: Callable[..., tuple[int, str, str]]) -> None:
    kube = FakeKube()
    code, _, err = cli(
        kube, "vip", "--to", "vip-b", operator=lambda _: kube.objects.pop(("HAService", "vip"))
    )
    assert (code, err) == (1, "haoperator switchover: HAService vip was deleted\n")


# -- the command line ----------------------------------------------------------------------------


def test_namespace_and_kubeconfig_reach_the_connection(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = FakeKube()
    seen: list[tuple[str | None, str | None]] = []

    def connect(kubeconfig: str | None, namespace: str | None) -> tuple[Any, str]:
        seen.append((kubeconfig, namespace))
        return kube, NS

    monkeypatch.setattr(switchover_cli, "connect", connect)
    assert main(["switchover", "vip", "-n", NS, "--kubeconfig", "/k", "--no-wait"]) == 0
    assert main(["switchover", "vip", "--namespace", NS, "--no-wait", "--to", "vip-c"]) == 1
    assert seen == [("/k", NS), (None, NS)]
    capsys.readouterr()


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["switchover"])
    assert exit_.value.code == 2
    assert "NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["switchover", "vip", "--timeout", "soon"])
    assert exit_.value.code == 2


def test_a_kubeconfig_that_does_not_load_is_one_line(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    missing = tmp_path / "none.kubeconfig"
    assert main(["switchover", "vip", "--kubeconfig", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("haoperator switchover: cannot configure access to Kubernetes: ")
    assert err.count("\n") == 1


def test_the_lease_record_format_the_wait_reads_is_the_statuss() -> None:
    """status.lastFailover is what core/status.failover_record makes of the Lease's record."""
    from haoperator.core.status import failover_record

    record = {"time": "t", "from": "vip-a", "to": "vip-b", "seconds": 0.5, "reason": "Switchover"}
    lease = {"metadata": {"annotations": {Annotation.LAST_FAILOVER: json.dumps(record)}}}
    assert failover_record(lease) == record
