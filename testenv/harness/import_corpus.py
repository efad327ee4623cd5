"""`haoperator import` over a corpus of real configurations, in one process: the pure half of
tests/integration/test_import_corpus.py (the API server's half lives there).

A corpus is a folder with one subfolder per importer (`pacemaker/`, `keepalived/`, `systemd/`);
every file below a subfolder is fed to that importer, the way `haoperator import SOURCE FILE`
would, under a per-file time limit. Each file ends one of three ways: translated (HAServices that
validate, print and read back the same, and render), refused (`Unreadable`, one line), or a
failure, which names its class and the file.

The secret check is independent of the importers' own idea of a secret (`is_secret_name`): it
plants marker values in copies of the files, in the settings that this module considers secret
(existing ones, and a few added ones of each kind a real configuration has), and looks for the
markers in everything the import prints.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from haoperator.api import HAService
from haoperator.api.messages import describe
from haoperator.core.render import desired
from haoperator.importers import (
    Options,
    Unreadable,
    import_keepalived,
    import_pacemaker,
    import_systemd,
)
from haoperator.yamlout import dump_all

SOURCES = ("pacemaker", "keepalived", "systemd")
CATEGORIES = ("LoadBalanced", "Clustered", "QueueWorker", "ActivePassive")
TIME_LIMIT = 5.0
"""Seconds one file may take to import and render; the slowest corpus file takes ~0.1 s."""
IGNORED = {"README.md"}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""yaml.safe_load's rules (YAML 1.1, as kubectl reads), in C when libyaml is there: 4 s less."""
"""Files at the top of the corpus that describe it rather than belong to an importer."""

# Failure classes, in the order the report lists them.
CRASH = "crash (exception other than Unreadable)"
HANG = "hang (time limit exceeded)"
BAD_REFUSAL = "refusal not exactly one non-empty line"
EMPTY = "no HAService and no refusal"
INVALID = "HAService does not validate with the models"
UNRENDERABLE = "render failed"
REREAD = "printed YAML reads back differently"
BAD_REPORT = "report item not one line"
LEAK = "secret leaked (planted marker in the output or report)"
PLANTED_CRASH = "crash or hang on a copy with planted secrets"
Outcome = Literal["translated", "refused", "failed"]


class Hang(BaseException):
    """The time limit of one file ran out. A BaseException, so that no `except Exception` in the
    code under test swallows it."""


class CorpusProblem(Exception):
    """The corpus is missing or laid out so that a file's importer cannot be chosen."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise `Hang` in the block after `seconds` of wall time (SIGALRM: the main thread only).

    An interval timer set by someone else (pytest-timeout's, per test) is put back afterwards with
    what was left of it, so both limits hold."""

    def expire(signum: int, frame: object) -> None:
        raise Hang(f"more than {seconds:g} s")

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, expire)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay > 0:
            left = previous_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), previous_interval)


@dataclass(frozen=True)
class CorpusFile:
    source: str
    path: Path
    shown: str
    """The path relative to the corpus, as failures name it."""


def corpus_files(root: Path) -> list[CorpusFile]:
    """Every file of the corpus with the importer its folder names, sorted."""
    if not root.is_dir():
        raise CorpusProblem(
            f"the import corpus is missing: {root} is not a directory (CI keeps it at "
            "../shared/corpora/import, next to the repository)"
        )
    found: list[CorpusFile] = []
    stray: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if len(relative.parts) == 1 and relative.name in IGNORED:
            continue
        if len(relative.parts) < 2 or relative.parts[0] not in SOURCES:
            stray.append(str(relative))
            continue
        found.append(CorpusFile(relative.parts[0], path, str(relative)))
    if stray:
        raise CorpusProblem(
            f"files in {root} outside {', '.join(f'{s}/' for s in SOURCES)}, whose importer "
            f"cannot be chosen: {', '.join(stray)}"
        )
    empty = [s for s in SOURCES if not any(f.source == s for f in found)]
    if empty:
        raise CorpusProblem(f"no files in {', '.join(f'{root}/{s}/' for s in empty)}")
    return found


Importer = Callable[[str, str, str], tuple[list[dict[str, Any]], list[str]]]
"""(source, text, file name) -> (HAServices, report lines); raises Unreadable to refuse."""


