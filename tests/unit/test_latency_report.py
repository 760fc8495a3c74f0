"""thunder-latency.json: the record, merging under a lock across processes, the plot, verdicts."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.perf.latency_report import (
    LATENCY_JSON,
    LatencyTarget,
    merge_latency,
    perf_verdict,
    target_record,
)
from pytest_thunder_container.perf.runc_wrapper import RuncCall
from pytest_thunder_container.perf.start_latency import CLOCKS, Benchmark

EMULATED = LatencyTarget("rpi3", "rpi3", True, "ab" * 32, "R5", "OCDM", "5.3.0")
HARDWARE = LatencyTarget("serial-ttyUSB0", "serial-ttyUSB0", False, None, "R4.4", "OCDM")


def benchmark(runs: int = 3, error: str | None = None) -> Benchmark:
    bench = Benchmark(
        runs, CLOCKS["ts"], notes=["host exec floor: `ThunderPlugin -h` exited 0"], error=error
    )
    samples = {
        "activation.local": [900.0, 1000.0, 1100.0],
        "activation.container": [6000.0, 7000.0, 9000.0],
        "container.preparation": [1900.0, 2000.0, 2100.0],
        "container.runc_create": [2000.0] * 3,
        "floor.runc_run_true": [1800.0, 1850.0, 1900.0],
        "selfcheck.busybox_time_runc_run_true": [1800.0, 1810.0, 1820.0],
        "selfcheck.wrapped_runc_run_true": [1900.0, 1910.0, 1920.0],
        "selfcheck.harness_minus_busybox_time": [-10.0, 40.0, 80.0],
        "selfcheck.wrapper_added_per_runc_call": [55.0, 60.0, 70.0],
    }
    for name, values in samples.items():
        for value in values[:runs]:
            bench.add(name, value)
    bench.phases = ["container.preparation", "container.runc_create", "container.runc_exec"]
    bench.runc_calls = [[RuncCall("create", 1.0, 3.0, 0, "create --bundle b OCDM")]]
    return bench


def test_the_record_carries_target_clock_samples_statistics_and_self_check() -> None:
    record = target_record(benchmark(), EMULATED)
    assert (record["target"], record["emulated"], record["dialect"]) == ("rpi3", True, "R5")
    assert record["thunder_version"] == "5.3.0"
    assert record["image_sha256"] == "ab" * 32
    assert record["clock"] == {
        "name": "ts",
        "description": CLOCKS["ts"].description,
        "resolution_ms": 0.001,
    }
    container = record["measurements"]["activation.container"]
    assert container["samples"] == [6000.0, 7000.0, 9000.0]
    assert container["stats"] == {
        "n": 3,
        "median": 7000.0,
        "p90": 9000.0,
        "min": 6000.0,
        "max": 9000.0,
    }
    assert list(record["measurements"])[:2] == ["activation.container", "activation.local"]
    assert record["ratios"]["container_over_local"]["value"] == 7.0
    check = record["self_check"]
    assert "NOT a property of the product" in check["what"]
    assert (check["overhead_ms"], check["overhead_percent"]) == (40.0, 2.21)
    assert check["paired_overhead_median_ms"] == 40.0
    assert check["wrapper_overhead_per_runc_call_ms"] == 60.0
    assert record["phases"] == ["container.preparation", "container.runc_create"]  # measured only
    assert record["runc_calls"][0][0]["subcommand"] == "create"
    assert json.loads(json.dumps(record)) == record
    assert len(record["emulator_host"]["load_average_1_5_15"]) == 3
    assert "emulator_host" not in target_record(benchmark(), HARDWARE)


def _writer(results: str, worker: int, count: int) -> None:
    record = target_record(benchmark(), EMULATED)
    for index in range(count):
        merge_latency(Path(results), {**record, "label": f"gw{worker}-{index}"})


def test_two_processes_merging_at_once_lose_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w, 25)) for w in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    document = json.loads((tmp_path / LATENCY_JSON).read_text())
    assert document["schema_version"] == 1
    assert set(document["targets"]) == {f"gw{w}-{i}" for w in (0, 1) for i in range(25)}
    assert not list(tmp_path.glob(".thunder-latency*"))  # no temporary file left


def test_a_file_that_cannot_be_merged_is_kept_aside(tmp_path: Path) -> None:
    (tmp_path / LATENCY_JSON).write_text('{"schema_version": 0, "something": "else"}')
    _, _, document = merge_latency(tmp_path, target_record(benchmark(), EMULATED))
    assert list(document["targets"]) == ["rpi3"]
    kept = list(tmp_path.glob("thunder-latency.unmerged-*.json"))
    assert len(kept) == 1 and "something" in kept[0].read_text()


def test_a_lock_held_too_long_is_reported(tmp_path: Path) -> None:
    with (tmp_path / f"{LATENCY_JSON}.lock").open("a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(ThunderContainerError, match="stayed locked"):
            merge_latency(tmp_path, target_record(benchmark(), EMULATED), timeout=0.2)


def test_the_plot_has_a_panel_per_target_and_every_sample(tmp_path: Path) -> None:
    merge_latency(tmp_path, target_record(benchmark(), EMULATED))
    _, svg, _ = merge_latency(tmp_path, target_record(benchmark(2), HARDWARE))
    root = ElementTree.fromstring(svg.read_text())
    text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "rpi3: rpi3 (emulated), Thunder 5.3.0 (R5)" in text
    assert "serial-ttyUSB0 (hardware), Thunder unknown (R4.4)" in text
    circles = list(root.iter("{http://www.w3.org/2000/svg}circle"))
    # Eight measurements of three and of two runs; the paired differences are not plotted.
    assert len(circles) == 8 * 3 + 8 * 2
    assert "not on a log axis (see the JSON): selfcheck.harness_minus_busybox_time" in text
    assert "7000 ms" in text and "1 s" in text


def record_with(**changes: Any) -> dict[str, Any]:
    return {**target_record(benchmark(), EMULATED), **changes}


def test_perf_001_compares_the_median_with_the_limit_only_when_given() -> None:
    record = record_with()
    assert perf_verdict("TC-PERF-001", record, None).outcome == "not-applicable"
    passed = perf_verdict("TC-PERF-001", record, 7000)
    assert passed.outcome == "pass" and "7000 ms on rpi3 (emulated" in passed.message
    assert "Thunder 5.3.0 (R5)" in passed.message
    failed = perf_verdict("TC-PERF-001", record, 6999)
    assert failed.outcome == "fail" and "> limit 6999 ms" in failed.message
    broken = {**record, "measurements": {}, "error": "runc create failed"}
    assert "runc create failed" in perf_verdict("TC-PERF-001", broken, 5000).message


def test_perf_002_needs_every_run_recorded_with_its_target() -> None:
    good = perf_verdict("TC-PERF-002", record_with(), None)
    assert good.outcome == "pass" and "(x7.0)" in good.message
    short = target_record(benchmark(), EMULATED)
    short["runs"] = 10
    assert (
        "missing activation.local, activation.container"
        in perf_verdict("TC-PERF-002", short, None).message
    )
    errored = target_record(benchmark(error="Thunder went away"), EMULATED)
    assert perf_verdict("TC-PERF-002", errored, None).message.endswith("Thunder went away")


def test_perf_002_names_the_container_activations_that_failed_and_were_repeated() -> None:
    failure = "Container activation 1 failed after 2412 ms: ... create 2310 ms PAST THE LIMIT"
    repeated = perf_verdict("TC-PERF-002", record_with(failed_activations=[failure]), None)
    assert repeated.outcome == "pass"
    assert repeated.message.endswith(f"; 1 failed and were repeated: {failure}")
    assert "repeated" not in perf_verdict("TC-PERF-002", record_with(), None).message
