"""What a plugin's container leaves behind, and a leftover planted on purpose."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pytest_thunder_container.conformance.observe import PluginHost, find_plugin_hosts
from pytest_thunder_container.shell.protocol import CommandResult, Shell
from pytest_thunder_container.thunder.deploy import RUNC, runc_containers


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


def plant_leftover_container(shell: Shell, bundle: str, container_id: str) -> CommandResult:
    """A created-but-never-started container with the plugin's id, as a crash would leave it."""
    q = shlex.quote
    return shell.run(
        f"{RUNC} create --bundle {q(bundle)} {q(container_id)} </dev/null "
        f">/dev/null 2>&1; r=$?; {RUNC} state {q(container_id)}; echo rc=$r",
        timeout=120,
    )