def run_importer(source: str, text: str, filename: str) -> tuple[list[dict[str, Any]], list[str]]:
    """What `haoperator import SOURCE FILE` computes, without options: HAServices and report."""
    if source == "pacemaker":
        haservices, report = import_pacemaker(text, Options())
    elif source == "keepalived":
        haservices, report = import_keepalived(text, Options())
    elif source == "systemd":
        haservices, report = import_systemd(text, Options(), filename)
    else:
        raise ValueError(f"no importer for {source}")
    return haservices, report.lines()


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _crash(error: BaseException) -> str:
    """The exception and where it was raised (its innermost frame), on one line."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return _one_line(f"{type(error).__name__}: {error}{where}")


@dataclass
class Imported:
    """One corpus file through the importer, the printer and the renderer."""

    file: CorpusFile
    outcome: Outcome = "failed"
    haservices: list[dict[str, Any]] = field(default_factory=list)
    """As `kubectl apply -n NAMESPACE` gets them: printed, read back, namespace set."""
    children: list[list[dict[str, Any]]] = field(default_factory=list)
    """What each HAService renders, in the same order."""
    refusal: str = ""
    report: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(class, detail) for each thing wrong."""
    seconds: float = 0.0

    def fail(self, kind: str, detail: str) -> None:
        self.outcome = "failed"
        self.failures.append((kind, detail))

    @property
    def categories(self) -> Counter[str]:
        return Counter(str(h.get("spec", {}).get("category")) for h in self.haservices)


def import_file(file: CorpusFile, namespace: str, seconds: float = TIME_LIMIT) -> Imported:
    """Import, print, read back, validate and render one file, within `seconds`."""
    result = Imported(file)
    text = file.path.read_text(encoding="utf-8", errors="surrogateescape")
    started = time.monotonic()
    try:
        with time_limit(seconds):
            _translate(result, text, namespace)
    except Hang as error:
        result.fail(HANG, f"importing or rendering took {error}")
    result.seconds = time.monotonic() - started
    return result


def _translate(result: Imported, text: str, namespace: str) -> None:
    try:
        haservices, report = run_importer(result.file.source, text, result.file.path.name)
    except Unreadable as error:
        message = str(error)
        result.refusal = message
        if not message.strip() or "\n" in message.strip():
            result.fail(BAD_REFUSAL, repr(message[:300]))
        else:
            result.outcome = "refused"
        return
    except Exception as error:  # the point: any other exception is a crash, named with the file
        result.fail(CRASH, _crash(error))
        return
    result.report = report
    for line in report:
        if not line.strip() or "\n" in line:
            result.fail(BAD_REPORT, repr(line[:300]))
    if not haservices:
        result.fail(EMPTY, "exit 0 with nothing on stdout")
        return
    try:
        printed = dump_all(haservices)
        read_back = list(yaml.load_all(printed, Loader=_LOADER))
    except Exception as error:
        result.fail(REREAD, _crash(error))
        return
    if _canonical(read_back) != _canonical(haservices):
        result.fail(REREAD, "yaml.safe_load_all(stdout) != the importer's HAServices")
        return
    for document in read_back:
        name = _name(document)
        if isinstance(document, dict) and isinstance(document.get("metadata"), dict):
            document["metadata"]["namespace"] = namespace
        try:
            haservice = HAService.model_validate(document)
        except ValidationError as error:
            result.fail(INVALID, f"{name}: {'; '.join(describe(error))[:400]}")
            continue
        try:
            children = desired(haservice)
        except Exception as error:  # a render crash on a valid HAService is a finding too
            result.fail(UNRENDERABLE, f"{name}: {_crash(error)}")
            continue
        result.haservices.append(document)
        result.children.append(children)
    if not result.failures:
        result.outcome = "translated"


def _name(document: Any) -> str:
    try:
        return str(document["metadata"]["name"])
    except (KeyError, TypeError):
        return "(unnamed)"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def canonical(value: Any) -> str:
    """A key for identical objects (deduplicating server round trips)."""
    return _canonical(value)


# -- secrets --------------------------------------------------------------------------------------

_SECRET_FRAGMENTS = ("pass", "secret", "token", "auth", "cookie", "credential", "psk")
_SECRET_WORDS = {"pw", "pwd", "key", "apikey"}
_NOT_THE_SECRET = {"file", "path", "dir", "directory", "script", "url", "uri", "type", "method"}
"""Last words of settings that say where a secret is or how it is used, not what it is:
`key_file`, `passwd_script`, `auth_url`, `auth_type`."""


