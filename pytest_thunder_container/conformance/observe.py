"""What the running plugin host really has, observed on the target with sh, busybox and runc."""

from __future__ import annotations

import json
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_thunder_container.conformance.catalogue import Catalogue
from pytest_thunder_container.shell.protocol import Shell

# The hosts are found in the thunder layer (deployment needs them); probes and callers import here.
from pytest_thunder_container.thunder.hosts import HOST_NAMES as HOST_NAMES
from pytest_thunder_container.thunder.hosts import PluginHost as PluginHost
from pytest_thunder_container.thunder.hosts import find_plugin_hosts as find_plugin_hosts

# A file under each read-only path that root may open for writing where the mount allows it
# (directories can't be opened for writing; read-only files would say EACCES, not EROFS).
READONLY_WRITE_TARGETS = {
    "/proc/sys": "/proc/sys/kernel/hostname",
    "/proc/sysrq-trigger": "/proc/sysrq-trigger",
}
SECTION = "@@tc-section "
# Opening for writing without writing anything (`: > f`) proves a mount is read-only (EROFS) and
# changes nothing when it is not: no kernel setting is ever written by a probe.
WRITE_PROBES = {"sysfs": "/sys/class/net/lo/mtu", "cgroup": "/sys/fs/cgroup/cgroup.procs"}


@dataclass(frozen=True)
class Probe:
    """One command run on the target and what it printed: the evidence of a check."""

    where: str  # "target" or "container"
    command: str
    returncode: int
    sections: dict[str, str]


@dataclass(frozen=True)
class Observation:
    """Everything observed of one plugin host, outside and inside its container."""

    callsign: str
    host: PluginHost | None
    outside: Probe | None = None
    inside: Probe | None = None
    tmp_probe_seen_outside: bool | None = None
    notes: tuple[str, ...] = field(default=())

    def section(self, name: str, *, inside: bool = False) -> str:
        probe = self.inside if inside else self.outside
        return probe.sections.get(name, "") if probe else ""


def observation_to_dict(observation: Observation) -> dict[str, Any]:
    """A JSON-ready form, kept as evidence and used as recorded test data."""
    return asdict(observation)


def observation_from_dict(data: dict[str, Any]) -> Observation:
    host = data.get("host")
    probes = {
        where: (Probe(**data[where]) if data.get(where) else None)
        for where in ("outside", "inside")
    }
    return Observation(
        callsign=data["callsign"],
        host=(
            PluginHost(host["pid"], host["name"], tuple(host["argv"]), host.get("binary", ""))
            if host
            else None
        ),
        outside=probes["outside"],
        inside=probes["inside"],
        tmp_probe_seen_outside=data.get("tmp_probe_seen_outside"),
        notes=tuple(data.get("notes", ())),
    )


def split_sections(output: str) -> dict[str, str]:
    """Cut a probe's output at its `@@tc-section NAME` lines."""
    sections: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in output.splitlines():
        if line.startswith(SECTION):
            if name is not None:
                sections[name] = "\n".join(lines)
            name, lines = line[len(SECTION) :].strip(), []
        elif name is not None:
            lines.append(line)
    if name is not None:
        sections[name] = "\n".join(lines)
    return sections


def _section(name: str) -> str:
    return f"echo {shlex.quote(SECTION + name)}"


def outside_script(pid: int, container_id: str, paths: Sequence[str]) -> str:
    """Read the host process from the target's side: namespaces, status, environ, mounts, runc;
    and which of `paths` (the catalogue's masked and read-only paths) the target has."""
    proc = f"/proc/{pid}"
    q = shlex.quote
    exists = " ".join(q(p) for p in paths)
    parts = [
        _section("ns"),
        f'for n in $(ls /proc/1/ns); do echo "$n $(readlink /proc/1/ns/$n) '
        f'$(readlink {proc}/ns/$n)"; done',
        _section("status"),
        f"cat {proc}/status",
        _section("limits"),
        f"cat {proc}/limits",
        _section("environ"),
        f"tr '\\000' '\\n' < {proc}/environ",
        _section("cmdline"),
        f"tr '\\000' '\\n' < {proc}/cmdline",
        _section("fds"),
        f"ls -l {proc}/fd 2>/dev/null",
        _section("net-unix"),
        f"cat {proc}/net/unix",
        _section("mountinfo"),
        f"cat {proc}/mountinfo",
        _section("runc-state"),
        f"runc state {q(container_id)} 2>&1; echo",
        _section("runc-ps"),
        f"runc ps --format json {q(container_id)} 2>&1; echo",
        _section("target-hostname"),
        "hostname",
        _section("target-exists"),
        f'for p in {exists}; do [ -e "$p" ] && echo "$p"; done',
        _section("end"),
    ]
    return "; ".join(parts)


