"""Which target of the --thunder-target pool this pytest process (or xdist worker) uses.

QEMU machines are never exclusive: every worker boots its own. A serial line is: a worker holds
an flock on one lock file per line, which the kernel drops when the worker ends, however it ends.
The file names the holder, so that a person can see who holds which board.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from pytest_thunder_container.errors import TargetError
from pytest_thunder_container.image.model import cache_dir
from pytest_thunder_container.settings import TargetSpec

POOL_WAIT = 300.0  # seconds a worker waits for a free serial line, before the timeout factor
_POLL = 0.5

Progress = Callable[[str], None]


def lock_dir() -> Path:
    """$THUNDER_CONTAINER_CACHE/locks (or the default cache's)."""
    return cache_dir() / "locks"


def worker_index(worker: str) -> int:
    """gw3 -> 3; the main process (no xdist) -> 0."""
    match = re.fullmatch(r"gw(\d+)", worker)
    return int(match.group(1)) if match else 0


def lock_path(directory: Path, spec: TargetSpec) -> Path:
    """One lock file per serial line; aliases of a device (/dev/serial/by-id/...) share it."""
    address = spec.address
    if "://" not in address:
        address = os.path.realpath(address)
    return directory / f"{TargetSpec(spec.kind, address).label}.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a serial line: what the lock file says."""

    worker: str
    pid: int
    host: str
    since: str
    target: str

    def text(self) -> str:
        return (
            f"worker={self.worker} pid={self.pid} host={self.host} since={self.since} "
            f"target={self.target}\n"
        )


class TargetClaim:
    """The target this process uses; for a serial line, the lock that makes it this process's."""

    def __init__(self, spec: TargetSpec, lock: Path | None = None, fd: int | None = None) -> None:
        self.spec = spec
        self.lock = lock
        self._fd = fd

    def release(self) -> None:
        """Give the line back (safe to call twice); the emptied file says nobody holds it."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> TargetClaim:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def claim_target(
    specs: tuple[TargetSpec, ...],
    *,
    worker: str,
    directory: Path | None = None,
    wait: float = POOL_WAIT,
    timeout_factor: float = 1.0,
    progress: Progress | None = None,
) -> TargetClaim:
    """The first free target from index N % len (gwN), waiting for a serial line if all are held."""
    if not specs:
        raise TargetError("no target to choose from (fix: --thunder-target=rpi3 or serial:...)")
    start = worker_index(worker) % len(specs)
    order = specs[start:] + specs[:start]
    if not any(spec.kind == "serial" for spec in order):
        return TargetClaim(order[0])
    folder = directory or lock_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TargetError(
            f"can't create the lock folder {folder}: {error.strerror} "
            "(fix: THUNDER_CONTAINER_CACHE=<a writable directory>)"
        ) from None
    limit = wait * timeout_factor
    deadline = time.monotonic() + limit
    said = False
    while True:
        for spec in order:
            claim = _try_claim(spec, folder, worker)
            if claim is not None:
                if said and progress is not None:
                    progress(f"[thunder] {worker}: got {_shown(spec)}")
                return claim
        held = "; ".join(
            f"{_shown(spec)} held by {_holder(lock_path(folder, spec))}" for spec in order
        )
        if time.monotonic() >= deadline:
            raise TargetError(
                f"{worker}: no free serial target after {limit:.0f} s ({held}). Each board "
                f"serves one pytest process at a time: run at most {len(specs)} xdist workers "
                f"(-n {len(specs)}), add boards to --thunder-target, or end the holder "
                f"(lock files in {folder})"
            )
        if not said and progress is not None:
            progress(
                f"[thunder] {worker}: every serial target is in use ({held}); waiting up "
                f"to {limit:.0f} s"
            )
            said = True
        time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))


def _try_claim(spec: TargetSpec, folder: Path, worker: str) -> TargetClaim | None:
    if spec.kind != "serial":
        return TargetClaim(spec)
    path = lock_path(folder, spec)
    try:
        # As shared as the umask allows: every user of a board pool must be able to lock it.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as error:
        raise TargetError(
            f"can't open the lock file {path} of {_shown(spec)} ({error.strerror}): every user "
            "of the pool needs write access to it (fix: THUNDER_CONTAINER_CACHE=<a shared "
            "writable directory>)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    holder = Holder(worker, os.getpid(), socket.gethostname(), since, _shown(spec))
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder.text().encode(), 0)
    return TargetClaim(spec, path, fd)


def _holder(path: Path) -> str:
    """What the lock file says about its holder (it may be mid-write: then 'unknown')."""
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "an unknown process"


def _shown(spec: TargetSpec) -> str:
    return (
        spec.address if spec.kind == "qemu" or "://" in spec.address else f"serial:{spec.address}"
    )
