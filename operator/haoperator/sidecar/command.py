"""`haoperator elect`: the command that runs the ha-elector sidecar (see elector.py), with the
probes the application and the kubelet ask (GET /healthz, GET /leader), its metrics (GET
/metrics) and the question a leader asks its peers while the API server is out of reach (POST
/failsafe)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes import client, config

from haoperator.controller.kube import Kube
from haoperator.core.election import Timing
from haoperator.core.vocabulary import ELECTOR
from haoperator.sidecar.elector import Elector


class _Probes(BaseHTTPRequestHandler):
    elector: Elector

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._answer(200, "ok")
        elif self.path == "/leader":
            leader = self.elector.leader_now()
            self._answer(200 if leader else 503, self.elector.state())
        elif self.path == "/metrics":
            self._answer(200, metrics(self.elector), "text/plain; version=0.0.4")
        else:
            self._answer(404, "not found")

    def do_POST(self) -> None:
        if self.path != "/failsafe":
            self._answer(404, "not found")
            return
        try:
            length = min(int(self.headers.get("Content-Length") or 0), 4096)
            asker = str(json.loads(self.rfile.read(length))["holder"])
        except (ValueError, KeyError, TypeError):
            self._answer(400, 'want {"holder": POD}')
            return
        answer = self.elector.answer_failsafe(asker)
        self._answer(200, json.dumps(answer), "application/json")

    def _answer(self, code: int, text: str, content_type: str = "text/plain") -> None:
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # probes every few seconds are not news


def metrics(elector: Elector) -> str:
    """The elector's state in Prometheus' text format."""
    leading = elector.leader_now()
    riding = leading and elector.unreachable_since is not None
    lines = [
        "# HELP haoperator_elector_leading Whether this pod is the active one (/leader 200).",
        "# TYPE haoperator_elector_leading gauge",
        f"haoperator_elector_leading {int(leading)}",
        "# HELP haoperator_elector_failsafe Whether this leader keeps the role through an "
        "unreachable API server, on the other pods' word.",
        "# TYPE haoperator_elector_failsafe gauge",
        f"haoperator_elector_failsafe {int(riding)}",
    ]
    return "\n".join(lines)


def add_parser(commands: Any) -> None:
    elect = commands.add_parser(
        "elect",
        help="run the ha-elector sidecar (leader election for ActivePassive pods)",
        description="Contend for a Lease and label this pod active or standby. In a pod, the pod "
        "comes from POD_NAME/POD_NAMESPACE; outside one, give --pod, --namespace and --kubeconfig.",
    )
    elect.add_argument(
        "--lease", required=True, help="the Lease to contend for (the HAService's name)"
    )
    elect.add_argument(
        "--pod", default=os.environ.get("POD_NAME"), help="this pod (default: $POD_NAME)"
    )
    elect.add_argument(
        "--namespace", default=os.environ.get("POD_NAMESPACE"), help="default: $POD_NAMESPACE"
    )
    elect.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG"), help="outside a pod, like kubectl's"
    )
    elect.add_argument(
        "--lease-duration-seconds",
        "--lease-duration",
        type=float,
        default=5.0,
        dest="lease_duration",
    )
    elect.add_argument(
        "--renew-deadline-seconds",
        "--renew-deadline",
        type=float,
        default=3.0,
        dest="renew_deadline",
    )
    elect.add_argument(
        "--retry-period-seconds", "--retry-period", type=float, default=1.0, dest="retry_period"
    )
    elect.add_argument(
        "--preempt", action="store_true", help="the oldest ready pod takes the role back"
    )
    elect.add_argument(
        "--unhealthy-seconds",
        type=float,
        default=0.0,
        help="hand the role over once the application has not been Ready for this long "
        "(default: %(default)s)",
    )
    elect.add_argument(
        "--health-container",
        action="append",
        default=[],
        dest="health_containers",
        help="a container whose readiness is the application's health (repeat; default: every "
        "container but the ha-elector)",
    )
    elect.add_argument(
        "--failsafe-seconds",
        type=float,
        default=0.0,
        help="keep the role through an unreachable API server for up to this long while every "
        "other pod confirms it cannot reach it either (default: %(default)s, off)",
    )
    elect.add_argument(
        "--port", type=int, default=8099, help="GET /healthz and /leader (default: %(default)s)"
    )
    elect.add_argument(
        "--bind", default="0.0.0.0", help="address for the probes (default: %(default)s)"
    )
    elect.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    elect.set_defaults(handler=main)


def main(args: argparse.Namespace, out: Any = None) -> int:
    from haoperator import logging as ha_logging

    ha_logging.configure(args.log_format, "info")
    if not args.pod or not args.namespace:
        raise SystemExit(
            "haoperator elect: no pod: set POD_NAME/POD_NAMESPACE or give --pod and --namespace"
        )
    timing = Timing(args.lease_duration, args.renew_deadline, args.retry_period)
    if not timing.retry_period < timing.renew_deadline < timing.lease_duration:
        raise SystemExit("haoperator elect: need retry period < renew deadline < lease duration")
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        try:
            config.load_kube_config(config_file=args.kubeconfig, client_configuration=configuration)
        except Exception as exc:  # no usable configuration: one line, not a traceback
            raise SystemExit(
                f"haoperator elect: cannot configure access to Kubernetes: {exc}"
            ) from exc
    # No retries below us: urllib3 would repeat a timed-out request three times, so one renew
    # against a hung API server took four timeouts, past the renew deadline; and a peer asked in
    # a failsafe could not answer within a retry period. The elector retries on its own schedule.
    configuration.retries = False
    api = client.ApiClient(configuration)
    elector = Elector(
        Kube(api, timeout=max(timing.retry_period, 1.0), field_manager=ELECTOR),
        namespace=args.namespace,
        pod=args.pod,
        lease=args.lease,
        timing=timing,
        preempt=args.preempt,
        unhealthy_seconds=args.unhealthy_seconds,
        health_containers=tuple(args.health_containers),
        failsafe=args.failsafe_seconds,
        port=args.port,
    )
    _Probes.elector = elector
    server = ThreadingHTTPServer((args.bind, args.port), _Probes)
    threading.Thread(target=server.serve_forever, daemon=True, name="probes").start()
    for name, follow in (
        ("lease-watch", elector.watch_lease),
        ("pod-watch", elector.watch_pods),
        ("slice-watch", elector.watch_slices),
    ):
        threading.Thread(target=follow, daemon=True, name=name).start()

    def stop(signum: int, _: Any) -> None:
        elector.stop.set()
        elector.wake.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    elector.run()
    server.shutdown()
    return 0
