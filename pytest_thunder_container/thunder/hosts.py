"""The plugin hosts Thunder runs on a target, found by their binary (sh and busybox only)."""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass

from pytest_thunder_container.shell.protocol import Shell

HOST_NAMES = ("ThunderPlugin", "WPEProcess")
# The host's binary as installed: `ThunderPlugin`, or versioned (`ThunderPlugin-5.3.0`) behind a
# ThunderPlugin symlink. Its comm is no guide: the host renames itself to the callsign (prctl).
_HOST_BINARY = re.compile(r"(?:ThunderPlugin|WPEProcess)(?:-[0-9][0-9A-Za-z.]*)?")


@dataclass(frozen=True)
class PluginHost:
    """A Thunder plugin host process (ThunderPlugin in R5, WPEProcess in R4.4)."""

    pid: int
    name: str  # its comm: real hosts rename themselves to the callsign (`OCDM`)
    argv: tuple[str, ...]
    binary: str = ""  # what /proc/<pid>/exe links to, else argv[0]

    def option(self, flag: str) -> str | None:
        """The value after `flag` in the host's argv (e.g. -C callsign, -r connector)."""
        for index, arg in enumerate(self.argv[:-1]):
            if arg == flag:
                return self.argv[index + 1].strip('"')
        return None


def is_host_binary(path: str) -> bool:
    """Whether `path` names a plugin host binary (ThunderPlugin, WPEProcess, versioned or not)."""
    return _HOST_BINARY.fullmatch(posixpath.basename(path)) is not None


def host_listing_script(proc: str = "/proc") -> str:
    """Every process whose argv[0], exe or comm names a host binary: pid, comm, exe, argv.

    Candidates come from one grep and one ls (busybox grep stops at the NUL after argv[0]; GNU
    grep reads on), then Python keeps those whose argv[0], exe or comm really is a host.
    """
    names = " ".join(f"-e {name}" for name in HOST_NAMES)
    pattern = "/(" + "|".join(HOST_NAMES) + ")[^/]*$"
    return (
        f"p={shlex.quote(proc)}; for d in $( {{ "
        f'grep -l -F {names} "$p"/[0-9]*/cmdline "$p"/[0-9]*/comm 2>/dev/null '
        "| sed 's|/[a-z]*$||'; "
        f'ls -l "$p"/[0-9]*/exe 2>/dev/null | grep -E {shlex.quote(pattern)} '
        "| sed -n 's|.* \\([^ ]*\\)/exe -> .*|\\1|p'; } | sort -u); do "
        'a=$(tr "\\000" "\\037" < "$d/cmdline" 2>/dev/null) || continue; '
        '[ -n "$a" ] || continue; n=$(cat "$d/comm" 2>/dev/null); '
        'e=$(readlink "$d/exe" 2>/dev/null); '
        'printf "%s\\t%s\\t%s\\t%s\\n" "${d##*/}" "$n" "$e" "$a"; done'
    )


def find_plugin_hosts(shell: Shell, callsign: str, *, proc: str = "/proc") -> list[PluginHost]:
    """Every plugin host whose argv says `-C <callsign>`, found by its binary (argv[0] or exe),
    not its comm, which real hosts set to the callsign."""
    result = shell.run(host_listing_script(proc))
    hosts = []
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        pid, comm, exe, args = parts
        argv = tuple(a for a in args.split("\x1f") if a)
        argv0 = argv[0] if argv else ""
        if not (is_host_binary(argv0) or is_host_binary(exe) or is_host_binary(comm)):
            continue
        host = PluginHost(int(pid), comm, argv, exe or argv0)
        if host.option("-C") == callsign:
            hosts.append(host)
    return hosts
