"""Parsers for what the probes print: /proc status, limits, environ, mountinfo, sockets, runc."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

from pytest_thunder_container.conformance.observe import SECTION, Probe
from pytest_thunder_container.oci.config import is_within, normalise_path

# Bit number -> name, as in linux/capability.h (CAP_LAST_CAP is 40 since Linux 5.9).
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
SOCK_STREAM = 1
SS_CONNECTED = 3
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def probe_sections(probe: Probe | None) -> dict[str, str]:
    """The probe's sections, re-cut where a command's output lacked its final newline.

    `runc state` prints no newline after its JSON, so the next `@@tc-section` marker lands at the
    end of a line that split_sections does not look at; this finds it there too.
    """
    if probe is None:
        return {}
    sections: dict[str, str] = {}
    for name, text in probe.sections.items():
        current, lines = name, []
        for line in text.splitlines():
            head, marker, tail = line.partition(SECTION)
            if not marker:
                lines.append(line)
                continue
            if head:
                lines.append(head)
            sections[current] = "\n".join(lines)
            current, lines = tail.strip(), []
        sections[current] = "\n".join(lines)
    return sections


def section_command(probe: Probe, name: str) -> str:
    """The part of the probe's script that printed one section (the whole command if not found)."""
    prefix, script = "", probe.command
    words = _split(probe.command)
    if probe.where == "container" and len(words) >= 3 and words[-3:-1] == ["sh", "-c"]:
        prefix, script = shlex.join(words[:-3]) + " sh -c ", words[-1]
    start_marker = f"echo {shlex.quote(SECTION + name)}; "
    start = script.find(start_marker)
    if start < 0:
        return probe.command
    start += len(start_marker)
    end = script.find(f"; echo {shlex.quote(SECTION)[:-1]}", start)
    part = script[start:] if end < 0 else script[start:end]
    return prefix + shlex.quote(part) if prefix else part


def _split(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return []


def key_values(text: str, separator: str) -> dict[str, str]:
    """`Key<sep>value` lines (status with ':', environ with '='); the first separator splits."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, found, value = line.partition(separator)
        if found and key:
            values[key.strip() if separator == ":" else key] = value.strip()
    return values


def status_fields(text: str) -> dict[str, str]:
    """/proc/<pid>/status as a mapping (`CapEff` -> `0000000020000420`)."""
    return key_values(text, ":")


def environ_values(text: str) -> dict[str, str]:
    """/proc/<pid>/environ, NUL turned into newlines by the probe, as a mapping."""
    return key_values(text, "=")


def capability_names(mask: int) -> tuple[str, ...]:
    """The CAP_ names of the bits set in a capability mask, lowest bit first."""
    return tuple(
        CAPABILITIES[bit] if bit < len(CAPABILITIES) else f"CAP_UNKNOWN_{bit}"
        for bit in range(mask.bit_length())
        if mask >> bit & 1
    )


def capability_mask(names: tuple[str, ...] | list[str]) -> int:
    """The mask of a set of CAP_ names (unknown names are ignored)."""
    return sum(1 << CAPABILITIES.index(name) for name in names if name in CAPABILITIES)


@dataclass(frozen=True)
class Limit:
    """One line of /proc/<pid>/limits: soft and hard value as printed (a number or unlimited)."""

    name: str
    soft: str
    hard: str
    line: str


def limits(text: str) -> dict[str, Limit]:
    """/proc/<pid>/limits by limit name (`Max open files`)."""
    found: dict[str, Limit] = {}
    for line in text.splitlines():
        match = re.match(r"^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
        if match:
            found[match[1]] = Limit(match[1], match[2], match[3], line.rstrip())
    return found


@dataclass(frozen=True)
class Mount:
    """One line of /proc/<pid>/mountinfo, escapes (\\040 for a space) undone."""

    mount_id: int
    parent_id: int
    device: str
    root: str
    mount_point: str
    options: tuple[str, ...]
    optional: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]
    line: str


def unescape(field: str) -> str:
    """Undo the kernel's octal escapes in a mountinfo field (`\\040` is a space)."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match[1], 8)), field)


def mountinfo(text: str) -> list[Mount]:
    """Every well-formed mountinfo line, in the order the kernel lists them."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) < separator + 3 or not fields[0].isdigit() or not fields[1].isdigit():
            continue
        mounts.append(
            Mount(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                device=fields[2],
                root=unescape(fields[3]),
                mount_point=unescape(fields[4]),
                options=tuple(fields[5].split(",")),
                optional=tuple(fields[6:separator]),
                fstype=fields[separator + 1],
                source=unescape(fields[separator + 2]),
                super_options=tuple(fields[separator + 3].split(","))
                if len(fields) > separator + 3
                else (),
                line=line,
            )
        )
    return mounts


def mount_at(mounts: list[Mount], path: str) -> Mount | None:
    """The visible mount at exactly this mount point (the last one mounted there)."""
    path = normalise_path(path)
    found = [mount for mount in mounts if mount.mount_point == path]
    return found[-1] if found else None


def covering_mount(mounts: list[Mount], path: str) -> Mount | None:
    """The mount a path lies on: the deepest mount point above it, the last one mounted there."""
    path = normalise_path(path)
    covering = [mount for mount in mounts if is_within(path, mount.mount_point)]
    if not covering:
        return None
    deepest = max(len(mount.mount_point) for mount in covering)
    return [mount for mount in covering if len(mount.mount_point) == deepest][-1]


def socket_inodes(fds_listing: str) -> set[int]:
    """Inodes of the sockets an `ls -l /proc/<pid>/fd` listing shows (`3 -> socket:[10906]`)."""
    return {int(inode) for inode in re.findall(r"socket:\[(\d+)\]", fds_listing)}


@dataclass(frozen=True)
class UnixSocket:
    """One line of /proc/net/unix."""

    inode: int
    kind: int
    state: int
    path: str
    line: str


def unix_sockets(text: str) -> list[UnixSocket]:
    """/proc/<pid>/net/unix, header skipped."""
    sockets = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or not fields[0].endswith(":") or not fields[6].isdigit():
            continue
        try:
            kind, state = int(fields[4], 16), int(fields[5], 16)
        except ValueError:
            continue
        path = fields[7] if len(fields) > 7 else ""
        sockets.append(UnixSocket(int(fields[6]), kind, state, path, line.rstrip()))
    return sockets


def runc_json(text: str) -> Any:
    """What `runc state` or `runc ps --format json` printed, as JSON; None for an error text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


# /proc/<pid>/ns names where they differ from the OCI namespace types.
PROC_NS_NAMES = {"network": "net", "mount": "mnt"}


def namespace_links(text: str) -> dict[str, tuple[str, str]]:
    """The probe's `ns` section: kind -> (init's link, the host's link); '' where unreadable."""
    links: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        # Split on single spaces: an unreadable link leaves an empty field in its place.
        fields = [*line.split(" "), "", ""]
        if fields[0]:
            links[fields[0]] = (fields[1], fields[2])
    return links
