"""The reporting plugin in real sessions: IDs, listing, JUnit, facts, xdist, Ctrl-C, allure."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

pytest_plugins = ["pytester"]


pytestmark = pytest.mark.usefixtures("outside_xdist")


CATALOGUE = """
[areas]
NS = "Namespaces"
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
source = "OCI runtime spec"
checks = "runtime"

[[requirement]]
id = "TC-PERF-001"
area = "PERF"
level = "MUST"
statement = "The median start latency is within the limit."
source = "THUNDER.md"
checks = "runtime"
"""

FACTS_CONFTEST = """
import os
import pytest
from pytest_thunder_container.plugin.reporting import record_facts


@pytest.fixture(scope="session", autouse=True)
def fake_target(pytestconfig):
    name = "virt-" + os.environ.get("PYTEST_XDIST_WORKER", "main")
    record_facts(pytestconfig, {"target": name, "emulated": "true", "kernel": "6.1.0"})
    yield
    record_facts(pytestconfig, {"target": name, "stopped": "cleanly"})
"""

PERF_TEST = """
import pytest
from pytest_thunder_container.plugin.reporting import not_applicable

@pytest.mark.requirement("TC-PERF-001")
def test_start_latency(thunder_settings):
    if thunder_settings.max_start_ms is None:
        not_applicable("--thunder-max-start-ms was not given")

@pytest.mark.requirement("TC-PERF-001")
def test_start_latency_by_plain_skip(thunder_settings):
    if thunder_settings.max_start_ms is None:
        pytest.skip("not applicable: no --thunder-max-start-ms")
"""


@pytest.fixture
def catalogue_option(pytester: pytest.Pytester) -> str:
    path = pytester.path / "catalogue.toml"
    path.write_text(CATALOGUE)
    return f"--thunder-catalogue={path}"


def load_report(pytester: pytest.Pytester) -> dict[str, Any]:
    return json.loads((pytester.path / "out" / "thunder-report.json").read_text())


def runs_by_id(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {r["id"]: r["tests"] for r in report["requirements"]}


# ----------------------------------------------------------------------- requirement IDs


def test_an_unknown_id_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_ids="""
        import pytest

        @pytest.mark.requirement("TC-NS-001")
        def test_known(): pass

        @pytest.mark.requirement("TC-NS-01")
        def test_typo(): pass
        """
    )
    result = pytester.runpytest("--thunder-results=out")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_ids.py*",
            "test_ids.py::test_typo: unknown requirement ID 'TC-NS-01' (closest: TC-NS-001*",
            "*1 error*",
        ]
    )
    assert "test_known PASSED" not in result.stdout.str()


def test_a_marker_without_an_id_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_ids="""
        import pytest

        @pytest.mark.requirement()
        def test_nothing(): pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["test_ids.py::test_nothing: @pytest.mark.requirement() names no ID*"]
    )


def test_requirement_ids_and_evidence_reach_junit_xml(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_ids="""
        import pytest

        pytestmark = pytest.mark.requirement("TC-NS-001")

        def test_one(thunder_evidence):
            thunder_evidence.attach("console", "ok")

        @pytest.mark.requirement("TC-NS-002", "TC-NS-003")
        def test_two(): pass
        """
    )
    pytester.runpytest("--junitxml=junit.xml", "--thunder-results=out").assert_outcomes(passed=2)
    cases = {
        case.get("name"): case for case in ET.parse(pytester.path / "junit.xml").iter("testcase")
    }
    properties = {
        name: [(p.get("name"), p.get("value")) for p in case.iter("property")]
        for name, case in cases.items()
    }
    assert [v for n, v in properties["test_two"] if n == "requirement"] == [
        "TC-NS-002",
        "TC-NS-003",
        "TC-NS-001",
    ]
    (evidence,) = [json.loads(v) for n, v in properties["test_one"] if n == "evidence"]
    assert evidence["name"] == "console" and (pytester.path / "out" / evidence["path"]).is_file()


# ----------------------------------------------------------------------- --thunder-requirements

