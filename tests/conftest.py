"""Fixtures shared by the cluster tiers (tests/integration, tests/e2e) live in one module."""

pytest_plugins = ["tests.cluster_fixtures"]
