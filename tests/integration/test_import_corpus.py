"""`haoperator import` over the shared corpus of real configurations (../shared/corpora/import):
every file is translated or refused in one line, what it translates to is accepted by the real API
server, and no secret of the input shows anywhere in what the import prints.

All in this one process, with the importers called directly (testenv/harness/import_corpus.py does
the pure part, each file under a time limit so a hang fails naming it). Translated HAServices, the
children they render and a pod made from each workload's template all go through a server-side
dry run (fieldValidation=Strict) in a namespace that enforces the restricted Pod Security level:
the CRD's schema and CEL rules, the built-in types' validation and Pod Security admission all have
their say, without creating anything. Identical objects are sent once, and a rejection is listed
under every file that produced the object.

The summary table (files, translated, refused, HAServices by category, the secret check) and the
times are printed in the test output, capture or not.
"""

from __future__ import annotations

import copy
import json
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from testenv.harness import import_corpus
from testenv.harness.cluster import exists, wait_until
from testenv.harness.import_corpus import (
    HANG,
    LEAK,
    PLANTED_CRASH,
    CorpusFile,
    CorpusProblem,
    Imported,
    LeakCheck,
    canonical,
    check_leaks,
    corpus_files,
    failures_by_class,
    import_file,
    summary_table,
)

pytestmark = pytest.mark.cluster
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "import"
WORKERS = 8
"""Dry runs in flight at once: enough to hide the round trip, gentle on a shared server."""
PATIENCE = 180.0
"""Seconds one dry run may go unanswered (timeouts, 5xx) before the test gives up on the server:
another process freezes the API server for up to 60 s at a time."""
POD_SECURITY = "pod-security.kubernetes.io"

HASERVICE_REJECTED = "HAService rejected by the API server (schema, CEL)"
CHILD_REJECTED = "rendered child rejected by the API server"
POD_REJECTED = "pod from the template rejected (restricted Pod Security, pod validation)"
WOULD_VIOLATE = "workload would violate restricted Pod Security (admission warning)"
WARNED = "other API server warning"


@dataclass
class Verdict:
    status: int = 0
    message: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class ServerGone(Exception):
    """The API server did not answer for PATIENCE seconds."""


class DryRun:
    """Server-side dry-run creates through one ApiClient, for any kind the server serves."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.plurals: dict[tuple[str, str], tuple[str, bool]] = {}
        self.requests = 0
        self.retries = 0
        self.slowest = 0.0
        """Seconds of the slowest answered request."""

    def discover(self, api_versions: set[str]) -> None:
        """Learn the resource of each kind of these groups (before any thread starts)."""
        for api_version in sorted(api_versions):
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            verdict, body = self._send("GET", base, None, [])
            assert verdict.accepted, f"discovery of {api_version}: {verdict.message}"
            for resource in body.get("resources", []):
                if "/" not in resource["name"]:
                    key = (api_version, resource["kind"])
                    self.plurals[key] = (resource["name"], bool(resource["namespaced"]))

    def create(self, obj: dict[str, Any]) -> Verdict:
        api_version, kind = obj["apiVersion"], obj["kind"]
        found = self.plurals.get((api_version, kind))
        if found is None:
            return Verdict(0, f"the server serves no {kind} in {api_version}")
        plural, namespaced = found
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        path = f"{base}/namespaces/{self.namespace}/{plural}" if namespaced else f"{base}/{plural}"
        query = [("dryRun", "All"), ("fieldValidation", "Strict")]
        verdict, _ = self._send("POST", path, obj, query)
        return verdict

    def _send(
        self, method: str, path: str, body: Any, query: list[tuple[str, str]]
    ) -> tuple[Verdict, dict[str, Any]]:
        deadline = time.monotonic() + PATIENCE
        while True:
            self.requests += 1
            verb, url, headers, data, _ = self.api.param_serialize(
                method,
                path,
                query_params=query,
                header_params={"Content-Type": "application/json", "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
            )
            problem = ""
            sent = time.monotonic()
            try:
                response = self.api.call_api(
                    verb, url, header_params=headers, body=data, _request_timeout=(5, 30)
                )
                raw = response.read()
                self.slowest = max(self.slowest, time.monotonic() - sent)
            except Exception as error:  # timeouts, refused connections, TLS: not answered
                problem = f"{type(error).__name__}: {error}"
            else:
                parsed = _json(raw)
                if response.status not in (429, 500, 502, 503, 504):
                    message = str(parsed.get("message", raw[:500].decode(errors="replace")))
                    warnings = list(response.headers.getlist("Warning"))
                    return Verdict(response.status, " ".join(message.split()), warnings), parsed
                problem = f"{response.status}: {parsed.get('message', '')}"
            if time.monotonic() > deadline:
                raise ServerGone(f"{method} {path} unanswered for {PATIENCE:g} s: {problem}")
            self.retries += 1
            time.sleep(2)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def pod_from(workload: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The pod a Deployment's or StatefulSet's controller would create from its template, as Pod
    Security admission sees it. Its ServiceAccount becomes `default`: the rendered one exists only
    in its own dry run, and admission refuses a pod whose account is missing."""
    template = workload["spec"]["template"]
    spec = copy.deepcopy(template["spec"])
    spec["serviceAccountName"] = "default"
    name = workload["metadata"]["name"]
    for claim in workload["spec"].get("volumeClaimTemplates") or []:
        claim_name = claim["metadata"]["name"]
        volume = {
            "name": claim_name,
            "persistentVolumeClaim": {"claimName": f"{claim_name}-{name}-0"},
        }
        spec["volumes"] = [*spec.get("volumes", []), volume]
    metadata = {
        "generateName": f"{name}-",
        "namespace": namespace,
        "labels": dict(template.get("metadata", {}).get("labels", {})),
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


@dataclass
class Sent:
    """One distinct object to dry-run, and who produced it: (file, what) pairs."""

    obj: dict[str, Any]
    rejected_as: str
    users: list[tuple[str, str]] = field(default_factory=list)
    verdict: Verdict = field(default_factory=Verdict)


@pytest.fixture(scope="module")
def files() -> list[CorpusFile]:
    try:
        return corpus_files(CORPUS)
    except CorpusProblem as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module")
def times() -> dict[str, float]:
    """Seconds per phase, for the summary."""
    return {}


@pytest.fixture(scope="module")
def corpus_namespace(core: client.CoreV1Api, crd: None) -> Iterator[str]:
    """One namespace for the module, enforcing (and warning about) the restricted level."""
    name = f"t-import-corpus-{uuid.uuid4().hex[:5]}"
    labels = {
        "haoperator.dev/test": "true",
        f"{POD_SECURITY}/enforce": "restricted",
        f"{POD_SECURITY}/enforce-version": "latest",
        f"{POD_SECURITY}/warn": "restricted",
        f"{POD_SECURITY}/warn-version": "latest",
    }
    core.create_namespace({"metadata": {"name": name, "labels": labels}})
    wait_until(
        lambda: exists(lambda: core.read_namespaced_service_account("default", name)),
        timeout=90,
        what="the default ServiceAccount",
    )
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="module")
def imported(
    files: list[CorpusFile], corpus_namespace: str, times: dict[str, float]
) -> list[Imported]:
    started = time.monotonic()
    results = [import_file(file, corpus_namespace) for file in files]
    times["import, validate and render every file"] = time.monotonic() - started
    return results