LISTED_SUITE = """
import pytest

@pytest.mark.requirement("TC-NS-001")
@pytest.mark.parametrize("mode", ["Local", "Container"])
def test_pid_namespace(mode):
    open("a-test-ran", "w").close()
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_listing_shows_the_catalogue_and_fails_on_ids_without_a_test(
    pytester: pytest.Pytester, catalogue_option: str, xdist: list[str]
) -> None:
    pytester.makepyfile(test_listed=LISTED_SUITE)
    result = pytester.runpytest_subprocess("--thunder-requirements", catalogue_option, *xdist)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    indent = " " * 23
    expected = [
        "NS  Namespaces",
        "  TC-NS-001     MUST   The container gets a new pid namespace.",
        f"{indent}source: runc default",
        f"{indent}tests:  test_listed.py::test_pid_namespace[Local]",
        f"{indent}        test_listed.py::test_pid_namespace[Container]",
        "  TC-NS-002     SHOULD The container gets a new cgroup namespace.",
        f"{indent}source: OCI runtime spec",
        f"{indent}tests:  NONE",
        "",
        "PERF  Start latency",
        "  TC-PERF-001   MUST   The median start latency is within the limit.",
        f"{indent}source: THUNDER.md",
        f"{indent}tests:  NONE",
        "",
        "thunder: 2 catalogue requirement(s) have no test: TC-NS-002, TC-PERF-001",
    ]
    lines = result.stdout.lines
    start = lines.index(expected[0])
    assert lines[start : start + len(expected)] == expected
    assert not (pytester.path / "a-test-ran").exists()
    assert not (pytester.path / "thunder-results").exists()


def test_listing_passes_when_every_id_has_a_test(
    pytester: pytest.Pytester, catalogue_option: str
) -> None:
    pytester.makepyfile(
        test_listed=LISTED_SUITE,
        test_perf=PERF_TEST,
        test_cgroup="""
        import pytest

        @pytest.mark.requirement("TC-NS-002")
        def test_cgroup(): pass
        """,
    )
    result = pytester.runpytest("--thunder-requirements", catalogue_option)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "*tests:  test_perf.py::test_start_latency",
            "thunder: every one of the 3 catalogue requirements has a test",
        ]
    )
    assert not (pytester.path / "a-test-ran").exists()


def test_listing_stops_at_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_listed=LISTED_SUITE,
        test_typo="""
        import pytest

        @pytest.mark.requirement("TC-NS-0001")
        def test_typo(): pass
        """,
    )
    result = pytester.runpytest_subprocess("--thunder-requirements", "-n", "2")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*unknown requirement ID 'TC-NS-0001'*"])
    assert "Requirement catalogue:" not in result.stdout.str()
    assert not (pytester.path / "a-test-ran").exists()


def test_the_packaged_catalogue_is_the_default(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--thunder-requirements")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["Requirement catalogue: requirements.toml (package data)*", "*TC-PERF-002*"]
    )


def test_a_broken_catalogue_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "bad.toml").write_text("[areas]\n")
    result = pytester.runpytest(f"--thunder-catalogue={pytester.path / 'bad.toml'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--thunder-catalogue=*bad.toml: *"])


# ----------------------------------------------------------------------- the report of a run


def test_a_session_without_requirements_writes_no_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain(): pass")
    result = pytester.runpytest("--thunder-results=out")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "out").exists()
    assert "thunder requirements" not in result.stdout.str()


def test_report_of_a_complete_run(pytester: pytest.Pytester, catalogue_option: str) -> None:
    pytester.makeconftest(FACTS_CONFTEST)
    pytester.makepyfile(
        test_perf=PERF_TEST,
        test_ns="""
        import pytest

        @pytest.mark.requirement("TC-NS-001")
        def test_pid(): pass

        @pytest.mark.requirement("TC-NS-002")
        def test_cgroup():
            assert False, "<script>alert(1)</script>"

        def test_boot(): pass
        """,
    )
    result = pytester.runpytest("--thunder-results=out", catalogue_option)
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*thunder requirements*",
            "TC-NS-002     SHOULD failed          (1 test)",
            "TC-NS-001     MUST   passed          (1 test)",
            "TC-PERF-001   MUST   not-applicable  (2 tests)",
            "MUST: 1 passed, 1 not applicable; SHOULD: 1 failed; verdict: certified with findings",
            "report: out/thunder-report.json",
            "report: out/thunder-report.html",
        ]
    )
    report = load_report(pytester)
    assert (report["verdict"], report["findings"]) == (
        "certified with findings",
        ["TC-NS-002 (SHOULD) failed"],
    )
    assert report["run"]["complete"] is True and report["run"]["exit_status"] == 1
    (target,) = report["targets"]
    assert target == {
        "target": "virt-main",
        "worker": "main",
        "emulated": True,
        "facts": {
            "emulated": "true",
            "kernel": "6.1.0",
            "stopped": "cleanly",
            "target": "virt-main",
        },
    }
    tests = runs_by_id(report)
    (cgroup,) = tests["TC-NS-002"]
    assert cgroup["outcome"] == "failed" and cgroup["category"] == "product"
    assert cgroup["message"].startswith("AssertionError: <script>alert(1)</script>")
    assert [(t["outcome"], t["message"]) for t in tests["TC-PERF-001"]] == [
        ("not-applicable", "not applicable: --thunder-max-start-ms was not given"),
        ("not-applicable", "not applicable: no --thunder-max-start-ms"),
    ]
    assert [t["nodeid"] for t in report["other_tests"]] == ["test_ns.py::test_boot"]
    page = (pytester.path / "out" / "thunder-report.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert all(rid in page for rid in ("TC-NS-001", "TC-NS-002", "TC-PERF-001"))


def test_an_early_stop_is_an_incomplete_run(
    pytester: pytest.Pytester, catalogue_option: str
) -> None:
    pytester.makepyfile(
        test_ns="""
        import pytest

        @pytest.mark.requirement("TC-NS-002")
        def test_cgroup(): assert False

        @pytest.mark.requirement("TC-NS-001")
        def test_pid(): pass
        """
    )
    result = pytester.runpytest("-x", "--thunder-results=out", catalogue_option)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["the run did not complete (exit status 1: stopping after 1 fail*"])
    report = load_report(pytester)
    assert report["run"]["complete"] is False and report["certified"] is False
    assert [t["outcome"] for t in runs_by_id(report)["TC-NS-001"]] == ["not-run"]


def test_collect_only_writes_no_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_listed=LISTED_SUITE)
    pytester.runpytest("--collect-only", "--thunder-results=out")
    assert not (pytester.path / "out").exists()


def test_latency_figures_of_the_run_are_in_the_report(
    pytester: pytest.Pytester, catalogue_option: str
) -> None:
    pytester.makeconftest(FACTS_CONFTEST)
    pytester.makepyfile(
        test_perf="""
        import json, pathlib, pytest

        @pytest.mark.requirement("TC-PERF-001")
        def test_measure():
            block = {"target": "virt", "label": "virt-main", "measurements": {}}
            document = {"schema_version": 1, "targets": {"virt-main": block}}
            pathlib.Path("out").mkdir(exist_ok=True)
            pathlib.Path("out/thunder-latency.json").write_text(json.dumps(document))
        """
    )
    pytester.runpytest("--thunder-results=out", catalogue_option).assert_outcomes(passed=1)
    latency = load_report(pytester)["latency"]
    assert latency == {
        "virt-main": {
            "target": "virt-main",
            "emulated": True,
            "figures": {"target": "virt", "label": "virt-main", "measurements": {}},
        }
    }


def test_record_facts_needs_a_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_facts="""
        import pytest
        from pytest_thunder_container.plugin.reporting import record_facts

        def test_facts(pytestconfig):
            with pytest.raises(ValueError, match="need a 'target'"):
                record_facts(pytestconfig, {"kernel": "6.1"})
            with pytest.raises(TypeError, match="str to str"):
                record_facts(pytestconfig, {"target": "x", "cores": 4})
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_xdist_workers_report_to_the_controller(
    pytester: pytest.Pytester, catalogue_option: str
) -> None:
    pytester.makeconftest(FACTS_CONFTEST)
    pytester.makepyfile(
        test_ns="""
        import pytest

        @pytest.mark.requirement("TC-NS-001")
        @pytest.mark.parametrize("n", range(4))
        def test_pid(n, thunder_evidence):
            thunder_evidence.attach("console", f"run {n}")
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "--thunder-results=out", catalogue_option)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["TC-NS-001     MUST   passed          (4 tests)"])
    report = load_report(pytester)
    assert [(t["target"], t["worker"], t["facts"]["stopped"]) for t in report["targets"]] == [
        ("virt-gw0", "gw0", "cleanly"),
        ("virt-gw1", "gw1", "cleanly"),
    ]
    tests = runs_by_id(report)["TC-NS-001"]
    assert {t["target"] for t in tests} == {"virt-gw0", "virt-gw1"}
    assert all(t["target"] == f"virt-{t['worker']}" for t in tests)
    assert all((pytester.path / "out" / t["evidence"][0]["path"]).is_file() for t in tests)


def test_allure_environment_and_categories_are_written_once_by_the_controller(
    pytester: pytest.Pytester, catalogue_option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = pytester.path / "writes.log"
    monkeypatch.setenv("WRITES_LOG", str(log))
    # A spy in every process (controller and workers) that logs who writes what, then writes.
    pytester.makeconftest(
        FACTS_CONFTEST
        + """
import pytest_thunder_container.plugin.reporting as reporting
_write = reporting.write_atomically

def _logged(path, text):
    with open(os.environ["WRITES_LOG"], "a") as log:
        log.write(os.environ.get("PYTEST_XDIST_WORKER", "controller") + " " + path.name + "\\n")
    _write(path, text)

reporting.write_atomically = _logged
"""
    )
    pytester.makepyfile(
        test_ns="""
        import pytest

        @pytest.mark.requirement("TC-NS-001")
        @pytest.mark.parametrize("n", range(4))
        def test_pid(n): pass
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "--thunder-results=out", "--alluredir=allure", catalogue_option
    )
    result.assert_outcomes(passed=4)
    assert log.read_text().splitlines() == [
        "controller environment.properties",
        "controller categories.json",
    ]
    allure = pytester.path / "allure"
    properties = (allure / "environment.properties").read_text().splitlines()
    assert "virt-gw0.kernel=6.1.0" in properties and "virt-gw1.stopped=cleanly" in properties
    categories = json.loads((allure / "categories.json").read_text())
    assert categories[0]["name"].startswith("Infrastructure")
    assert len(list(allure.glob("*-result.json"))) == 4


