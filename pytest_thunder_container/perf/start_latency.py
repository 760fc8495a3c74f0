"""Start latency measured on the target's own clock: Local, Container and its runc phases, floors.

Every timestamp is taken on the target by a small sh library (the best clock it has, said in the
results); nothing is timed across the serial line.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
import shlex
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pytest_thunder_container.conformance.failed_activation import (
    RUNC_SETTLE_TIMEOUT,
    delete_leaked_container,
    diagnose_failed_activation,
    wait_for_runc_idle,
)
from pytest_thunder_container.conformance.observe import find_plugin_hosts
from pytest_thunder_container.errors import DeployError, ThunderContainerError
from pytest_thunder_container.perf.runc_wrapper import (
    WRAPPER_DIRS,
    RuncCall,
    RuncWrapper,
    container_phases,
    describe_calls,
    headline_phases,
)
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.deploy import RUNC

ACTIVATION_TIMEOUT = 120.0
# A failed Container activation is described and repeated, up to this many failures in all.
MAX_FAILED_ACTIVATIONS = 3
COMMAND_TIMEOUT = 60.0
MARKER = "@@tc-bench"
# Thunder's own options start the host's command line (Communicator::Process); the part before
# them is what the kernel runs: the binary, or an interpreter and its script.
HOST_OPTIONS = ("-l", "-c", "-C", "-r", "-i", "-x")
HARMLESS_FLAG = "-h"  # ThunderPlugin and WPEProcess print their usage and exit
ACTIVATED = ("Activated", "Resumed", "Suspended")


class BenchError(ThunderContainerError):
    """A measurement could not be made; the message says which and what the target said."""


class ActivationFailed(BenchError):
    """Controller.1.activate answered an error: the timed run is kept to explain it."""

    def __init__(self, message: str, run: TimedRun) -> None:
        super().__init__(message)
        self.run = run


@dataclass(frozen=True)
class Clock:
    """A clock on the target, and the sh function `tc_now` that prints it in seconds."""

    name: str
    description: str
    resolution_ms: float
    library: str


CLOCKS = {
    "date": Clock("date", "date +%s.%N (nanoseconds)", 1e-6, "tc_now() { date +%s.%N; }"),
    "ts": Clock(
        "ts", "busybox ts '%.s' (gettimeofday, microseconds)", 1e-3, "tc_now() { echo | ts '%.s'; }"
    ),
    "adjtimex": Clock(
        "adjtimex",
        "adjtimex time.tv_sec/tv_usec (microseconds)",
        1e-3,
        "tc_now() { adjtimex | awk '/tv_sec/ {s=$2} /tv_usec/ {u=$2} "
        'END {printf "%d.%06d\\n", s, u}\'; }',
    ),
    "uptime": Clock(
        "uptime",
        "/proc/uptime (centiseconds since boot)",
        10.0,
        'tc_now() { read tc_up tc_idle < /proc/uptime; echo "$tc_up"; }',
    ),
}
# The first clock that works, in order of resolution (busybox's date has no %N).
CLOCK_PICK = (
    'case "$(date +%s.%N 2>/dev/null)" in *.[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]) '
    "echo date ;; *) case \"$(echo | ts '%.s' 2>/dev/null)\" in "
    '[0-9]*.[0-9][0-9][0-9][0-9][0-9][0-9]*) echo ts ;; *) case "$(adjtimex 2>/dev/null)" in '
    "*tv_usec*) echo adjtimex ;; *) echo uptime ;; esac ;; esac ;; esac"
)


@dataclass(frozen=True)
class TimedRun:
    """One command timed on the target: its start and end (seconds of the clock), exit code."""

    start: float
    end: float
    returncode: int
    output: str

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000.0


@dataclass(frozen=True)
class Stats:
    n: int
    median: float
    p90: float
    min: float
    max: float


def stats_of(samples: list[float] | tuple[float, ...]) -> Stats:
    """Median, nearest-rank 90th percentile, min and max."""
    if not samples:
        raise BenchError("no samples to summarise")
    ordered = sorted(samples)
    p90 = ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]
    return Stats(len(ordered), statistics.median(ordered), p90, ordered[0], ordered[-1])


def pick_clock(shell: Shell) -> Clock:
    """The best clock the target has right now, checked to tick forwards."""
    name = shell.run(CLOCK_PICK).stdout.strip().splitlines()[-1:] or [""]
    clock = CLOCKS.get(name[0])
    if clock is None:
        raise BenchError(f"the target's shell did not name a clock: {name!r}")
    said = shell.run(f"{clock.library}; tc_now; tc_now").stdout.split()
    try:
        first, second = float(said[0]), float(said[1])
    except (IndexError, ValueError):
        raise BenchError(f"clock {clock.description} printed {said!r}, not two numbers") from None
    if second < first:
        raise BenchError(f"clock {clock.description} went backwards: {first} then {second}")
    return clock


def timed(
    shell: Shell,
    clock: Clock,
    command: str,
    *,
    timeout: float = COMMAND_TIMEOUT,
    before: str = "",
    after: str = "",
) -> TimedRun:
    """Run `command` between two timestamps taken on the target; `before`/`after` are untimed."""
    script = (
        f"{clock.library}; {before}tc_t0=$(tc_now); {command}; tc_rc=$?; "
        f'tc_t1=$(tc_now); {after}echo; echo "{MARKER} $tc_t0 $tc_t1 $tc_rc"'
    )
    result = shell.run(script, timeout=timeout)
    lines = result.stdout.splitlines()
    marked = [i for i, line in enumerate(lines) if line.startswith(MARKER + " ")]
    if not marked:
        raise BenchError(f"no timestamps came back from {command!r}: {result.stdout[-300:]!r}")
    fields = lines[marked[-1]].split()
    try:
        start, end, returncode = float(fields[1]), float(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        raise BenchError(f"unreadable timestamps {lines[marked[-1]]!r}") from None
    return TimedRun(start, end, returncode, "\n".join(lines[: marked[-1]]).strip())


def busybox_time(shell: Shell, command: str, scratch: str) -> float:
    """busybox `time -p` of `command`, by hand on the console, in ms (10 ms resolution)."""
    out = shlex.quote(f"{scratch}/time.out")
    result = shell.run(
        "if command -v busybox >/dev/null 2>&1; then tc_time='busybox time'; else tc_time=time; "
        f"fi; $tc_time -p -o {out} {command} >/dev/null 2>&1; cat {out}",
        timeout=COMMAND_TIMEOUT,
    )
    found = re.search(r"^real\s+([0-9.]+)", result.stdout, re.MULTILINE)
    if not found:
        raise BenchError(f"busybox time gave no 'real' line: {result.stdout[-300:]!r}")
    return float(found.group(1)) * 1000.0


class Mode(Protocol):
    """What the benchmark needs of a deployment (deploy.ContainerDeployment)."""

    def use_local(self) -> None: ...

    def use_container(self) -> None: ...

    def deactivate(self) -> None: ...


@dataclass(frozen=True)
class BenchSetup:
    shell: Shell
    thunder: ThunderClient
    deployment: Mode
    callsign: str
    port: int = 80
    runs: int = 10
    runc: str = RUNC
    wrapper_dirs: tuple[str, ...] = WRAPPER_DIRS


@dataclass
class Benchmark:
    """Raw samples (ms) by measurement name, and what explains them; filled as runs complete."""

    runs: int
    clock: Clock | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    runc_calls: list[list[RuncCall]] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    host_command: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed_activations: list[str] = field(default_factory=list)
    error: str | None = None

    def add(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(value)


def host_command(argv: tuple[str, ...]) -> list[str]:
    """The Local host's command line up to Thunder's first option, plus a harmless flag."""
    for index, arg in enumerate(argv):
        if arg in HOST_OPTIONS:
            return [*argv[:index], HARMLESS_FLAG]
    return [argv[0], HARMLESS_FLAG] if argv else []


def activation_command(port: int, callsign: str, out: str) -> str:
    """Controller.1.activate POSTed with the target's busybox wget, as ConsoleTransport does."""
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "Controller.1.activate",
            "params": {"callsign": callsign},
        },
        separators=(",", ":"),
    )
    return (
        f"wget -q -O - --header 'Content-Type: application/json' --post-data "
        f"{shlex.quote(body)} http://127.0.0.1:{port}/jsonrpc >{shlex.quote(out)} 2>&1"
    )


