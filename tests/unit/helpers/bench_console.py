"""Console speed against local shells, next to a raw pexpect loop (the floor).

Run: python tests/unit/helpers/bench_console.py [/bin/sh busybox ...]
Prints the median round trip of `true` (200 runs) and the time to read `seq 1 20000` (108 KB).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))
from helpers.console_targets import make_console, shell_env, spawn

ROUND_TRIPS = 200


def raw_loop(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """The least a pexpect user can do: a fixed prompt, one send and one expect per command."""
    child = spawn(argv, env, cwd)
    child.delaybeforesend = None
    child.delayafterread = None
    child.maxread = 256 * 1024
    child.sendline("stty -echo; PS1='RAW''> '")
    child.expect_exact(b"RAW> ", timeout=10)
    durations = []
    for _ in range(ROUND_TRIPS):
        started = time.monotonic()
        child.send(b"true\n")
        child.expect_exact(b"RAW> ", timeout=10)
        durations.append(time.monotonic() - started)
    started = time.monotonic()
    child.send(b"seq 1 20000\n")
    child.expect_exact(b"20000\r\nRAW> ", timeout=30)
    seq = time.monotonic() - started
    child.close()
    return statistics.median(durations), seq


def console_loop(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    session = make_console(spawn(argv, env, cwd), cwd)
    session.attach(timeout=10)
    median = statistics.median(session.run("true").duration for _ in range(ROUND_TRIPS))
    started = time.monotonic()
    lines = session.run("seq 1 20000").stdout.count("\n") + 1
    seq = time.monotonic() - started
    assert lines == 20000
    session.close()
    return median, seq


def main() -> None:
    shells = sys.argv[1:] or ["/bin/sh", "busybox"]
    for shell in shells:
        if shutil.which(shell) is None:
            print(f"{shell}: not installed")
            continue
        argv = [shell, "sh", "-i"] if Path(shell).name == "busybox" else [shell, "-i"]
        with tempfile.TemporaryDirectory(prefix="tc-bench-") as tmp:
            cwd = Path(tmp)
            env = shell_env(cwd)
            for label, loop in (("raw pexpect", raw_loop), ("Console", console_loop)):
                median, seq = loop(argv, env, cwd)
                print(
                    f"{shell:10} {label:12} true: median {median * 1000:6.3f} ms   "
                    f"seq 1 20000: {seq * 1000:7.1f} ms"
                )


if __name__ == "__main__":
    main()
