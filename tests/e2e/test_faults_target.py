"""Faults of the target, injected for real: images that don't boot, QEMU refusing to start or
killed, a kernel panic, a command that never returns, kernel noise on the line, a broken cache.

Each run of the harness happens as a user's: an inner pytest in a subprocess (its own QEMU), and
the test reads what the user would: the exit code, the terminal, the JUnit results, the files.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults.images import (
    garbage_kernel,
    sleeping_initrd,
    truncated_initrd,
    user_image,
)
from faults.inner import InnerRun, inner_env, run_inner
from faults.leftovers import assert_nothing_left, files_containing

from pytest_thunder_container.errors import TargetError
from pytest_thunder_container.image.build import reference_image
from pytest_thunder_container.image.model import cache_dir, load_image_dir, sha256_file, verify
from pytest_thunder_container.shell.console import Login
from pytest_thunder_container.targets.qemu import QemuTarget
from pytest_thunder_container.targets.qemu_process import MACHINES
from pytest_thunder_container.targets.snapshots import SnapshotStore

pytestmark = pytest.mark.e2e

ONE_TEST = """
def test_the_target_answers(thunder_shell):
    assert thunder_shell.check("echo up").stdout == "up"
"""

# Run in this order by one inner session on one target; some fail on purpose, and the test after
# each fault must still pass on a target the harness brought back.
DYING_TARGET_TESTS = r'''
import os
import re
import signal
import threading
from pathlib import Path

LINE = "x" * 150
NOISE = 'i=0; while [ $i -lt 60 ]; do echo "<0>tc-noise-$i emergency" > /dev/kmsg; i=$((i+1)); done'
# In sequence, not raced: half a line, time for the UART to drain it, the message, the rest.
HALF_A_LINE = (
    "printf 'begin-of-line '; sleep 0.5; echo '<0>tc-noise-mid emergency' > /dev/kmsg; "
    "sleep 0.5; echo end-of-line"
)


def qemu_of_this_session():
    """The QEMU process this pytest started (its child), found as an operator would."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if not comm.read_text().startswith("qemu-system"):
                continue
            status = (comm.parent / "status").read_text()
        except OSError:
            continue
        if f"\nPPid:\t{os.getpid()}\n" in status:
            return int(comm.parent.name)
    raise AssertionError("no QEMU child of this pytest")


def test_emergency_kernel_messages_never_corrupt_output(thunder_shell):
    # A message while a line is half written: the kernel writes it into the middle of the line.
    before = len(thunder_shell.transcript_path.read_bytes())
    assert thunder_shell.run(HALF_A_LINE).stdout == "begin-of-line end-of-line"
    sent = thunder_shell.transcript_path.read_bytes()[before:]
    assert re.search(rb"begin-of-line \[ *\d+\.\d{6}\] tc-noise-mid emergency\r\n", sent)
    # A burst of them while a command prints 800 long lines.
    expected = "\n".join(f"{i:04d} {LINE}" for i in range(1, 801))
    command = (
        f"( ( {NOISE} ) & i=1; while [ $i -le 800 ]; do printf '%04d %s\\n' $i {LINE}; "
        "i=$((i+1)); done; wait )"
    )
    before = len(thunder_shell.transcript_path.read_bytes())
    assert thunder_shell.run(command, timeout=120).stdout == expected
    assert thunder_shell.transcript_path.read_bytes()[before:].count(b"] tc-noise-") == 60


def test_a_command_that_never_returns(thunder_shell):
    thunder_shell.run("echo begun-and-stuck; sleep 1000", timeout=3)


def test_the_session_after_the_stuck_command(thunder_shell):
    assert thunder_shell.run("echo still-usable").stdout == "still-usable"


def test_a_kernel_panic_in_the_middle_of_a_test(thunder_shell):
    thunder_shell.run("echo last-words-before-panic; echo c > /proc/sysrq-trigger", timeout=100)


def test_the_test_after_the_panic(thunder_shell):
    assert thunder_shell.run("echo alive-after-panic").stdout == "alive-after-panic"


def test_qemu_killed_in_the_middle_of_a_test(thunder_shell):
    threading.Timer(1.5, os.kill, (qemu_of_this_session(), signal.SIGKILL)).start()
    thunder_shell.run("echo last-words-before-kill; sleep 30", timeout=100)


def test_the_test_after_the_kill(thunder_shell):
    assert thunder_shell.run("echo alive-after-kill").stdout == "alive-after-kill"


