"""The runc window: one at a time across processes, the emulator favoured inside it, and the
Controller calls that make Thunder run runc held inside it."""

from __future__ import annotations

import fcntl
import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from thunder_payloads import R5, ReplayThunder

from pytest_thunder_container.errors import TargetError
from pytest_thunder_container.targets import runc_window as window
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.transport import HttpTransport

ROOT = os.geteuid() == 0


def no_others(pid: int | None) -> list[int]:
    """Leave the host's real emulators alone (tests/unit/test_emulator_hold.py holds fakes)."""
    return []


HOLD = """
import sys, time
from pathlib import Path
from pytest_thunder_container.targets.runc_window import runc_window
with runc_window(None, lock=Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", time.monotonic(), flush=True)
"""


def _holder(lock: Path, seconds: float) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def _held_elsewhere(lock: Path) -> bool:
    """Whether another open of the lock file can't take it (flock: per open file)."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _nice(pid: int) -> tuple[int | None, list[int]]:
    autogroup = window.autogroup_nice(Path(f"/proc/{pid}/autogroup").read_text())
    threads = [
        os.getpriority(os.PRIO_PROCESS, int(task.name))
        for task in Path(f"/proc/{pid}/task").iterdir()
    ]
    return autogroup, threads


@pytest.fixture
def emulator() -> Iterator[int]:
    """A process in a session of its own, as QEMU is started."""
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield child.pid
    child.kill()
    child.wait()


def test_a_second_process_waits_until_the_first_leaves_the_window(tmp_path: Path) -> None:
    lock = tmp_path / "window"
    child = _holder(lock, 1.0)
    with window.runc_window(None, lock=lock):
        entered = time.monotonic()
    assert child.stdout is not None
    released = float(child.stdout.readline().split()[1])
    child.wait()
    assert entered >= released


def test_the_window_is_free_again_after_it_is_left_and_when_its_holder_dies(
    tmp_path: Path,
) -> None:
    lock = tmp_path / "window"
    with window.runc_window(None, lock=lock):
        assert _held_elsewhere(lock)
    assert not _held_elsewhere(lock)
    child = _holder(lock, 60)
    assert _held_elsewhere(lock)
    child.kill()
    child.wait()
    assert not _held_elsewhere(lock)


def test_taking_the_window_again_inside_it_does_not_wait_for_itself(tmp_path: Path) -> None:
    lock = tmp_path / "window"
    started = time.monotonic()
    with window.runc_window(None, lock=lock), window.runc_window(None, lock=lock):
        assert _held_elsewhere(lock)
    assert time.monotonic() - started < 1.0
    assert not _held_elsewhere(lock)


def test_a_window_held_too_long_names_the_lock_and_its_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "window"
    child = _holder(lock, 60)
    monkeypatch.setattr(window, "WAIT_LIMIT_S", 0.3)
    try:
        with pytest.raises(TargetError) as caught, window.runc_window(None, lock=lock):
            pass
    finally:
        child.kill()
        child.wait()
    assert str(lock) in str(caught.value) and f"pid {child.pid}" in str(caught.value)


@pytest.mark.skipif(not ROOT, reason="raising a priority needs root (CAP_SYS_NICE)")
def test_the_emulator_is_favoured_inside_the_window_and_put_back_after(
    tmp_path: Path, emulator: int
) -> None:
    before = _nice(emulator)  # whatever this test runs at (e.g. under `nice -n 19`)
    with window.runc_window(emulator, lock=tmp_path / "window", others=no_others):
        # No autogroup to raise where the process is in none (its file is empty then).
        boosted_group = None if before[0] is None else window.BOOST_NICE
        assert _nice(emulator) == (boosted_group, [window.BOOST_NICE])
    assert _nice(emulator) == before


def test_an_emulator_that_died_inside_the_window_is_no_error(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    with window.runc_window(child.pid, lock=tmp_path / "window", others=no_others):
        child.kill()
        child.wait()
    assert not _held_elsewhere(tmp_path / "window")


def test_autogroup_nice_is_read_from_procfs_text() -> None:
    assert window.autogroup_nice("/autogroup-12 nice 0\n") == 0
    assert window.autogroup_nice("/autogroup-3 nice -10") == -10
    assert window.autogroup_nice("") is None  # in no autogroup: seen on CI, where it crashed


@pytest.mark.parametrize("method", ["activate", "deactivate"])
def test_controller_calls_that_run_runc_are_made_inside_the_window(
    tmp_path: Path, method: str
) -> None:
    lock = tmp_path / "window"
    seen: list[bool] = []

    class Watching(HttpTransport):
        def post(self, body: bytes, timeout: float) -> bytes:
            seen.append(_held_elsewhere(lock))
            return super().post(body, timeout)

    replay = ReplayThunder(R5)
    try:
        client = ThunderClient(
            Watching(replay.url),
            timeout=5.0,
            runc_window=functools.partial(window.runc_window, None, lock=lock),
        )
        _ = client.dialect  # detected outside the window
        seen.clear()
        getattr(client, method)("OCDM")
        client.state("OCDM")  # a plain question is asked outside it
    finally:
        replay.close()
    assert seen == [True, False]
