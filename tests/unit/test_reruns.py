"""`make test` reruns a test only when the harness's own witness says a runc call passed
Thunder's limit (two emulators on two cores), never for any other failure."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_thunder_container.conformance.runc_log import limit_phrase
from pytest_thunder_container.targets.core_budget import emulator_warning

ROOT = Path(__file__).resolve().parents[2]


def _rerun_regex() -> str:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^RUNC_LIMIT_MET = (.+)$", makefile, re.MULTILINE)
    assert match, "the Makefile names the failure its test target reruns"
    assert '--only-rerun "$(RUNC_LIMIT_MET)"' in makefile
    return match.group(1)


def test_the_rerun_matches_the_witness_of_a_runc_call_past_thunders_limit() -> None:
    witness = f"runc create finished 6.8 s after the activation began, over {limit_phrase(2000)}"
    assert re.search(_rerun_regex(), f"AssertionError: {{'TC-LIFE-001': \"{witness}\"}}")
    assert re.search(_rerun_regex(), limit_phrase(5000))


def test_no_other_failure_is_rerun() -> None:
    regex = _rerun_regex()
    for failure in (
        limit_phrase(None),
        "AssertionError: assert {'TC-LIFE-001'} == frozenset({'TC-ENV-001'})",
        "DeployError: Thunder could not activate OCDM: ERROR_OPENING_FAILED; no leaked container",
        str(emulator_warning(2, 2)),
    ):
        assert not re.search(regex, failure), failure
