"""The certification summary: thunder-report.json and its HTML page, built from plain values."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pytest_thunder_container.conformance.catalogue import LEVELS, Catalogue, Requirement
from pytest_thunder_container.report.allure import categorise
from pytest_thunder_container.report.html import render_html
from pytest_thunder_container.report.integrity import INTEGRITY, seal, unsigned_section
from pytest_thunder_container.report.signing import Signer

SCHEMA_VERSION = 1
REPORT_JSON = "thunder-report.json"
REPORT_HTML = "thunder-report.html"
LATENCY_JSON = "thunder-latency.json"
RESULTS = ("failed", "error", "skipped", "not-run", "passed", "not-applicable")
_DONE = ("passed", "not-applicable")
_COMPLETE_EXIT_STATUSES = (0, 1)  # all tests ran (some may have failed)
_T = TypeVar("_T")


@dataclass(frozen=True)
class EvidenceFile:
    """One file kept for a test: its name, its path relative to the results folder, its type."""

    name: str
    path: str
    kind: str


@dataclass(frozen=True)
class PhaseReport:
    """One phase (setup, call, teardown) of one test on one worker, as pytest reported it."""

    nodeid: str
    worker: str
    when: str
    outcome: str  # passed, failed, skipped; or interrupted (the phase never finished)
    duration_s: float = 0.0
    message: str = ""
    details: str = ""
    xfail: str | None = None  # "xfailed" or "xpassed" when the test was expected to fail
    requirement_ids: tuple[str, ...] = ()
    evidence: tuple[EvidenceFile, ...] = ()
    not_applicable: bool = False


@dataclass(frozen=True)
class CheckResult:
    """One test on one worker, its phases combined into a single outcome."""

    nodeid: str
    worker: str
    outcome: str  # passed failed error skipped xfailed xpassed not-applicable interrupted
    requirement_ids: tuple[str, ...] = ()
    duration_s: float = 0.0
    message: str = ""
    details: str = ""
    evidence: tuple[EvidenceFile, ...] = ()


@dataclass(frozen=True)
class TargetFacts:
    """What a target said about itself (kernel, runc, Thunder, image, ...) and who drove it."""

    target: str
    worker: str
    facts: Mapping[str, str] = field(default_factory=dict)

    @property
    def emulated(self) -> bool | None:
        return {"true": True, "false": False}.get(self.facts.get("emulated", ""))


@dataclass(frozen=True)
class RunInfo:
    """How the session went: when, its exit status, and why it stopped early if it did."""

    started_at: str
    finished_at: str
    exit_status: int
    stop_reason: str | None = None

    @property
    def complete(self) -> bool:
        return self.exit_status in _COMPLETE_EXIT_STATUSES and self.stop_reason is None


def combine_phases(phases: Sequence[PhaseReport]) -> CheckResult:
    """One outcome for a test from its phase reports (a missing call phase means it never ran)."""
    by_phase = {phase.when: phase for phase in phases}
    call, setup = by_phase.get("call"), by_phase.get("setup")
    decisive = call or setup
    failed = [phase for phase in phases if phase.outcome == "failed"]
    stopped = next((phase for phase in phases if phase.outcome == "interrupted"), None)
    shown = failed[0] if failed else stopped or decisive
    if failed:
        outcome = "failed" if failed[0].when == "call" else "error"
    elif stopped is not None or decisive is None:
        outcome = "interrupted"
    elif decisive.xfail is not None:
        outcome = decisive.xfail
    elif decisive.outcome == "skipped":
        outcome = "not-applicable" if decisive.not_applicable else "skipped"
    else:
        outcome = "passed" if call is not None else "interrupted"
    ids = _unique(requirement for phase in phases for requirement in phase.requirement_ids)
    evidence = _unique(item for phase in phases for item in phase.evidence)
    first = phases[0]
    return CheckResult(
        nodeid=first.nodeid,
        worker=first.worker,
        outcome=outcome,
        requirement_ids=ids,
        duration_s=round(sum(phase.duration_s for phase in phases), 3),
        message=shown.message if shown is not None and outcome != "passed" else "",
        details=failed[0].details if failed else "",
        evidence=evidence,
    )


def phase_to_dict(phase: PhaseReport) -> dict[str, Any]:
    """Plain data for xdist's workeroutput."""
    return dataclasses.asdict(phase)


