"""What a runtime check returns (Verdict, ProbeExcerpt), what it judges against, and its helpers."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pytest_thunder_container.conformance import procfs
from pytest_thunder_container.conformance.observe import Observation, PluginHost

PASS = "pass"
FAIL = "fail"
NOT_APPLICABLE = "not-applicable"
BLOCKED = "blocked"
OUTCOMES = (PASS, FAIL, NOT_APPLICABLE, BLOCKED)
READ_ONLY_ERROR = "Read-only file system"


@dataclass(frozen=True)
class ProbeExcerpt:
    """One thing seen on the target: the command that showed it and the lines that matter."""

    title: str
    command: str  # as run on the target, or "" for a Controller call
    output: str


@dataclass(frozen=True)
class Verdict:
    """Whether one requirement holds, in one line, with the evidence attached."""

    requirement: str
    outcome: str  # one of OUTCOMES
    message: str
    evidence: tuple[ProbeExcerpt, ...]


@dataclass(frozen=True)
class PluginCall:
    """A JSON-RPC call to the plugin while its host runs in the container, and its answer."""

    method: str
    result: Any = None
    error: str | None = None  # Thunder's error text when the call failed


@dataclass(frozen=True)
class RuntimeContext:
    """What the checks judge the observation against: the deployment and Thunder's answers."""

    callsign: str
    bundle: str  # the deployed bundle directory, e.g. /usr/share/Thunder/OCDM/Container
    config: dict[str, Any]  # the config.json deployed there
    dialect: str  # "R5" | "R4.4"
    state: str | None  # the plugin's state after the activation attempt (R5 spelling)
    activation_error: str | None  # why Container-mode activation failed, else None
    links: list[dict[str, Any]]  # Controller.1.links while the plugin runs in the container
    plugin_call: PluginCall | None
    connector: str = "/tmp/communicator"
    allowed_binds: tuple[str, ...] = ()  # host paths the user allows writable binds of


class NotEvaluated(Exception):
    """Raised inside a check when the observation lacks what it needs; becomes `blocked`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verdict(requirement: str, holds: bool, message: str, *evidence: ProbeExcerpt) -> Verdict:
    """`pass` or `fail` with a message saying what was expected and what was seen."""
    return Verdict(requirement, PASS if holds else FAIL, message, evidence)


def inapplicable(requirement: str, message: str, *evidence: ProbeExcerpt) -> Verdict:
    """The property can't exist on this target; the message says why."""
    return Verdict(requirement, NOT_APPLICABLE, message, evidence)


def blocked(requirement: str, reason: str, *evidence: ProbeExcerpt) -> Verdict:
    """The check could not be evaluated: `not evaluated: <reason>`."""
    return Verdict(requirement, BLOCKED, f"not evaluated: {reason}", evidence)


def host_of(observation: Observation) -> PluginHost:
    """The observed plugin host; a check without one can't be evaluated."""
    if observation.host is None:
        raise NotEvaluated(f"no plugin host with -C {observation.callsign} was found")
    return observation.host


def section(observation: Observation, name: str, *, inside: bool = False) -> str:
    """A section of the outside (or inside) probe; NotEvaluated names what is missing."""
    probe = observation.inside if inside else observation.outside
    if probe is None:
        where = "inside the container (runc exec)" if inside else "on the target"
        raise NotEvaluated(f"no probe ran {where}")
    sections = procfs.probe_sections(probe)
    if name not in sections:
        raise NotEvaluated(
            f"the probe {'inside the container' if inside else 'on the target'} printed no "
            f"'{name}' section (exit status {probe.returncode})"
        )
    return sections[name]


def evidence(
    observation: Observation,
    name: str,
    title: str,
    lines: Iterable[str],
    *,
    inside: bool = False,
) -> ProbeExcerpt:
    """An excerpt of one probe section: the command that printed it and the lines that matter."""
    probe = observation.inside if inside else observation.outside
    command = procfs.section_command(probe, name) if probe is not None else ""
    return ProbeExcerpt(title, command, "\n".join(lines))


def lines_with(text: str, *needles: str) -> list[str]:
    """The lines of a section that contain any of the needles."""
    return [line for line in text.splitlines() if any(needle in line for needle in needles)]


def status(observation: Observation) -> dict[str, str]:
    """The host's /proc/<pid>/status fields."""
    return procfs.status_fields(section(observation, "status"))


def status_field(observation: Observation, key: str) -> str:
    """One field of the host's status; NotEvaluated when the line is missing."""
    value = status(observation).get(key)
    if value is None:
        raise NotEvaluated(f"/proc/<pid>/status of the host has no {key} line")
    return value


def inside_mounts(observation: Observation) -> list[procfs.Mount]:
    """The mount table as a process inside the container sees it."""
    mounts = procfs.mountinfo(section(observation, "mountinfo", inside=True))
    if not mounts:
        raise NotEvaluated("the container's /proc/self/mountinfo has no mount")
    return mounts


@dataclass(frozen=True)
class WriteAttempt:
    """A probe's `: > file` inside the container: its exit status and what the shell said."""

    returncode: int
    message: str
    line: str

    @property
    def read_only(self) -> bool:
        """True when the kernel refused the write because the mount is read-only (EROFS)."""
        return self.returncode != 0 and READ_ONLY_ERROR in self.message

    def describe(self) -> str:
        if self.returncode == 0:
            return "succeeded"
        return f"failed with {self.message!r}" if self.message else "failed without a message"


def write_attempt(text: str) -> WriteAttempt:
    """Parse `rc|message` as the inside probe prints a write attempt."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    code, found, message = line.partition("|")
    if not found or not code.strip().lstrip("-").isdigit():
        raise NotEvaluated(f"unreadable write attempt {line!r}")
    return WriteAttempt(int(code), message.strip(), line)


def host_argv(observation: Observation) -> PluginHost:
    """The host with its argv as /proc/<pid>/cmdline shows it in the probe."""
    host = host_of(observation)
    cmdline = section(observation, "cmdline")
    argv = tuple(line for line in cmdline.splitlines() if line)
    return PluginHost(host.pid, host.name, argv or host.argv, host.binary)


def probe_file(observation: Observation) -> str | None:
    """The file the inside probe created in /tmp (`/tmp/.tc-probe-<token>`)."""
    probe = observation.inside
    match = re.search(r"/tmp/\.tc-probe-[0-9a-f]+", probe.command) if probe else None
    return match[0] if match else None


def who(observation: Observation) -> str:
    """`ThunderPlugin-5.3.0 'OCDM' (pid 235)`: the host's binary and comm as messages name it."""
    host = host_of(observation)
    binary = posixpath.basename(host.binary) if host.binary else ""
    if not binary or binary == host.name:
        return f"{host.name} (pid {host.pid})"
    return f"{binary} {host.name!r} (pid {host.pid})"
