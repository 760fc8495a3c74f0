"""What runc's own log and state say about a failed activation: which call, how long, what limit.

Thunder's runc backend passes `--log <volatilepath><callsign>/<callsign>/runc.container.log` to
every runc call (RunCImplementation.cpp: LOG_FILE; Communicator.h appends the callsign to the
plugin's own volatile path, which is already `<volatilepath><callsign>/`). Seen on R5.3.0:
`runc --log /tmp/OCDM/OCDM/runc.container.log delete --force OCDM`.
runc writes one line per message there: logrus text (`time="..." level=error msg="..."`, runc's
default --log-format) or JSON (`{"level","msg","time"}`); both are read. A successful call writes
nothing, so the container's `created` time from `runc state` is the other witness of a slow create.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from datetime import datetime

from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.thunder.deploy import RUNC

LOG_NAME = "runc.container.log"
# Thunder waits this long for each runc call (RunCImplementation.cpp DEFAULT_TIMEOUT), then
# gives up without killing runc: a late `create` leaves a container behind.
R5_1_LIMIT_MS = 2000
R4_4_3_LIMIT_MS = 5000
_FRACTION = re.compile(r"(\.\d{6})\d+")
_CALL = re.compile(r"runc (\w+) failed")
_TEXT_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class RuncLogEntry:
    """One line of runc's JSON log."""

    time: datetime
    level: str
    message: str

    @property
    def call(self) -> str | None:
        """The runc subcommand the line names (`runc create failed: ...`), when it names one."""
        match = _CALL.search(self.message)
        return match.group(1) if match else None


def log_path(volatile_path: str, callsign: str) -> str:
    """Where Thunder tells runc to log for one plugin (`volatile_path`: Thunder's global one)."""
    return f"{volatile_path.rstrip('/')}/{callsign}/{callsign}/{LOG_NAME}"


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 time as Go writes it (nanoseconds, Z or an offset); None if it is not one."""
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_runc_log(text: str) -> list[RuncLogEntry]:
    """The lines of a runc log (text or JSON) that carry a time; anything else is left out."""
    entries: list[RuncLogEntry] = []
    for line in text.splitlines():
        record = _fields(line.strip())
        when = parse_time(str(record.get("time", "")))
        if when is not None:
            entries.append(
                RuncLogEntry(when, str(record.get("level", "")), str(record.get("msg", "")))
            )
    return entries


def _fields(line: str) -> dict[str, object]:
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}
    fields: dict[str, object] = {}
    for key, value in _TEXT_FIELD.findall(line):
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value.strip('"')
        fields[key] = value
    return fields


def created_time(state_json: str) -> datetime | None:
    """The `created` time of `runc state <id>`'s JSON, or None."""
    try:
        state = json.loads(state_json)
    except ValueError:
        return None
    return parse_time(str(state.get("created", ""))) if isinstance(state, dict) else None


def runc_call_limit_ms(version: str | None) -> int | None:
    """Thunder's limit per runc call for its version: 2000 ms from R5.1, 5000 ms from R4.4.3,
    none before (None also when the version is unknown)."""
    match = _VERSION.search(version or "")
    if match is None:
        return None
    number = (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))
    if number >= (5, 1, 0):
        return R5_1_LIMIT_MS
    if number >= (4, 4, 3):
        return R4_4_3_LIMIT_MS
    return None


def limit_phrase(limit_ms: int | None) -> str:
    """How a finding names Thunder's limit per runc call."""
    if limit_ms is None:
        return "no known limit for this Thunder version"
    return f"Thunder's limit of {limit_ms} ms per runc call"


def target_now(shell: Shell) -> datetime | None:
    """The target's clock (UTC), to the nanosecond when its date has %N, else to the second."""
    out = shell.run("date -u +%Y-%m-%dT%H:%M:%S.%NZ").stdout.strip()
    return parse_time(re.sub(r"\.[^0-9]*N?Z$", "Z", out))


@dataclass(frozen=True)
class RuncTimings:
    """What runc's log and state showed after an activation that began at `started`."""

    started: datetime | None
    limit_ms: int | None
    entries: tuple[RuncLogEntry, ...]
    created: datetime | None

    def findings(self) -> list[str]:
        """One line per witness: the call, seconds after the activation began, the limit."""
        limit = limit_phrase(self.limit_ms)
        lines: list[str] = []
        if self.created is not None and self.started is not None:
            took = (self.created - self.started).total_seconds()
            over = self.limit_ms is not None and took * 1000 > self.limit_ms
            # The time counts Thunder's preparation before the call (1.6-2.1 s emulated): more
            # than the limit makes a slow create likely, not certain.
            lines.append(
                f"runc create finished {took:.1f} s after the activation began"
                + (
                    f" (Thunder's preparation before the call included), more than {limit}"
                    if over
                    else f" ({limit})"
                )
            )
        for entry in self.entries:
            at = (
                f"+{(entry.time - self.started).total_seconds():.1f} s"
                if self.started is not None
                else entry.time.isoformat()
            )
            call = f"runc {entry.call}" if entry.call else "runc"
            lines.append(f"{call} logged {entry.level} at {at}: {entry.message}")
        return lines


def runc_timings(
    shell: Shell,
    callsign: str,
    *,
    started: datetime | None,
    version: str | None,
    volatile_path: str = "/tmp",
) -> RuncTimings:
    """Read the plugin's runc log (the lines since `started`) and its container's created time."""
    q = shlex.quote
    text = shell.run(f"cat {q(log_path(volatile_path, callsign))} 2>/dev/null").stdout
    entries = [e for e in parse_runc_log(text) if started is None or e.time >= started]
    state = shell.run(f"{RUNC} state {q(callsign)} 2>/dev/null").stdout
    created = created_time(state)
    if created is not None and started is not None and created < started:
        created = None  # a container from before this activation
    return RuncTimings(started, runc_call_limit_ms(version), tuple(entries), created)