def secret_setting(name: str) -> bool:
    """Whether a setting of this name holds a secret value, by this test's own rule: `passwd`,
    `auth_pass`, `REDIS_AUTH`, `RABBITMQ_ERLANG_COOKIE`, `--requirepass`, `--masterauth`, `pw`."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    if not words or words[-1] in _NOT_THE_SECRET:
        return False
    joined = "_".join(words)
    return any(f in joined for f in _SECRET_FRAGMENTS) or any(w in _SECRET_WORDS for w in words)


@dataclass
class Planted:
    """A copy of a file's text with marker values in its secret settings."""

    text: str
    markers: dict[str, str] = field(default_factory=dict)
    """marker -> the setting it stands in, e.g. `line 12: Environment DB_PASSWORD`."""

    def marker(self, what: str) -> str:
        # 8 characters, letters and digits only: valid wherever a password is (keepalived
        # truncates auth_pass at 8), unchanged by lowercasing apart from case.
        value = f"Qx{len(self.markers) + 1:04d}Zv"
        self.markers[value] = what
        return value


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


_NVPAIR = re.compile(r"<nvpair\b[^>]*>")
_ATTRIBUTE = r"""\b{name}\s*=\s*(?P<q>["'])(?P<v>.*?)(?P=q)"""
_INSTANCE_ATTRIBUTES = re.compile(r"<instance_attributes\b[^>]*?(?<!/)>")
_CONTAINER = re.compile(r"<(?P<runtime>docker|podman|rkt)\b(?P<attrs>[^>]*?)(?P<end>/?>)")
INJECTED_NVPAIRS = ("password", "requirepass", "masterauth", "auth", "api_token", "cookie", "pw")
"""Names planted, in turn, as one extra parameter of every instance_attributes set."""


def _plant_pacemaker(text: str) -> Planted:
    planted = Planted(text)

    def nvpair(match: re.Match[str]) -> str:
        tag = match.group(0)
        name = re.search(_ATTRIBUTE.format(name="name"), tag)
        value = re.search(_ATTRIBUTE.format(name="value"), tag)
        if name is None or value is None or not secret_setting(name.group("v")):
            return tag
        what = f"line {_line_of(text, match.start())}: nvpair {name.group('v')}"
        start, end = value.span("v")
        return f"{tag[:start]}{planted.marker(what)}{tag[end:]}"

    replaced = _NVPAIR.sub(nvpair, text)
    counter = iter(range(1, 1_000_000))
    # Markers go in on the lines where they were found (no line is added), so line numbers
    # stay those of the original file.

    def inject(match: re.Match[str]) -> str:
        number = next(counter)
        name = INJECTED_NVPAIRS[(number - 1) % len(INJECTED_NVPAIRS)]
        what = f"line {_line_of(replaced, match.start())}: added nvpair {name}"
        value = planted.marker(what)
        return f'{match.group(0)}<nvpair id="leak-check-{number}" name="{name}" value="{value}"/>'

    injected = _INSTANCE_ATTRIBUTES.sub(inject, replaced)

    def container(match: re.Match[str]) -> str:
        attrs = match.group("attrs")
        line = _line_of(injected, match.start())
        env = (
            f"-e DB_PASSWORD={planted.marker(f'line {line}: bundle option -e DB_PASSWORD')} "
            f"--env=API_TOKEN={planted.marker(f'line {line}: bundle option --env=API_TOKEN')}"
        )
        options = re.search(_ATTRIBUTE.format(name="options"), attrs)
        if options is None:
            attrs = f'{attrs} options="{env}"'
        else:
            end = options.end("v")
            attrs = f"{attrs[:end]} {env}{attrs[end:]}"
        return f"<{match.group('runtime')}{attrs}{match.group('end')}"

    planted.text = _CONTAINER.sub(container, injected)
    return planted


_KEEPALIVED_SETTING = re.compile(
    r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w-]*)(?P<sep>\s+)(?P<rest>.*)$"
)
_KEEPALIVED_SCRIPTS = re.compile(r"^(misc_path|script|notify(_(?!fifo$)\w+)?)$")
"""Settings whose value is a command line (notify_fifo is a FIFO's path)."""
SCRIPT_FLAGS = ("--requirepass", "--masterauth", "-setcookie", "--password")
"""Options planted, one per line in turn, at the end of keepalived's command lines: one each, as
a command with one option that looks secret may be left out whole, hiding the others."""


def _strip_comment(line: str) -> str:
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char in "#!" and not quoted:
            return line[:index]
    return line


