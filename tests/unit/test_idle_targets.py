"""A booted target is paused around the call of a test that uses none of the plugin's fixtures,
and only then: setup, teardown and every test that may reach the target find it running."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import contextlib
import pytest
from pytest_thunder_container.plugin.hooks import IDLE_TARGETS

EVENTS = []

class Fake:
    name = "fake"

    @contextlib.contextmanager
    def paused(self):
        EVENTS.append("pause")
        yield
        EVENTS.append("resume")

@pytest.fixture(scope="session")
def thunder_booted(pytestconfig):
    with pytestconfig.stash[IDLE_TARGETS].booted_target(Fake()):
        yield
    EVENTS.append("stopped")
"""

TESTS = """
from conftest import EVENTS

def test_1_boots(thunder_booted):
    assert EVENTS == []

def test_2_uses_no_plugin_fixture():
    assert EVENTS == ["pause"]

def test_3_uses_a_plugin_fixture(thunder_catalogue):
    assert EVENTS == ["pause", "resume"]

def test_4_a_failing_test_is_resumed_too():
    raise AssertionError("fails while paused")

def test_5_after(thunder_settings):
    assert EVENTS == ["pause", "resume", "pause", "resume"]
"""


def test_the_target_is_paused_only_for_tests_without_the_plugins_fixtures(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_idle=TESTS)
    result = pytester.runpytest_inprocess("--thunder-target=rpi3", "-p", "no:randomly", "-q")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*test_4_a_failing_test_is_resumed_too*"])
