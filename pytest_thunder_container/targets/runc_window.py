"""The window in which Thunder times runc: an emulated target has the host's cores to itself.

Thunder gives each runc call 2000 ms (R5; R4.4: 5000 ms). Emulated, `runc create` takes about
1.1 s on an idle 2-core host, but 3 to 8 s while a second emulator or a test worker shares the
cores: the activation then fails with ERROR_OPENING_FAILED and the container leaks. That is a
finding about the host, not about the plugin. So around each call that makes Thunder run runc
(activate, deactivate, restart), a QEMU target takes a host-wide lock, one window at a time across
every pytest process and xdist worker, and raises its emulator's scheduling priority (its
autogroup and its threads to nice -10) until the call returns, while the user's other emulators
are held still (emulator_hold.py, at most 8 s). The guest is not changed: only the host's
scheduler favours it. Without the privilege to raise a priority (not root), the lock and the
stops still work.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from pytest_thunder_container.errors import TargetError
from pytest_thunder_container.targets.emulator_hold import (
    continue_left,
    held_still,
    other_emulators,
)
from pytest_thunder_container.waits import flock_within

BOOST_NICE = -10
WAIT_LIMIT_S = 900.0  # far beyond one activation's own timeout (120 s at most)

Undo = Callable[[], None]


def lock_path() -> Path:
    """The host-wide lock: one per user, in the temporary directory every process shares."""
    return Path(tempfile.gettempdir()) / f"pytest-thunder-container-{os.getuid()}.runc-window"


_HELD: set[Path] = set()  # the windows this process holds: taking one again is a no-op


@contextlib.contextmanager
def runc_window(
    pid: int | None,
    *,
    lock: Path | None = None,
    others: Callable[[int | None], list[int]] = other_emulators,
) -> Iterator[None]:
    """Hold the host-wide window, with the process `pid` (an emulator) favoured and the other
    emulators (`others`) held still (emulator_hold.py), until exit."""
    path = lock or lock_path()
    if path in _HELD:
        yield
        return
    stopped = path.with_name(path.name + ".stopped")
    with _held(path):
        _HELD.add(path)
        continue_left(stopped)
        undo = boost(pid) if pid is not None else []
        try:
            with held_still(others(pid) if pid is not None else [], stopped):
                yield
        finally:
            _HELD.discard(path)
            for step in reversed(undo):
                with contextlib.suppress(OSError):  # the emulator may have died meanwhile
                    step()


@contextlib.contextmanager
def _held(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not flock_within(fd, WAIT_LIMIT_S):
            raise TargetError(
                f"the runc window {path} has been held for {WAIT_LIMIT_S:.0f} s by "
                f"pid {_holder(fd)} (fix: stop that process, or remove {path} if no "
                "harness runs)"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _holder(fd: int) -> str:
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"


def boost(pid: int) -> list[Undo]:
    """Raise `pid`'s autogroup and every thread of it to BOOST_NICE; the steps that undo it.

    With autogroups (Debian's default) the scheduler first shares the cores between sessions,
    and QEMU runs in a session of its own: the autogroup's nice is what counts against other
    processes; the threads' nice counts inside it and where autogroups are off.
    """
    undo: list[Undo] = []
    autogroup = Path(f"/proc/{pid}/autogroup")
    with contextlib.suppress(OSError, ValueError):
        before = autogroup_nice(autogroup.read_text())
        if before is not None:
            autogroup.write_text(str(BOOST_NICE))
            undo.append(lambda: autogroup.write_text(str(before)))
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            undo += _boost_thread(int(task.name))
    return undo


def _boost_thread(tid: int) -> list[Undo]:
    try:
        before = os.getpriority(os.PRIO_PROCESS, tid)
        if before <= BOOST_NICE:
            return []
        os.setpriority(os.PRIO_PROCESS, tid, BOOST_NICE)
    except OSError:  # not permitted (not root), or the thread ended
        return []
    return [lambda: os.setpriority(os.PRIO_PROCESS, tid, before)]


def autogroup_nice(text: str) -> int | None:
    """The nice value in /proc/<pid>/autogroup ("/autogroup-12 nice 0"); None for an empty file:
    the process is in no autogroup (autogroups are off, or it is in the root group, as on CI)."""
    fields = text.split()
    return int(fields[-1]) if fields else None
