"""Issue 2's benchmark: boot, restore, round trip and 20,000 lines, next to a raw pexpect loop.

It reports figures in <results>/thunder-target-bench.json and on the terminal; it never fails on
a time (this machine is shared and noisy), only on wrong behaviour.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_thunder_container.image.build import reference_image
from pytest_thunder_container.shell.console import Login
from pytest_thunder_container.targets import bench as target_bench

pytestmark = pytest.mark.e2e


def test_target_figures_are_measured_and_written(thunder_results: Path) -> None:
    image = reference_image("rpi3", progress=lambda line: None)
    user, password = image.login or ("root", None)
    record = target_bench.run("rpi3", image, Login(user, password), thunder_results, repeats=2)
    written = json.loads((thunder_results / "thunder-target-bench.json").read_text())
    assert written == record
    assert record["target"] == "rpi3" and record["emulated"] is True
    harness, raw = record["harness"], record["raw_pexpect_loop"]
    assert (
        len(harness["cold_boot_to_prompt_s"]) == 2
        and len(harness["snapshot_restore_to_prompt_s"]) == 2
    )
    same_guest = record["harness_console_on_the_raw_guest"]
    figures = [
        *harness["round_trip_ms_median_of_50"],
        *raw["seq_20000_s"],
        *same_guest["seq_20000_s"],
    ]
    assert len(figures) == 6 and all(value > 0 for value in figures)
    print(json.dumps(record, indent=1))
