"""The run's header warns when emulated targets would share too few cores for Thunder's limit."""

from __future__ import annotations

import pytest

from pytest_thunder_container.targets.core_budget import emulator_warning

pytest_plugins = ["pytester"]


def test_one_emulator_per_two_cores_is_quiet() -> None:
    assert emulator_warning(1, 2) is None
    assert emulator_warning(2, 4) is None
    assert emulator_warning(1, None) is None


def test_two_emulators_on_two_cores_are_named_with_the_fix() -> None:
    said = emulator_warning(2, 2)
    assert said is not None and said.startswith("warning: 2 emulated targets on 2 cores")
    assert "2000 ms" in said and "ERROR_OPENING_FAILED" in said
    assert said.endswith("Run at most 1 emulated target here (-n 1), one per 2 cores.")
    assert "at most 2 emulated targets here (-n 2)" in (emulator_warning(3, 4) or "")


def test_the_start_of_the_run_shows_it_quiet_or_not_for_emulated_targets_only(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    pytester.makepyfile("def test_nothing(): pass")
    emulated = pytester.runpytest_inprocess("--thunder-target=rpi3", "-q", "-n", "2")
    assert "warning: 2 emulated targets on 2 cores" in emulated.stdout.str()
    board = pytester.runpytest_inprocess("--thunder-target=serial:/dev/null", "-q", "-n", "2")
    assert board.ret == 0 and "emulated targets" not in board.stdout.str()
