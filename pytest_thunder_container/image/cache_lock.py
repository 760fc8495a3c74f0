"""The lock that lets parallel pytest workers and sessions share one cache entry safely."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_thunder_container.errors import ImageError

# A real Thunder build of both lines takes minutes (tens of them on a loaded 2-core host).
LOCK_TIMEOUT = 3600.0
Progress = Callable[[str], None]


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def build_lock(path: Path, progress: Progress, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive flock on `path`; say so when another build holds it, give up at timeout."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        if not _try_flock(fd):
            progress(f"[image] waiting for another build holding {path}")
        while not _try_flock(fd):
            if time.monotonic() > deadline:
                raise ImageError(
                    f"another process still holds {path} after {timeout:.0f} s: "
                    "wait for that build to end, or stop it"
                )
            time.sleep(0.2)
        yield
    finally:
        os.close(fd)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
