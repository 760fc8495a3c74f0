"""`thunder-container certify`: the packaged suites with the recommended options, then the verdict.

Every argument goes to pytest (--thunder-image, --thunder-target, -n 2, ...); certify only
adds what a certification run needs and reads the report the run wrote.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pytest_thunder_container.report.certification import REPORT_HTML, REPORT_JSON

SUITES = "pytest_thunder_container.suites"
RESULTS = "thunder-results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: main() hands every argument after `certify` to pytest."""
    parser.set_defaults(func=run_certify, pass_to_pytest=True)


def pytest_command(pytest_args: Sequence[str]) -> list[str]:
    """The pytest command line of a certification run: the packaged suites, the user's options,
    and the recommended ones the user didn't set."""
    args = list(pytest_args)
    results = Path(_option_value(args, "--thunder-results") or RESULTS)
    command = [sys.executable, "-m", "pytest", "--pyargs", SUITES, *args]
    command += ["-p", "no:cacheprovider", "-ra"]  # nothing left in the user's folder but results
    if _option_value(args, "--thunder-results") is None:
        command.append(f"--thunder-results={results}")
    if _option_value(args, "--junitxml") is None:
        command.append(f"--junitxml={results / 'junit.xml'}")
    if _option_value(args, "-n") is not None and _option_value(args, "--dist") is None:
        # the parity scenario and the benchmark each stay whole on one worker (README)
        command.append("--dist=loadgroup")
    return command


def run_certify(args: argparse.Namespace) -> int:
    """Run the suites; print the verdict and the report's paths; 0 only when certified."""
    command = pytest_command(args.pytest_args)
    results = Path(_option_value(command, "--thunder-results") or RESULTS)
    started = time.time()
    print("thunder-container certify: " + " ".join(command[1:]), flush=True)
    status = _wait(subprocess.Popen(command))
    report_path = results / REPORT_JSON
    if not report_path.exists() or report_path.stat().st_mtime < started:
        print(
            f"thunder-container certify: no report was written in {results} "
            f"(pytest exit status {status}): not certified",
            file=sys.stderr,
        )
        return status or 1
    report = json.loads(report_path.read_text(encoding="utf-8"))
    print(f"thunder-container certify: verdict: {report['verdict']}")
    for reason in report["verdict_reasons"]:
        print(f"  not certified because: {reason}")
    for finding in report["findings"]:
        print(f"  finding: {finding}")
    signature = report.get("integrity", {}).get("signature")
    signed = f"signed by {signature['key_fingerprint']}" if signature else "not signed"
    print(f"  report: {report_path} ({signed})")
    print(f"  report: {results / REPORT_HTML}")
    return 0 if report["certified"] else 1


def _wait(process: subprocess.Popen[bytes]) -> int:
    """The run's exit status; a Ctrl-C reaches pytest too, so wait for it to clean up."""
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            continue


def _option_value(args: Sequence[str], name: str) -> str | None:
    """The value of `name` in args (`name=V`, `name V`, or `-nV` for short options); last wins."""
    value = None
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
        elif len(name) == 2 and arg.startswith(name) and len(arg) > 2:
            value = arg[2:]
    return value
