"""`haoperator switchover NAME [--to POD]`: a planned switchover of an ActivePassive HAService,
as `patronictl switchover` and `pcs resource move` do (docs/switchover.md).

It checks the request against what the API server holds now, with the operator's own checks
(core/switchover.py, `judge`), so that a request bound to be refused is refused here, on one
line, with exit code 1. Otherwise it writes the request (the HAService's annotation
haoperator.dev/switchover-to, conditional on the version it checked) and, unless --no-wait,
waits for the operator's answer: status.lastFailover naming the new pod with reason Switchover,
or a SwitchoverRefused or SwitchoverFailed event that this request earned.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, TextIO

from haoperator.controller.kube import ApiError, Kube
from haoperator.core.objects import Object, annotations_of, meta
from haoperator.core.switchover import ANY, judge
from haoperator.core.vocabulary import OPERATOR, Annotation, FailoverReason, Label, Reason

PROG = "haoperator switchover"
FIELD_MANAGER = f"{OPERATOR}-switchover"
DEFAULT_TIMEOUT = 60.0
POLL_SECONDS = 0.25
EXIT_REFUSED = 1
ANSWERS = (Reason.SWITCHOVER_REFUSED, Reason.SWITCHOVER_FAILED)


class Refused(Exception):
    """The switchover will not happen (or its outcome is unknown): one line for the user."""


def add_parser(commands: Any) -> None:
    switchover = commands.add_parser(
        "switchover",
        help="move the active role of an ActivePassive HAService to a chosen ready standby",
        description="Ask for a planned switchover (the annotation haoperator.dev/switchover-to "
        "on the HAService) and wait for it: the leader's ha-elector hands the Lease over to the "
        "pod at once. Exits 1, with one line saying why, when the request is refused, fails or "
        "gets no answer within --timeout.",
    )
    switchover.add_argument("name", metavar="NAME", help="the HAService")
    switchover.add_argument(
        "--to",
        metavar="POD",
        default=ANY,
        help="the pod to hand the active role to (default: any, the oldest ready standby)",
    )
    switchover.add_argument("-n", "--namespace", help="default: the kubeconfig context's")
    switchover.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
    switchover.add_argument(
        "--no-wait", action="store_true", help="write the request and exit without waiting"
    )
    switchover.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for the operator's answer (default: %(default)g)",
    )
    switchover.set_defaults(handler=main)


def main(args: argparse.Namespace, out: TextIO) -> int:
    import sys

    try:
        kube, namespace = connect(args.kubeconfig, args.namespace)
        said = switchover(
            kube,
            namespace,
            args.name,
            args.to,
            wait=not args.no_wait,
            timeout=args.timeout,
        )
    except Refused as refused:
        print(f"{PROG}: {refused}", file=sys.stderr)
        return EXIT_REFUSED
    print(said, file=out)
    return 0


def connect(kubeconfig: str | None, namespace: str | None) -> tuple[Kube, str]:
    """Access as kubectl has it: the kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and
    its context's namespace, or else the pod's ServiceAccount and namespace."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        if namespace is None:
            _, context = config.list_kube_config_contexts(config_file=kubeconfig)
            namespace = (context or {}).get("context", {}).get("namespace") or "default"
    except Exception as exc:  # no kubeconfig: in a pod, its ServiceAccount
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            raise Refused(f"cannot configure access to Kubernetes: {exc}") from exc
        if namespace is None:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as found:
                namespace = found.read().strip()
    kube = Kube(client.ApiClient(configuration), timeout=10.0, field_manager=FIELD_MANAGER)
    return kube, namespace


