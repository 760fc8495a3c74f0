"""What a plugin's container leaves behind, how long Thunder may take to clear it, and a leftover
planted on purpose."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from pytest_thunder_container.conformance.observe import PluginHost, find_plugin_hosts
from pytest_thunder_container.shell.protocol import CommandResult, Shell
from pytest_thunder_container.thunder.deploy import RUNC, runc_containers

# Thunder's daemon config, R5 then R4.4 (the first that exists is the one it runs with).
THUNDER_CONFIGS = ("/etc/Thunder/config.json", "/etc/WPEFramework/config.json")
# Config.h (R5.3.0 Source/Thunder, R4.4.7 Source/WPEFramework): top-level keys, seconds.
SOFT_KILL_KEY, SOFT_KILL_DEFAULT = "softkillcheckwaittime", 10
HARD_KILL_KEY, HARD_KILL_DEFAULT = "hardkillcheckwaittime", 4
# Communicator.h ContainerProcess::EndProcess: after the soft and hard kill, a last
# container Stop with 5 s to take effect.
CONTAINER_STOP_WAIT = 5
POLL_INTERVAL = 0.5


@dataclass(frozen=True)
class Leftovers:
    """Containers with the plugin's id and plugin hosts still running after a deactivation."""

    containers: tuple[str, ...]
    hosts: tuple[PluginHost, ...]

    def __bool__(self) -> bool:
        return bool(self.containers or self.hosts)

    def describe(self) -> str:
        parts = [f"runc still lists {', '.join(self.containers)}"] if self.containers else []
        parts += [f"{host.name} pid {host.pid} still runs" for host in self.hosts]
        return "; ".join(parts) or "nothing left"


def leftovers(shell: Shell, callsign: str) -> Leftovers:
    containers = tuple(c for c in runc_containers(shell) if c == callsign)
    return Leftovers(containers, tuple(find_plugin_hosts(shell, callsign)))


@dataclass(frozen=True)
class KillTimes:
    """How long Thunder waits before killing a plugin host harder, and where that was read."""

    soft: int = SOFT_KILL_DEFAULT
    hard: int = HARD_KILL_DEFAULT
    source: str = "Thunder's defaults"

    def deadline(self, timeout_factor: float) -> float:
        """Seconds until Thunder has done everything it does to end a container."""
        return (self.soft + self.hard + CONTAINER_STOP_WAIT) * timeout_factor

    def explain(self, timeout_factor: float) -> str:
        return (
            f"{SOFT_KILL_KEY} {self.soft} s + {HARD_KILL_KEY} {self.hard} s + "
            f"{CONTAINER_STOP_WAIT} s for the container stop ({self.source}) "
            f"x timeout factor {timeout_factor:g}"
        )


def parse_kill_times(text: str, source: str) -> KillTimes:
    """The two keys of Thunder's config.json; the defaults where absent or not numbers."""
    try:
        config = json.loads(text)
    except ValueError:
        return KillTimes(source=f"defaults: {source} is not JSON")
    if not isinstance(config, dict):
        return KillTimes(source=f"defaults: {source} is not a JSON object")
    soft, hard = config.get(SOFT_KILL_KEY), config.get(HARD_KILL_KEY)
    given = isinstance(soft, int) or isinstance(hard, int)
    return KillTimes(
        soft if isinstance(soft, int) and soft >= 0 else SOFT_KILL_DEFAULT,
        hard if isinstance(hard, int) and hard >= 0 else HARD_KILL_DEFAULT,
        source if given else f"defaults: neither key in {source}",
    )


def read_kill_times(shell: Shell) -> KillTimes:
    """The kill times of the Thunder config on the target (R5's path first, then R4.4's)."""
    for path in THUNDER_CONFIGS:
        result = shell.run(f"cat {shlex.quote(path)} 2>/dev/null")
        if result.ok and result.stdout.strip():
            return parse_kill_times(result.stdout, path)
    return KillTimes(source=f"defaults: no {' or '.join(THUNDER_CONFIGS)} on the target")


@dataclass(frozen=True)
class LeftoverWait:
    """What was left when the wait ended, after how long, and why the wait was that long."""

    left: Leftovers
    waited: float
    deadline: float
    why: str

    def describe(self) -> str:
        if not self.left:
            return f"nothing left after {self.waited:.1f} s"
        return (
            f"{self.left.describe()} after waiting {self.waited:.1f} s (deadline "
            f"{self.deadline:.1f} s: {self.why})"
        )


def wait_for_no_leftovers(
    shell: Shell,
    callsign: str,
    kill_times: KillTimes,
    timeout_factor: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> LeftoverWait:
    """Poll runc list and the host processes until nothing is left or Thunder's kill times pass:
    R5 deletes the container from its terminator thread seconds after deactivate returns."""
    deadline = kill_times.deadline(timeout_factor)
    start = clock()
    while True:
        left = leftovers(shell, callsign)
        waited = clock() - start
        if not left or waited >= deadline:
            return LeftoverWait(left, waited, deadline, kill_times.explain(timeout_factor))
        sleep(min(POLL_INTERVAL, deadline - waited))


def plant_leftover_container(shell: Shell, bundle: str, container_id: str) -> CommandResult:
    """A created-but-never-started container with the plugin's id, as a crash would leave it."""
    q = shlex.quote
    return shell.run(
        f"{RUNC} create --bundle {q(bundle)} {q(container_id)} </dev/null "
        f">/dev/null 2>&1; r=$?; {RUNC} state {q(container_id)}; echo rc=$r",
        timeout=120,
    )
