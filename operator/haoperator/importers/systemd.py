"""systemd service units as HAServices: `haoperator import systemd UNIT`.

Pure: the unit's text in (read by systemd_syntax), one HAService and a report out.

- `ExecStart=` is the container's command, as a hint: the program must exist in the image. Its
  prefixes (`-`, `@`, `+`, `!`) are dropped and reported, `${VAR}` and `$VAR` become Kubernetes'
  `$(VAR)` (except inside `sh -c '...'`, whose shell expands them itself), and options or values
  that look like secrets are left out.
- `Restart=` other than `no` gives `recovery.restart`: `StartLimitBurst=` (default 5) is
  `maxRestarts` and `StartLimitIntervalSec=` (default 10 s; also the older `StartLimitInterval=`
  in `[Service]`) is `windowSeconds`, with `onLimit: Migrate` since systemd gave up on this node.
  An interval of 0 disables the limit: `onLimit: Notify`.
- Category: a unit that names a port (`--port N`, `--bind HOST:N`, `PORT=N`, or the usual port of
  a well-known unit such as nova-api) serves clients: **LoadBalanced** with that port; otherwise
  **QueueWorker**. `--category NAME=CATEGORY` overrides. A unit has no health check, so there is
  no probe.
- `Environment=` becomes the container's env, except secrets (`*PASSWORD*`, `*_KEY`, URLs with
  credentials): those are dropped and reported by name, never by value.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from haoperator.api.base import MAX_RESTARTS, MAX_WINDOW_SECONDS
from haoperator.importers.common import (
    Options,
    Report,
    Unreadable,
    dns_label,
    duration,
    has_secret_value,
    is_secret_name,
    well_known_port_name,
    whole_seconds,
)
from haoperator.importers.known import SERVICE_PORTS, agent_key
from haoperator.importers.systemd_syntax import Entry, last, list_value, parse_unit, split_words
from haoperator.importers.workload import ContainerPlan, Plan, Port, Session

MAPPED = {
    "Type",
    "ExecStart",
    "Restart",
    "RestartSec",
    "StartLimitBurst",
    "StartLimitInterval",
    "StartLimitIntervalSec",
    "StartLimitAction",
    "Environment",
    "EnvironmentFile",
    "User",
    "Group",
    "WorkingDirectory",
    "ExecStartPre",
    "ExecStartPost",
    "ExecStop",
    "ExecStopPost",
    "ExecReload",
    "ExecCondition",
    "WatchdogSec",
    "DynamicUser",
}
SHELLS = {"sh", "bash", "dash", "ash", "zsh"}
"""`sh -c '...'`: the shell expands the script's variables itself, so they are left as written."""
ORDERING = ("After", "Before", "Requires", "Wants", "BindsTo", "PartOf", "Requisite", "Conflicts")
HOOKS = {
    "ExecStartPre": "an init container",
    "ExecStartPost": "a postStart hook",
    "ExecStop": "a preStop hook",
    "ExecStopPost": "a preStop hook",
    "ExecReload": "a rollout restart of the pods",
    "ExecCondition": "an init container",
}
_PORT_OPTION = re.compile(r"-{1,2}(?:[a-z]+[-_])*port|-p", re.IGNORECASE)
_HOST_PORT = re.compile(r"(?:[\w.-]*|\[[0-9a-fA-F:]+\]|\*):(\d{1,5})")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_SPECIFIER = re.compile(r"%(.)")


def import_systemd(
    text: str, options: Options, unit: str | None = None
) -> tuple[list[dict[str, Any]], Report]:
    """The unit's HAService and the report; `unit` is the unit's file name, for its name."""
    report = Report()
    sections = parse_unit(text)
    if "Service" not in sections:
        raise Unreadable("", "no [Service] section: not a service unit")
    importer = _Importer(sections, report)
    plan = importer.plan(options.name or (unit or ""))
    session = Session(options, report)
    session.add(plan)
    return session.finish(), report