def switchover(
    kube: Kube,
    namespace: str,
    name: str,
    to: str,
    *,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> str:
    """Check, ask and (if `wait`) wait; what to tell the user. Refused when it will not
    happen, did not, or no answer came within `timeout` seconds. `clock` and `sleep`: the
    monotonic clock and time.sleep unless given."""
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    try:
        haservice = _check(kube, namespace, name, to)
        before = (haservice.get("status") or {}).get("lastFailover")
        seen = _answers(kube, namespace, haservice)
        _ask(kube, namespace, haservice, to)
        if not wait:
            return f"switchover of {name} to {to} requested"
        return _wait(kube, namespace, name, to, before, seen, timeout, clock, sleep)
    except ApiError as exc:
        raise Refused(exc.message or str(exc)) from exc


def _check(kube: Kube, namespace: str, name: str, to: str) -> Object:
    haservice = kube.get("HAService", namespace, name)
    if haservice is None:
        raise Refused(f"no HAService {name} in namespace {namespace}")
    pending = annotations_of(haservice).get(Annotation.SWITCHOVER_TO)
    if pending is not None:
        raise Refused(
            f"a switchover of {name} is already under way (to {pending}): wait for it, or "
            f"withdraw it with kubectl annotate haservice {name} {Annotation.SWITCHOVER_TO}-"
        )
    category = str((haservice.get("spec") or {}).get("category"))
    lease = kube.get("Lease", namespace, name) if category == "ActivePassive" else None
    pods = kube.list("Pod", namespace, f"{Label.SERVICE}={name}")
    verdict = judge(to, name=name, category=category, lease=lease, pods=pods)
    if verdict.refused is not None:
        raise Refused(verdict.refused)
    return haservice


def _ask(kube: Kube, namespace: str, haservice: Object, to: str) -> None:
    """The annotation, only on the version checked: a request written meanwhile is not
    overwritten."""
    name = meta(haservice)["name"]
    patch = {
        "metadata": {
            "resourceVersion": meta(haservice).get("resourceVersion"),
            "annotations": {Annotation.SWITCHOVER_TO: to},
        }
    }
    try:
        kube.patch("HAService", namespace, name, patch)
    except ApiError as exc:
        if exc.status == 409:
            raise Refused(f"HAService {name} changed while it was checked: try again") from exc
        raise


def _answers(kube: Kube, namespace: str, haservice: Object) -> dict[str, tuple[int, str]]:
    """The operator's SwitchoverRefused and SwitchoverFailed events on this HAService, by name:
    their count (one Event per message, its count bumped when said again) and message."""
    selector = f"involvedObject.kind=HAService,involvedObject.name={meta(haservice)['name']}"
    page = kube.list_page("Event", namespace, {"fieldSelector": selector})
    uid = meta(haservice).get("uid")
    found: dict[str, tuple[int, str]] = {}
    for event in page.get("items") or []:
        if event.get("reason") in ANSWERS and (event.get("involvedObject") or {}).get("uid") == uid:
            count = int(event.get("count") or 1)
            found[meta(event)["name"]] = (count, str(event.get("message") or event["reason"]))
    return found


def _wait(
    kube: Kube,
    namespace: str,
    name: str,
    to: str,
    before: Any,
    seen: dict[str, tuple[int, str]],
    timeout: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> str:
    deadline = clock() + timeout
    while True:
        haservice = kube.get("HAService", namespace, name)
        if haservice is None:
            raise Refused(f"HAService {name} was deleted")
        last = (haservice.get("status") or {}).get("lastFailover")
        if (
            last
            and last != before
            and last.get("reason") == FailoverReason.SWITCHOVER
            and to in (ANY, last.get("to"))
        ):
            return (
                f"switched over from {last['from']} to {last['to']} in "
                f"{float(last['seconds']):.2f} s"
            )
        for event, (count, message) in _answers(kube, namespace, haservice).items():
            if count > seen.get(event, (0, ""))[0]:  # said for this request
                raise Refused(message)
        if clock() >= deadline:
            raise Refused(
                f"no answer within {timeout:g} s; the request stays on HAService {name} for the "
                f"operator (is it running?): withdraw it with kubectl annotate haservice {name} "
                f"{Annotation.SWITCHOVER_TO}-"
            )
        sleep(POLL_SECONDS)