@pytest.fixture(scope="module")
def leak_checks(
    files: list[CorpusFile], tmp_path_factory: pytest.TempPathFactory, times: dict[str, float]
) -> list[LeakCheck]:
    started = time.monotonic()
    directory = tmp_path_factory.mktemp("planted")
    checks = [check for file in files if (check := check_leaks(file, directory)) is not None]
    times["plant secrets in copies and import them"] = time.monotonic() - started
    return checks


def test_every_corpus_file_is_translated_or_refused_and_the_server_accepts_the_output(
    imported: list[Imported],
    leak_checks: list[LeakCheck],
    api_client: ApiClient,
    corpus_namespace: str,
    times: dict[str, float],
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    failures = [
        (kind, item.file.shown, detail) for item in imported for kind, detail in item.failures
    ]
    sent = _distinct_objects(imported, corpus_namespace)
    dry_run = DryRun(api_client, corpus_namespace)
    dry_run.discover({"v1"} | {s.obj["apiVersion"] for s in sent})
    _the_namespace_refuses_a_privileged_pod(dry_run)
    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            for item, verdict in zip(
                sent, pool.map(lambda s: dry_run.create(s.obj), sent), strict=True
            ):
                item.verdict = verdict
    except ServerGone as error:
        pytest.fail(f"the API server stopped answering: {error}", pytrace=False)
    times["dry-run every distinct object"] = time.monotonic() - started
    failures += _server_failures(sent)

    leaks = _leak_failures(leak_checks)
    kinds = Counter(s.obj["kind"] for s in sent)
    produced = sum(len(s.users) for s in sent)
    blind = _blind(imported, leak_checks)
    with capsys.disabled():
        print("\n\nhaoperator import over", CORPUS)
        print(summary_table(imported, leak_checks))
        print(
            f"dry runs: {len(sent)} distinct objects for {produced} produced "
            f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}); "
            f"{dry_run.requests} requests, {dry_run.retries} retried, the slowest answered in "
            f"{dry_run.slowest:.2f} s"
        )
        for phase, seconds in times.items():
            print(f"{phase}: {seconds:.1f} s")
        if blind:
            print(
                f"secret check limited to the refusal line ({len(blind)} file(s) translated, "
                f"refused once secrets were planted): {', '.join(blind)}"
            )
        print(f"total: {sum(times.values()):.1f} s")
        by_class: dict[str, set[str]] = {}
        for kind, shown, _ in failures + leaks:
            by_class.setdefault(kind, set()).add(shown)
        for kind, shown_files in by_class.items():
            print(f"FAILED {kind}: {len(shown_files)} file(s)")
        print()
    if failures:
        pytest.fail(_listing(failures), pytrace=False)


