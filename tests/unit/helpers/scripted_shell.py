"""A Shell whose answers are scripted by command substring, recording what it was asked."""

from __future__ import annotations

from collections.abc import Callable

from pytest_thunder_container.shell.protocol import CommandResult

Answer = str | tuple[int, str] | Callable[[str], "str | tuple[int, str]"]


class ScriptedShell:
    """The first rule whose key is in the command answers it (output, or (rc, output))."""

    def __init__(self, rules: dict[str, Answer] | None = None) -> None:
        self.rules: dict[str, Answer] = dict(rules or {})
        self.commands: list[str] = []

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        self.commands.append(cmd)
        for key, answer in self.rules.items():
            if key in cmd:
                value = answer(cmd) if callable(answer) else answer
                rc, out = value if isinstance(value, tuple) else (0, value)
                return CommandResult(cmd, rc, out)
        return CommandResult(cmd, 1, "")

    def check(self, cmd: str, timeout: float | None = None) -> CommandResult:
        return self.run(cmd, timeout)

    def put(self, data: bytes, path: str, mode: int | None = None) -> None:
        self.rules[f"cat {path}"] = data.decode()

    def get(self, path: str) -> bytes:
        return self.run(f"cat {path}").stdout.encode()
