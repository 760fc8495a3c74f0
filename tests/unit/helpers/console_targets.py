"""What the console tests talk to: local shells, the fake login, the serial-line stand-in."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pexpect
import pytest
from pexpect.spawnbase import SpawnBase

from pytest_thunder_container.shell.console import Console, Login
from pytest_thunder_container.shell.transcript import Transcript

HELPERS = Path(__file__).parent
DEVICE = [sys.executable, str(HELPERS / "device.py")]
FAKE_LOGIN = [sys.executable, str(HELPERS / "fake_login.py")]

# Local shells answer at once: a small factor shortens the silences attach waits for.
FACTOR = 0.4

SHELLS = [
    pytest.param(["/bin/sh", "-i"], id=Path("/bin/sh").resolve().name),
    pytest.param(["bash", "--norc", "--noprofile", "-i"], id="bash"),
    pytest.param(
        ["busybox", "sh", "-i"],
        id="busybox",
        marks=pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed"),
    ),
]


def shell_env(tmp_path: Path, *, applets: Path | None = None, **stubs: str) -> dict[str, str]:
    """An environment whose PATH starts with stub commands: `dmesg` records its arguments.

    `applets` (from busybox_applets) puts busybox's commands before the host's, as on the target.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stubs.setdefault("dmesg", f"printf '%s\\n' \"$*\" >> {tmp_path / 'dmesg.args'}")
    for name, body in stubs.items():
        stub = bin_dir / name
        stub.unlink(missing_ok=True)  # never write through a link (an applet links to busybox)
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    path = f"{bin_dir}:{applets}:/usr/bin:/bin" if applets else f"{bin_dir}:/usr/bin:/bin"
    return {"PATH": path, "HOME": str(tmp_path), "TERM": "vt100"}


def busybox_applets(directory: Path) -> Path:
    """A directory of links that make every busybox applet a command."""
    busybox = shutil.which("busybox")
    assert busybox
    listing = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    directory.mkdir(parents=True, exist_ok=True)
    for name in listing.stdout.split():
        (directory / name).symlink_to(busybox)
    return directory


def spawn(argv: Sequence[str], env: dict[str, str], cwd: Path) -> pexpect.spawn:
    child = pexpect.spawn(argv[0], list(argv[1:]), env=env, cwd=str(cwd), dimensions=(24, 200))
    # The shell leaves on the hang-up at once: pexpect's default 0.1 s pauses only slow the suite.
    child.ptyproc.delayafterclose = child.ptyproc.delayafterterminate = 0.01
    return child


def make_console(
    stream: SpawnBase,
    tmp_path: Path,
    *,
    login: Login | None = None,
    timeout_factor: float = FACTOR,
) -> Console:
    transcript = Transcript(tmp_path / "transcript.log")
    return Console(
        stream,
        transcript,
        name="test-target",
        login=login,
        timeout_factor=timeout_factor,
        command_timeout=10,
    )


@contextmanager
def device(
    endpoint: str, command: Sequence[str], env: dict[str, str], *options: str, announce: bool = True
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run the serial-line stand-in; yields it and what it announced (port, path or pty)."""
    proc = subprocess.Popen(
        [*DEVICE, "--endpoint", endpoint, *options, "--", *command],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc, proc.stdout.readline().strip() if announce else ""
    finally:
        proc.kill()
        proc.wait()
