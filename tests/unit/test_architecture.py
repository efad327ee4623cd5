"""docs/architecture.md stays true to the code: every module it names exists, every function or
class it names in a module is defined there, and the rooms keep their imports."""

from __future__ import annotations

import ast
import re

import pytest

from testenv.harness.cluster import REPO

DOC = (REPO / "docs" / "architecture.md").read_text()
PACKAGE = REPO / "operator" / "haoperator"
MODULE = re.compile(r"`((?:api|core|controller|sidecar|importers)/[\w/]*\.py)`")
NAMED = re.compile(r"`((?:api|core|controller|sidecar)/[\w/]*\.py)` \(([^)]*)\)")


def defined(path: str) -> set[str]:
    tree = ast.parse((PACKAGE / path).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
    return names


@pytest.mark.parametrize("path", sorted(set(MODULE.findall(DOC))))
def test_every_module_named_exists(path: str) -> None:
    assert (PACKAGE / path).is_file(), path


@pytest.mark.parametrize(
    ("path", "names"), sorted({(path, names) for path, names in NAMED.findall(DOC)})
)
def test_every_function_named_is_defined_where_it_says(path: str, names: str) -> None:
    wanted = {n.split(".")[-1] for n in re.findall(r"`([\w.]+)`", names)}
    assert wanted <= defined(path), (path, wanted - defined(path))


ROOMS = {
    # room: the rooms it may import from (besides itself)
    "api": {"core.vocabulary", "yamlout"},
    "core": {"api"},
    "sidecar": {"core", "controller.kube", "logging"},
}


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_the_rooms_keep_their_imports(room: str) -> None:
    """The core stays pure (no kubernetes client, no kopf, no controller), the API models depend
    on nothing but the vocabulary, and the sidecar needs no operator machinery."""
    allowed = {room, *ROOMS[room]}
    for path in sorted((PACKAGE / room).rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module
                if module.startswith(("kubernetes", "kopf")):
                    assert room == "sidecar", f"{path.name} imports {module}"
                if not module.startswith("haoperator."):
                    continue
                inner = module.removeprefix("haoperator.")
                assert any(inner == a or inner.startswith(f"{a}.") for a in allowed), (
                    f"{path.relative_to(PACKAGE)} imports {module}"
                )