def floor_config(libraries: list[str]) -> dict[str, Any]:
    """config.json of the floor bundle: runc's defaults cut down to /bin/true in new namespaces."""
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
    ]
    # A dynamically linked busybox needs the target's libraries, read-only.
    mounts += [
        {"destination": lib, "type": "bind", "source": lib, "options": ["rbind", "ro"]}
        for lib in libraries
    ]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/true"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "tc-floor",
        "mounts": mounts,
        "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")]},
    }


@contextlib.contextmanager
def floor_bundle(shell: Shell) -> Iterator[str]:
    """A bundle in /tmp whose rootfs is busybox alone (and `true`), removed afterwards."""
    made = shell.run("mktemp -d /tmp/tc-floor.XXXXXX")
    if not made.ok:
        raise BenchError(f"can't make a folder in /tmp for the floor bundle: {made.stdout}")
    folder = made.stdout.strip().splitlines()[-1]
    q = shlex.quote(folder)
    try:
        # In busybox's standalone shell `command -v busybox` names the applet, not a file.
        filled = shell.run(
            '(set -e; bb=$(command -v busybox || true); case "$bb" in /*) ;; '
            f"*) bb=$(which busybox) ;; esac; mkdir -p {q}/rootfs/bin {q}/rootfs/proc "
            f'{q}/rootfs/dev; cp "$bb" {q}/rootfs/bin/busybox; ln -s busybox {q}/rootfs/bin/true; '
            "if head -c 4096 \"$bb\" | tr -c '[:print:]' '\\n' | grep -q '^/lib.*/ld-'; then "
            'for l in /lib /lib64 /usr/lib; do if [ -d $l ]; then echo "lib $l"; fi; done; fi)'
        )
        if not filled.ok:
            raise BenchError(f"can't fill the floor bundle {folder} with busybox: {filled.stdout}")
        libraries = [line[4:] for line in filled.stdout.splitlines() if line.startswith("lib /")]
        shell.put(json.dumps(floor_config(libraries)).encode(), f"{folder}/config.json")
        yield folder
    finally:
        # After an interrupt the console may be gone: the folder in /tmp then stays behind.
        with contextlib.suppress(ThunderContainerError):
            shell.run(f"rm -rf {q}")