def test_qemu_listens_on_the_loopback_only_and_its_folder_is_private(thunder_target):
    pid = qemu_of_this_session()
    sockets = {
        os.readlink(fd)[len("socket:["):-1]
        for fd in Path(f"/proc/{pid}/fd").iterdir()
        if os.readlink(fd).startswith("socket:[")
    }
    listening = [
        fields[1]
        for table in ("/proc/net/tcp", "/proc/net/tcp6")
        for fields in (line.split() for line in Path(table).read_text().splitlines()[1:])
        if fields[3] == "0A" and fields[9] in sockets
    ]
    port = int(thunder_target.jsonrpc_url.split(":")[2].split("/")[0])
    assert listening == [f"0100007F:{port:04X}"]  # 127.0.0.1 only, the one forward
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    rundir = Path(re.search(r"unix:(/\S+?)/qmp\.sock", cmdline).group(1))
    assert rundir.stat().st_mode & 0o777 == 0o700
    assert (rundir / "qmp.sock").is_socket() and (rundir / "console.sock").is_socket()
'''


def project(tmp_path: Path, tests: str) -> Path:
    """A user's project folder: its own pytest.ini (not this repository's) and one test file."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_target.py").write_text(tests)
    return folder


def assert_clean_stop(run: InnerRun) -> str:
    """Exit code 3, one clear line, no traceback; returns that line and what follows it."""
    assert run.returncode == 3, run
    assert "Traceback" not in run.output, run
    start = run.output.index("thunder: target rpi3 could not be started:")
    return run.output[start:]


@dataclasses.dataclass(frozen=True)
class BrokenImage:
    name: str
    factor: float
    says: tuple[str, ...]
    within: float  # seconds the whole run may take


BROKEN_IMAGES = [
    # The kernel panics at once: the default 120 s boot timeout must not be waited for.
    BrokenImage(
        "corrupt-initrd",
        1.0,
        ("the guest kernel panicked during boot", "Initramfs unpacking failed", "VFS"),
        40,
    ),
    BrokenImage(
        "garbage-kernel",
        0.2,
        ("no shell prompt within 24.0 s", "printed nothing at all", "an arm64 kernel"),
        70,
    ),
    BrokenImage(
        "init-that-never-prompts",
        0.2,
        ("no shell prompt within 24.0 s", "custom init: waiting for the root device"),
        70,
    ),
]


@pytest.mark.parametrize("broken", BROKEN_IMAGES, ids=lambda broken: broken.name)
def test_an_image_that_does_not_boot_stops_the_run_clearly(
    broken: BrokenImage, tmp_path: Path
) -> None:
    reference = reference_image()
    contents = {
        "corrupt-initrd": {"initrd": truncated_initrd(reference)},
        "garbage-kernel": {"kernel": garbage_kernel()},
        "init-that-never-prompts": {"initrd": sleeping_initrd(reference)},
    }[broken.name]
    image = user_image(tmp_path / "image", **contents)
    results = tmp_path / "results"
    run = run_inner(
        project(tmp_path, ONE_TEST),
        results,
        f"--thunder-image={image}",
        f"--thunder-timeout-factor={broken.factor}",
        timeout=300,
    )
    said = assert_clean_stop(run)
    for text in broken.says:
        assert text in said, run
    transcript = results / "console-rpi3.log"
    assert f"console log: {transcript}" in said or f"transcript: {transcript}" in said
    assert run.seconds < broken.within, run
    if broken.name == "corrupt-initrd":
        # The transcript was flushed to its very last line.
        assert transcript.read_bytes().rstrip().endswith(b"]---")
    assert_nothing_left(results)


def test_qemu_refusing_its_machine_is_reported_with_its_own_words(tmp_path: Path) -> None:
    reference = reference_image()
    target = QemuTarget(
        "rpi3",
        reference,
        results=tmp_path / "results",
        snapshots=SnapshotStore(tmp_path / "snapshots"),
        login=Login("root", None),
        cold_boot=True,
    )
    # What an older QEMU without raspi3b says: the machine type is unknown to it.
    target.machine = dataclasses.replace(MACHINES["rpi3"], args=("-M", "raspi9b"))
    started = time.monotonic()
    with pytest.raises(TargetError) as failure:
        target.start()
    message = str(failure.value)
    assert time.monotonic() - started < 15
    assert "QEMU exited at start (code 1)" in message
    assert "raspi9b" in message and "unsupported machine type" in message
    assert str(tmp_path / "results" / "qemu-rpi3.log") in message
    assert_nothing_left(tmp_path / "results")


def test_an_unknown_machine_or_a_missing_dtb_starts_no_qemu(tmp_path: Path) -> None:
    snapshots = SnapshotStore(tmp_path / "snapshots")
    results = tmp_path / "results"
    with pytest.raises(TargetError, match=r"unknown QEMU machine 'raspi9' \(known: rpi3, virt\)"):
        QemuTarget("raspi9", reference_image(), results=results, snapshots=snapshots, login=None)
    without_dtb = load_image_dir(user_image(tmp_path / "image", dtb=False))
    target = QemuTarget("rpi3", without_dtb, results=results, snapshots=snapshots, login=None)
    with pytest.raises(TargetError, match=r"machine rpi3 needs a device tree \(\.dtb\)"):
        target.start()
    assert not (results / "qemu-rpi3.log").exists()


def test_a_dying_target_is_reported_and_brought_back_for_the_next_test(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run = run_inner(project(tmp_path, DYING_TARGET_TESTS), results, timeout=600)
    outcomes = run.outcomes()
    transcript = results / "console-rpi3.log"
    expected = {
        "test_emergency_kernel_messages_never_corrupt_output": "passed",
        "test_a_command_that_never_returns": "failed",
        "test_the_session_after_the_stuck_command": "passed",
        "test_a_kernel_panic_in_the_middle_of_a_test": "failed",
        "test_the_test_after_the_panic": "passed",
        "test_qemu_killed_in_the_middle_of_a_test": "failed",
        "test_the_test_after_the_kill": "passed",
        "test_qemu_listens_on_the_loopback_only_and_its_folder_is_private": "passed",
    }
    unexpected = {
        name: outcomes[name].message[-2000:]
        for name in expected
        if name in outcomes and outcomes[name].result != expected[name]
    }
    assert {name: o.result for name, o in outcomes.items()} == expected, unexpected or run

    stuck = outcomes["test_a_command_that_never_returns"]
    assert "did not finish within 3.0 s" in stuck.message
    assert "interrupted with Ctrl-C and the session set up again" in stuck.message
    assert "begun-and-stuck" in stuck.message  # the output so far
    assert f"transcript: {transcript}" in stuck.message
    assert stuck.seconds < 15

    panic = outcomes["test_a_kernel_panic_in_the_middle_of_a_test"]
    assert "the target's kernel panicked" in panic.message
    assert "sysrq triggered crash" in panic.message
    assert f"transcript: {transcript}" in panic.message
    assert panic.seconds < 10  # at once, not after the command's 100 s

    killed = outcomes["test_qemu_killed_in_the_middle_of_a_test"]
    assert "the stream ended" in killed.message and "the emulator exited" in killed.message
    assert f"transcript: {transcript}" in killed.message
    assert killed.seconds < 15

    assert run.output.count("[thunder] target rpi3 died: restarting") == 2, run
    kept = transcript.read_bytes()
    for evidence in (
        b"last-words-before-panic",
        b"end Kernel panic - not syncing: sysrq triggered crash",
        b"last-words-before-kill",
        b"alive-after-kill",
    ):
        assert evidence in kept
    assert_nothing_left(results)
    assert len(list(results.glob("qemu-rpi3.log"))) == 1
    password = (reference_image().login or ("", ""))[1] or ""
    assert password and not files_containing(results, password)


LOAD_IMAGE = (
    "from pytest_thunder_container.image.build import reference_image\n"
    "print(reference_image().directory)\n"
)


def test_two_sessions_share_a_cache_whose_image_was_corrupted(tmp_path: Path) -> None:
    reference = reference_image()
    cache = tmp_path / "cache"
    # The fetched packages and the built Thunder trees are reused: the rebuild needs no network
    # and no cross build (about 10 s).
    for reused in ("apt", "thunder"):
        shutil.copytree(cache_dir() / reused, cache / reused, symlinks=True)
    cached = cache / "images" / reference.directory.name
    shutil.copytree(reference.directory, cached)
    initrd = cached / "initrd.img"
    damaged = bytearray(initrd.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte, the size unchanged
    initrd.write_bytes(damaged)

    env = inner_env(THUNDER_CONTAINER_CACHE=str(cache))
    command = [sys.executable, "-c", LOAD_IMAGE]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert first.stderr is not None
    said_first = first.stderr.readline().decode()  # started: the two now race for the lock
    second = subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)
    # Not communicate(): it reads the pipe itself and would lose what readline() buffered.
    assert first.stdout is not None
    out_first, err_first = first.stdout.read(), first.stderr.read()
    first.wait(timeout=300)
    said = [said_first + err_first.decode(), second.stderr.decode()]

    assert first.returncode == 0 and second.returncode == 0, said
    # Whichever got the lock found the damage and rebuilt; the other waited, then reused it.
    rebuilt = [i for i, text in enumerate(said) if "initrd.img is corrupted" in text]
    waited = [i for i, text in enumerate(said) if "waiting for another build holding" in text]
    assert len(rebuilt) == 1 and "building it again" in said[rebuilt[0]], said
    assert waited == [1 - rebuilt[0]], said
    assert out_first.strip() == second.stdout.strip() == str(cached).encode()
    verify(load_image_dir(cached))
    assert sha256_file(initrd) == reference.manifest["artifacts"]["initrd"]["sha256"]
