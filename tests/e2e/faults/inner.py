"""An inner pytest run as a user starts it: a subprocess, watched, interrupted like Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Outcome:
    """One inner test as the JUnit XML tells it."""

    result: str  # passed, failed, error, skipped
    message: str
    seconds: float


@dataclass(frozen=True)
class InnerRun:
    """What the user saw: exit code, terminal output, time taken, and the results folder."""

    returncode: int
    output: str
    seconds: float
    results: Path

    def outcomes(self) -> dict[str, Outcome]:
        """Test name -> outcome, from the run's JUnit XML."""
        tree = ElementTree.parse(self.results / "junit.xml")
        found: dict[str, Outcome] = {}
        for case in tree.iter("testcase"):
            result, message = "passed", ""
            for kind in ("failure", "error", "skipped"):
                node = case.find(kind)
                if node is not None:
                    result = "failed" if kind == "failure" else kind
                    message = f"{node.get('message', '')}\n{node.text or ''}"
                    break
            found[case.get("name", "")] = Outcome(result, message, float(case.get("time", 0)))
        return found

    def __str__(self) -> str:
        return f"exit {self.returncode} after {self.seconds:.1f} s:\n{self.output[-8000:]}"


def inner_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: none of the outer pytest's (xdist worker) variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTHONUNBUFFERED"] = "1"  # progress lines reach the watched output file at once
    env.update(extra)
    return env


def pytest_argv(results: Path, *options: str) -> list[str]:
    return [
        *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-v"),
        *(f"--thunder-results={results}", f"--junitxml={results / 'junit.xml'}", *options),
    ]


class WatchedRun:
    """An inner pytest whose output goes to a file that the test can watch while it runs."""

    def __init__(
        self, cwd: Path, results: Path, *options: str, env: dict[str, str] | None = None
    ) -> None:
        self.results = results
        self.output_file = results.parent / f"{results.name}-output.txt"
        self.output_file.parent.mkdir(parents=True, exist_ok=True)
        self._started = time.monotonic()
        with open(self.output_file, "wb") as sink:
            self._process = subprocess.Popen(
                pytest_argv(results, *options),
                cwd=cwd,
                env=env or inner_env(),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self._process.pid

    def output(self) -> str:
        return self.output_file.read_text(errors="replace")

    def wait_for(
        self, ready: Callable[[], bool], timeout: float, what: str, every: float = 0.05
    ) -> None:
        """Poll until `ready()`; fail (after stopping the run) if it ends or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._process.kill()
                self._process.wait()
                raise AssertionError(f"never saw {what}:\n{self.output()[-6000:]}")
            time.sleep(every)

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to pytest alone, as a terminal sends it to the foreground process."""
        self._process.send_signal(signal.SIGINT)

    def finish(self, timeout: float) -> InnerRun:
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            message = f"the run did not end within {timeout} s:\n{self.output()}"
            raise AssertionError(message) from None
        seconds = time.monotonic() - self._started
        return InnerRun(self._process.returncode, self.output(), seconds, self.results)


def run_inner(
    cwd: Path, results: Path, *options: str, timeout: float, env: dict[str, str] | None = None
) -> InnerRun:
    """Run pytest in `cwd` with the plugin's options and wait for it to end."""
    return WatchedRun(cwd, results, *options, env=env).finish(timeout)


def transcript_grows_past(transcript: Path, marker: bytes) -> Callable[[], bool]:
    """A trigger: true once `marker` has been written to (or read from) the console."""

    def seen() -> bool:
        try:
            return marker in transcript.read_bytes()
        except FileNotFoundError:
            return False

    return seen