# ----------------------------------------------------------------------- Ctrl-C

INTERRUPTED_SUITE = """
import pytest

@pytest.mark.requirement("TC-PERF-001")
def test_first(): pass

@pytest.mark.requirement("TC-NS-001")
def test_interrupted(thunder_evidence):
    thunder_evidence.attach("console", "before ctrl-c")
    raise KeyboardInterrupt

@pytest.mark.requirement("TC-NS-002")
def test_never_runs(): pass
"""


def test_ctrl_c_still_writes_the_report(pytester: pytest.Pytester, catalogue_option: str) -> None:
    pytester.makepyfile(test_suite=INTERRUPTED_SUITE)
    result = pytester.runpytest_subprocess("--thunder-results=out", catalogue_option)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "the run did not complete (exit status 2: interrupted (Ctrl-C))",
            "*verdict: not certified",
            "report: out/thunder-report.json",
        ]
    )
    report = load_report(pytester)
    assert report["run"]["complete"] is False
    assert report["run"]["stop_reason"] == "interrupted (Ctrl-C)"
    assert report["verdict"] == "not certified"
    tests = runs_by_id(report)
    assert [t["outcome"] for t in tests["TC-PERF-001"]] == ["passed"]
    (interrupted,) = tests["TC-NS-001"]
    assert interrupted["outcome"] == "interrupted"
    (evidence,) = interrupted["evidence"]
    assert (pytester.path / "out" / evidence["path"]).read_text() == "before ctrl-c"
    assert [t["outcome"] for t in tests["TC-NS-002"]] == ["not-run"]


def test_ctrl_c_on_an_xdist_worker_keeps_its_evidence(
    pytester: pytest.Pytester, catalogue_option: str
) -> None:
    pytester.makepyfile(test_suite=INTERRUPTED_SUITE)
    result = pytester.runpytest_subprocess("-n", "2", "--thunder-results=out", catalogue_option)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    report = load_report(pytester)
    assert report["certified"] is False
    (interrupted,) = runs_by_id(report)["TC-NS-001"]
    assert interrupted["outcome"] in ("interrupted", "error")
    (evidence,) = interrupted["evidence"]
    assert (pytester.path / "out" / evidence["path"]).read_text() == "before ctrl-c"
