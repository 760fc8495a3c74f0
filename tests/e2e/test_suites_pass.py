"""The conformance suites, run as a user runs them, pass on the reference image in both API
generations, every test tied to a requirement ID, with a per-ID summary and the reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_thunder_container.conformance.catalogue import load_catalogue

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def run_suites(results: Path, *options: str, workers: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    # Several workers: each boots its own target; parity and the benchmark stay whole.
    parallel = ["-n", str(workers), "--dist", "loadgroup"] if workers else ["-p", "no:xdist"]
    command = [
        sys.executable,
        "-m",
        "pytest",
        "suites",
        "--thunder-target=rpi3",
        f"--thunder-results={results}",
        "--thunder-bench-runs=3",
        *parallel,
        "-p",
        "no:cacheprovider",
        f"--junitxml={results / 'junit.xml'}",
        f"--alluredir={results / 'allure'}",
        *options,
    ]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False
    )


@pytest.mark.parametrize(
    ("dialect", "workers"), [("R5", 0), ("R4.4", 2)], ids=["R5", "R4.4-two-workers"]
)
def test_the_suites_pass_on_the_reference_image(dialect: str, workers: int, tmp_path: Path) -> None:
    results = tmp_path / "results"
    # Two emulators beside this session's own: waits are scaled for the shared cores.
    slower = ["--thunder-timeout-factor=2"] if workers else []
    done = run_suites(results, f"--thunder-reference-api={dialect}", *slower, workers=workers)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    report = json.loads((results / "thunder-report.json").read_text())
    assert report["verdict"] in ("certified", "certified with findings"), report["verdict_reasons"]
    assert {t["facts"]["thunder.dialect"] for t in report["targets"]} == {dialect}
    # One target per worker, never shared.
    workers_seen = sorted(t["worker"] for t in report["targets"])
    assert workers_seen == ([f"gw{n}" for n in range(workers)] if workers else ["main"])
    results_by_id = {r["id"]: r["result"] for r in report["requirements"]}
    assert set(results_by_id) == {r.id for r in load_catalogue()}
    assert not report["other_tests"], "every suite test is tied to a requirement ID"
    musts = [r for r in report["requirements"] if r["level"] == "MUST"]
    assert all(r["result"] in ("passed", "not-applicable") for r in musts)
    assert "TC-NS-001     MUST   passed" in output  # the per-ID summary
    assert (results / "thunder-report.html").is_file()
    assert (results / "thunder-latency.json").is_file()
    assert (results / "allure" / "environment.properties").is_file()
    junit = (results / "junit.xml").read_text()
    assert 'name="requirement" value="TC-LIFE-004"' in junit
