"""Target pools: serial lines held by one worker at a time (flock), QEMU machines shared."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers.console_targets import FAKE_LOGIN, device, shell_env

from pytest_thunder_container.errors import TargetError
from pytest_thunder_container.settings import TargetSpec, parse_targets
from pytest_thunder_container.targets.pool import claim_target, lock_dir, lock_path, worker_index

BOARDS = parse_targets("serial:/dev/ttyUSB0|serial:/dev/ttyUSB1|rfc2217://10.0.0.5:4000")

# Another pytest process: claims a target, says which, then holds it until killed.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pytest_thunder_container.targets.pool import claim_target
    from pytest_thunder_container.settings import parse_targets
    claim = claim_target(parse_targets(sys.argv[1]), worker=sys.argv[2],
                         directory=Path(sys.argv[3]), wait=30)
    print(claim.spec.address, flush=True)
    time.sleep(float(sys.argv[4]))
    """
)


@contextmanager
def holder(
    pool: str, worker: str, locks: Path, hold: float = 60
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, pool, worker, str(locks), str(hold)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc, proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def test_workers_start_at_their_own_index() -> None:
    assert [worker_index(w) for w in ("main", "gw0", "gw1", "gw12", "other")] == [0, 0, 1, 12, 0]


def test_two_workers_never_get_the_same_serial_line(tmp_path: Path) -> None:
    first = claim_target(BOARDS, worker="gw0", directory=tmp_path)
    second = claim_target(BOARDS, worker="gw0", directory=tmp_path)
    third = claim_target(BOARDS, worker="gw5", directory=tmp_path)
    assert [c.spec.address for c in (first, second, third)] == [
        "/dev/ttyUSB0",
        "/dev/ttyUSB1",
        "rfc2217://10.0.0.5:4000",
    ]
    for claim in (first, second, third):
        claim.release()


def test_concurrent_processes_get_distinct_lines(tmp_path: Path) -> None:
    pool = "|".join(f"serial:/dev/ttyFAKE{n}" for n in range(4))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER, pool, "gw0", str(tmp_path), "3"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        got = [p.stdout.readline().strip() for p in procs if p.stdout is not None]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert sorted(got) == [f"/dev/ttyFAKE{n}" for n in range(4)]


def test_a_worker_takes_the_line_at_its_index_first(tmp_path: Path) -> None:
    with claim_target(BOARDS, worker="gw1", directory=tmp_path) as claim:
        assert claim.spec.address == "/dev/ttyUSB1"
    with claim_target(BOARDS, worker="gw2", directory=tmp_path) as claim:
        assert claim.spec.address == "rfc2217://10.0.0.5:4000"


def test_without_xdist_the_first_target_is_used(tmp_path: Path) -> None:
    with claim_target(BOARDS, worker="main", directory=tmp_path) as claim:
        assert claim.spec.address == "/dev/ttyUSB0"


def test_qemu_machines_are_shared_and_need_no_lock(tmp_path: Path) -> None:
    specs = parse_targets("rpi3")
    claims = [claim_target(specs, worker=f"gw{n}", directory=tmp_path) for n in range(3)]
    assert {c.spec for c in claims} == {TargetSpec("qemu", "rpi3")}
    assert all(c.lock is None for c in claims)
    assert list(tmp_path.iterdir()) == []


def test_a_mixed_pool_never_waits_for_a_qemu_machine(tmp_path: Path) -> None:
    specs = parse_targets("serial:/dev/ttyUSB0|virt")
    held = claim_target(specs, worker="gw0", directory=tmp_path)
    with claim_target(specs, worker="gw2", directory=tmp_path, wait=0) as claim:
        assert claim.spec == TargetSpec("qemu", "virt")
    held.release()


def test_the_lock_file_names_its_holder_and_is_emptied_on_release(tmp_path: Path) -> None:
    claim = claim_target(BOARDS, worker="gw1", directory=tmp_path)
    assert claim.lock == tmp_path / "serial-dev-ttyUSB1.lock"
    text = claim.lock.read_text()
    assert f"worker=gw1 pid={os.getpid()} " in text
    assert "target=serial:/dev/ttyUSB1" in text
    claim.release()
    claim.release()
    assert claim.lock.read_text() == ""


def test_a_held_line_is_skipped_and_another_process_is_named(tmp_path: Path) -> None:
    with holder("serial:/dev/ttyUSB0", "gw7", tmp_path) as (proc, got):
        assert got == "/dev/ttyUSB0"
        said: list[str] = []
        started = time.monotonic()
        with pytest.raises(TargetError) as failure:
            claim_target(
                parse_targets("serial:/dev/ttyUSB0"),
                worker="gw0",
                directory=tmp_path,
                wait=0.6,
                progress=said.append,
            )
        assert 0.6 <= time.monotonic() - started < 3
    message = str(failure.value)
    assert "gw0: no free serial target after 1 s" in message
    assert f"serial:/dev/ttyUSB0 held by worker=gw7 pid={proc.pid} " in message
    assert "-n 1" in message and str(tmp_path) in message
    assert len(said) == 1 and "waiting up to 1 s" in said[0]


def test_the_line_of_a_dead_holder_is_free(tmp_path: Path) -> None:
    with holder("serial:/dev/ttyUSB0", "gw3", tmp_path) as (proc, _):
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stale = lock_path(tmp_path, TargetSpec("serial", "/dev/ttyUSB0")).read_text()
        assert f"pid={proc.pid}" in stale  # what a dead holder wrote is still there...
        with claim_target(
            parse_targets("serial:/dev/ttyUSB0"), worker="gw0", directory=tmp_path, wait=0
        ) as claim:
            # ...but the kernel dropped its lock.
            assert claim.lock is not None
            assert f"worker=gw0 pid={os.getpid()} " in claim.lock.read_text()


def test_a_worker_waits_until_a_line_is_released(tmp_path: Path) -> None:
    first = claim_target(BOARDS[:1], worker="gw0", directory=tmp_path)
    threading.Timer(0.5, first.release).start()
    said: list[str] = []
    started = time.monotonic()
    with claim_target(
        BOARDS[:1], worker="gw1", directory=tmp_path, wait=10, progress=said.append
    ) as claim:
        assert claim.spec.address == "/dev/ttyUSB0"
    assert 0.4 <= time.monotonic() - started < 3
    assert "every serial target is in use" in said[0] and "got serial:/dev/ttyUSB0" in said[1]


def test_the_wait_is_scaled_by_the_timeout_factor(tmp_path: Path) -> None:
    held = claim_target(BOARDS[:1], worker="gw0", directory=tmp_path)
    started = time.monotonic()
    with pytest.raises(TargetError, match="after 1 s"):
        claim_target(BOARDS[:1], worker="gw1", directory=tmp_path, wait=0.25, timeout_factor=4)
    assert time.monotonic() - started >= 1.0
    held.release()


def test_aliases_of_a_device_share_one_lock(tmp_path: Path) -> None:
    device = tmp_path / "ttyUSB0"
    device.touch()
    alias = tmp_path / "usb-FTDI_FT232R-if00-port0"
    alias.symlink_to(device)
    locks = tmp_path / "locks"
    held = claim_target(parse_targets(f"serial:{device}"), worker="gw0", directory=locks)
    with pytest.raises(TargetError, match="no free serial target"):
        claim_target(parse_targets(f"serial:{alias}"), worker="gw1", directory=locks, wait=0)
    held.release()


def test_locks_live_in_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THUNDER_CONTAINER_CACHE", str(tmp_path))
    assert lock_dir() == tmp_path / "locks"
    with claim_target(BOARDS[:1], worker="main") as claim:
        assert claim.lock == tmp_path / "locks" / "serial-dev-ttyUSB0.lock"


# --- through the plugin: pytest-xdist workers ---------------------------------------------

WORKER_TEST = """
import os

def test_which_board(thunder_target, thunder_shell):
    port = thunder_target.properties()["serial.port"]
    answer = thunder_shell.check("echo $BOARD").stdout
    with open(os.environ["SEEN"], "a") as seen:
        seen.write(f"{os.environ['PYTEST_XDIST_WORKER']} {port} {answer}\\n")
"""


def test_xdist_workers_each_get_their_own_board(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_worker.py").write_text(WORKER_TEST)
    board = [*FAKE_LOGIN, "--user", "root", "--password", "pw"]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update(
        THUNDER_CONTAINER_CACHE=str(tmp_path / "cache"),
        THUNDER_PASSWORD="pw",
        SEEN=str(tmp_path / "seen"),
    )
    with (
        device("pty", board, {**shell_env(tmp_path), "BOARD": "A"}) as (_, first),
        device("pty", board, {**shell_env(tmp_path), "BOARD": "B"}) as (_, second),
    ):
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-n",
            "2",
            "--dist=each",  # the test on every worker: each worker's session takes a board
            f"--thunder-target=serial:{first}|serial:{second}",
            "--thunder-timeout-factor=0.3",
            f"--thunder-results={tmp_path / 'results'}",
        ]
        inner = subprocess.run(
            argv, cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False
        )
    assert inner.returncode == 0, inner.stdout[-3000:] + inner.stderr[-2000:]
    seen = sorted(line.split() for line in (tmp_path / "seen").read_text().splitlines())
    assert seen == [["gw0", first, "A"], ["gw1", second, "B"]]
    # Both lines were given back at the end of the sessions.
    assert all(lock.read_text() == "" for lock in (tmp_path / "cache" / "locks").iterdir())
