"""What the alert and dashboard tests share: promtool (fetched by testenv/prometheus, once per
machine), the PrometheusRule's rule groups as a plain rule file, the metric names a PromQL
expression reads, and the metric names haoperator and its ha-elector serve."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

from haoperator.controller import metrics  # noqa: F401  (registers the operator's metrics)
from haoperator.sidecar import command
from testenv.harness.cluster import REPO

PROMETHEUS_RULE = REPO / "manifests" / "monitoring" / "prometheus-rule.yaml"
RULES_NAME = "haoperator-rules.yaml"
"""The rule file the promtool unit tests in tests/alerts/ name: the PrometheusRule's spec."""
FETCH = REPO / "testenv" / "prometheus"


@functools.cache
def prometheus_bin() -> Path:
    """The directory holding promtool and prometheus; fails (never skips) without them."""
    done = subprocess.run([str(FETCH)], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"testenv/prometheus could not provide promtool (exit {done.returncode}):\n"
            f"{done.stderr.strip()}",
            pytrace=False,
        )
    return Path(done.stdout.strip().splitlines()[-1])


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(prometheus_bin() / "promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def prometheus_rule() -> dict[str, Any]:
    found = [d for d in yaml.safe_load_all(PROMETHEUS_RULE.read_text()) if d]
    assert len(found) == 1, f"one PrometheusRule expected in {PROMETHEUS_RULE}"
    rule: dict[str, Any] = found[0]
    return rule


def write_rules(directory: Path) -> Path:
    """The PrometheusRule's groups as the rule file Prometheus itself would load."""
    path = directory / RULES_NAME
    path.write_text(yaml.safe_dump(prometheus_rule()["spec"], sort_keys=False))
    return path


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for group in prometheus_rule()["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


# -- the metric names an expression reads --------------------------------------------------------

_TOKEN = re.compile(
    r"""
      "(?:\\.|[^"\\])*" | '(?:\\.|[^'\\])*' | `[^`]*`    # strings
    | \d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:[smhdwy]|ms)?     # numbers and durations
    | [A-Za-z_:][A-Za-z0-9_:]*                           # names
    | \S                                                 # anything else, one character
    """,
    re.VERBOSE,
)
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"}
_CLOSING = {"{": "}", "[": "]", "(": ")"}


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects: every name that is not a function, an aggregation, a
    keyword, a label in a matcher or in a `by`/`on` list."""
    tokens = _TOKEN.findall(expr)
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in ("{", "[") or (token in _LABEL_LISTS and following == "("):
            opening = token if token in ("{", "[") else "("
            i = tokens.index(_CLOSING[opening], i + 1)  # none of these nest
        elif re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", token):
            lowered = token.lower()
            if not (
                following == "("
                or token in _AGGREGATIONS
                or token in _LABEL_LISTS
                or lowered in _KEYWORDS
            ):
                names.add(token)
        i += 1
    return names


# -- the metric names haoperator serves ----------------------------------------------------------

_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}


def _sample_names(exposition: str) -> set[str]:
    names = set()
    for family, kind in _TYPE.findall(exposition):
        base = family.removesuffix("_total") if kind == "counter" else family
        names |= {base + suffix for suffix in _SUFFIXES.get(kind, ("",))}
    return names


class _Elector:
    unreachable_since = None

    def leader_now(self) -> bool:
        return True


def served_metrics() -> set[str]:
    """The names of the samples haoperator's metrics port and the ha-elector's GET /metrics
    serve (ours only: the client library's process_* metrics and the creation times it adds to
    counters and histograms, `*_created`, are left out)."""
    operator = _sample_names(generate_latest(REGISTRY).decode())
    elector = _sample_names(command.metrics(_Elector()))  # type: ignore[arg-type]
    return {
        n for n in operator | elector if n.startswith("haoperator_") and not n.endswith("_created")
    }


PROMETHEUS_OWN = {"up", "ALERTS"}
"""What Prometheus records itself: `up` for every target, `ALERTS` for every alert pending or
firing."""
