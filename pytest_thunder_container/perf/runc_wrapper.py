"""A logging wrapper over the target's runc while a benchmark runs, and the phases it reveals.

The image is not modified: the real binary is bind-mounted to a private path, and a sh wrapper is
bind-mounted over /usr/bin/runc (Thunder calls runc by that path). Both mounts go when the
benchmark ends, however it ends.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from types import TracebackType

from pytest_thunder_container.conformance.runc_log import limit_phrase
from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.thunder.deploy import RUNC

WRAPPER_DIRS = ("/run", "/tmp", "/var/run")
PRIVATE_DIR = "tc-runc."
# runc's global flags that take a value (-log is R4.4's spelling: Go accepts one dash).
VALUE_FLAGS = frozenset(
    {
        "--log",
        "-log",
        "--log-format",
        "-log-format",
        "--root",
        "-root",
        "--criu",
        "-criu",
        "--rootless",
        "-rootless",
    }
)
LAUNCHES = ("create", "run")
UMOUNT_TRIES = 5


@dataclass(frozen=True)
class RuncCall:
    """One runc call Thunder made: subcommand, start and end (seconds of the target's clock)."""

    subcommand: str
    start: float
    end: float | None
    returncode: int | None
    args: str


def describe_calls(calls: list[RuncCall], limit_ms: int | None) -> str:
    """Each call with how long it took, the ones past Thunder's limit per runc call marked."""
    said = []
    for call in calls:
        if call.end is None:
            said.append(f"{call.subcommand} (no end logged)")
            continue
        took = (call.end - call.start) * 1000.0
        over = limit_ms is not None and took > limit_ms
        rc = "" if call.returncode in (0, None) else f", exit {call.returncode}"
        said.append(f"{call.subcommand} {took:.0f} ms{rc}" + (" PAST THE LIMIT" if over else ""))
    return f"runc calls: {', '.join(said) or 'none logged'} ({limit_phrase(limit_ms)})"


def runc_subcommand(args: list[str]) -> str:
    """The subcommand of a runc command line (`create`, `exec`, `run`, ...) after global flags."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in VALUE_FLAGS
        else:
            return arg
    return "?"


def wrapper_script(real: str, log: str, clock_library: str) -> str:
    """The wrapper: `<t> start <pid> <args>` and `<t> end <pid> rc=<rc> <args>` around runc."""
    q = shlex.quote
    return (
        "#!/bin/sh\n"
        "# pytest-thunder-container: logs runc calls during a latency benchmark (bind-mounted,\n"
        "# removed after it)\n"
        f"{clock_library}\n"
        f'echo "$(tc_now) start $$ $*" >> {q(log)}\n'
        f'{q(real)} "$@"\n'
        "tc_rc=$?\n"
        f'echo "$(tc_now) end $$ rc=$tc_rc $*" >> {q(log)}\n'
        "exit $tc_rc\n"
    )


def parse_runc_log(text: str) -> list[RuncCall]:
    """The calls of a wrapper log, paired start with end by pid, in the order they started."""
    open_calls: dict[str, tuple[float, str]] = {}
    calls: list[RuncCall] = []
    for line in text.splitlines():
        parts = line.split(None, 3)  # busybox ts ends its timestamp with a space of its own
        if len(parts) < 3 or parts[1] not in ("start", "end"):
            continue
        try:
            stamp = float(parts[0])
        except ValueError:
            continue
        rest = parts[3] if len(parts) > 3 else ""
        if parts[1] == "start":
            open_calls[parts[2]] = (stamp, rest)
            continue
        begun = open_calls.pop(parts[2], None)
        if begun is None:
            continue
        found = re.match(r"rc=(\d+) ?(.*)", rest)
        code = int(found.group(1)) if found else None
        calls.append(RuncCall(runc_subcommand(begun[1].split()), begun[0], stamp, code, begun[1]))
    calls += [
        RuncCall(runc_subcommand(args.split()), start, None, None, args)
        for start, args in open_calls.values()
    ]
    return sorted(calls, key=lambda call: call.start)


def container_phases(start: float, end: float, calls: list[RuncCall]) -> dict[str, float]:
    """Phases (ms) of one Container activation from its runc calls between request and Activated.

    container.preparation (request to runc create|run: Thunder's own work and leftover checks),
    container.runc_<subcommand> (time inside each kind of call), container.between_runc_calls
    (from the launch on), container.after_last_runc (the host starting and announcing itself),
    container.to_first_runc (request to the first call of any kind).
    """
    spans = [
        (c.subcommand, c.start, c.end)
        for c in calls
        if c.end is not None and start <= c.start and c.end <= end
    ]
    if not spans:
        raise ThunderContainerError(
            "no runc call was logged between the activate request and Activated: is the plugin "
            "in Container mode, and does Thunder call /usr/bin/runc?"
        )
    launch = next((i for i, span in enumerate(spans) if span[0] in LAUNCHES), 0)
    phases = {
        "container.to_first_runc": (spans[0][1] - start) * 1000.0,
        "container.preparation": (spans[launch][1] - start) * 1000.0,
    }
    for subcommand, begun, ended in spans:
        name = f"container.runc_{_safe(subcommand)}"
        phases[name] = phases.get(name, 0.0) + (ended - begun) * 1000.0
    gaps = [max(spans[i + 1][1] - spans[i][2], 0.0) for i in range(launch, len(spans) - 1)]
    phases["container.between_runc_calls"] = sum(gaps) * 1000.0
    phases["container.after_last_runc"] = (end - spans[-1][2]) * 1000.0
    return phases


def headline_phases(calls: list[RuncCall], known: list[str]) -> list[str]:
    """The phases that add up to the activation (preparation, launch calls, gaps, the rest),
    added to those `known` from earlier runs."""
    launch = next((i for i, c in enumerate(calls) if c.subcommand in LAUNCHES), 0)
    names = [
        "container.preparation",
        *(f"container.runc_{_safe(c.subcommand)}" for c in calls[launch:]),
        "container.between_runc_calls",
        "container.after_last_runc",
    ]
    return list(dict.fromkeys([*known, *names]))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


class RuncWrapper:
    """Bind-mounts the logging wrapper over `runc` on enter and both mounts away on exit."""

    def __init__(
        self,
        shell: Shell,
        clock_library: str,
        *,
        runc: str = RUNC,
        dirs: tuple[str, ...] = WRAPPER_DIRS,
    ) -> None:
        self.shell = shell
        self.clock_library = clock_library
        self.runc = runc
        self.dirs = dirs
        self.directory: str | None = None
        self.point = runc  # the file the wrapper is mounted on (runc with symlinks resolved)

    @property
    def log(self) -> str:
        return f"{self.directory}/runc.log"

    @property
    def real(self) -> str:
        """The real runc, bind-mounted at a private path while the wrapper is in place."""
        return f"{self.directory}/runc.real"

    def __enter__(self) -> RuncWrapper:
        self.remove_stale()
        try:
            self._install()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        resync = getattr(self.shell, "resync", None)
        if kind is not None and not issubclass(kind, ThunderContainerError) and resync:
            resync()  # an interrupt may have left a command running on the console
        self.remove()

    def clear_command(self) -> str:
        return f": > {shlex.quote(self.log)}"

    def calls(self, start: float, end: float) -> list[RuncCall]:
        """The calls logged that started at or after `start` (all of them, ended or not)."""
        text = self.shell.run(f"cat {shlex.quote(self.log)}").stdout
        return [
            c for c in parse_runc_log(text) if c.start >= start and (c.end is None or c.end <= end)
        ]

    def _install(self) -> None:
        q = shlex.quote
        found = self.shell.run(
            f"[ -f {q(self.runc)} ] && [ -x {q(self.runc)} ] && readlink -f {q(self.runc)}"
        )
        if not found.ok:
            raise ThunderContainerError(
                f"{self.runc} is not an executable file on the target: "
                "Thunder starts containers with it (fix: install runc)"
            )
        # A bind mount lands on the symlink's target: that is where mountinfo will show it.
        self.point = found.stdout.strip().splitlines()[-1]
        tried = []
        for base in self.dirs:
            made = self.shell.run(
                f"[ -d {q(base)} ] && [ -w {q(base)} ] && "
                f"mktemp -d {q(base + '/' + PRIVATE_DIR)}XXXXXX"
            )
            if not made.ok:
                tried.append(f"{base}: not a writable folder")
                continue
            self.directory = d = made.stdout.strip().splitlines()[-1]
            script = wrapper_script(f"{d}/runc.real", self.log, self.clock_library)
            self.shell.put(script.encode(), f"{d}/runc", mode=0o755)
            mounted = self.shell.run(
                f": > {q(d + '/runc.real')} && mount --bind {q(self.point)} {q(d + '/runc.real')} "
                f"&& mount --bind {q(d + '/runc')} {q(self.point)} && {q(self.runc)} --version "
                f"&& grep -q ' start ' {q(self.log)}"
            )
            if mounted.ok:
                return
            tried.append(f"{base}: {mounted.stdout.strip()[-200:]}")
            self.remove()
        raise ThunderContainerError(
            f"could not put a logging wrapper over {self.runc}: "
            + "; ".join(tried)
            + " (a folder that allows exec is needed)"
        )

    def remove(self) -> None:
        """Unmount the wrapper and the private binary, remove the folder; verify runc is real."""
        if self.directory is None:
            return
        d, self.directory = self.directory, None
        ours = f"/{d.rsplit('/', 1)[-1]}/runc"
        self._unmount(self.point, ours)
        self._unmount(f"{d}/runc.real", None)
        self.shell.run(f"rm -rf {shlex.quote(d)}")
        if self._mounted_at(self.point, ours):
            raise ThunderContainerError(
                f"the benchmark's wrapper is still mounted over "
                f"{self.point} (fix: umount {self.point} on the target)"
            )

    def remove_stale(self) -> None:
        """Take away what an earlier, killed benchmark left: our mounts only, never others'."""
        stale = re.compile(rf"/{re.escape(PRIVATE_DIR)}[^/]+/runc$")
        point = self.shell.run(f"readlink -f {shlex.quote(self.runc)}").stdout.strip()
        for root, where in self._mounts():
            found = stale.search(root)
            if found and where in (self.runc, point):
                self._unmount(where, found.group(0))
        for _, where in self._mounts():
            if stale.search(where.removesuffix(".real")) and where.endswith("/runc.real"):
                self._unmount(where, None)
                self.shell.run(f"rm -rf {shlex.quote(where.rsplit('/', 1)[0])}")

    def _mounts(self) -> list[tuple[str, str]]:
        """(root, mount point) of every mount the target's shell sees."""
        text = self.shell.run("cat /proc/self/mountinfo").stdout
        return [(f[3], f[4]) for f in (line.split() for line in text.splitlines()) if len(f) > 4]

    def _mounted_at(self, point: str, root_suffix: str | None) -> bool:
        return any(
            where == point and (root_suffix is None or root.endswith(root_suffix))
            for root, where in self._mounts()
        )

    def _unmount(self, point: str, root_suffix: str | None) -> None:
        q = shlex.quote(point)
        for _ in range(UMOUNT_TRIES):
            if not self._mounted_at(point, root_suffix):
                return
            # A runc started through the wrapper may still hold it open for a moment.
            self.shell.run(f"umount {q} 2>/dev/null || sleep 1")
        if self._mounted_at(point, root_suffix):
            self.shell.run(f"umount -l {q}")
