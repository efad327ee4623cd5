"""The local test environment: scripts that build and run the local cluster, and (harness/) the
helpers the tests, the benchmarks and `make dev` share to drive it."""
