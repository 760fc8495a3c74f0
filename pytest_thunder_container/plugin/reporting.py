"""pytest side of the report: facts, evidence and results gathered, the summary at the end."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Generator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest

from pytest_thunder_container import __version__
from pytest_thunder_container.conformance.catalogue import Catalogue
from pytest_thunder_container.plugin.evidence import (
    EVIDENCE_PROPERTY,
    Evidence,
    parse_evidence_property,
)
from pytest_thunder_container.plugin.markers import (
    REQUIREMENT_PROPERTY,
    RequirementMarks,
    requirement_ids,
)
from pytest_thunder_container.report.allure import allure_categories, environment_properties
from pytest_thunder_container.report.certification import (
    LATENCY_JSON,
    RESULTS,
    CheckResult,
    PhaseReport,
    RunInfo,
    TargetFacts,
    build_report,
    combine_phases,
    load_latency,
    phase_from_dict,
    phase_to_dict,
    write_atomically,
    write_report,
)
from pytest_thunder_container.report.signing import KeyFileError, load_signer
from pytest_thunder_container.settings import Settings, worker_id

PLUGIN_NAME = "thunder-reporting"
NOT_APPLICABLE_PROPERTY = "not_applicable"
# Attributes of test reports (and a key of xdist's workeroutput) that carry data to the controller.
FACTS_ATTRIBUTE = "thunder_facts"
COLLECTED_ATTRIBUTE = "thunder_collected"
INTERRUPTED_KEY = "thunder_interrupted"
NOT_APPLICABLE_PREFIX = "not applicable"


def not_applicable(reason: str) -> NoReturn:
    """Skip the test because its requirement doesn't apply here (e.g. no --thunder-max-start-ms).

    Any skip whose reason starts with "not applicable" counts the same: not as a test not run.
    """
    __tracebackhide__ = True  # the skip's location is the test, not this helper
    pytest.skip(f"{NOT_APPLICABLE_PREFIX}: {reason}")


def record_facts(config: pytest.Config, facts: Mapping[str, str]) -> None:
    """Facts about one target for the report and allure (needs "target"); later calls add more."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if not isinstance(plugin, Reporting):
        raise RuntimeError(f"the {PLUGIN_NAME} plugin is not registered")
    plugin.record_facts(facts)


