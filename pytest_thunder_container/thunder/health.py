"""Is Thunder still there? Its port, its process, the last lines of its log, and a restart."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.thunder.client import ThunderClient

# Started with -b, Thunder logs through syslog (PluginHost.cpp); the reference image's init script
# has busybox syslogd write those lines, and the daemon's own output, to this file.
THUNDER_LOG = "/var/log/thunder.log"
THUNDER_INIT_SCRIPT = "/etc/init.d/S50thunder"
DAEMON_NAMES = ("Thunder", "WPEFramework")
PROBE_TIMEOUT = 5.0
LOG_LINES = 15


@dataclass(frozen=True)
class ThunderDown:
    """Thunder stopped answering: what its port said, whether its process runs, its last words."""

    answer: str
    process: str
    log_tail: str

    def describe(self) -> str:
        return (
            f"Thunder does not answer ({self.answer}); {self.process}\n"
            f"last lines of {THUNDER_LOG}:\n{self.log_tail}"
        )


def daemon_pids(shell: Shell) -> list[int]:
    """Pids of a running Thunder or WPEFramework daemon on the target."""
    names = " ".join(DAEMON_NAMES)
    out = shell.run(f"pidof {names} 2>/dev/null").stdout
    return [int(word) for word in out.split() if word.isdigit()]


def log_tail(shell: Shell, lines: int = LOG_LINES) -> str:
    path = shlex.quote(THUNDER_LOG)
    result = shell.run(f"[ -f {path} ] && tail -n {lines} {path}")
    return result.stdout.rstrip() if result.ok else f"(no {THUNDER_LOG} on the target)"


def thunder_down(
    client: ThunderClient, shell: Shell, *, timeout: float = PROBE_TIMEOUT
) -> ThunderDown | None:
    """None while Thunder's Controller answers; else why it looks dead, with its log's tail."""
    try:
        client.call("Controller.1.subsystems", timeout=timeout)
        return None
    except ThunderContainerError as error:
        answer = str(error).splitlines()[0][:300]
    try:
        pids = daemon_pids(shell)
        process = (
            f"its process still runs (pid {', '.join(map(str, pids))})"
            if pids
            else f"no {' or '.join(DAEMON_NAMES)} process runs"
        )
        tail = log_tail(shell)
    except ThunderContainerError as error:
        process, tail = f"the target's shell failed too: {error}", ""
    return ThunderDown(answer, process, tail)


def restart_thunder(client: ThunderClient, shell: Shell, *, timeout: float) -> None:
    """Restart Thunder with the image's init script and wait until its Controller answers."""
    # Stopping a containerized plugin runs runc kill and delete; starting may run it again.
    with client.runc_window():
        _restart(client, shell, timeout)


def _restart(client: ThunderClient, shell: Shell, timeout: float) -> None:
    script = THUNDER_INIT_SCRIPT
    result = shell.run(f"[ -x {script} ] && {script} restart", timeout=timeout)
    if not result.ok:
        raise ThunderContainerError(
            f"Thunder could not be restarted: {script} restart gave {result.returncode}: "
            f"{result.stdout[-300:]} (the image needs that init script)"
        )
    deadline = time.monotonic() + timeout
    while True:
        down = thunder_down(client, shell)
        if down is None:
            return
        if time.monotonic() >= deadline:
            raise ThunderContainerError(
                f"Thunder did not answer within {timeout:.0f} s of {script} restart: "
                + down.describe()
            )
        time.sleep(1.0)
