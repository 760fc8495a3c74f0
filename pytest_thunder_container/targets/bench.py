"""The target layer's own figures: boot, restore, console round trip, 20,000 lines; next to a
raw pexpect loop booting the same image (the floor). Reports figures, never judges them."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_thunder_container.image.model import Image
from pytest_thunder_container.shell.console import Console, Login
from pytest_thunder_container.shell.transcript import Transcript
from pytest_thunder_container.targets.qemu import QemuTarget
from pytest_thunder_container.targets.qemu_process import (
    MACHINES,
    QemuProcess,
    build_argv,
    make_rundir,
    qemu_version,
)
from pytest_thunder_container.targets.snapshots import SnapshotStore, create_state_file
from pytest_thunder_container.targets.spawn import connect_unix_socket

ROUND_TRIPS = 50
SETTLE_BATCHES = 20
LINES = 20000


@dataclass(frozen=True)
class RawFigures:
    """What a bare pexpect loop achieves on a guest booted as the harness boots it, and the
    harness's Console on that same guest. Both without the usb-net NIC that the harness
    hot-adds (the emulated USB controller then keeps QEMU busy: see the harness figures)."""

    boot_to_prompt_s: float
    round_trip_ms: float
    seq_s: float
    console_round_trip_ms: float
    console_seq_s: float


def raw_loop(machine: str, image: Image, login: Login, results: Path) -> RawFigures:
    """Boot with the harness's QEMU command line but drive the console with plain pexpect."""
    from pytest_thunder_container.targets.qmp import Qmp

    # Timed as the harness times itself: from starting QEMU to a shell set up for commands.
    started = time.monotonic()
    rundir = make_rundir()
    qmp = Qmp("raw")
    try:
        state = rundir / "state.qcow2"
        create_state_file(state)
        argv = build_argv(
            MACHINES[machine],
            kernel=image.kernel,
            initrd=image.initrd,
            dtb=image.dtb,
            append=image.append,
            rundir=rundir,
            drive=state,
            netdev=None,
            loadvm=None,
        )
        process = QemuProcess(argv, results / f"qemu-raw-{machine}.log")
        try:
            while not (rundir / "console.sock").exists() or not (rundir / "qmp.sock").exists():
                time.sleep(0.01)
            child = connect_unix_socket(rundir / "console.sock", 10)
            child.delaybeforesend = None
            qmp.connect(rundir / "qmp.sock", 10)
            qmp.execute("cont")
            child.expect_exact(b"login: ", timeout=120)
            time.sleep(0.2)  # as a careful user would: let getty settle before typing
            child.send(f"{login.user}\n".encode())
            child.expect_exact(b"assword: ", timeout=30)
            child.send(f"{login.password}\n".encode())
            child.expect([rb"# $", rb"# \x1b"], timeout=30)
            child.send(b"stty -echo; PS1='RAW''> '\n")
            child.expect_exact(b"RAW> ", timeout=10)
            boot = time.monotonic() - started
            trip, seq = _raw_figures(child)
            # The harness's console on the same guest, still without a NIC: the console's cost.
            console = Console(child, Transcript(results / f"console-raw-{machine}.log"), name="raw")
            console.attach(timeout=30)
            same_guest = _console_figures(console)
            return RawFigures(boot, trip, seq, same_guest["round_trip_ms"], same_guest["seq_s"])
        finally:
            process.kill()
    finally:
        qmp.close()
        shutil.rmtree(rundir, ignore_errors=True)


def _raw_figures(child: Any) -> tuple[float, float]:
    """Median round trip (ms) of `true` once the guest is idle, and seconds for the lines."""
    _settle(lambda: _raw_true(child))
    trips = [_raw_true(child) for _ in range(ROUND_TRIPS)]
    began = time.monotonic()
    child.send(f"seq 1 {LINES}\n".encode())
    child.expect_exact(f"{LINES}\r\nRAW> ".encode(), timeout=60)
    return statistics.median(trips) * 1000, time.monotonic() - began


def _raw_true(child: Any) -> float:
    began = time.monotonic()
    child.send(b"true\n")
    child.expect_exact(b"RAW> ", timeout=10)
    return time.monotonic() - began


def _settle(command: Callable[[], float]) -> None:
    """Run `command` until the guest is idle: a restored or just booted guest is busy for a few
    seconds (network coming up, Thunder's start-up activations), which is not the console."""
    last = float("inf")
    for _ in range(SETTLE_BATCHES):
        median = statistics.median(command() for _ in range(10))
        if median > last * 0.8:
            return
        last = median


def harness_figures(target: QemuTarget) -> dict[str, float]:
    """Round trip and 20,000 lines through the harness's Console on a started target."""
    return _console_figures(target.console)


def _console_figures(console: Console) -> dict[str, float]:
    _settle(lambda: console.run("true").duration)
    trips = [console.run("true").duration for _ in range(ROUND_TRIPS)]
    began = time.monotonic()
    lines = console.run(f"seq 1 {LINES}").stdout.splitlines()
    seq = time.monotonic() - began
    if len(lines) != LINES or lines[-1] != str(LINES):
        raise AssertionError(f"seq 1 {LINES} came back as {len(lines)} lines")
    return {"round_trip_ms": statistics.median(trips) * 1000, "seq_s": seq}


def run(
    machine: str, image: Image, login: Login, results: Path, *, repeats: int = 2
) -> dict[str, Any]:
    """Cold boots and restores with the harness, the raw loop for comparison; one JSON record."""
    snapshots = SnapshotStore(results / "bench-snapshots")
    raw = [raw_loop(machine, image, login, results) for _ in range(repeats)]
    cold: list[float] = []
    restore: list[float] = []
    console_figures: list[dict[str, float]] = []
    # The first boot saves the state; forced cold boots, then restores of that state.
    plan = [False] + [True] * (repeats - 1) + [False] * repeats
    for forced_cold in plan:
        target = QemuTarget(
            machine,
            image,
            results=results,
            snapshots=snapshots,
            login=login,
            cold_boot=forced_cold,
            label=f"bench-{machine}",
        )
        target.start()
        try:
            (restore if target.restored else cold).append(target.timings["to_prompt"])
            if target.restored:
                console_figures.append(harness_figures(target))
        finally:
            target.stop()
    shutil.rmtree(results / "bench-snapshots", ignore_errors=True)
    record = {
        "schema_version": 1,
        "target": machine,
        "emulated": True,
        "image_sha256": image.sha256,
        "qemu": qemu_version(),
        "host": {"cpus": os.cpu_count(), "load_average_1_5_15": list(os.getloadavg())},
        "raw_pexpect_loop": {
            "boot_to_prompt_s": [r.boot_to_prompt_s for r in raw],
            "round_trip_ms_median_of_50": [r.round_trip_ms for r in raw],
            "seq_20000_s": [r.seq_s for r in raw],
        },
        "harness_console_on_the_raw_guest": {
            "round_trip_ms_median_of_50": [r.console_round_trip_ms for r in raw],
            "seq_20000_s": [r.console_seq_s for r in raw],
        },
        "harness": {
            "cold_boot_to_prompt_s": cold,
            "snapshot_restore_to_prompt_s": restore,
            "round_trip_ms_median_of_50": [f["round_trip_ms"] for f in console_figures],
            "seq_20000_s": [f["seq_s"] for f in console_figures],
        },
        "note": "emulated (QEMU TCG on the host named here); medians of few runs on a shared "
        "machine: compare with the raw loop of the same run, never with hardware",
    }
    path = results / "thunder-target-bench.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record
