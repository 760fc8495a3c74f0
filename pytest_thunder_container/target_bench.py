"""The target layer's own figures: boot, restore, console round trip, 20,000 lines; next to a
raw pexpect loop booting the same image (the floor). Reports figures, never judges them."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .console import Login
from .images import Image
from .snapshots import SnapshotStore, create_state_file
from .streams import connect_unix_socket
from .targets.qemu import QemuTarget
from .targets.qemu_process import MACHINES, QemuProcess, build_argv, make_rundir, qemu_version

ROUND_TRIPS = 50
LINES = 20000


@dataclass(frozen=True)
class RawFigures:
    """What a bare pexpect loop achieves on the same guest: the floor for the harness."""

    boot_to_prompt_s: float
    round_trip_ms: float
    seq_s: float


def raw_loop(machine: str, image: Image, login: Login, results: Path) -> RawFigures:
    """Boot with the harness's QEMU command line but drive the console with plain pexpect."""
    rundir = make_rundir()
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
            while not (rundir / "console.sock").exists():
                time.sleep(0.01)
            child = connect_unix_socket(rundir / "console.sock", 10)
            child.delaybeforesend = None
            _qmp_cont(rundir / "qmp.sock")
            started = time.monotonic()
            child.expect_exact(b"login: ", timeout=120)
            time.sleep(0.2)  # as a careful user would: let getty settle before typing
            child.send(f"{login.user}\n".encode())
            child.expect_exact(b"assword: ", timeout=30)
            child.send(f"{login.password}\n".encode())
            child.expect([rb"# $", rb"# \x1b"], timeout=30)
            boot = time.monotonic() - started
            child.send(b"stty -echo; PS1='RAW''> '\n")
            child.expect_exact(b"RAW> ", timeout=10)
            trips = []
            for _ in range(ROUND_TRIPS):
                began = time.monotonic()
                child.send(b"true\n")
                child.expect_exact(b"RAW> ", timeout=10)
                trips.append(time.monotonic() - began)
            began = time.monotonic()
            child.send(f"seq 1 {LINES}\n".encode())
            child.expect_exact(f"{LINES}\r\nRAW> ".encode(), timeout=60)
            seq = time.monotonic() - began
            return RawFigures(boot, statistics.median(trips) * 1000, seq)
        finally:
            process.kill()
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def _qmp_cont(socket_path: Path) -> None:
    from .qmp import Qmp

    while not socket_path.exists():
        time.sleep(0.01)
    qmp = Qmp("raw")
    try:
        qmp.connect(socket_path, 10)
        qmp.execute("cont")
    finally:
        qmp.close()


def harness_figures(target: QemuTarget) -> dict[str, float]:
    """Round trip and 20,000 lines through the harness's Console on a started target."""
    console = target.console
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
