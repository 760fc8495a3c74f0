"""What every target offers the layers above it, whatever it runs on."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING

from pytest_thunder_container.shell.protocol import CommandResult, Shell
from pytest_thunder_container.shell.transfer import FileTransfer

# Bytes from which TargetShell.put() uses the file channel rather than one console command
# (config.json files and scripts stay below it; rootfs tarballs are far above).
CONSOLE_PUT_BELOW = 16 * 1024

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_thunder_container.image.model import Image
    from pytest_thunder_container.shell.console import Console


class Target(ABC):
    """A device with a shell: started (booted or attached) once, stopped for sure."""

    name: str
    emulated: bool
    image: Image | None
    _console: Console | None = None  # set by start(), cleared by stop()

    @property
    def console(self) -> Console:
        """The logged-in shell session (valid between start() and stop())."""
        if self._console is None:
            from pytest_thunder_container.errors import TargetError

            raise TargetError(f"target {self.name} is not started")
        return self._console

    @property
    def jsonrpc_url(self) -> str | None:
        """Where the host reaches Thunder's JSON-RPC over a network, or None (use the console)."""
        return None

    @property
    def files(self) -> FileTransfer:
        """Puts and gets files on the target: over the console, unless a target knows better."""
        return FileTransfer(self.console, None, name=self.name)

    @property
    def shell(self) -> TargetShell:
        """The shell every layer above is given: it follows restarts, and moves big files
        through `files` (HTTP when the target can reach the host)."""
        return TargetShell(self)

    @abstractmethod
    def start(self) -> None:
        """Boot or attach, and log in; on failure leave nothing running and raise TargetError."""

    def healthy(self) -> bool:
        """Whether the target still runs: False once its console saw the kernel panic (a
        panicked board or guest answers nothing more); a target adds what else it knows."""
        return not (self._console is not None and self._console.crashed)

    def restart(self) -> None:
        """Bring a dead target back; a target that can't says so with TargetError."""
        from pytest_thunder_container.errors import TargetError

        raise TargetError(f"target {self.name} can't be restarted by the harness")

    def runc_window(self) -> AbstractContextManager[None]:
        """Held around each call that makes Thunder run runc against its time limit; an
        emulated target keeps the host's cores for itself there (targets/runc_window.py)."""
        return contextlib.nullcontext()

    def paused(self) -> AbstractContextManager[None]:
        """Held while no test uses the target: an emulator stops its guest (its cores go to
        the rest of the host); a board goes on."""
        return contextlib.nullcontext()

    @abstractmethod
    def stop(self) -> None:
        """Release the device; safe to call twice and after a failed start."""

    def properties(self) -> dict[str, str]:
        """Facts for the report (target, image identity, emulator version, ...)."""
        facts = {"target": self.name, "emulated": str(self.emulated).lower()}
        if self.image is not None:
            facts["image"] = str(self.image.directory)
            facts["image.sha256"] = self.image.sha256
        return facts

    def __enter__(self) -> Target:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def system_facts(shell: Shell) -> dict[str, str]:
    """The kernel and runc versions of a target, in one cheap round trip."""
    result = shell.run("uname -r; uname -m; runc --version 2>/dev/null | head -n 1")
    lines = [*result.stdout.splitlines(), "", "", ""]
    return {
        "kernel": lines[0].strip(),
        "arch": lines[1].strip(),
        "runc": lines[2].removeprefix("runc version").strip() or "not found",
    }


class TargetShell:
    """The Shell of a target's current console, which survives the target's restarts; its
    files go through the target's file channel (HTTP when the target can reach the host)."""

    def __init__(self, target: Target) -> None:
        self._target = target

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        return self._target.console.run(cmd, timeout)

    def check(self, cmd: str, timeout: float | None = None) -> CommandResult:
        return self._target.console.check(cmd, timeout)

    def put(self, data: bytes, path: str, mode: int | None = None) -> None:
        if len(data) < CONSOLE_PUT_BELOW:
            # One console command; HTTP would add a server, a probe fetch and, on a board
            # whose route to the host is broken, the probe's wait.
            self._target.console.put(data, path, mode)
        else:
            self._target.files.put(data, path, mode)

    def get(self, path: str) -> bytes:
        return self._target.files.get(path)

    @property
    def transcript_path(self) -> Path:
        """The current console's transcript (the same file across the target's restarts)."""
        return self._target.console.transcript_path
