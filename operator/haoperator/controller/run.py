"""`haoperator run`: the operator process."""

from __future__ import annotations

import argparse
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from haoperator import logging as ha_logging
from haoperator.api.base import MAX_REPLICAS
from haoperator.controller.settings import Settings, env
from haoperator.core.election import Timing
from haoperator.core.vocabulary import DEFAULT_IMAGE

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def add_parser(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run the operator",
        description="Reconcile HAServices: build and keep their children, report status and "
        "events. Every flag also reads an environment variable, HAOPERATOR_<FLAG>.",
    )
    scope = run.add_mutually_exclusive_group(required=False)
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[n for n in env("NAMESPACES", "").split(",") if n],
        help="watch this namespace (repeatable; env HAOPERATOR_NAMESPACES, comma-separated)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        default=env("ALL_NAMESPACES", "") == "true",
        help="watch every namespace (env HAOPERATOR_ALL_NAMESPACES=true)",
    )
    run.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="like kubectl's; in a pod the service account is used",
    )
    run.add_argument(
        "--elector-image",
        default=env("ELECTOR_IMAGE", DEFAULT_IMAGE),
        help="image of the ha-elector sidecar (default: %(default)s)",
    )
    run.add_argument(
        "--liveness-port",
        type=int,
        default=int(env("LIVENESS_PORT", "8080")),
        help="port of GET /healthz (default: %(default)s)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=int(env("METRICS_PORT", "9090")),
        help="Prometheus metrics on GET /metrics; 0 turns them off (default: %(default)s)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=int(env("WORKERS", "8")),
        help="reconciles at once (default: %(default)s)",
    )
    run.add_argument(
        "--max-replicas",
        type=int,
        default=int(env("MAX_REPLICAS", str(MAX_REPLICAS))),
        help="refuse HAServices asking for more replicas than this: their children are left as "
        "they are and they report ReplicasAboveLimit (default and most: %(default)s, the CRD's "
        "own limit)",
    )
    run.add_argument(
        "--leader-elect",
        action="store_true",
        default=env("LEADER_ELECT", "") == "true",
        help="run several instances: only the holder of the Lease `haoperator` reconciles, the "
        "others stand by with their caches warm (env HAOPERATOR_LEADER_ELECT=true)",
    )
    run.add_argument(
        "--leader-elect-namespace",
        default=env("LEADER_ELECT_NAMESPACE", ""),
        help="where that Lease is: the operator's own namespace (default: the pod's, in a "
        "cluster; required elsewhere)",
    )
    for flag, default, what in (
        ("lease-duration", "15", "how long a standby waits for a leader that stopped renewing"),
        ("renew-deadline", "10", "a leader that could not renew for this long stops acting"),
        ("retry-period", "2", "how often the leader renews, and a failed step is tried again"),
    ):
        run.add_argument(
            f"--leader-elect-{flag}",
            type=float,
            default=float(env("LEADER_ELECT_" + flag.upper().replace("-", "_"), default)),
            help=f"seconds: {what} (default: %(default)s)",
        )
    run.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default=env("LOG_FORMAT", "auto"),
        help="auto: JSON unless on a terminal",
    )
    run.add_argument(
        "--log-level",
        default=env("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    run.set_defaults(handler=main)


def main(args: argparse.Namespace, out: Any = None) -> int:
    if not 1 <= args.max_replicas <= MAX_REPLICAS:
        raise SystemExit(f"haoperator run: --max-replicas must be from 1 to {MAX_REPLICAS}")
    if not args.all_namespaces and not args.namespace:
        raise SystemExit(
            "haoperator run: say which namespaces to watch: "
            "--namespace NS (repeatable) or --all-namespaces"
        )
    timing = Timing(
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
    )
    lease_namespace = args.leader_elect_namespace or _own_namespace()
    if args.leader_elect:
        from haoperator.core.election import timing_problem

        problem = timing_problem(timing)
        if problem:
            raise SystemExit(f"haoperator run: --leader-elect: {problem}")
        if not lease_namespace:
            raise SystemExit(
                "haoperator run: --leader-elect needs --leader-elect-namespace outside a pod"
            )
    settings = Settings(
        namespaces=list(dict.fromkeys(args.namespace or [])),
        all_namespaces=args.all_namespaces,
        kubeconfig=args.kubeconfig,
        elector_image=args.elector_image,
        liveness_port=args.liveness_port,
        metrics_port=args.metrics_port,
        workers=max(1, args.workers),
        max_replicas=args.max_replicas,
        log_format=args.log_format,
        log_level=args.log_level,
        leader_elect=args.leader_elect,
        leader_elect_namespace=lease_namespace,
        leader_elect_timing=timing,
        identity=identity(args.leader_elect),
    )
    return run(settings)


def identity(leader_elect: bool) -> str:
    """This instance's name: its pod's (POD_NAME); outside a pod the host's, made unique with
    leader election (two instances on one machine must not both think they hold the Lease)."""
    pod = os.environ.get("POD_NAME")
    if pod:
        return pod
    host = socket.gethostname()
    return f"{host}_{uuid.uuid4().hex[:8]}" if leader_elect else host


def _own_namespace() -> str:
    """The pod's namespace, as its ServiceAccount token's mount says; "" outside a pod."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        return ""


def run(settings: Settings) -> int:
    ha_logging.configure(settings.log_format, settings.log_level)
    import kopf
    from kopf._core.engines.peering import Identity  # kopf exports the parameter, not its type

    from haoperator.controller import (  # importing handlers registers them with kopf
        handlers,
        metrics,
    )

    try:
        handlers.api_client(settings, 1).close()
    except Exception as exc:  # no usable configuration: say so once, not every minute
        raise SystemExit(f"haoperator run: cannot configure access to Kubernetes: {exc}") from exc
    # A port already taken must stop the operator at once, saying which: kopf would retry its
    # startup every minute without ever serving (metrics), or die with a traceback (liveness).
    _check_port_free(settings.liveness_port, "the liveness endpoint", "--liveness-port")
    try:
        metrics.serve(settings.metrics_port)
    except OSError as exc:
        message = _port_taken(settings.metrics_port, "metrics", "--metrics-port", exc)
        raise SystemExit(message) from exc

    kopf.run(
        # kopf's default identity asks getpass for the user name, which fails for a uid with no
        # /etc/passwd entry (OpenShift's random uids, a runAsUser override). It only names the
        # peer in peering, which runs standalone here.
        identity=Identity(settings.identity),
        clusterwide=settings.all_namespaces,
        namespaces=settings.namespaces,
        standalone=True,
        liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz",
        memo=kopf.Memo(settings=settings),
    )
    return 0


def _check_port_free(port: int, what: str, flag: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as exc:
            raise SystemExit(_port_taken(port, what, flag, exc)) from exc


def _port_taken(port: int, what: str, flag: str, exc: OSError) -> str:
    return (
        f"haoperator run: cannot serve {what} on port {port}: {exc.strerror or exc} "
        f"(another process has it? choose another with {flag})"
    )