def run_benchmark(setup: BenchSetup, progress: Callable[[str], None] = lambda _: None) -> Benchmark:
    """Floors and self-check, Local activations, then Container activations with runc phases.

    Each series runs once more first as a warm-up that is not counted. A ThunderContainerError
    ends the benchmark with `error` set; what was measured until then is kept.
    """
    bench = Benchmark(setup.runs)
    try:
        bench.clock = pick_clock(setup.shell)
        progress(f"clock: {bench.clock.description}")
        with floor_bundle(setup.shell) as folder:
            _measure(setup, bench, bench.clock, folder, progress)
    except ThunderContainerError as error:
        bench.error = str(error)
    return bench


def _measure(
    setup: BenchSetup, bench: Benchmark, clock: Clock, folder: str, progress: Callable[[str], None]
) -> None:
    shell, runs, runc = setup.shell, setup.runs, shlex.quote(setup.runc)
    bench.notes.append(f"floor bundle: {folder} (busybox only; removed afterwards)")
    setup.deployment.deactivate()  # nothing of the plugin competes with the floors
    run_true = f"run --bundle {shlex.quote(folder)} tc-floor-{secrets.token_hex(3)}-"
    said = shlex.quote(f"{folder}/said.txt")
    show = f'[ "$tc_rc" = 0 ] || cat {said}; '  # runc's own words, only when it failed
    # Series that are compared run interleaved: on a loaded emulator host, series taken
    # minutes apart differ by more than what is compared.
    for i in range(runs + 1):
        run = timed(shell, clock, f"{runc} {run_true}{i} >{said} 2>&1", after=show)
        _check(run, "runc run of /bin/true in the floor bundle")
        by_hand = busybox_time(shell, f"{runc} {run_true}t{i}", folder)
        if i:
            bench.add("floor.runc_run_true", run.ms)
            bench.add("selfcheck.busybox_time_runc_run_true", by_hand)
            bench.add("selfcheck.harness_minus_busybox_time", run.ms - by_hand)
    progress("floors measured; Local activations")
    out = f"{folder}/reply.json"
    setup.deployment.use_local()
    for _ in range(runs):
        bench.add("activation.local", _activate(setup, clock, out).ms)
    hosts = find_plugin_hosts(shell, setup.callsign)
    if hosts:
        bench.host_command = host_command(hosts[0].argv)
        quoted = " ".join(shlex.quote(arg) for arg in bench.host_command)
        for i in range(runs + 1):
            run = timed(shell, clock, f"{quoted} </dev/null >/dev/null 2>&1")
            if i:
                bench.add("floor.host_exec", run.ms)
        bench.notes.append(f"host exec floor: `{quoted}` exited {run.returncode}")
    else:
        bench.notes.append(f"no Local host of {setup.callsign} found: no host exec floor")
    progress("Local measured; Container activations with runc wrapped")
    with RuncWrapper(shell, clock.library, runc=setup.runc, dirs=setup.wrapper_dirs) as wrapped:
        direct = shlex.quote(wrapped.real)
        for i in range(runs + 1):
            plain = timed(shell, clock, f"{direct} {run_true}d{i} >{said} 2>&1", after=show)
            _check(plain, "runc run of /bin/true by the real binary's private path")
            run = timed(shell, clock, f"{runc} {run_true}w{i} >{said} 2>&1", after=show)
            _check(run, "runc run of /bin/true through the wrapper")
            if i:
                bench.add("selfcheck.wrapped_runc_run_true", run.ms)
                bench.add("selfcheck.wrapper_added_per_runc_call", run.ms - plain.ms)
        _switch_to_container(setup, bench)
        measured = 0
        while measured < runs:
            try:
                run = _activate(setup, clock, out, before=wrapped.clear_command())
            except ActivationFailed as failed:
                book_failed_activation(setup, bench, clock, wrapped, failed)
                progress(bench.failed_activations[-1])
                continue
            measured += 1
            calls = wrapped.calls(run.start, run.end)
            bench.add("activation.container", run.ms)
            bench.runc_calls.append(calls)
            for name, value in container_phases(run.start, run.end, calls).items():
                bench.add(name, value)
            bench.phases = headline_phases(calls, bench.phases)
    setup.deployment.deactivate()


