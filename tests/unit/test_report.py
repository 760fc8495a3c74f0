"""The certification summary from plain values: outcomes, verdict, latency, HTML, allure files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from pytest_thunder_container.conformance.catalogue import Catalogue, parse_catalogue
from pytest_thunder_container.report.allure import (
    CATEGORIES,
    allure_categories,
    categorise,
    environment_properties,
)
from pytest_thunder_container.report.certification import (
    SCHEMA_VERSION,
    CheckResult,
    EvidenceFile,
    PhaseReport,
    RunInfo,
    TargetFacts,
    build_report,
    combine_phases,
    load_latency,
    phase_from_dict,
    phase_to_dict,
    requirement_result,
    write_report,
)
from pytest_thunder_container.report.html import render_html

CATALOGUE_TOML = """
[areas]
NS = "Namespaces"
ENV = "Environment"
PERF = "Start latency"

[[requirement]]
id = "TC-NS-001"
area = "NS"
level = "MUST"
statement = "The container gets a new pid namespace."
source = "runc default"
checks = "runtime"

[[requirement]]
id = "TC-NS-002"
area = "NS"
level = "SHOULD"
statement = "The container gets a new cgroup namespace."
source = "runc default"
checks = "runtime"

[[requirement]]
id = "TC-ENV-001"
area = "ENV"
level = "MUST"
statement = "A literal is all R4.4 understands."
source = "THUNDER.md"
checks = "static"
dialects = ["R4.4"]

