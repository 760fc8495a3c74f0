"""What every layer above the console needs of a shell on a target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CommandResult:
    """One command run on a target: its exit code and its output (prompt and markers removed)."""

    command: str
    returncode: int
    stdout: str
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Shell(Protocol):
    """A shell session on a target (console.Console is the implementation)."""

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult: ...

    def check(self, cmd: str, timeout: float | None = None) -> CommandResult: ...

    def put(self, data: bytes, path: str, mode: int | None = None) -> None: ...

    def get(self, path: str) -> bytes: ...
