"""`thunder-container certify --thunder-static-only` runs the real suites on a config.json alone
(no target), writes a signed report, and `report verify` checks that folder afterwards. No QEMU:
it is end to end all the same (the `thunder-container` command, an inner pytest, the folder)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from faults.inner import inner_env

from pytest_thunder_container.conformance.catalogue import load_catalogue
from pytest_thunder_container.oci.config import tutorial_config
from pytest_thunder_container.report.signing import generate_keys

Run = subprocess.CompletedProcess[str]


def thunder_container(cwd: Path, *args: str) -> Run:
    command = [sys.executable, "-m", "pytest_thunder_container.cli.main", *args]
    return subprocess.run(
        command, cwd=cwd, env=inner_env(), capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def certified(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    """One static-only certification of the tutorial's config, signed, in an empty folder."""
    work = tmp_path_factory.mktemp("certify")
    (work / "config.json").write_text(json.dumps(tutorial_config()))
    generate_keys(work / "key.pem", work / "pub.pem")
    generate_keys(work / "other.pem", work / "other.pub")
    run = thunder_container(
        work,
        "certify",
        "--thunder-static-only",
        "--thunder-container-config=config.json",
        "--thunder-sign-key=key.pem",
        "--thunder-results=results",
    )
    return work, run


def report_of(work: Path) -> dict[str, Any]:
    return json.loads((work / "results" / "thunder-report.json").read_text())


def test_a_static_only_run_judges_every_static_requirement_and_certifies_nothing_else(
    certified: tuple[Path, Run],
) -> None:
    work, run = certified
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert "thunder-container certify: verdict: not certified" in lines
    signed = "  report: results/thunder-report.json (signed by sha256:"
    assert any(line.startswith(signed) for line in lines)
    assert "  report: results/thunder-report.html" in lines
    report = report_of(work)
    results = {r["id"]: r for r in report["requirements"]}
    for requirement in load_catalogue():
        entry = results[requirement.id]
        outcomes = {test["outcome"] for test in entry["tests"]}
        if requirement.checks == "runtime":
            assert entry["result"] in ("not-run", "not-applicable"), entry
            assert outcomes <= {"not-run"}
        elif requirement.checks == "static+runtime":
            # Its static test ran, its runtime test was deselected: not shown, so not passed.
            assert entry["result"] in ("not-run", "failed"), entry
            assert "not-run" in outcomes
        elif requirement.level == "MUST" and entry["tests"]:
            # The tutorial's config breaks no MUST (README: lint gives 0 MUST findings).
            assert entry["result"] in ("passed", "not-applicable"), entry
    assert results["TC-COM-001"]["result"] == "not-run"
    assert results["TC-CFG-001"]["result"] in ("passed", "not-applicable")
    assert report["targets"] == []
    assert "TC-COM-002 (MUST) not run" in report["verdict_reasons"]
    kept = json.loads((work / "results" / "static" / "config.json").read_text())
    assert kept == tutorial_config()


def test_report_verify_accepts_the_untouched_folder_with_the_right_key_only(
    certified: tuple[Path, Run],
) -> None:
    work, _ = certified
    listed = [entry["path"] for entry in report_of(work)["integrity"]["files"]]
    assert {"thunder-report.html", "junit.xml", "static/config.json"} <= set(listed)
    assert any(path.startswith("evidence/") for path in listed)
    good = thunder_container(work, "report", "verify", "results", "--public-key=pub.pem")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "0 changed, 0 missing, 0 added; signature: valid Ed25519 signature" in good.stdout
    wrong = thunder_container(work, "report", "verify", "results", "--public-key=other.pub")
    assert wrong.returncode == 1
    assert "not by the given key" in wrong.stdout


def test_report_verify_names_each_file_edited_deleted_or_added_after_the_run(
    certified: tuple[Path, Run],
) -> None:
    work, _ = certified
    results = work / "results"
    evidence = sorted(path for path in (results / "evidence").rglob("*") if path.is_file())
    (results / "static" / "config.json").write_text("{}\n")
    evidence[0].unlink()
    (results / "evidence" / "planted.txt").write_text("TC-NS-001: passed\n")
    run = thunder_container(work, "report", "verify", "results", "--public-key=pub.pem")
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert "changed: static/config.json (size " in run.stdout
    gone = evidence[0].relative_to(results).as_posix()
    assert f"missing: {gone} (listed in the report, not in the folder)" in lines
    assert "added: evidence/planted.txt (in the folder, not in the report)" in lines
    assert "1 changed, 1 missing, 1 added; signature: valid" in lines[-1]


def test_a_broken_static_must_fails_the_certification_by_its_id(tmp_path: Path) -> None:
    config = tutorial_config()
    config["process"]["terminal"] = True  # Thunder's plugin host has no terminal
    (tmp_path / "config.json").write_text(json.dumps(config))
    run = thunder_container(
        tmp_path, "certify", "--thunder-static-only", "--thunder-container-config=config.json"
    )
    assert run.returncode == 1
    report = json.loads((tmp_path / "thunder-results" / "thunder-report.json").read_text())
    assert "TC-PROC-001 (MUST) failed" in report["verdict_reasons"]
    assert report["integrity"]["signature"] is None


def test_static_only_without_a_config_is_a_usage_error(tmp_path: Path) -> None:
    run = thunder_container(tmp_path, "certify", "--thunder-static-only")
    assert run.returncode == 4
    assert "--thunder-static-only needs --thunder-container-config" in run.stderr
    assert "not certified" in run.stderr
