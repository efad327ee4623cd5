"""What the tests, the benchmarks and `make dev` share to drive the local cluster, in one place:

- cluster.py: the kubeconfig, the cluster's own kubectl, ServiceAccount tokens as kubeconfigs,
  free local ports, and waiting on a condition;
- operator_process.py: `haoperator run` as a local process (its liveness, metrics, memory, CPU);
- electors.py: `haoperator elect` as local processes acting for pods that run no containers
  (kwok's), and a watcher of where a Service routes.
"""