def inside_script(token: str, connector: str, masked_paths: Sequence[str]) -> str:
    """Run inside the container with runc exec: what a process in there can see and do."""
    q = shlex.quote
    masked = " ".join(q(p) for p in masked_paths)
    writable = " ".join(q(p) for p in READONLY_WRITE_TARGETS.values())
    probe = f"/.tc-probe-{token}"
    parts = [
        _section("hostname"),
        "hostname",
        _section("masked"),
        f'for p in {masked}; do if [ -e "$p" ]; then '
        'echo "$p|$(stat -c "%F|%t,%T" "$p" 2>&1)|$(head -c 64 "$p" 2>/dev/null | wc -c)|'
        '$(ls -A "$p" 2>/dev/null | wc -l)"; else echo "$p|absent"; fi; done',
        _section("readonly-write"),
        f'for p in {writable}; do if [ -e "$p" ]; then '
        'm=$( ( : > "$p" ) 2>&1); echo "$p|$?|$m"; else echo "$p|absent"; fi; done',
        _section("root-write"),
        f'm=$( ( : > {probe} ) 2>&1); echo "$?|$m"; rm -f {probe} 2>/dev/null',
        _section("tmp-write"),
        f'm=$( ( : > /tmp/.tc-probe-{token} ) 2>&1); echo "$?|$m"',
        _section("sysfs-write"),
        f'm=$( ( : > {WRITE_PROBES["sysfs"]} ) 2>&1); echo "$?|$m"',
        _section("cgroup-write"),
        f'm=$( ( : > {WRITE_PROBES["cgroup"]} ) 2>&1); echo "$?|$m"',
        _section("communicator"),
        f"if [ -S {q(connector)} ]; then echo socket; elif [ -e {q(connector)} ]; then "
        f"echo not-a-socket; else echo absent; fi; ls -l {q(connector)} 2>&1",
        _section("dispatcher"),
        "ls -A /tmp/MessageDispatcher 2>&1",
        _section("mountinfo"),
        "cat /proc/self/mountinfo",
        _section("dev"),
        "ls -l /dev",
        _section("end"),
    ]
    return "; ".join(parts)


def observe(
    shell: Shell,
    callsign: str,
    catalogue: Catalogue,
    *,
    container_id: str | None = None,
    connector: str = "/tmp/communicator",
    inside: bool = True,
    timeout: float = 120.0,
) -> Observation:
    """Find the host for `callsign` and read everything the checks of `catalogue` need, in two
    round trips."""
    container = container_id or callsign
    hosts = find_plugin_hosts(shell, callsign)
    if not hosts:
        return Observation(
            callsign,
            None,
            notes=(f"no ThunderPlugin/WPEProcess with -C {callsign} runs on the target",),
        )
    host = hosts[0]
    notes = (
        ()
        if len(hosts) == 1
        else (f"{len(hosts)} hosts for {callsign}: {[h.pid for h in hosts]}; observed {host.pid}",)
    )
    masked = catalogue.subjects("MASK")
    script = outside_script(host.pid, container, (*masked, *catalogue.subjects("RO")))
    result = shell.run(script, timeout=timeout)
    outside = Probe("target", script, result.returncode, split_sections(result.stdout))
    if not inside:
        return Observation(callsign, host, outside, notes=notes)
    token = secrets.token_hex(4)
    inner = inside_script(token, connector, masked)
    command = f"runc exec {shlex.quote(container)} sh -c {shlex.quote(inner)}"
    result = shell.run(command, timeout=timeout)
    inside_probe = Probe("container", command, result.returncode, split_sections(result.stdout))
    marker = f"/tmp/.tc-probe-{token}"
    seen = shell.run(f"if [ -e {marker} ]; then rm -f {marker}; echo seen; fi").stdout == "seen"
    return Observation(callsign, host, outside, inside_probe, seen, notes)


def runc_state(observation: Observation) -> dict[str, object] | None:
    """`runc state` of the container as JSON, or None when runc had no such container."""
    try:
        value = json.loads(observation.section("runc-state"))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