class Reporting:
    """Registered by plugin.py: xdist workers forward what they gather; the controller writes."""

    def __init__(self, config: pytest.Config, settings: Settings, catalogue: Catalogue) -> None:
        self._config = config
        self._settings = settings
        self._catalogue = catalogue  # the run's one catalogue (hooks.py loads it)
        try:
            key = settings.sign_key
            self._signer = load_signer(key, what="--thunder-sign-key") if key else None
        except KeyFileError as error:
            raise pytest.UsageError(str(error)) from None
        self._is_worker = hasattr(config, "workerinput")
        self._worker = worker_id()
        self._started = time.time()
        self._facts: dict[str, TargetFacts] = {}
        self._facts_sent: dict[str, TargetFacts] = {}
        self._collected: dict[str, tuple[str, ...]] = {}
        self._collection_sent = False
        self._phases: dict[tuple[str, str], list[PhaseReport]] = {}
        self._stop_reason: str | None = None
        self._interrupted: PhaseReport | None = None
        self._summary: dict[str, Any] | None = None
        self._written: list[Path] = []
        self._write_error: str | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        config.pluginmanager.register(
            RequirementMarks(config, self._catalogue, listing=self._settings.list_requirements),
            "thunder-requirement-marks",
        )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._collected.update((item.nodeid, requirement_ids(item)) for item in session.items)

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        # A deselected test (-k, -m, --thunder-static-only) is a check not run: its requirement
        # must not pass on the other tests alone.
        self._collected.update((item.nodeid, requirement_ids(item)) for item in items)

    # ------------------------------------------------------------------ evidence and facts

    @pytest.fixture
    def thunder_evidence(
        self, request: pytest.FixtureRequest, thunder_settings: Settings
    ) -> Evidence:
        """Files kept for this test in <results>/evidence/<test>/, and in allure (--alluredir)."""
        return Evidence(
            nodeid=request.node.nodeid,
            results=thunder_settings.results,
            user_properties=request.node.user_properties,
            allure_active=self._config.pluginmanager.hasplugin("allure_listener"),
        )

    def record_facts(self, facts: Mapping[str, str]) -> None:
        """See the module's record_facts()."""
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in facts.items()):
            raise TypeError(f"facts must map str to str, not {facts!r}")
        if not facts.get("target"):
            raise ValueError(f"facts need a 'target' (the target's name): {facts!r}")
        self._merge_facts({facts["target"]: {"worker": self._worker, "facts": dict(facts)}})

    def _merge_facts(self, snapshot: Mapping[str, Mapping[str, Any]]) -> None:
        for target, entry in snapshot.items():
            before = self._facts.get(target)
            facts = {**(before.facts if before else {}), **entry["facts"]}
            self._facts[target] = TargetFacts(target, entry["worker"], facts)

    def _facts_snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"worker": facts.worker, "facts": dict(facts.facts)}
            for name, facts in self._facts.items()
        }

    # ------------------------------------------------------------------ results of the tests

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        stop = call.excinfo.value if call.excinfo is not None else None
        if isinstance(stop, pytest.skip.Exception) and stop.msg.startswith(NOT_APPLICABLE_PREFIX):
            # On the item too, so the teardown report (which JUnit XML reads) carries it.
            entry = (NOT_APPLICABLE_PROPERTY, stop.msg)
            item.user_properties.append(entry)
            report.user_properties.append(entry)
        if self._is_worker:
            # Ride on the reports, which reach the controller at once: an interrupted worker
            # never sends its workeroutput.
            if self._facts != self._facts_sent:
                setattr(report, FACTS_ATTRIBUTE, self._facts_snapshot())
                self._facts_sent = dict(self._facts)
            if not self._collection_sent:
                setattr(
                    report, COLLECTED_ATTRIBUTE, {k: list(v) for k, v in self._collected.items()}
                )
                self._collection_sent = True
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self._is_worker:
            return
        worker = _worker_of(report) or self._worker
        self._merge_facts(getattr(report, FACTS_ATTRIBUTE, None) or {})
        for nodeid, ids in (getattr(report, COLLECTED_ATTRIBUTE, None) or {}).items():
            self._collected.setdefault(nodeid, tuple(ids))
        self._add_phase(_phase(report, worker))

    def _add_phase(self, phase: PhaseReport) -> None:
        self._phases.setdefault((phase.nodeid, phase.worker), []).append(phase)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        output = getattr(node, "workeroutput", {})
        self._merge_facts(output.get(FACTS_ATTRIBUTE) or {})
        if output.get(INTERRUPTED_KEY):
            self._add_phase(phase_from_dict(output[INTERRUPTED_KEY]))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            return (yield)
        except (KeyboardInterrupt, pytest.exit.Exception) as stop:
            # The test never gets a report: keep what it had recorded (evidence above all).
            self._interrupted = _interrupted_phase(item, self._worker, stop)
            raise

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        stop = excinfo.value
        if type(stop) is KeyboardInterrupt:
            self._stop_reason = "interrupted (Ctrl-C)"
        elif isinstance(stop, pytest.exit.Exception):
            self._stop_reason = stop.msg
        else:  # e.g. xdist's Interrupted, after a worker's Ctrl-C or -x
            self._stop_reason = f"{type(stop).__name__}: {stop}"

    # ------------------------------------------------------------------ the end of the session

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._is_worker:
            output = session.config.workeroutput  # type: ignore[attr-defined]
            output[FACTS_ATTRIBUTE] = self._facts_snapshot()
            if self._interrupted is not None:
                output[INTERRUPTED_KEY] = phase_to_dict(self._interrupted)
            return
        if self._interrupted is not None:
            self._add_phase(self._interrupted)
        listing = self._settings.list_requirements or self._config.option.collectonly
        if listing or not self._is_certification_run():
            return
        # -x / --maxfail end the run early without an exception; so can other plugins.
        self._stop_reason = self._stop_reason or session.shouldfail or session.shouldstop or None
        try:
            self._write(int(exitstatus))
        except OSError as error:
            self._write_error = f"thunder: the report could not be written: {error}"

    def _is_certification_run(self) -> bool:
        """Only sessions with requirement-tagged tests get a report (the harness's own tests
        boot targets too, but certify nothing)."""
        return any(self._collected.values()) or any(
            phase.requirement_ids for phases in self._phases.values() for phase in phases
        )

    def _write(self, exit_status: int) -> None:
        results = self._settings.results
        # xdist's report of a crashed worker has no user properties: the collection has the IDs.
        checks = [
            _with_collected_ids(combine_phases(phases), self._collected)
            for phases in self._phases.values()
        ]
        ran = {nodeid for nodeid, _ in self._phases}
        checks += [
            CheckResult(nodeid, "", "not-run", ids)
            for nodeid, ids in self._collected.items()
            if nodeid not in ran
        ]
        targets = list(self._facts.values())
        latency, latency_note = load_latency(results / LATENCY_JSON, targets, self._started)
        run = RunInfo(
            started_at=_iso(self._started),
            finished_at=_iso(time.time()),
            exit_status=exit_status,
            stop_reason=self._stop_reason,
        )
        self._summary = build_report(
            self._catalogue,
            checks,
            targets,
            run,
            harness_version=__version__,
            catalogue_sha256=self._catalogue.sha256,
            allowed_binds=self._settings.allowed_binds,
            latency=latency,
            latency_note=latency_note,
        )
        self._written = list(write_report(results, self._summary, self._signer))
        alluredir = self._config.getoption("allure_report_dir", None)
        if alluredir:
            # Written once, here on the controller; the workers write only their test results.
            directory = Path(alluredir)
            write_atomically(
                directory / "environment.properties",
                environment_properties(__version__, {t.target: t.facts for t in targets}),
            )
            write_atomically(
                directory / "categories.json", json.dumps(allure_categories(), indent=2) + "\n"
            )
            self._written += [directory / "environment.properties", directory / "categories.json"]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self._write_error:
            terminalreporter.write_line(self._write_error, red=True)
        if self._summary is None:
            return
        terminalreporter.section("thunder requirements")
        tested = [r for r in self._summary["requirements"] if r["tests"]]
        tested.sort(key=lambda r: RESULTS.index(r["result"]))  # stable: catalogue order within
        for requirement in tested:
            count = len(requirement["tests"])
            line = (
                f"{requirement['id']:<13} {requirement['level']:<6} "
                f"{requirement['result']:<15} ({count} test{'s' if count != 1 else ''})"
            )
            bad = requirement["result"] in ("failed", "error")
            terminalreporter.write_line(line, red=bad, green=requirement["result"] == "passed")
        counts = "; ".join(
            f"{level}: "
            + ", ".join(f"{n} {result.replace('-', ' ')}" for result, n in per_level.items() if n)
            for level, per_level in self._summary["counts"].items()
        )
        if not self._summary["run"]["complete"]:
            terminalreporter.write_line(self._summary["verdict_reasons"][0], red=True)
        terminalreporter.write_line(
            f"{counts}; verdict: {self._summary['verdict']}",
            bold=True,
            green=self._summary["certified"],
            red=not self._summary["certified"],
        )
        for path in self._written:
            terminalreporter.write_line(f"report: {path}")