def _plant_keepalived(text: str) -> Planted:
    planted = Planted(text)
    lines = text.split("\n")
    out: list[str] = []
    scripts = 0
    for number, line in enumerate(lines, 1):
        code = _strip_comment(line)
        setting = _KEEPALIVED_SETTING.match(code)
        if setting is None or not setting.group("rest").strip():
            out.append(line)
            continue
        key, rest = setting.group("key"), setting.group("rest").rstrip()
        comment = line[len(code) :]
        head = f"{setting.group('indent')}{key}{setting.group('sep')}"
        if secret_setting(key) and not rest.startswith("{"):
            out.append(f"{head}{planted.marker(f'line {number}: {key}')}{comment}")
        elif _KEEPALIVED_SCRIPTS.match(key) and not rest.startswith("{"):
            flag = SCRIPT_FLAGS[scripts % len(SCRIPT_FLAGS)]
            scripts += 1
            option = f"{flag} {planted.marker(f'line {number}: {key} {flag}')}"
            if rest.startswith('"') and rest.endswith('"') and len(rest) > 1:
                command = rest[1:-1]
            else:
                command = rest
            out.append(f'{head}"{command} {option}"{comment}')
        else:
            out.append(line)
    _add_keepalived_authentication(out, planted)
    planted.text = "\n".join(out)
    return planted


def _add_keepalived_authentication(lines: list[str], planted: Planted) -> None:
    """Give every vrrp_instance without an authentication block one, with a marker auth_pass."""
    starts: list[int] = []
    for index, line in enumerate(lines):
        if re.match(r"^\s*vrrp_instance\s+\S+\s*\{\s*$", _strip_comment(line)):
            starts.append(index)
    for start in reversed(starts):
        depth, end = 0, len(lines)
        for index in range(start, len(lines)):
            code = _strip_comment(lines[index])
            depth += code.count("{") - code.count("}")
            if depth <= 0:
                end = index
                break
        block = lines[start:end]
        if any(re.match(r"^\s*authentication\b", _strip_comment(line)) for line in block):
            continue
        marker = planted.marker(f"line {start + 1}: added authentication auth_pass")
        lines[start + 1 : start + 1] = [
            "    authentication {",
            "        auth_type PASS",
            f"        auth_pass {marker}",
            "    }",
        ]


_EXEC = re.compile(r"^\s*Exec(Start|StartPre|StartPost|Reload|Stop|StopPost|Condition)\s*=\s*\S")
_ENVIRONMENT = re.compile(r"^\s*Environment\s*=")
_ASSIGNMENT = re.compile(r"""(?<![^\s"'])(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>[^\s"']*)""")
_FLAG_WITH_VALUE = re.compile(
    r"(?<!\S)(?P<flag>--?[A-Za-z][\w-]*)(?P<sep>=|\s+)(?P<value>[^\s-]\S*)"
)
PLANTED_ENVIRONMENT = (
    "DB_PASSWORD",
    "RABBITMQ_ERLANG_COOKIE",
    "REDIS_AUTH",
    "API_TOKEN",
    "SECRET_KEY_BASE",
    "SIGNING_KEY",
    "MYSQL_PWD",
    "PGPASSWORD",
)
"""Variables added, with marker values, to the [Service] section of every unit."""
PLANTED_FLAGS = (
    ("--requirepass", " "),
    ("--masterauth", "="),
    ("--password", " "),
    ("-setcookie", " "),
    ("--auth-token", "="),
)
"""Options added, with marker values, to the end of every Exec*= command line."""


def _plant_systemd(text: str) -> Planted:
    planted = Planted(text)
    lines = text.split("\n")
    out: list[str] = []
    in_service = False
    index = 0
    while index < len(lines):
        line, number = lines[index], index + 1
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            in_service = stripped == "[Service]"
            out.append(line)
            if in_service:
                out.extend(_planted_environment(planted, number))
        elif in_service and _ENVIRONMENT.match(line):
            out.append(_replace_secret_assignments(line, planted, number))
        elif in_service and _EXEC.match(line):
            block = [line]
            while block[-1].rstrip().endswith("\\") and index + 1 < len(lines):
                index += 1
                block.append(lines[index])
            block = [_replace_secret_flags(part, planted, number) for part in block]
            flags = " ".join(
                f"{flag}{sep}{planted.marker(f'line {number}: {flag} option')}"
                for flag, sep in PLANTED_FLAGS
            )
            url = planted.marker(f"line {number}: credentials in a --connection URL")
            block[-1] = f"{block[-1].rstrip()} {flags} --connection=mysql://nova:{url}@db/nova"
            out.extend(block)
        else:
            out.append(line)
        index += 1
    planted.text = "\n".join(out)
    return planted


def _planted_environment(planted: Planted, number: int) -> list[str]:
    first, second, *rest = PLANTED_ENVIRONMENT
    where = f"line {number}: added Environment"
    lines = [
        f"Environment={first}={planted.marker(f'{where} {first}')} "
        f'"{second}={planted.marker(f"{where} {second}")}"'
    ]
    lines += [f"Environment={name}={planted.marker(f'{where} {name}')}" for name in rest]
    url = planted.marker(f"{where} DATABASE_URL (credentials in the URL)")
    lines.append(f"Environment=DATABASE_URL=postgresql://app:{url}@db.example/app")
    return lines


