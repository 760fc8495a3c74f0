"""End to end: `--thunder-target=labgrid:PLACE` on a real labgrid coordinator and exporter.

The boards are the reference rpi3 image in QEMU with their console on a pty, exported through
ser2net as labgrid users export a USB serial adapter, and switched by labgrid's simplerest power
backend (see labgrid_farm.py). The harness only knows the coordinator's address.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_thunder_container.image.build import reference_image
from tests.e2e.faults.inner import ROOT, WatchedRun, inner_env, run_inner
from tests.e2e.labgrid_farm import Board, Farm

pytestmark = pytest.mark.e2e

INNER_TIMEOUT = 900.0

# Run after two suite tests: a panic, then the next test on the board the place power-cycled.
PANIC_TESTS = """
import pytest


def test_zz_a_kernel_panic_is_seen(thunder_shell, thunder_target):
    with pytest.raises(Exception, match="panicked"):
        thunder_shell.run("echo c > /proc/sysrq-trigger", timeout=100)
    assert not thunder_target.healthy()


def test_zz_the_board_is_back_after_a_power_cycle(thunder_shell, thunder_target):
    assert thunder_target.healthy()
    uptime = float(thunder_shell.check("cut -d' ' -f1 /proc/uptime").stdout)
    assert uptime < 240, uptime
"""

# Leaves a file per place it ran on, naming the xdist worker.
ONE_BOARD_TEST = """
import os


def test_the_place_answers(thunder_target, thunder_shell):
    assert thunder_shell.check("uname -m").stdout == "aarch64"
    place = thunder_target.properties()["labgrid.place"]
    with open(os.path.join(os.environ.get("PLACES", "."), place), "w") as out:
        out.write(os.environ.get("PYTEST_XDIST_WORKER", "main"))