[[requirement]]
id = "TC-PERF-001"
area = "PERF"
level = "MUST"
statement = "Start latency is within the limit."
source = "THUNDER.md"
checks = "runtime"
"""
RUN_OK = RunInfo("2024-01-01T00:00:00+00:00", "2024-01-01T00:01:00+00:00", exit_status=1)


@pytest.fixture
def catalogue() -> Catalogue:
    return parse_catalogue(CATALOGUE_TOML, origin="test catalogue")


def phase(when: str, outcome: str, **fields: object) -> PhaseReport:
    return PhaseReport(nodeid="t.py::test_a", worker="gw0", when=when, outcome=outcome, **fields)


def check(
    nodeid: str, outcome: str, *ids: str, worker: str = "gw0", **fields: object
) -> CheckResult:
    return CheckResult(nodeid, worker, outcome, ids, **fields)


def report_for(
    catalogue: Catalogue,
    *checks: CheckResult,
    run: RunInfo = RUN_OK,
    targets: tuple[TargetFacts, ...] = (),
) -> dict:
    return build_report(
        catalogue, checks, targets, run, harness_version="9.9", catalogue_sha256="abc"
    )


def all_pass(*, but: dict[str, str]) -> list[CheckResult]:
    outcomes = {
        "TC-NS-001": "passed",
        "TC-NS-002": "passed",
        "TC-ENV-001": "passed",
        "TC-PERF-001": "passed",
        **but,
    }
    return [
        check(f"t.py::test_{i}", outcome, rid) for i, (rid, outcome) in enumerate(outcomes.items())
    ]


# ------------------------------------------------------------------------- one test's outcome


@pytest.mark.parametrize(
    ("phases", "outcome"),
    [
        (
            [phase("setup", "passed"), phase("call", "passed"), phase("teardown", "passed")],
            "passed",
        ),
        (
            [phase("setup", "passed"), phase("call", "failed"), phase("teardown", "passed")],
            "failed",
        ),
        ([phase("setup", "failed"), phase("teardown", "passed")], "error"),
        ([phase("setup", "passed"), phase("call", "passed"), phase("teardown", "failed")], "error"),
        (
            [phase("setup", "passed"), phase("call", "failed"), phase("teardown", "failed")],
            "failed",
        ),
        ([phase("setup", "skipped"), phase("teardown", "passed")], "skipped"),
        (
            [phase("setup", "passed"), phase("call", "skipped", not_applicable=True)],
            "not-applicable",
        ),
        ([phase("setup", "passed"), phase("call", "skipped", xfail="xfailed")], "xfailed"),
        ([phase("setup", "passed"), phase("call", "passed", xfail="xpassed")], "xpassed"),
        ([phase("setup", "passed")], "interrupted"),
        ([phase("setup", "passed"), phase("call", "interrupted")], "interrupted"),
    ],
)
def test_phases_combine_into_one_outcome(phases: list[PhaseReport], outcome: str) -> None:
    assert combine_phases(phases).outcome == outcome


def test_combined_test_keeps_ids_evidence_durations_and_the_failing_message() -> None:
    console = EvidenceFile("console", "evidence/t/console.txt", "text/plain")
    config = EvidenceFile("config", "evidence/t/config.json", "application/json")
    result = combine_phases(
        [
            phase("setup", "passed", duration_s=1.5, requirement_ids=("TC-NS-001",)),
            phase(
                "call",
                "failed",
                duration_s=0.25,
                message="AssertionError: pid ns shared",
                details="long traceback",
                requirement_ids=("TC-NS-001",),
                evidence=(console,),
            ),
            phase(
                "teardown",
                "passed",
                duration_s=0.25,
                requirement_ids=("TC-NS-001",),
                evidence=(console, config),
            ),
        ]
    )
    assert result.requirement_ids == ("TC-NS-001",)
    assert result.evidence == (console, config)
    assert result.duration_s == 2.0
    assert (result.message, result.details) == ("AssertionError: pid ns shared", "long traceback")


def test_a_passed_test_carries_no_message() -> None:
    result = combine_phases([phase("setup", "passed", message="x"), phase("call", "passed")])
    assert result.message == ""


def test_phase_survives_the_trip_through_workeroutput() -> None:
    original = phase(
        "call",
        "interrupted",
        requirement_ids=("TC-NS-001",),
        evidence=(EvidenceFile("a", "evidence/x/a.txt", "text/plain"),),
    )
    assert phase_from_dict(json.loads(json.dumps(phase_to_dict(original)))) == original


# ------------------------------------------------------------------------- one requirement


@pytest.mark.parametrize(
    ("outcomes", "result"),
    [
        (["passed", "passed"], "passed"),
        (["passed", "xpassed"], "passed"),
        (["passed", "failed"], "failed"),
        (["passed", "xfailed"], "failed"),
        (["error", "passed"], "error"),
        (["failed", "error"], "failed"),
        (["passed", "skipped"], "skipped"),
        (["passed", "interrupted"], "not-run"),
        (["not-run"], "not-run"),
        ([], "not-run"),
        (["not-applicable"], "not-applicable"),
        (["not-applicable", "passed"], "passed"),
        (["not-applicable", "skipped"], "skipped"),
    ],
)
def test_requirement_result_aggregates_its_tests(outcomes: list[str], result: str) -> None:
    assert requirement_result(outcomes) == result


def test_a_requirement_that_does_not_apply_is_not_applicable_unless_it_failed() -> None:
    assert requirement_result([], applies=False) == "not-applicable"
    assert requirement_result(["skipped"], applies=False) == "not-applicable"
    assert requirement_result(["failed"], applies=False) == "failed"


# ------------------------------------------------------------------------- the verdict


def test_everything_passed_is_certified(catalogue: Catalogue) -> None:
    report = report_for(catalogue, *all_pass(but={}))
    assert (report["verdict"], report["certified"]) == ("certified", True)
    assert report["verdict_reasons"] == report["findings"] == []


def test_a_failed_must_is_not_certified(catalogue: Catalogue) -> None:
    report = report_for(catalogue, *all_pass(but={"TC-NS-001": "failed"}))
    assert (report["verdict"], report["certified"]) == ("not certified", False)
    assert report["verdict_reasons"] == ["TC-NS-001 (MUST) failed"]


def test_a_failed_should_is_certified_with_findings(catalogue: Catalogue) -> None:
    report = report_for(catalogue, *all_pass(but={"TC-NS-002": "failed"}))
    assert (report["verdict"], report["certified"]) == ("certified with findings", True)
    assert report["findings"] == ["TC-NS-002 (SHOULD) failed"]


@pytest.mark.parametrize("outcome", ["skipped", "not-run", "interrupted", "error"])
def test_a_must_that_was_not_shown_is_not_certified(catalogue: Catalogue, outcome: str) -> None:
    report = report_for(catalogue, *all_pass(but={"TC-PERF-001": outcome}))
    assert report["certified"] is False
    assert report["verdict_reasons"][0].startswith("TC-PERF-001 (MUST)")


def test_a_must_without_any_test_is_not_certified(catalogue: Catalogue) -> None:
    checks = [c for c in all_pass(but={}) if "TC-PERF-001" not in c.requirement_ids]
    report = report_for(catalogue, *checks)
    assert report["verdict_reasons"] == ["TC-PERF-001 (MUST) not run"]


def test_a_must_that_does_not_apply_does_not_block_certification(catalogue: Catalogue) -> None:
    report = report_for(catalogue, *all_pass(but={"TC-PERF-001": "not-applicable"}))
    assert report["verdict"] == "certified"
    perf = next(r for r in report["requirements"] if r["id"] == "TC-PERF-001")
    assert perf["result"] == "not-applicable"


def test_requirements_of_another_dialect_do_not_apply(catalogue: Catalogue) -> None:
    checks = [c for c in all_pass(but={}) if "TC-ENV-001" not in c.requirement_ids]
    r5 = (TargetFacts("rpi3", "gw0", {"thunder.dialect": "R5"}),)
    report = report_for(catalogue, *checks, targets=r5)
    env = next(r for r in report["requirements"] if r["id"] == "TC-ENV-001")
    assert (env["applies"], env["result"], report["verdict"]) == (
        False,
        "not-applicable",
        "certified",
    )
    r44 = (TargetFacts("rpi3", "gw0", {"thunder.dialect": "R4.4"}),)
    assert report_for(catalogue, *checks, targets=r44)["certified"] is False


def test_an_incomplete_run_is_never_certified(catalogue: Catalogue) -> None:
    run = RunInfo("a", "b", exit_status=2, stop_reason="interrupted (Ctrl-C)")
    report = report_for(catalogue, *all_pass(but={}), run=run)
    assert report["certified"] is False
    assert report["run"]["complete"] is False
    assert report["verdict_reasons"] == [
        "the run did not complete (exit status 2: interrupted (Ctrl-C))"
    ]


def test_counts_per_level(catalogue: Catalogue) -> None:
    checks = [
        c for c in all_pass(but={"TC-NS-002": "failed"}) if "TC-ENV-001" not in c.requirement_ids
    ]
    counts = report_for(catalogue, *checks)["counts"]
    assert counts["MUST"] == {
        "failed": 0,
        "error": 0,
        "skipped": 0,
        "not-run": 1,
        "passed": 2,
        "not-applicable": 0,
    }
    assert counts["SHOULD"]["failed"] == 1


# ------------------------------------------------------------------------- the document


def test_report_document_fields(catalogue: Catalogue) -> None:
    targets = (
        TargetFacts(
            "rpi3-gw0",
            "gw0",
            {"target": "rpi3-gw0", "emulated": "true", "image": "/img", "image.sha256": "aa"},
        ),
        TargetFacts("board", "gw1", {"target": "board", "emulated": "false"}),
    )
    evidence = EvidenceFile("console", "evidence/t/console.txt", "text/plain")
    report = report_for(
        catalogue,
        check(
            "t.py::test_pid",
            "failed",
            "TC-NS-001",
            message="AssertionError: shared",
            duration_s=1.25,
            evidence=(evidence,),
        ),
        check("t.py::test_pid", "passed", "TC-NS-001", worker="gw1"),
        check("t.py::test_boot", "passed"),
        targets=targets,
    )
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["harness"] == {"name": "pytest-thunder-container", "version": "9.9"}
    assert report["catalogue"] == {"origin": "test catalogue", "sha256": "abc", "requirements": 4}
    assert report["images"] == [{"image": "/img", "sha256": "aa", "targets": ["rpi3-gw0"]}]
    assert [(t["target"], t["emulated"]) for t in report["targets"]] == [
        ("board", False),
        ("rpi3-gw0", True),
    ]
    pid = report["requirements"][0]
    assert (pid["id"], pid["level"], pid["area_title"], pid["result"]) == (
        "TC-NS-001",
        "MUST",
        "Namespaces",
        "failed",
    )
    assert pid["tests"][0] == {
        "nodeid": "t.py::test_pid",
        "worker": "gw0",
        "target": "rpi3-gw0",
        "outcome": "failed",
        "duration_s": 1.25,
        "message": "AssertionError: shared",
        "details": "",
        "category": "product",
        "requirement_ids": ["TC-NS-001"],
        "evidence": [{"name": "console", "path": "evidence/t/console.txt", "kind": "text/plain"}],
    }
    assert pid["tests"][1]["target"] == "board"
    assert [t["nodeid"] for t in report["other_tests"]] == ["t.py::test_boot"]
    json.dumps(report)  # plain JSON all the way down


def test_write_report_writes_json_and_html(catalogue: Catalogue, tmp_path: Path) -> None:
    report = report_for(catalogue, *all_pass(but={}))
    json_path, html_path = write_report(tmp_path / "results", report)
    written = json.loads(json_path.read_text())
    assert {key: value for key, value in written.items() if key != "integrity"} == report
    assert [entry["path"] for entry in written["integrity"]["files"]] == [html_path.name]
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "thunder-report.html",
        "thunder-report.json",
    ]


# ------------------------------------------------------------------------- latency


def latency_block(target: str, **fields: object) -> dict[str, object]:
    stats = {"n": 3, "median": 900.0, "p90": 950.0, "min": 850.0, "max": 950.0}
    return {
        "target": target,
        "label": target,
        "measured_at": "2030-01-01T00:00:00Z",
        "measurements": {
            "activation.container": {"unit": "ms", "samples": [850.0, 900.0, 950.0], "stats": stats}
        },
        **fields,
    }


def write_latency(path: Path, blocks: dict[str, object]) -> None:
    path.write_text(json.dumps({"schema_version": 1, "targets": blocks}))


def test_latency_blocks_as_written_keyed_by_target_each_saying_emulated_or_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "thunder-latency.json"
    emulated = latency_block("rpi3-gw0", emulated=True)
    hardware = latency_block("board-gw1", emulated=False)
    unknown = latency_block("virt-gw2")
    write_latency(path, {"rpi3-gw0": emulated, "board-gw1": hardware, "virt-gw2": unknown})
    targets = [TargetFacts("virt-gw2", "gw2", {"emulated": "true"})]
    latency, note = load_latency(path, targets, not_before=0)
    assert note is None
    assert latency == {
        "rpi3-gw0": {"target": "rpi3-gw0", "emulated": True, "figures": emulated},
        "board-gw1": {"target": "board-gw1", "emulated": False, "figures": hardware},
        "virt-gw2": {"target": "virt-gw2", "emulated": True, "figures": unknown},
    }


def test_latency_blocks_of_an_earlier_run_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "thunder-latency.json"
    old = latency_block("rpi3-gw0", emulated=True, measured_at="2020-01-01T00:00:00Z")
    new = latency_block("rpi3-gw1", emulated=True)
    write_latency(path, {"rpi3-gw0": old, "rpi3-gw1": new})
    latency, note = load_latency(path, [], not_before=1_700_000_000)
    assert list(latency) == ["rpi3-gw1"]
    assert note == "left out, not measured in this run: rpi3-gw0"


def test_latency_file_absent_broken_stale_or_unknown(tmp_path: Path) -> None:
    path = tmp_path / "thunder-latency.json"
    assert load_latency(path, [], not_before=0) == (None, None)
    path.write_text("{not json")
    latency, note = load_latency(path, [], not_before=0)
    assert latency is None and "could not be read" in note
    path.write_text(json.dumps({"virt": {"median_ms": 5}}))
    latency, note = load_latency(path, [], not_before=0)
    assert latency is None and "no per-target figures" in note
    write_latency(path, {"virt": latency_block("virt")})
    os.utime(path, (1000, 1000))
    latency, note = load_latency(path, [], not_before=2000)
    assert latency is None and "older than this run" in note


# ------------------------------------------------------------------------- HTML


def test_html_lists_every_requirement_and_escapes_hostile_text(catalogue: Catalogue) -> None:
    hostile = "<script>alert('x')</script>"
    report = report_for(
        catalogue,
        check(
            "t.py::test_<b>",
            "failed",
            "TC-NS-001",
            message=f"AssertionError: {hostile}",
            details=hostile,
            evidence=(
                EvidenceFile(hostile, "evidence/t y/console <1>.txt", "text/plain"),
                EvidenceFile("escape", "../../etc/passwd", "text/plain"),
                EvidenceFile("scheme", "javascript:alert(1)", "text/plain"),
            ),
        ),
        targets=(TargetFacts("rpi3", "main", {"kernel": hostile}),),
    )
    page = render_html(report)
    for requirement in catalogue:
        assert requirement.id in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert 'href="evidence/t%20y/console%20%3C1%3E.txt"' in page
    assert 'href="../' not in page and 'href="javascript' not in page
    assert "test_&lt;b&gt;" in page


def test_html_keeps_emulated_and_hardware_figures_apart(catalogue: Catalogue) -> None:
    report = report_for(catalogue)
    report["latency"] = {
        "rpi3": {"target": "rpi3", "emulated": True, "figures": latency_block("rpi3")},
        "board": {
            "target": "board",
            "emulated": False,
            "figures": latency_block("board", measured_at="<b>"),
        },
    }
    page = render_html(report)
    hardware, emulated = page.index("<h3>Hardware: board</h3>"), page.index("<h3>Emulated: rpi3")
    assert hardware < emulated
    assert page.count("<th>activation.container</th><td>ms</td><td>3</td><td>900.0</td>") == 2
    assert "measured_at &lt;b&gt;" in page


# ------------------------------------------------------------------------- allure files


@pytest.mark.parametrize(
    ("message", "category"),
    [
        ("pytest_thunder_container.errors.TargetError: boot failed", "infrastructure"),
        ("pytest_thunder_container.errors.ConsoleError: no prompt", "infrastructure"),
        ("ImageError: missing dtb", "infrastructure"),
        (
            "pytest_thunder_container.thunder.transport.ThunderUnreachable: refused",
            "infrastructure",
        ),
        ("RuntimeError: runc list did not finish within 10 s", "infrastructure"),
        ("AssertionError: pid namespace is shared\nassert 1 == 2", "product"),
        ("Failed: the host is not in the container", "product"),
        ("ValueError: bad literal", "defect"),
    ],
)
def test_failures_are_sorted_into_categories(message: str, category: str) -> None:
    assert categorise("failed", message) == category


def test_categories_json_is_allures_format() -> None:
    categories = allure_categories()
    assert [c["name"] for c in categories] == [c.name for c in CATEGORIES]
    for entry in categories:
        assert set(entry) == {"name", "matchedStatuses", "messageRegex"}
        re.compile(entry["messageRegex"])
    assert categorise("passed", "AssertionError: x") is None


def test_environment_properties_escape_like_java() -> None:
    text = environment_properties("1.0", {"rpi3": {"kernel": "6.1 #1 SMP: x=y", "é": "ü\n"}})
    assert text.splitlines() == [
        "harness.version=1.0",
        r"kernel=6.1 \#1 SMP\: x\=y",
        r"\u00e9=\u00fc\n",
    ]


def test_environment_properties_prefix_keys_with_the_target_when_there_are_several() -> None:
    text = environment_properties("1.0", {"b": {"kernel": "6.1"}, "a": {"kernel": "6.6"}})
    assert text.splitlines() == ["harness.version=1.0", "a.kernel=6.6", "b.kernel=6.1"]