def _replace_secret_assignments(line: str, planted: Planted, number: int) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if not secret_setting(name):
            return match.group(0)
        return f"{name}={planted.marker(f'line {number}: Environment {name}')}"

    head, _, tail = line.partition("=")
    return f"{head}={_ASSIGNMENT.sub(replace, tail)}"


def _replace_secret_flags(line: str, planted: Planted, number: int) -> str:
    def replace(match: re.Match[str]) -> str:
        flag = match.group("flag")
        if not secret_setting(flag):
            return match.group(0)
        marker = planted.marker(f"line {number}: existing {flag} option")
        return f"{flag}{match.group('sep')}{marker}"

    return _FLAG_WITH_VALUE.sub(replace, line)


PLANTERS: dict[str, Callable[[str], Planted]] = {
    "pacemaker": _plant_pacemaker,
    "keepalived": _plant_keepalived,
    "systemd": _plant_systemd,
}


def plant(source: str, text: str) -> Planted | None:
    """The text with markers in its secret settings, or None when it has nowhere to put one."""
    planted = PLANTERS[source](text)
    return planted if planted.markers else None


@dataclass
class LeakCheck:
    file: CorpusFile
    copy: Path
    markers: int = 0
    outcome: Outcome = "failed"
    leaks: list[str] = field(default_factory=list)
    """`<the setting>: in <where>` for each marker found."""
    failure: str = ""


def check_leaks(
    file: CorpusFile,
    directory: Path,
    seconds: float = TIME_LIMIT,
    importer: Importer | None = None,
) -> LeakCheck | None:
    """Import a copy of `file` (written under `directory`) with markers planted in its secret
    settings; report the markers found in stdout, the report or the refusal. None when the file
    has no place for a secret. `importer` replaces the real ones (for a control)."""
    importer = importer or run_importer
    text = file.path.read_text(encoding="utf-8", errors="surrogateescape")
    planted = plant(file.source, text)
    if planted is None:
        return None
    copy = directory / file.shown
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(planted.text, encoding="utf-8", errors="surrogateescape")
    check = LeakCheck(file, copy, len(planted.markers))
    places: list[tuple[str, str]] = []
    try:
        with time_limit(seconds):
            try:
                haservices, report = importer(file.source, planted.text, copy.name)
                places += [("stdout", dump_all(haservices)), ("report", "\n".join(report))]
                check.outcome = "translated"
            except Unreadable as error:
                places.append(("the refusal", str(error)))
                check.outcome = "refused"
    except Hang as error:
        check.failure = f"importing the planted copy took {error}"
    except Exception as error:  # reported as a failure of its own, with the file
        check.failure = _crash(error)
    for marker, what in planted.markers.items():
        found = [where for where, shown in places if marker.lower() in shown.lower()]
        if found:
            check.leaks.append(f"{what}: in {' and '.join(found)}")
    return check


# -- the summary ----------------------------------------------------------------------------------


def summary_table(imported: list[Imported], leak_checks: list[LeakCheck]) -> str:
    """Per corpus: files, how they ended, HAServices by category, and the secret check."""
    header = ["corpus", "files", "translated", "refused", "failed", "HAServices"]
    header += [*CATEGORIES, "planted", "leaking"]
    rows: list[list[str]] = []
    for source in [*SOURCES, "total"]:
        mine = [i for i in imported if source in (i.file.source, "total")]
        checks = [c for c in leak_checks if source in (c.file.source, "total")]
        outcomes = Counter(i.outcome for i in mine)
        categories: Counter[str] = Counter()
        for item in mine:
            categories.update(item.categories)
        rows.append(
            [
                source,
                str(len(mine)),
                str(outcomes["translated"]),
                str(outcomes["refused"]),
                str(outcomes["failed"]),
                str(sum(categories.values())),
                *(str(categories[c]) for c in CATEGORIES),
                str(len(checks)),
                str(sum(1 for c in checks if c.leaks)),
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def show(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([show(header), rule, *(show(r) for r in rows)])


def failures_by_class(failures: list[tuple[str, str, str]]) -> str:
    """(class, file, detail) triples as one block per class, every file listed."""
    classes: dict[str, list[tuple[str, str]]] = {}
    for kind, shown, detail in failures:
        classes.setdefault(kind, []).append((shown, detail))
    blocks = []
    for kind, items in classes.items():
        files = len({shown for shown, _ in items})
        lines = [f"{kind}: {len(items)} in {files} file(s)"]
        lines += [f"  {shown}: {detail}" for shown, detail in sorted(items)]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)
