"""A board on a serial line (a tty, a pty, rfc2217://, socket://): attached or power-cycled."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pexpect

from pytest_thunder_container.errors import ConsoleError, TargetError
from pytest_thunder_container.shell.console import Console, Login
from pytest_thunder_container.shell.transcript import Transcript
from pytest_thunder_container.shell.transfer import FileTransfer, HostRoute
from pytest_thunder_container.targets.base import Target
from pytest_thunder_container.targets.spawn import SerialStream, open_serial
from pytest_thunder_container.waits import Deadline

BOOT_TIMEOUT = 180.0  # a power-cycled board to a logged-in prompt, before the timeout factor
ATTACH_TIMEOUT = 30.0  # an already booted board to a logged-in prompt
RECOVER_TIMEOUT = 15.0  # after Ctrl-C, when something held the console at attach
POWER_CYCLE_TIMEOUT = 60.0
BOOT_SETTLE = 3.0  # silence after boot output that means the boot paused (at its prompt)
_DRAIN_STEP = 0.1


class SerialTarget(Target):
    """A board whose console is a serial line; the harness neither boots nor stops it."""

    emulated = False
    image = None

    def __init__(
        self,
        address: str,
        *,
        results: Path,
        login: Login | None,
        baudrate: int = 115200,
        timeout_factor: float = 1.0,
        power_cycle: str | None = None,
        recovery_cycle: str | None = None,
        jsonrpc_url: str | None = None,
        host_address: str | None = None,
        label: str | None = None,
    ) -> None:
        self.address = address
        self.name = label or address
        self.baudrate = baudrate
        self._results = results
        self._login = login
        self._factor = timeout_factor
        self._power_cycle = power_cycle
        # How restart() brings a board back that died (a kernel panic): a power cycle.
        self._recovery_cycle = recovery_cycle or power_cycle
        self._jsonrpc_url = jsonrpc_url
        # Checked now: a bad address is an error before anything is opened.
        self._route = None if host_address is None else HostRoute.direct(host_address)
        self._console: Console | None = None
        self._files: FileTransfer | None = None
        self._facts: dict[str, str] = {}

    @property
    def jsonrpc_url(self) -> str | None:
        return self._jsonrpc_url

    @property
    def files(self) -> FileTransfer:
        if self._files is None:
            self._files = FileTransfer(
                self.console, self._route, name=self.name, timeout_factor=self._factor
            )
        return self._files

    @property
    def power_cycle_log(self) -> Path:
        return self._results / f"power-cycle-{self.name}.log"

    def start(self) -> None:
        try:
            self._start(self._power_cycle)
        except BaseException:
            self.stop()
            raise

    def restart(self) -> None:
        """Power-cycle a board that died and log in again; without a way to, say so."""
        if self._recovery_cycle is None:
            raise TargetError(
                f"the board {self.name} stopped answering and the harness has no way to switch "
                "it off and on (fix: --thunder-power-cycle=CMD, or a labgrid place with a power "
                "port)"
            )
        self._close()
        try:
            self._start(self._recovery_cycle)
        except BaseException:
            self.stop()
            raise

    def _start(self, power_cycle: str | None) -> None:
        self._results.mkdir(parents=True, exist_ok=True)
        # Opened before the power cycle: the boot log is kept, and the line is ours first.
        stream = open_serial(self.address, self.baudrate)
        transcript = Transcript(self._results / f"console-{self.name}.log")
        self._console = Console(
            stream, transcript, name=self.name, login=self._login, timeout_factor=self._factor
        )
        if power_cycle is not None:
            boot = Deadline(BOOT_TIMEOUT, self._factor)
            heard = self._run_power_cycle(power_cycle, stream)
            self._wait_until_booted(stream, heard, boot)
            # What is left of the boot's budget, nominal: the console applies the factor.
            self._console.attach(timeout=max(boot.left(), ATTACH_TIMEOUT))
        else:
            self._attach_booted(self._console)
        self._facts["kernel"] = self._console.check("uname -r").stdout.strip()

    def _attach_booted(self, console: Console) -> None:
        try:
            console.attach(timeout=ATTACH_TIMEOUT)
        except ConsoleError as first:
            # No prompt at all: a program left running (a stuck command of an earlier run) may
            # hold the console. A login that failed is not retried: Ctrl-C would not help it.
            if "no shell prompt" not in str(first):
                raise
            try:
                console.resync(timeout=RECOVER_TIMEOUT)
            except ConsoleError:
                raise first from None

    def _wait_until_booted(self, stream: SerialStream, heard: int, boot: Deadline) -> None:
        """Listen, sending nothing, until the board has spoken and then gone quiet.

        A key that reaches a boot loader while it counts down stops the boot, so the console's
        newline pokes must wait until the boot has begun and paused (typically at its prompt).
        """
        settle = BOOT_SETTLE * self._factor  # a wait of its own: real seconds
        quiet_since = time.monotonic()
        while not heard or time.monotonic() - quiet_since < settle:
            if boot.expired():
                raise TargetError(
                    f"the board on {self.address} said nothing within {boot.real:.0f} s of its "
                    f"power cycle: check the power-cycle command, the cable and --thunder-baud "
                    f"(now {self.baudrate}); transcript: {self.console.transcript_path}"
                )
            received = self._drain(stream)
            if received:
                heard += received
                quiet_since = time.monotonic()

    def _run_power_cycle(self, command: str, stream: SerialStream) -> int:
        """Run the user's command, reading the line meanwhile; returns the bytes the board said.

        The command is the user's own shell command line (like a Makefile's), so it runs with
        shell=True on purpose. Its text stays out of messages: it may carry a PDU's credentials.
        """
        limit = POWER_CYCLE_TIMEOUT * self._factor
        with open(self.power_cycle_log, "ab") as log:
            log.write(f"--- power cycle of {self.name} at {time.ctime()}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command,
                shell=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + limit
        heard = 0
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    raise TargetError(
                        f"the power-cycle command (--thunder-power-cycle) for {self.name} did "
                        f"not finish within {limit:.0f} s; it was killed\n{self._log_tail()}"
                    )
                heard += self._drain(stream)
        finally:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.returncode != 0:
            raise TargetError(
                f"the power-cycle command (--thunder-power-cycle) for {self.name} exited with "
                f"code {process.returncode}; the board was not booted\n{self._log_tail()}"
            )
        return heard

    def _drain(self, stream: SerialStream) -> int:
        """Read what the board says (into the transcript) for a moment; how many bytes came."""
        try:
            return len(stream.read_nonblocking(256 * 1024, timeout=_DRAIN_STEP))
        except pexpect.TIMEOUT:
            return 0
        except pexpect.EOF:
            raise TargetError(
                f"the serial line {self.address} closed while {self.name} was power-cycled or "
                f"booting (transcript: {self.console.transcript_path})"
            ) from None

    def _log_tail(self, lines: int = 10) -> str:
        text = self.power_cycle_log.read_text(errors="replace").splitlines()[-lines:]
        shown = "\n".join(f"  {line}" for line in text) if text else "  (no output)"
        return f"its output:\n{shown}\n(log: {self.power_cycle_log})"

    def stop(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._console is not None:
            with contextlib.suppress(Exception):
                self._console.close()
            self._console = None
        self._files = None

    def properties(self) -> dict[str, str]:
        facts = super().properties()
        facts.update(
            {
                "serial.port": self.address,
                "serial.baud": str(self.baudrate),
                "power_cycled": str(self._power_cycle is not None).lower(),
            }
        )
        if "runc" not in self._facts and self._console is not None:
            with contextlib.suppress(ConsoleError):
                said = self._console.run("runc --version 2>/dev/null | head -n 1").stdout
                self._facts["runc"] = said.strip().removeprefix("runc version ").strip()
        facts.update({key: value for key, value in self._facts.items() if value})
        return facts
