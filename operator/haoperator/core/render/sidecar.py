"""The `ha-elector` sidecar of ActivePassive pods, and the access it needs.

Each pod runs `haoperator elect` as a native sidecar (an init container with restartPolicy Always,
so it starts before and stops after the application). Its command line, which `haoperator elect`
must accept:

    haoperator elect --lease NAME --lease-duration-seconds N --renew-deadline-seconds N
                     --retry-period-seconds N --port N [--preempt] [--failsafe-seconds N]
                     [--unhealthy-seconds N]
                     [--health-container NAME ...]

with the pod's name and namespace in the environment (POD_NAME, POD_NAMESPACE). It serves
GET /healthz (the liveness probe) and GET /leader on that port.

The Lease `<name>` is rendered empty: the operator makes it (labels, owner reference) so that
the electors' Role can be limited to that one Lease and a Lease of the same name that is not ours
is never touched (NameConflict); the electors own every field of its spec, so the operator never
competes with them for holderIdentity or renewTime.

The elector's API token is mounted into the sidecar only. When the operator provides the
ServiceAccount, the pods do not automount its token, so the application cannot move the active
role; a ServiceAccount the user names is bound as it is, automount as the user set it.
"""

from __future__ import annotations

from haoperator.api import HAService
from haoperator.api.workload import ELECTOR_TOKEN_VOLUME
from haoperator.core.render import common
from haoperator.core.render.common import Manifest
from haoperator.core.vocabulary import ELECTOR

CONTAINER_NAME = ELECTOR
TOKEN_VOLUME = ELECTOR_TOKEN_VOLUME
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_LIFETIME_SECONDS = 3607
ELECTOR_USER_ID = 65532


def name(haservice: HAService) -> str:
    """Name of the elector's ServiceAccount, Role and RoleBinding."""
    return f"{haservice.name}-elector"


def service_account_name(haservice: HAService) -> str:
    return haservice.spec.template.spec.service_account_name or name(haservice)


def creates_service_account(haservice: HAService) -> bool:
    return haservice.spec.template.spec.service_account_name is None


def container(haservice: HAService, image: str) -> Manifest:
    settings = haservice.spec.active_passive_settings
    port = settings.elector_port
    args = [
        "elect",
        "--lease",
        haservice.name,
        "--lease-duration-seconds",
        str(settings.lease_duration_seconds),
        "--renew-deadline-seconds",
        str(settings.renew_deadline_seconds),
        "--retry-period-seconds",
        str(settings.retry_period_seconds),
        "--port",
        str(port),
    ]
    if settings.preempt:
        args.append("--preempt")
    if settings.failsafe_seconds:
        args += ["--failsafe-seconds", str(settings.failsafe_seconds)]
    if settings.unhealthy_seconds:
        args += ["--unhealthy-seconds", str(settings.unhealthy_seconds)]
    for health in settings.health_containers or []:
        args += ["--health-container", health]
    return {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "restartPolicy": "Always",
        "command": ["haoperator"],
        "args": args,
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
        ],
        "ports": [{"name": CONTAINER_NAME, "containerPort": port, "protocol": "TCP"}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": "10m", "memory": "64Mi"},
            "limits": {"memory": "128Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": ELECTOR_USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": TOKEN_VOLUME, "mountPath": TOKEN_MOUNT_PATH, "readOnly": True}],
    }


def _field_env(variable: str, field_path: str) -> Manifest:
    return {
        "name": variable,
        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": field_path}},
    }


def token_volume() -> Manifest:
    """The same projected token, CA and namespace files the kubelet would mount, for the sidecar."""
    return {
        "name": TOKEN_VOLUME,
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "path": "token",
                        "expirationSeconds": TOKEN_LIFETIME_SECONDS,
                    }
                },
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ]
        },
    }


def service_account(haservice: HAService) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": common.metadata(haservice, name(haservice)),
        "automountServiceAccountToken": False,
    }


def lease(haservice: HAService) -> Manifest:
    """The Lease the electors contend for, made empty by the operator (see the module doc)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": common.metadata(haservice, haservice.name),
    }


def role(haservice: HAService) -> Manifest:
    """What an elector does: contend for its own Lease (that one only: no `create`, which a
    resource name cannot limit), label pods active or standby, and read where the Service
    routes."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": common.metadata(haservice, name(haservice)),
        "rules": [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": [haservice.name],
                "verbs": ["get", "list", "watch", "update", "patch"],
            },
            {
                "apiGroups": [""],
                "resources": ["pods"],
                "verbs": ["get", "list", "watch", "patch"],
            },
            {
                # A takeover labels its pod once the Service dropped the previous one.
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
    }


def role_binding(haservice: HAService) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": common.metadata(haservice, name(haservice)),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": name(haservice),
        },
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": service_account_name(haservice),
                "namespace": haservice.namespace,
            }
        ],
    }


def access(haservice: HAService) -> list[Manifest]:
    """The ServiceAccount (unless the template names one), the Lease, the Role and the
    RoleBinding: each before what refers to it."""
    account = [service_account(haservice)] if creates_service_account(haservice) else []
    return [*account, lease(haservice), role(haservice), role_binding(haservice)]