def phase_from_dict(data: Mapping[str, Any]) -> PhaseReport:
    """The inverse of phase_to_dict."""
    evidence = tuple(EvidenceFile(**item) for item in data.get("evidence", ()))
    return PhaseReport(
        **{**data, "requirement_ids": tuple(data.get("requirement_ids", ())), "evidence": evidence}
    )


def requirement_result(outcomes: Sequence[str], *, applies: bool = True) -> str:
    """passed only when every test passed; failed when any failed; else why it wasn't shown."""
    if any(outcome in ("failed", "xfailed") for outcome in outcomes):
        return "failed"
    if "error" in outcomes:
        return "error"
    relevant = [outcome for outcome in outcomes if outcome != "not-applicable"]
    if outcomes and not relevant:
        return "not-applicable"
    if relevant and all(outcome in ("passed", "xpassed") for outcome in relevant):
        return "passed"
    result = "skipped" if "skipped" in relevant else "not-run"
    return result if applies else "not-applicable"


def build_report(
    catalogue: Catalogue,
    checks: Iterable[CheckResult],
    targets: Iterable[TargetFacts],
    run: RunInfo,
    *,
    harness_version: str,
    catalogue_sha256: str,
    allowed_binds: Sequence[str] = (),
    latency: Mapping[str, Any] | None = None,
    latency_note: str | None = None,
) -> dict[str, Any]:
    """The whole thunder-report.json document (see the README for every field)."""
    target_list = sorted(targets, key=lambda item: item.target)
    target_of = _target_of_worker(target_list)
    check_list = list(checks)
    dialects = {t.facts["thunder.dialect"] for t in target_list if "thunder.dialect" in t.facts}
    requirements = []
    for requirement in catalogue:
        covering = [check for check in check_list if requirement.id in check.requirement_ids]
        applies = not dialects or any(requirement.applies_to(d) for d in dialects)
        result = requirement_result([check.outcome for check in covering], applies=applies)
        requirements.append(
            _requirement_entry(
                catalogue,
                requirement,
                result,
                applies,
                [_check_entry(c, target_of) for c in covering],
            )
        )
    verdict, certified, reasons, findings = _verdict(requirements, run)
    return {
        "schema_version": SCHEMA_VERSION,
        "harness": {"name": "pytest-thunder-container", "version": harness_version},
        "catalogue": {
            "origin": catalogue.origin,
            "sha256": catalogue_sha256,
            "requirements": len(catalogue),
        },
        # --thunder-allow-bind: host paths writable binds may carry besides /tmp (TC-MNT-007).
        "allowed_binds": list(allowed_binds),
        "run": {
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "exit_status": run.exit_status,
            "complete": run.complete,
            "stop_reason": run.stop_reason,
        },
        "verdict": verdict,
        "certified": certified,
        "verdict_reasons": reasons,
        "findings": findings,
        "counts": _counts(requirements),
        "images": _images(target_list),
        "targets": [
            {
                "target": t.target,
                "worker": t.worker,
                "emulated": t.emulated,
                "facts": dict(sorted(t.facts.items())),
            }
            for t in target_list
        ],
        "requirements": requirements,
        "other_tests": [_check_entry(c, target_of) for c in check_list if not c.requirement_ids],
        "latency": dict(latency) if latency is not None else None,
        "latency_note": latency_note,
    }


def _requirement_entry(
    catalogue: Catalogue,
    requirement: Requirement,
    result: str,
    applies: bool,
    tests: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "id": requirement.id,
        "area": requirement.area,
        "area_title": catalogue.title(requirement.area),
        "level": requirement.level,
        "statement": requirement.statement,
        "source": requirement.source,
        "checks": requirement.checks,
        "dialects": list(requirement.dialects),
        "note": requirement.note,
        "applies": applies,
        "result": result,
        "tests": tests,
    }


def _check_entry(check: CheckResult, target_of: Mapping[str, str]) -> dict[str, Any]:
    return {
        "nodeid": check.nodeid,
        "worker": check.worker,
        "target": target_of.get(check.worker),
        "outcome": check.outcome,
        "duration_s": check.duration_s,
        "message": check.message,
        "details": check.details,
        "category": categorise(check.outcome, check.message),
        "requirement_ids": list(check.requirement_ids),
        "evidence": [{"name": e.name, "path": e.path, "kind": e.kind} for e in check.evidence],
    }