def test_no_planted_secret_shows_in_what_the_import_prints(
    files: list[CorpusFile], leak_checks: list[LeakCheck], tmp_path: Path
) -> None:
    """Markers in copies of the files, in every setting that holds a secret (passwd and other
    nvpairs, auth_pass, script options, Environment= and --requirepass-like options): none may
    reach the HAServices, the report or a refusal."""
    planted = Counter(check.file.source for check in leak_checks)
    assert set(planted) == {file.source for file in files}, f"planted only in {dict(planted)}"
    # The control: an importer that repeats its input in its report leaks every marker, and the
    # check sees each one.
    for source in planted:
        file = next(check.file for check in leak_checks if check.file.source == source)
        control = check_leaks(file, tmp_path, importer=lambda _, text, __: ([], [text]))
        assert control is not None
        assert len(control.leaks) == control.markers, f"{file.shown}: {control.leaks}"
    failures = _leak_failures(leak_checks)
    if failures:
        pytest.fail(_listing(failures), pytrace=False)


def test_a_file_that_hangs_fails_naming_it(
    files: list[CorpusFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control of the time limit: an importer that never returns is stopped, the file is
    named, and pytest-timeout's own timer (if running) is still armed afterwards."""

    def spin(*_: Any) -> Any:
        while True:
            pass

    outer = signal.getitimer(signal.ITIMER_REAL)[0]
    monkeypatch.setattr(import_corpus, "run_importer", spin)
    result = import_file(files[0], "unused", seconds=0.3)
    assert result.outcome == "failed"
    assert result.failures == [(HANG, "importing or rendering took more than 0.3 s")]
    assert files[0].shown in _listing([(HANG, result.file.shown, result.failures[0][1])])
    if outer > 0:
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= outer


def _the_namespace_refuses_a_privileged_pod(dry_run: DryRun) -> None:
    """The control of the pod check: the namespace really enforces the restricted level."""
    container = {"name": "root", "image": "pause", "securityContext": {"privileged": True}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "control-"},
        "spec": {"containers": [container]},
    }
    verdict = dry_run.create(pod)
    assert verdict.status == 403, verdict
    assert 'violates PodSecurity "restricted:latest"' in verdict.message, verdict


def _listing(failures: list[tuple[str, str, str]]) -> str:
    files = len({shown for _, shown, _ in failures})
    return f"{len(failures)} failure(s) in {files} corpus file(s):\n{failures_by_class(failures)}"


def _distinct_objects(imported: list[Imported], namespace: str) -> list[Sent]:
    """Every HAService, rendered child and pod from a template, once each, with its producers."""
    distinct: dict[str, Sent] = {}

    def add(obj: dict[str, Any], rejected_as: str, shown: str, what: str) -> None:
        key = canonical(obj)
        if key not in distinct:
            distinct[key] = Sent(obj, rejected_as)
        distinct[key].users.append((shown, what))

    for item in imported:
        for haservice, children in zip(item.haservices, item.children, strict=True):
            name = haservice["metadata"]["name"]
            add(haservice, HASERVICE_REJECTED, item.file.shown, f"HAService {name}")
            for child in children:
                what = f"{child['kind']} {child['metadata']['name']} of {name}"
                add(child, CHILD_REJECTED, item.file.shown, what)
                if child["kind"] in ("Deployment", "StatefulSet"):
                    pod = pod_from(child, namespace)
                    add(pod, POD_REJECTED, item.file.shown, f"pod of {child['kind']} {name}")
    return list(distinct.values())


def _server_failures(sent: list[Sent]) -> list[tuple[str, str, str]]:
    failures = []
    for item in sent:
        verdict = item.verdict
        found: list[tuple[str, str]] = []
        if not verdict.accepted:
            found.append((item.rejected_as, f"{verdict.status} {verdict.message[:500]}"))
        warned: dict[str, list[str]] = {}
        for warning in verdict.warnings:
            kind = WOULD_VIOLATE if "would violate PodSecurity" in warning else WARNED
            warned.setdefault(kind, []).append(warning.removeprefix("299 - ").strip('"')[:300])
        found += [(kind, " | ".join(warnings)) for kind, warnings in warned.items()]
        failures += [
            (kind, shown, f"{what}: {detail}")
            for kind, detail in found
            for shown, what in item.users
        ]
    return failures


def _leak_failures(checks: list[LeakCheck]) -> list[tuple[str, str, str]]:
    failures = []
    for check in checks:
        if check.failure:
            failures.append((PLANTED_CRASH, check.file.shown, f"{check.failure} ({check.copy})"))
        failures += [(LEAK, check.file.shown, leak) for leak in check.leaks]
    return failures


def _blind(imported: list[Imported], checks: list[LeakCheck]) -> list[str]:
    """Files translated as they are but refused with markers in them."""
    translated = {item.file.shown for item in imported if item.outcome == "translated"}
    return [c.file.shown for c in checks if c.outcome == "refused" and c.file.shown in translated]
