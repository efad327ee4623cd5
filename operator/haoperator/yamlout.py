"""YAML as kubectl reads it back: the one YAML writer for manifests and the CRD.

kubectl reads YAML 1.1, where a bare y, n, on or off is a boolean; PyYAML writes y and n bare. A
container named `y` would come back as `true`, so such strings are always quoted here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

_YAML_1_1_BOOLEANS = {"y", "n", "yes", "no", "true", "false", "on", "off"}


class _KubectlSafeDumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "'" if value.lower() in _YAML_1_1_BOOLEANS else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_KubectlSafeDumper.add_representer(str, _represent_str)


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=_KubectlSafeDumper, sort_keys=False, width=100)


def dump_all(documents: Iterable[Any]) -> str:
    """Documents separated by `---`, keys in the order they were built."""
    return yaml.dump_all(
        documents, Dumper=_KubectlSafeDumper, sort_keys=False, width=100, explicit_start=True
    )