def _target_of_worker(targets: Sequence[TargetFacts]) -> dict[str, str]:
    """worker -> target, for workers that drove exactly one target."""
    per_worker: dict[str, list[str]] = {}
    for target in targets:
        per_worker.setdefault(target.worker, []).append(target.target)
    return {worker: names[0] for worker, names in per_worker.items() if len(names) == 1}


def _verdict(
    requirements: Sequence[Mapping[str, Any]], run: RunInfo
) -> tuple[str, bool, list[str], list[str]]:
    reasons = [
        f"{r['id']} (MUST) {r['result'].replace('-', ' ')}"
        for r in requirements
        if r["level"] == "MUST" and r["result"] not in _DONE
    ]
    if not run.complete:
        reasons.insert(
            0,
            f"the run did not complete (exit status {run.exit_status}"
            + (f": {run.stop_reason})" if run.stop_reason else ")"),
        )
    findings = [
        f"{r['id']} (SHOULD) {r['result'].replace('-', ' ')}"
        for r in requirements
        if r["level"] == "SHOULD" and r["result"] not in _DONE
    ]
    if reasons:
        return "not certified", False, reasons, findings
    return ("certified with findings" if findings else "certified"), True, reasons, findings


def _counts(requirements: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    counts = {level: dict.fromkeys(RESULTS, 0) for level in LEVELS}
    for requirement in requirements:
        counts[requirement["level"]][requirement["result"]] += 1
    return counts


def _images(targets: Sequence[TargetFacts]) -> list[dict[str, Any]]:
    images: dict[tuple[str | None, str | None], list[str]] = {}
    for target in targets:
        key = (target.facts.get("image"), target.facts.get("image.sha256"))
        if key != (None, None):
            images.setdefault(key, []).append(target.target)
    return [
        {"image": image, "sha256": sha, "targets": names} for (image, sha), names in images.items()
    ]


def _unique(items: Iterable[_T]) -> tuple[_T, ...]:
    return tuple(dict.fromkeys(items))


def load_latency(
    path: Path, targets: Sequence[TargetFacts], not_before: float
) -> tuple[dict[str, Any] | None, str | None]:
    """Each target's block of thunder-latency.json as written, with its target and `emulated`.

    The file is latency_report's {"targets": {label: block}}. Blocks measured before the run
    (not_before, epoch seconds) come from an earlier run in the same folder and are left out.
    The second value says what was left out, or why nothing could be read.
    """
    if not path.exists():
        return None, None
    try:
        if path.stat().st_mtime < not_before:
            return None, f"{path.name} is older than this run and was left out"
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"{path.name} could not be read: {error}"
    blocks = document.get("targets") if isinstance(document, dict) else None
    if not isinstance(blocks, dict) or not blocks:
        return None, f'{path.name} holds no per-target figures (no "targets" mapping)'
    emulated_of = {target.target: target.emulated for target in targets}
    latency, stale = {}, []
    for name, block in blocks.items():
        if not isinstance(block, dict) or _measured_before(block, not_before):
            stale.append(str(name))
            continue
        emulated = block.get("emulated")
        if not isinstance(emulated, bool):
            emulated = emulated_of.get(str(name))
        latency[str(name)] = {"target": str(name), "emulated": emulated, "figures": block}
    note = f"left out, not measured in this run: {', '.join(stale)}" if stale else None
    return latency or None, note


def _measured_before(block: Mapping[str, Any], not_before: float) -> bool:
    measured = block.get("measured_at")
    if not isinstance(measured, str):
        return False
    try:
        when = datetime.strptime(measured, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return False
    return when.timestamp() < int(not_before)  # measured_at has whole seconds


def sha256_text(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_report(
    results: Path, report: Mapping[str, Any], signer: Signer | None = None
) -> tuple[Path, Path]:
    """thunder-report.html, then thunder-report.json listing every file of the folder (the HTML
    too), signed when a signer is given."""
    json_path, html_path = results / REPORT_JSON, results / REPORT_HTML
    sealed = {**report, INTEGRITY: unsigned_section(signer)}
    write_atomically(html_path, render_html(sealed))
    seal(sealed, results, REPORT_JSON, signer)
    write_atomically(json_path, json.dumps(sealed, indent=2, ensure_ascii=False) + "\n")
    return json_path, html_path
