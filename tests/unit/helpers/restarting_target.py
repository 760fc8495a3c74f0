"""A Target whose console object is replaced on every (re)start, as QEMU's and a board's are."""

from __future__ import annotations

from pathlib import Path

from pytest_thunder_container.shell.protocol import CommandResult
from pytest_thunder_container.shell.transfer import FileTransfer
from pytest_thunder_container.targets.base import Target


class RecordingConsole:
    """One console session: answers every command with rc 0, records commands and puts."""

    def __init__(self, boot: int) -> None:
        self.boot = boot
        self.commands: list[str] = []
        self.files: dict[str, bytes] = {}
        self.closed = False
        self.transcript_path = Path(f"/results/console-boot{boot}.log")

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        assert not self.closed, f"command {cmd!r} sent to the console of boot {self.boot}, closed"
        self.commands.append(cmd)
        return CommandResult(cmd, 0, "aarch64" if cmd == "uname -m" else "")

    def check(self, cmd: str, timeout: float | None = None) -> CommandResult:
        return self.run(cmd, timeout)

    def put(self, data: bytes, path: str, mode: int | None = None) -> None:
        self.run(f"put {path}")
        self.files[path] = data

    def get(self, path: str) -> bytes:
        self.run(f"get {path}")
        return self.files[path]


class RestartingTarget(Target):
    """Started once; restart() closes the console and opens a new one, and a new file channel."""

    def __init__(self) -> None:
        self.name = "restarting"
        self.emulated = True
        self.image = None
        self.consoles: list[RecordingConsole] = []
        self.dead = False
        self._files: FileTransfer | None = None

    @property
    def files(self) -> FileTransfer:
        # No route to the host: the console carries the data, and history records each file.
        if self._files is None:
            self._files = FileTransfer(self.console, None, name=self.name)
        return self._files

    def start(self) -> None:
        self.consoles.append(RecordingConsole(len(self.consoles) + 1))
        self._console = self.consoles[-1]  # type: ignore[assignment]
        self._files = None
        self.dead = False

    def healthy(self) -> bool:
        return not self.dead

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.consoles:
            self.consoles[-1].closed = True
        self._console = None
        self._files = None
