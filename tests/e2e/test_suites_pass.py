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


def run_suites(
    results: Path, *options: str, workers: int = 0, suites: str = "suites"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    # Several workers: each boots its own target; parity and the benchmark stay whole.
    parallel = ["-n", str(workers), "--dist", "loadgroup"] if workers else ["-p", "no:xdist"]
    command = [
        sys.executable,
        "-m",
        "pytest",
        suites,
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


@pytest.mark.parametrize("dialect", ["R5", "R4.4"])
def test_the_suites_pass_on_the_reference_image(dialect: str, tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = run_suites(results, f"--thunder-reference-api={dialect}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    report = json.loads((results / "thunder-report.json").read_text())
    assert report["verdict"] in ("certified", "certified with findings"), report["verdict_reasons"]
    assert {t["facts"]["thunder.dialect"] for t in report["targets"]} == {dialect}
    assert [t["worker"] for t in report["targets"]] == ["main"]
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


def test_two_workers_each_boot_their_own_target_and_pass(tmp_path: Path) -> None:
    # One suite file, so that two emulators beside this session's own run no longer than needed:
    # R4.4.7 dies when a runc call passes its limit, which three emulators on 2 cores can make.
    results = tmp_path / "results"
    done = run_suites(
        results, "--thunder-timeout-factor=2", workers=2, suites="suites/test_namespaces.py"
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    report = json.loads((results / "thunder-report.json").read_text())
    assert sorted(t["worker"] for t in report["targets"]) == ["gw0", "gw1"]
    addresses = {t["facts"]["thunder.jsonrpc"] for t in report["targets"]}
    assert len(addresses) == 2, f"the workers shared a target: {addresses}"
    judged = [r for r in report["requirements"] if r["result"] not in ("not-run", "skipped")]
    assert {r["id"] for r in judged} == {f"TC-NS-00{n}" for n in range(1, 7)}
    # The MUSTs pass; TC-NS-006 (SHOULD) is the tutorial bundle's genuine finding.
    assert all(r["result"] == "passed" for r in judged if r["level"] == "MUST"), judged
