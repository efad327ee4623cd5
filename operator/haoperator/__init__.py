"""haoperator: high availability patterns for Kubernetes workloads, as one HAService resource."""

__version__ = "0.1.0"
