"""A synchronous QMP connection to one QEMU: qemu.qmp's QMPClient on a private event loop."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient
from qemu.qmp.error import QMPError

from .errors import TargetError


class Qmp:
    """One QMP session; every call has a timeout and failures become TargetError."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = QMPClient(name)
        self._name = name

    def connect(self, socket_path: Path, timeout: float) -> None:
        self._run(self._client.connect(str(socket_path)), timeout, f"connect to {socket_path}")

    def execute(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = 30.0
    ) -> Any:
        return self._run(self._client.execute(command, arguments), timeout, command)

    def hmp(self, command_line: str, *, timeout: float = 60.0) -> str:
        """Run a human-monitor command (savevm has no QMP equivalent in QEMU 7.2)."""
        output = self.execute(
            "human-monitor-command", {"command-line": command_line}, timeout=timeout
        )
        return str(output or "")

    def quit(self, timeout: float = 5.0) -> None:
        """Ask QEMU to exit; QEMU closing the socket while answering is success."""
        with contextlib.suppress(TargetError, EOFError, QMPError, ConnectionError):
            self.execute("quit", timeout=timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.run_until_complete(asyncio.wait_for(self._client.disconnect(), 2.0))
        # Cancel whatever qemu.qmp left running so the loop closes without warnings.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def _run(self, coroutine: Any, timeout: float, what: str) -> Any:
        try:
            return self._loop.run_until_complete(asyncio.wait_for(coroutine, timeout))
        except TimeoutError as error:
            raise TargetError(
                f"QMP '{what}' on {self._name} got no answer within {timeout:.1f} s"
            ) from error
        except (QMPError, OSError, EOFError) as error:
            raise TargetError(f"QMP '{what}' on {self._name} failed: {error}") from error