class _Importer:
    def __init__(self, sections: dict[str, list[Entry]], report: Report) -> None:
        self.service = sections["Service"]
        self.unit = sections.get("Unit", [])
        self.report = report
        self.subject = "unit"

    def plan(self, given_name: str) -> Plan:
        starts = list_value(self.service, "ExecStart")
        if not starts:
            raise Unreadable("[Service]", "has no ExecStart=: nothing to run")
        program = (
            PurePosixPath(split_words(starts[0])[0].lstrip("-@:+!")).name
            if split_words(starts[0])
            else ""
        )
        raw = given_name.removesuffix(".service").replace("@", "") or program or "service"
        self.subject = f"unit {raw}"
        command = self._command(starts[0])
        container = ContainerPlan(
            name=dns_label(raw, max_length=63, letter_first=False), ids=(raw,)
        )
        container.command = command
        container.env = self._environment()
        numbers = sorted(set(self._ports(command)))
        container.ports = [Port(well_known_port_name(n), n, n) for n in numbers]
        if not numbers:
            for port_name, number in SERVICE_PORTS.get(agent_key(raw), ()):
                container.ports.append(Port(port_name, number, number))
                numbers.append(number)
                self.report.note(
                    self.subject,
                    f"port {number} ({port_name}) assumed: the usual port of {agent_key(raw)}; "
                    "correct spec.service if it differs",
                )
        working = last(self.service, "WorkingDirectory")
        if working is not None and working.value.lstrip("-").startswith("/"):
            container.working_dir = working.value.lstrip("-")
        category = "LoadBalanced" if numbers else "QueueWorker"
        why = f"it names port {', '.join(map(str, numbers))}" if numbers else "it names no port"
        self.report.note(self.subject, f"{category}: {why} (--category {raw}=CATEGORY to change)")
        if numbers:
            self.report.note(self.subject, "a unit has no health check: add a readinessProbe")
        plan = Plan(
            source=f"systemd unit {raw}",
            subject=self.subject,
            ids=(raw,),
            raw_name=raw,
            category=category,
            containers=[container],
            replicas=2,
        )
        plan.restart = self._restart()
        self._user(plan)
        self._rest()
        return plan

    def _command(self, entry: Entry) -> list[str]:
        words = split_words(entry)
        if not words:
            raise Unreadable(f"line {entry.line}", "ExecStart= is empty")
        prefixes = words[0][: len(words[0]) - len(words[0].lstrip("-@:+!"))]
        words[0] = words[0][len(prefixes) :]
        if "@" in prefixes and len(words) > 1:
            del words[1]
        if "-" in prefixes:
            self.report.note(
                self.subject,
                "ExecStart=- (failure ignored): a container's exit status always counts",
            )
        if "+" in prefixes or "!" in prefixes:
            self.report.warning(
                self.subject,
                "ExecStart=+ or ! ran with full privileges: the restricted pod has none",
            )
        kept: list[str] = []
        dropped: list[str] = []
        skip = False
        shell = PurePosixPath(words[0]).name in SHELLS and "-c" in words
        for position, word in enumerate(words):
            if skip:
                skip = False
                continue
            if shell and position > words.index("-c"):
                script = word.split()
                if any(is_secret_name(w.partition("=")[0]) or has_secret_value(w) for w in script):
                    dropped.append("its shell script")
                else:
                    kept.append(word)
                continue
            option, equals, _ = word.partition("=")
            if word.startswith("-") and is_secret_name(option):
                dropped.append(option)
                following = words[position + 1] if position + 1 < len(words) else "-"
                skip = not equals and not following.startswith("-")
            elif has_secret_value(word):
                dropped.append(f"argument {position}")
            else:
                kept.append(self._expand(word))
        if dropped:
            self.report.warning(
                self.subject,
                f"ExecStart {', '.join(dropped)} left out (secrets):"
                " pass them from a Secret through env and $(VAR)",
            )
        return kept

    def _expand(self, word: str) -> str:
        specifiers = sorted({m.group(1) for m in _SPECIFIER.finditer(word)} - {"%"})
        if specifiers:
            self.report.unsupported(
                self.subject,
                f"specifiers {', '.join('%' + s for s in specifiers)} are not expanded",
            )
        word = word.replace("%%", "%")
        return _VARIABLE.sub(lambda m: f"$({m.group(1) or m.group(2)})", word)

    def _environment(self) -> list[tuple[str, str]]:
        env: dict[str, str] = {}
        dropped: list[str] = []
        for entry in list_value(self.service, "Environment"):
            for assignment in split_words(entry):
                name, sep, value = assignment.partition("=")
                if not sep or not name:
                    raise Unreadable(f"line {entry.line}", "Environment= takes NAME=VALUE words")
                if is_secret_name(name) or has_secret_value(value):
                    dropped.append(name)
                else:
                    env[name] = value
        if dropped:
            self.report.warning(
                self.subject,
                f"Environment {', '.join(dict.fromkeys(dropped))} not "
                "copied (secrets): put them in a Secret, env valueFrom.secretKeyRef",
            )
        for entry in list_value(self.service, "EnvironmentFile"):
            self.report.unsupported(
                self.subject,
                f"EnvironmentFile={entry.value}: put it in a "
                "ConfigMap (or a Secret) and use envFrom",
            )
        return list(env.items())

    def _ports(self, command: list[str]) -> list[int]:
        found: list[int] = []
        for position, word in enumerate(command):
            option, equals, value = word.partition("=")
            if _PORT_OPTION.fullmatch(option):
                value = (
                    value
                    if equals
                    else (command[position + 1] if position + 1 < len(command) else "")
                )
                if value.isdigit():
                    found.append(int(value))
            match = _HOST_PORT.fullmatch(value if equals else word)
            if match and "//" not in word:
                found.append(int(match.group(1)))
        for name, number in self._environment_ports():
            found.append(number)
            self.report.note(self.subject, f"port {number} from Environment {name}")
        return [port for port in found if 0 < port < 65536]

    def _environment_ports(self) -> list[tuple[str, int]]:
        pairs = [
            w.partition("=")
            for e in list_value(self.service, "Environment")
            for w in split_words(e)
        ]
        return [(n, int(v)) for n, _, v in pairs if re.fullmatch(r"(\w+_)?PORT", n) and v.isdigit()]

    def _restart(self) -> dict[str, Any] | None:
        restart = last(self.service, "Restart")
        policy = restart.value if restart is not None else "no"
        if policy == "no":
            self.report.unsupported(
                self.subject, "Restart=no (the default): a pod restarts its containers regardless"
            )
            return None
        if policy != "always":
            self.report.note(self.subject, f"Restart={policy}: Kubernetes restarts after any exit")
        delay = last(self.service, "RestartSec")
        if delay is not None:
            self.report.unsupported(
                self.subject,
                f"RestartSec={delay.value}: Kubernetes waits with "
                "its own back-off (10 s, doubling up to 5 min)",
            )
        burst = last(self.unit, "StartLimitBurst") or last(self.service, "StartLimitBurst")
        interval = last(self.unit, "StartLimitIntervalSec") or last(self.unit, "StartLimitInterval")
        old = last(self.service, "StartLimitInterval") or last(
            self.service, "StartLimitIntervalSec"
        )
        if interval is None and old is not None:
            interval = old
            self.report.note(
                self.subject,
                f"{old.key}= in [Service] is the old spelling of [Unit] StartLimitIntervalSec=",
            )
        if burst is not None and not burst.value.isdigit():
            raise Unreadable(f"line {burst.line}", "StartLimitBurst= must be a whole number")
        seconds = 10.0
        if interval is not None:
            try:
                seconds = (
                    MAX_WINDOW_SECONDS if interval.value == "infinity" else duration(interval.value)
                )
            except ValueError:
                raise Unreadable(
                    f"line {interval.line}", f"{interval.key}= is not a time span"
                ) from None
        action = last(self.unit, "StartLimitAction")
        if action is not None and action.value != "none":
            self.report.unsupported(
                self.subject,
                f"StartLimitAction={action.value}: onLimit Migrate moves the pod instead",
            )
        limit = {
            "maxRestarts": min(int(burst.value), MAX_RESTARTS) if burst is not None else 5,
            "windowSeconds": min(whole_seconds(seconds), MAX_WINDOW_SECONDS),
            "onLimit": "Migrate",
        }
        if seconds == 0:
            limit["onLimit"] = "Notify"
            self.report.note(
                self.subject,
                "a start limit interval of 0 disables the limit: onLimit Notify only reports",
            )
        return limit

    def _user(self, plan: Plan) -> None:
        for key in ("User", "Group"):
            entry = last(self.service, key)
            if entry is None:
                continue
            if entry.value in ("0", "root"):
                self.report.warning(
                    self.subject,
                    f"{key}={entry.value}: the restricted pod runs "
                    "as non-root; the image must work without root",
                )
            elif entry.value.isdigit():
                setattr(plan, "run_as_user" if key == "User" else "run_as_group", int(entry.value))
            else:
                self.report.note(
                    self.subject,
                    f"{key}={entry.value}: set securityContext."
                    f"runAs{key} to its number in the image",
                )

    def _rest(self) -> None:
        for key, hook in HOOKS.items():
            if list_value(self.service, key):
                self.report.unsupported(self.subject, f"{key}= is not run: use {hook}")
        service_type = last(self.service, "Type")
        kind = service_type.value if service_type is not None else "simple"
        if kind in ("forking", "oneshot"):
            self.report.warning(
                self.subject,
                f"Type={kind}: a container's main process must keep running in the foreground",
            )
        elif kind in ("notify", "dbus"):
            self.report.note(self.subject, f"Type={kind}: readiness comes from a probe instead")
        if last(self.service, "WatchdogSec") is not None:
            self.report.unsupported(self.subject, "WatchdogSec=: use a livenessProbe")
        ordering = sorted({e.key for e in self.unit if e.key in ORDERING})
        if ordering:
            self.report.unsupported(
                self.subject,
                f"{', '.join(ordering)}= (ordering and "
                "dependencies): no equivalent; let it retry until they answer",
            )
        conditions = sorted({e.key for e in self.unit if e.key.startswith(("Condition", "Assert"))})
        if conditions:
            self.report.unsupported(self.subject, f"{', '.join(conditions)}=: no equivalent")
        lost = sorted({e.key for e in self.service} - MAPPED)
        if lost:
            self.report.unsupported(
                self.subject, f"{', '.join(k + '=' for k in lost)}: no equivalent"
            )
