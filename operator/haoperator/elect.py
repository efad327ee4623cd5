"""`haoperator elect`: the command that runs the ha-elector sidecar (see elector.py), with the
probes the application and the kubelet ask: GET /healthz and GET /leader."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes import client, config

from haoperator.election import Timing
from haoperator.elector import Elector
from haoperator.kube import Kube


class _Probes(BaseHTTPRequestHandler):
    elector: Elector

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._answer(200, "ok")
        elif self.path == "/leader":
            leader = self.elector.leader_now()
            self._answer(200 if leader else 503, "leader" if leader else "standby")
        else:
            self._answer(404, "not found")

    def _answer(self, code: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # probes every few seconds are not news


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
    api = client.ApiClient(configuration)
    elector = Elector(
        Kube(api, timeout=max(timing.retry_period, 1.0)),
        namespace=args.namespace,
        pod=args.pod,
        lease=args.lease,
        timing=timing,
        preempt=args.preempt,
    )
    _Probes.elector = elector
    server = ThreadingHTTPServer((args.bind, args.port), _Probes)
    threading.Thread(target=server.serve_forever, daemon=True, name="probes").start()
    for name, follow in (("lease-watch", elector.watch_lease), ("pod-watch", elector.watch_pod)):
        threading.Thread(target=follow, daemon=True, name=name).start()

    def stop(signum: int, _: Any) -> None:
        elector.stop.set()
        elector.wake.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    elector.run()
    server.shutdown()
    return 0
