"""The glue between a verdict and pytest: MUST fails, SHOULD is xfail, not applicable and
blocked are skips; the requirement marker is checked at collection. Run through a real pytest."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
from pytest_thunder_container.conformance.runtime.verdict import Verdict


class Assessment:
    runtime = {
        "TC-NS-001": Verdict("TC-NS-001", "fail", "pid namespace shared with the target", ()),
        "TC-NS-006": Verdict("TC-NS-006", "fail", "no cgroup namespace", ()),
        "TC-NS-002": Verdict("TC-NS-002", "pass", "own net namespace", ()),
        "TC-NS-003": Verdict("TC-NS-003", "not-applicable", "no ipc here", ()),
        "TC-NS-004": Verdict("TC-NS-004", "blocked", "no plugin host for OCDM", ()),
    }


@pytest.fixture
def thunder_assessment():
    return Assessment()
"""

SUITE = """
import pytest


@pytest.mark.requirement("TC-NS-001")
def test_must_broken(thunder_runtime):
    thunder_runtime("TC-NS-001")


@pytest.mark.requirement("TC-NS-006")
def test_should_broken(thunder_runtime):
    thunder_runtime("TC-NS-006")


@pytest.mark.requirement("TC-NS-002")
def test_held(thunder_runtime):
    thunder_runtime("TC-NS-002")


@pytest.mark.requirement("TC-NS-003")
def test_not_applicable(thunder_runtime):
    thunder_runtime("TC-NS-003")


@pytest.mark.requirement("TC-NS-004")
def test_blocked(thunder_runtime):
    thunder_runtime("TC-NS-004")
"""


def test_verdicts_map_to_pytest_outcomes(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest(
        "-rsx", "-p", "no:cacheprovider", f"--thunder-results={pytester.path / 'r'}"
    )
    result.assert_outcomes(passed=1, failed=1, xfailed=1, skipped=2)
    for line in (
        "*SKIPPED*not applicable: no ipc here*",
        "*SKIPPED*blocked: no plugin host for OCDM*",
        "*XFAIL*SHOULD not met: no cgroup namespace*",
        "E*AssertionError: pid namespace shared with the target*",
    ):
        result.stdout.fnmatch_lines([line])


def test_an_unknown_requirement_id_stops_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_suite="""
import pytest

@pytest.mark.requirement("TC-NOPE-999")
def test_x():
    pass
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*TC-NOPE-999*"])
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown requirement ID*TC-NOPE-999*"])
