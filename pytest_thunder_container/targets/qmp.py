"""A synchronous QMP connection to one QEMU: qemu.qmp's QMPClient on a private event loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient
from qemu.qmp.error import QMPError

from pytest_thunder_container.errors import TargetError

_CONNECT_RETRY = 0.05  # seconds between attempts while QEMU sets its socket up


class Qmp:
    """One QMP session; every call has a timeout and failures become TargetError."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = QMPClient(name)
        self._name = name

    def connect(self, socket_path: Path, timeout: float) -> None:
        """Connect, retrying while the socket is not there or not listening yet: QEMU binds it
        before it listens, and a loaded host can connect in between (seen in CI)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(deadline - time.monotonic(), 0.1)
            what = f"connect to {socket_path}"
            try:
                self._run(self._client.connect(str(socket_path)), remaining, what)
                return
            except TargetError as error:
                cause = getattr(error.__cause__, "exc", error.__cause__)
                early = isinstance(cause, (ConnectionRefusedError, FileNotFoundError))
                if not early or time.monotonic() >= deadline:
                    raise
            self._client = QMPClient(self._name)
            time.sleep(_CONNECT_RETRY)

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
