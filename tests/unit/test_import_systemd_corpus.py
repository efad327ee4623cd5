"""`haoperator import systemd` on every real unit of the shared corpus (units Debian packages ship,
see shared/corpora/import/README.md): each one imports (or is refused with one clear line), every
directive it holds is translated or named in the report, two names of one unit get one category,
and no secret value reaches the output or the report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from haoperator.importers import Options, Unreadable, import_systemd
from haoperator.importers.common import (
    flag_secrets,
    has_secret_value,
    is_secret_literal,
    is_secret_name,
)
from haoperator.importers.systemd_syntax import parse_unit, split_words
from haoperator.yamlout import dump_all
from tests.unit.test_import_systemd import unreported

CORPUS = Path(__file__).resolve().parents[3] / "shared/corpora/import"
SYSTEMD = CORPUS / "systemd"
MISSING = (
    f"the shared corpus is missing: expected the units at {SYSTEMD} (CI has the corpus at "
    "../shared/corpora/import, next to the repository)"
)


def corpus_units() -> list[Path]:
    if not SYSTEMD.is_dir():
        return []
    return sorted(path for path in SYSTEMD.rglob("*") if path.is_file())


UNITS = corpus_units()


def unit_id(path: Path) -> str:
    return str(path.relative_to(SYSTEMD))


def imported(text: str, name: str | None) -> tuple[dict[str, object], str, str]:
    haservices, report = import_systemd(text, Options(), name)
    assert len(haservices) == 1
    return haservices[0], dump_all(haservices), "\n".join(report.lines())


def attempt(text: str, name: str | None) -> tuple[dict[str, object], str, str] | str:
    """`imported`, or the one line a refusal says: only a file with nothing to run (a drop-in)
    may be refused."""
    try:
        return imported(text, name)
    except Unreadable as refused:
        return str(refused)


def test_the_corpus_is_there() -> None:
    assert SYSTEMD.is_dir(), MISSING
    assert len(UNITS) >= 40, f"{MISSING}: only {len(UNITS)} files found"


@pytest.mark.parametrize("path", UNITS, ids=unit_id)
def test_every_directive_is_translated_or_reported(path: Path) -> None:
    text = path.read_text()
    result = attempt(text, path.name)
    if isinstance(result, str):
        assert "has no ExecStart=" in result, f"{unit_id(path)}: {result}"
        return
    missing = unreported(text, result[2].splitlines())
    assert missing == [], f"{unit_id(path)}: neither translated nor reported: {missing}"


def names_of(path: Path, text: str) -> list[str]:
    """The unit's file name, its aliases, an instance of a template, and whatever a symlink in
    the corpus calls it."""
    names = [path.name]
    for entry in parse_unit(text).get("Install", []):
        if entry.key == "Alias":
            names += [alias for alias in entry.value.split() if alias.endswith(".service")]
    if path.name.endswith("@.service"):
        names.append(path.name.replace("@.service", "@corpus.service"))
    names += [
        other.name
        for other in UNITS
        if other != path and other.resolve() == path.resolve() and other.is_symlink()
    ]
    return list(dict.fromkeys(names))


@pytest.mark.parametrize("path", UNITS, ids=unit_id)
def test_two_names_of_one_unit_get_the_same_category(path: Path) -> None:
    text = path.read_text()
    categories: dict[str, object] = {}
    for name in names_of(path, text):
        try:
            haservice, _, _ = imported(text, name)
        except Unreadable:
            return
        spec = haservice["spec"]
        assert isinstance(spec, dict)
        categories[name] = (spec["category"], spec.get("replicas"))
    assert len(set(categories.values())) == 1, f"{unit_id(path)}: {categories}"


def test_the_corpus_has_aliases_to_compare() -> None:
    assert SYSTEMD.is_dir(), MISSING
    assert sum(len(names_of(p, p.read_text())) > 1 for p in UNITS) >= 3


def secret_values(text: str) -> list[str]:
    """Values the unit gives secret-named Environment= variables and options: none may show."""
    values: list[str] = []
    for section in parse_unit(text).values():
        for entry in section:
            if entry.key == "Environment":
                for word in split_words(entry):
                    name, _, value = word.partition("=")
                    if (is_secret_name(name) and is_secret_literal(value)) or has_secret_value(
                        value
                    ):
                        values.append(value)
            elif entry.key.startswith("Exec"):
                words = entry.value.split()
                for found in flag_secrets(words, shell=True):
                    given = words[found.index]
                    value = given[len(found.prefix) : len(given) - len(found.suffix)]
                    values.append(value.strip("'\""))
                for position, word in enumerate(words):
                    option, equals, value = word.partition("=")
                    if not equals and position + 1 < len(words):
                        value = words[position + 1]
                    if (
                        option.startswith("-")
                        and is_secret_name(option)
                        and is_secret_literal(value)
                        and not value.startswith("-")
                    ):
                        values.append(value.strip("'\""))
    return [value for value in values if len(value) >= 4]


PLANTED = {
    "Environment=": 'Environment="CORPUS_PASSWORD=Cp-Env-9051" "RABBITMQ_ERLANG_COOKIE=Cp-Ck-9052"',
    "ExecStart": " --requirepass Cp-Flag-9053 --masterauth=Cp-Flag-9054",
    "ExecStartPre=": "ExecStartPre=/usr/bin/mysqladmin -uroot -pCp-Short-9055 ping",
    "ExecStopPost=": "ExecStopPost=/bin/sh -c 'redis-cli -a Cp-Short-9056 shutdown'",
}


def planted(text: str) -> str:
    """The unit with secrets added: in the environment, on the (first) command line, and as the
    short flags of known programs (mysqladmin -pX, redis-cli -a X) in other Exec lines."""
    lines = text.splitlines()
    service = next(i for i, line in enumerate(lines) if line.strip() == "[Service]")
    lines[service + 1 : service + 1] = [
        PLANTED["Environment="],
        PLANTED["ExecStartPre="],
        PLANTED["ExecStopPost="],
    ]
    for position, line in enumerate(lines):
        if re.match(r"\s*ExecStart=\S", line) and not line.rstrip().endswith("\\"):
            lines[position] = line.rstrip() + PLANTED["ExecStart"]
            break
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("path", UNITS, ids=unit_id)
def test_no_secret_value_reaches_the_output_or_the_report(path: Path) -> None:
    for text in (path.read_text(), planted(path.read_text())):
        result = attempt(text, path.name)
        if isinstance(result, str):
            assert "has no ExecStart=" in result
            continue
        _, out, report = result
        for secret in secret_values(text):
            assert secret not in out, f"{unit_id(path)}: a secret value is in the output"
            assert secret not in report, f"{unit_id(path)}: a secret value is in the report"


def test_the_planted_secrets_are_found_by_the_check() -> None:
    text = planted("[Service]\nExecStart=/usr/bin/app\n")
    assert secret_values(text) == [
        "Cp-Env-9051", "Cp-Ck-9052", "Cp-Short-9055", "Cp-Short-9056", "Cp-Flag-9053",
        "Cp-Flag-9054",
    ]  # fmt: skip
    _, out, report = imported(text, "app.service")
    assert "app-secrets" in out
    assert "create Secret app-secrets" in report


def test_the_corpus_imports_the_same_bytes_twice() -> None:
    assert SYSTEMD.is_dir(), MISSING
    for path in UNITS:
        try:
            first = imported(path.read_text(), path.name)
        except Unreadable:
            continue
        assert imported(path.read_text(), path.name)[1:] == first[1:], unit_id(path)


@pytest.mark.parametrize("path", UNITS, ids=unit_id)
def test_every_import_is_a_valid_haservice(path: Path) -> None:
    try:
        _, out, _ = imported(path.read_text(), path.name)
    except Unreadable:
        return
    document = yaml.safe_load(out)
    assert document["spec"]["category"] in (
        "LoadBalanced",
        "Clustered",
        "QueueWorker",
        "ActivePassive",
    )