def _activate(setup: BenchSetup, clock: Clock, out: str, before: str = "") -> TimedRun:
    """Deactivate, then time Controller.1.activate made on the target; check the state after."""
    setup.deployment.deactivate()
    with setup.thunder.runc_window():
        run = timed(
            setup.shell,
            clock,
            activation_command(setup.port, setup.callsign, out),
            timeout=ACTIVATION_TIMEOUT,
            before=f"{before}; " if before else "",
            after=f"cat {shlex.quote(out)}; ",
        )
    reply = _reply(run.output)
    if run.returncode == 0 and reply is not None and "error" in reply:
        raise ActivationFailed(
            f"Controller.1.activate of {setup.callsign} answered {json.dumps(reply['error'])}",
            run,
        )
    if run.returncode != 0 or reply is None:
        raise BenchError(
            f"Controller.1.activate of {setup.callsign} made on the target failed "
            f"(wget exit {run.returncode}): {run.output[-300:]!r}"
        )
    state = setup.thunder.state(setup.callsign)
    if state not in ACTIVATED:
        raise BenchError(
            f"Controller.1.activate of {setup.callsign} returned but its state is "
            f"{state!r}: the figure would not be a start latency"
        )
    return run


def book_failed_activation(
    setup: BenchSetup,
    bench: Benchmark,
    clock: Clock,
    wrapped: RuncWrapper,
    failed: ActivationFailed,
) -> None:
    """Say which runc call took how long and whether a container leaked; delete a leaked one so
    that the next run starts clean. Too many failures end the benchmark."""
    started = None if clock.name == "uptime" else datetime.fromtimestamp(failed.run.start, UTC)
    # A late create ends after Thunder's answer; read the calls before the diagnosis adds its own.
    wait_for_runc_idle(setup.shell, RUNC_SETTLE_TIMEOUT)
    calls = wrapped.calls(failed.run.start, math.inf)
    found = diagnose_failed_activation(setup.shell, setup.thunder, setup.callsign, started=started)
    finding = (
        f"Container activation {len(bench.failed_activations) + 1} failed after "
        f"{failed.run.ms:.0f} ms: {failed}; {describe_calls(calls, found.limit_ms)}; "
        f"{found.describe()}"
    )
    if found.leaked:
        finding += _delete_leaked(setup)
    _book(bench, finding)


def _switch_to_container(setup: BenchSetup, bench: Benchmark) -> None:
    """Switch the plugin to Container mode (its activation is not timed). A failed activation is
    booked like a timed one: the plugin is left Deactivated in Container mode, so the timed
    activations can go on."""
    try:
        setup.deployment.use_container()
    except DeployError as error:  # it says whether a container leaked and which call was slow
        finding = f"Container activation {len(bench.failed_activations) + 1} failed: {error}"
        if error.leaked:
            finding += _delete_leaked(setup)
        _book(bench, finding)


def _delete_leaked(setup: BenchSetup) -> str:
    deleted = delete_leaked_container(setup.shell, setup.callsign, runc=setup.runc)
    return " (deleted by the benchmark)" if deleted else " (runc delete failed)"


def _book(bench: Benchmark, finding: str) -> None:
    bench.failed_activations.append(finding)
    if len(bench.failed_activations) >= MAX_FAILED_ACTIVATIONS:
        raise BenchError(
            f"{len(bench.failed_activations)} Container activations failed; the last: {finding}"
        )


def _reply(output: str) -> dict[str, Any] | None:
    for line in output.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _check(run: TimedRun, what: str) -> None:
    if run.returncode != 0:
        raise BenchError(f"{what} failed with exit code {run.returncode}: {run.output[-300:]!r}")