"""

SUITE_TESTS = (
    "pytest_thunder_container/suites/test_config.py::test_config_is_valid_against_the_oci_schema",
    "pytest_thunder_container/suites/test_capabilities.py::test_no_sys_admin_in_config",
)


def board_env() -> dict[str, str]:
    image = reference_image()
    password = (image.login or ("root", ""))[1] or ""
    return inner_env(THUNDER_PASSWORD=password)


def options(farm: Farm, target: str, *extra: str) -> tuple[str, ...]:
    return (
        f"--thunder-target=labgrid:{target}",
        f"--thunder-labgrid-coordinator={farm.address}",
        "--thunder-login-user=root",
        "--thunder-timeout-factor=2",
        *extra,
    )


@pytest.fixture
def farm_of(tmp_path: Path) -> Iterator[list[Farm]]:
    """Starts farms on demand; after the test, each stopped and checked to leave nothing."""
    farms: list[Farm] = []
    yield farms
    for farm in farms:
        farm.stop()
    time.sleep(1)
    left = [line for farm in farms for line in farm.leftovers()]
    assert not left, "left behind:\n" + "\n".join(left)


def start_farm(farms: list[Farm], folder: Path, names: list[str]) -> Farm:
    image = reference_image()
    boards: list[Board] = []
    farm = Farm(folder, boards)
    farms.append(farm)
    for name in names:
        boards.append(Board.start(name, image, folder / name))
    farm.start()
    return farm


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what} within {timeout} s"
        time.sleep(0.5)


def test_a_place_is_acquired_used_power_cycled_and_released(
    farm_of: list[Farm], tmp_path: Path
) -> None:
    farm = start_farm(farm_of, tmp_path / "farm", ["rpi3-a"])
    farm.create_place("lab-rpi3-a", farm.boards[0], "board=rpi3-solo")
    host = socket.gethostname()
    env = board_env()

    # An unknown place: a usage error listing what the coordinator has.
    wrong = run_inner(tmp_path, tmp_path / "wrong", *options(farm, "nope"), timeout=120, env=env)
    assert wrong.returncode == 4, wrong
    assert "no place 'nope'" in wrong.output and "lab-rpi3-a [board=rpi3-solo]" in wrong.output

    # A run killed with SIGKILL while it holds the place: its guard releases the place.
    killed = WatchedRun(
        ROOT, tmp_path / "killed", *options(farm, "lab-rpi3-a"), *SUITE_TESTS, env=env
    )
    killed.wait_for(lambda: farm.holder("lab-rpi3-a") is not None, 120, "the place acquired", 1.0)
    assert farm.holder("lab-rpi3-a") == f"{host}/root-thunder-main-{killed.pid}"
    os.kill(killed.pid, signal.SIGKILL)
    killed.finish(30)
    wait_until(lambda: farm.holder("lab-rpi3-a") is None, 30, "the killed run's place released")

    # Ctrl-C while the run holds the place: released by the time pytest has exited.
    interrupted = WatchedRun(
        ROOT, tmp_path / "interrupted", *options(farm, "lab-rpi3-a"), *SUITE_TESTS, env=env
    )
    interrupted.wait_for(lambda: farm.holder("lab-rpi3-a") is not None, 120, "acquired", 1.0)
    interrupted.interrupt()
    stopped = interrupted.finish(60)
    assert stopped.returncode == 2 and "KeyboardInterrupt" in stopped.output, stopped
    assert farm.holder("lab-rpi3-a") is None

    # The run: two suite tests and a kernel panic, the board switched on through the place.
    (tmp_path / "test_zz_panic.py").write_text(PANIC_TESTS)
    results = tmp_path / "results"
    run = WatchedRun(
        ROOT,
        results,
        *options(farm, "lab-rpi3-a", "--thunder-power-cycle=labgrid"),
        f"--alluredir={tmp_path / 'allure'}",
        *SUITE_TESTS,
        str(tmp_path / "test_zz_panic.py"),
        env=env,
    )
    run.wait_for(lambda: farm.holder("lab-rpi3-a") is not None, 120, "the place acquired", 1.0)
    holder = f"{host}/root-thunder-main-{run.pid}"
    assert farm.holder("lab-rpi3-a") == holder
    assert f"root-thunder-main-{run.pid}" in farm.client("who").stdout

    # Meanwhile a second run waits for the place, then fails naming the holder.
    solo = tmp_path / "solo"
    solo.mkdir()
    (solo / "test_one.py").write_text(ONE_BOARD_TEST)
    started = time.monotonic()
    second = run_inner(
        solo,
        tmp_path / "second",
        *options(farm, "board=rpi3-solo", "--thunder-pool-wait=4"),
        timeout=180,
        env=env,
    )
    assert second.returncode == 3, second
    assert f"lab-rpi3-a acquired by {holder}" in second.output, second
    assert "waiting up to 8 s" in second.output and time.monotonic() - started >= 8

    done = run.finish(INNER_TIMEOUT)
    assert done.returncode == 0, done
    outcomes = done.outcomes()
    assert [o.result for o in outcomes.values()] == ["passed"] * 4, outcomes
    assert farm.holder("lab-rpi3-a") is None, "released at the end of the run"
    assert (0, "0") in farm.switch.calls and (0, "1") in farm.switch.calls  # type: ignore[union-attr]
    assert farm.switch.calls.count((0, "1")) >= 2  # type: ignore[union-attr]  # start + panic

    # The evidence: the place, its exporter and tags with the target's facts.
    report = json.loads((results / "thunder-report.json").read_text())
    [target] = report["targets"]
    facts = target["facts"]
    assert facts["labgrid.place"] == "lab-rpi3-a"
    assert facts["labgrid.exporter"] == "farm" and facts["labgrid.tags"] == "board=rpi3-solo"
    assert facts["serial.port"].startswith("rfc2217://127.0.0.1:")
    environment = (tmp_path / "allure" / "environment.properties").read_text()
    assert "labgrid.place=lab-rpi3-a" in environment and "labgrid.exporter=farm" in environment
    assert facts["console.transcript"] == str(results / "console-labgrid-lab-rpi3-a.log")
    transcript = (results / "console-labgrid-lab-rpi3-a.log").read_bytes()
    assert b"sysrq triggered crash" in transcript and transcript.count(b"Linux version") >= 2


def test_two_workers_take_two_places(farm_of: list[Farm], tmp_path: Path) -> None:
    farm = start_farm(farm_of, tmp_path / "farm", ["rpi3-x", "rpi3-y"])
    for board in farm.boards:
        farm.create_place(f"lab-{board.name}", board, "board=rpi3-pair")
    (tmp_path / "test_one.py").write_text(ONE_BOARD_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    results = tmp_path / "results"
    argv = [
        *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-n", "2"),
        *("--dist", "each", f"--thunder-results={results}"),
        *options(farm, "board=rpi3-pair", "--thunder-power-cycle=labgrid"),
    ]
    places = tmp_path / "places"
    places.mkdir()
    env = {**board_env(), "PLACES": str(places)}
    done = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=INNER_TIMEOUT
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout
    ran = {path.name: path.read_text() for path in places.iterdir()}
    assert sorted(ran) == ["lab-rpi3-x", "lab-rpi3-y"], ran
    assert sorted(ran.values()) == ["gw0", "gw1"], ran
    for board in farm.boards:
        assert farm.holder(f"lab-{board.name}") is None
