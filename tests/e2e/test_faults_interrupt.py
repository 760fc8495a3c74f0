"""Ctrl-C in the middle of a certification run, at three moments: while the target boots, while
the bundle is copied, while the benchmark has its runc wrapper mounted.

Each time the suites run as a user runs them (an inner pytest) and get SIGINT once the console
transcript shows the moment has come. Afterwards: no QEMU and no run folder of that run is left,
what was changed on the target was put back (the transcript shows it), the transcript and the
kept files are there, and thunder-report.json says the run did not complete.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from faults.inner import ROOT, InnerRun, WatchedRun, transcript_grows_past
from faults.leftovers import assert_nothing_left, files_containing

from pytest_thunder_container.image.build import reference_image

pytestmark = pytest.mark.e2e

CTRL_C = b"\x03"
# The restore of a deployment on the reference image: it made the Container directory in OCDM's
# data path (/usr/share/Thunder/OCDM on R5, /usr/share/WPEFramework/OCDM on R4.4), it removes it.
BUNDLE_REMOVED = re.compile(rb"\{ :; rm -rf /usr/share/\w+/OCDM/Container\n")
# The wrapper is mounted where /usr/bin/runc leads (/usr/sbin/runc on the reference image).
WRAPPER_UNMOUNTED = re.compile(rb"\{ :; umount /\S+/runc 2>/dev/null \|\| sleep 1\n")


def mid_benchmark(transcript: Path) -> Callable[[], bool]:
    """The first runc run through the mounted wrapper has been sent."""
    wrapped = re.compile(rb"tc-floor-[0-9a-f]{6}-w0 ")

    def seen() -> bool:
        try:
            return wrapped.search(transcript.read_bytes()) is not None
        except FileNotFoundError:
            return False

    return seen


@dataclass(frozen=True)
class Moment:
    name: str
    suite: str
    options: tuple[str, ...]
    trigger: Callable[[Path], Callable[[], bool]]
    marker: str  # what the trigger waits for, for the failure message


MOMENTS = [
    # A cold boot takes 5-8 s: the kernel's first line comes well before the prompt.
    Moment(
        "boot",
        "suites/test_lifecycle.py",
        ("--thunder-cold-boot",),
        lambda transcript: transcript_grows_past(transcript, b"Booting Linux on physical CPU"),
        "the kernel's first line",
    ),
    # The copy of the target's root into the bundle takes seconds under emulation.
    Moment(
        "deploy",
        "suites/test_lifecycle.py",
        (),
        lambda transcript: transcript_grows_past(transcript, b"\ntc_copy_root "),
        "the rootfs copy command",
    ),
    Moment(
        "benchmark",
        "suites/test_performance.py",
        ("--thunder-bench-runs=1",),
        mid_benchmark,
        "a runc run through the benchmark's wrapper",
    ),
]


def interrupted_run(tmp_path: Path, moment: Moment) -> tuple[InnerRun, int]:
    """The suite run, interrupted at the moment; also how many transcript bytes came before."""
    results = tmp_path / "results"
    transcript = results / "console-rpi3.log"
    run = WatchedRun(ROOT, results, moment.suite, "--thunder-target=rpi3", *moment.options)
    run.wait_for(moment.trigger(transcript), timeout=600, what=moment.marker)
    before = transcript.stat().st_size
    run.interrupt()
    return run.finish(timeout=300), before


@pytest.mark.parametrize("moment", MOMENTS, ids=lambda moment: moment.name)
def test_ctrl_c_stops_the_run_cleanly_and_loses_nothing(moment: Moment, tmp_path: Path) -> None:
    run, before = interrupted_run(tmp_path, moment)
    results = run.results
    assert run.returncode == 2, run  # pytest's "interrupted"
    assert "KeyboardInterrupt" in run.output
    assert "Traceback" not in run.output and "left problems" not in run.output, run

    report = json.loads((results / "thunder-report.json").read_text())
    assert report["run"]["complete"] is False
    assert report["run"]["stop_reason"] == "interrupted (Ctrl-C)"
    assert report["verdict_reasons"][0].startswith("the run did not complete")
    assert report["verdict"] != "certified"
    checks = [check for entry in report["requirements"] for check in entry["tests"]]
    assert "interrupted" in {check["outcome"] for check in checks}

    transcript = (results / "console-rpi3.log").read_bytes()
    after = transcript[before:]
    if moment.name == "boot":
        assert b"Booting Linux on physical CPU" in transcript
    else:
        # The command running at Ctrl-C was interrupted on the target, then the bundle removed.
        assert CTRL_C in after and BUNDLE_REMOVED.search(after), after[-2000:]
    if moment.name == "benchmark":
        # The wrapper's mounts went before the deployment was undone.
        unmounted = WRAPPER_UNMOUNTED.search(after)
        removed = BUNDLE_REMOVED.search(after)
        assert unmounted and removed and unmounted.start() < removed.start()
        assert (results / "deployed" / "OCDM-01-deployed.json").is_file()
    assert_nothing_left(results)
    password = (reference_image().login or ("", ""))[1] or ""
    assert password and not files_containing(results, password)