def _worker_of(report: pytest.TestReport) -> str | None:
    """The xdist worker that ran the test (a crash report has only the worker's node)."""
    node = getattr(report, "node", None)
    return getattr(report, "worker_id", None) or getattr(getattr(node, "gateway", None), "id", None)


def _with_collected_ids(
    check: CheckResult, collected: Mapping[str, tuple[str, ...]]
) -> CheckResult:
    if check.requirement_ids or not collected.get(check.nodeid):
        return check
    return dataclasses.replace(check, requirement_ids=collected[check.nodeid])


def _phase(report: pytest.TestReport, worker: str) -> PhaseReport:
    properties = [(str(name), value) for name, value in report.user_properties]
    xfail = None
    if hasattr(report, "wasxfail"):
        xfail = "xfailed" if report.skipped else "xpassed" if report.passed else None
    evidence = (parse_evidence_property(v) for k, v in properties if k == EVIDENCE_PROPERTY)
    return PhaseReport(
        nodeid=report.nodeid,
        worker=worker,
        when=report.when or "",
        outcome=report.outcome,
        duration_s=float(report.duration),
        message=_message(report),
        details=report.longreprtext if report.failed else "",
        xfail=xfail,
        requirement_ids=tuple(str(v) for k, v in properties if k == REQUIREMENT_PROPERTY),
        evidence=tuple(item for item in evidence if item is not None),
        not_applicable=any(k == NOT_APPLICABLE_PROPERTY for k, _ in properties),
    )


def _interrupted_phase(item: pytest.Item, worker: str, stop: BaseException) -> PhaseReport:
    properties = [(str(name), value) for name, value in item.user_properties]
    reason = "interrupted (Ctrl-C)" if isinstance(stop, KeyboardInterrupt) else str(stop)
    evidence = (parse_evidence_property(v) for k, v in properties if k == EVIDENCE_PROPERTY)
    return PhaseReport(
        nodeid=item.nodeid,
        worker=worker,
        when="call",
        outcome="interrupted",
        message=reason,
        requirement_ids=requirement_ids(item),
        evidence=tuple(entry for entry in evidence if entry is not None),
    )


def _message(report: pytest.TestReport) -> str:
    """The one-line why: the crash message of a failure, the reason of a skip or xfail."""
    if hasattr(report, "wasxfail") and not report.failed:
        return str(report.wasxfail)
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(longrepr) if longrepr else ""


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
