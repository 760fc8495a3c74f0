"""Inside the runc window, the user's other emulators are held still (SIGSTOP) for a while.

The window's priority boost alone still left `runc create` at 4 to 8 s past Thunder R5's
2000 ms when two or three emulators shared 2 cores, and R5.3.0 then crashed after such a failed
activation ("pure virtual method called"). Stopped emulators give the window's own emulator the
host. Each stop is bounded (HOLD_LIMIT_S) so that the other sessions' own waits, which are far
longer, never see more than that; their guests see the time jump when they go on, as after any
host stall. Who was stopped is written beside the window's lock, so that a holder that died
with them stopped is undone by the next one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from pytest_thunder_container.targets.qemu_process import RUNDIR_PREFIX

HOLD_LIMIT_S = 8.0  # covers a start's runc calls (create begins 1-5 s in), below console waits


def other_emulators(own: int | None) -> list[int]:
    """Pids of this user's QEMUs started by the harness (their command line names one of its
    run directories), except `own`."""
    found: list[int] = []
    uid = os.getuid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(argv[0].decode(errors="replace")).name.startswith("qemu-system-") and any(
            RUNDIR_PREFIX.encode() in arg for arg in argv
        ):
            found.append(int(entry.name))
    return sorted(found)


def _signal(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def continue_left(record: Path) -> None:
    """Continue the emulators a dead holder left stopped (named in `record`), then forget them."""
    with contextlib.suppress(OSError, ValueError):
        _signal((int(word) for word in record.read_text().split()), signal.SIGCONT)
    with contextlib.suppress(OSError):
        record.unlink()


@contextlib.contextmanager
def held_still(pids: list[int], record: Path, limit: float = HOLD_LIMIT_S) -> Iterator[None]:
    """`pids` stopped until exit, or until `limit` seconds have passed, whichever comes first."""
    if not pids:
        yield
        return
    record.write_text(" ".join(map(str, pids)))
    _signal(pids, signal.SIGSTOP)
    timer = threading.Timer(limit, _signal, (pids, signal.SIGCONT))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        _signal(pids, signal.SIGCONT)
        with contextlib.suppress(OSError):
            record.unlink()
