"""The runc window holds the user's other emulators still: stopped, for a bounded time, and
always continued, also after a holder that died with them stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_thunder_container.targets.emulator_hold import (
    continue_left,
    held_still,
    other_emulators,
)
from pytest_thunder_container.targets.runc_window import runc_window

SLEEP = "import time; time.sleep(60)"


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _child(argv0: str = "sleeper", *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([argv0, "-c", SLEEP, *args], executable=sys.executable)


def _until(pid: int, state: str, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while _state(pid) != state:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        child.kill()
        child.wait()


@pytest.fixture
def sleeper(children: list[subprocess.Popen[bytes]]) -> int:
    """The pid of one child that sleeps: an emulator for what is done to it."""
    children.append(_child())
    return children[-1].pid


def test_the_emulators_are_stopped_inside_and_continued_after(sleeper: int, tmp_path: Path) -> None:
    pid = sleeper
    record = tmp_path / "stopped"
    with held_still([pid], record):
        assert _until(pid, "T")
        assert record.read_text() == str(pid)
    assert _until(pid, "S")
    assert not record.exists()


def test_a_long_window_lets_them_go_on_after_the_limit(sleeper: int, tmp_path: Path) -> None:
    pid = sleeper
    with held_still([pid], tmp_path / "stopped", limit=0.3):
        assert _until(pid, "T")
        assert _until(pid, "S", seconds=3.0), "still stopped past the limit"


def test_emulators_a_dead_holder_left_stopped_are_continued(sleeper: int, tmp_path: Path) -> None:
    pid = sleeper
    record = tmp_path / "stopped"
    os.kill(pid, signal.SIGSTOP)  # as a holder killed inside its window leaves it
    assert _until(pid, "T")
    record.write_text(str(pid))
    continue_left(record)
    assert _until(pid, "S")
    assert not record.exists()


def test_only_the_harness_emulators_of_this_user_are_found_and_never_the_own_one(
    children: list[subprocess.Popen[bytes]],
) -> None:
    emulator = _child("qemu-system-aarch64", "/tmp/thunder-qemu-abc/qmp.sock")
    foreign = _child("qemu-system-aarch64", "/srv/vm/disk.img")  # not started by the harness
    children += [emulator, foreign]
    time.sleep(0.2)
    assert emulator.pid in other_emulators(None)
    assert foreign.pid not in other_emulators(None)
    assert emulator.pid not in other_emulators(emulator.pid)


def test_the_window_stops_the_others_and_not_its_own_emulator(
    children: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    own, other = _child(), _child()
    children += [own, other]
    lock = tmp_path / "window"
    with runc_window(own.pid, lock=lock, others=lambda pid: [other.pid]):
        assert _until(other.pid, "T")
        assert _state(own.pid) != "T"
    assert _until(other.pid, "S")
