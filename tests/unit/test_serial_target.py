"""SerialTarget against a serial-line stand-in (a pty pair, socket://): a real login and sh."""

from __future__ import annotations

import os
import platform
import shutil
import time
from pathlib import Path

import pytest
from helpers.console_targets import FAKE_LOGIN, busybox_applets, device, shell_env

from pytest_thunder_container.errors import ConsoleError, TargetError
from pytest_thunder_container.shell.console import Login
from pytest_thunder_container.targets.serial import SerialTarget
from pytest_thunder_container.targets.spawn import open_serial

PASSWORD = "s3cret-Pa55"
LOGIN = Login("root", PASSWORD)
BOARD = [*FAKE_LOGIN, "--user", "root", "--password", PASSWORD]
# Local shells answer at once: a small factor shortens the silences the console waits for.
FACTOR = 0.3


def serial_target(address: str, tmp_path: Path, **options: object) -> SerialTarget:
    defaults: dict[str, object] = {"login": LOGIN, "timeout_factor": FACTOR, "label": "board"}
    defaults.update(options)
    return SerialTarget(address, results=tmp_path / "results", **defaults)  # type: ignore[arg-type]


def port_is_free(address: str) -> bool:
    """pyserial opens with exclusive=True: a port still held by the target can't be opened."""
    try:
        open_serial(address).close()
    except TargetError:
        return False
    return True


@pytest.mark.parametrize("endpoint", ["pty", "tcp"])
def test_attach_to_a_booted_board_and_log_in(endpoint: str, tmp_path: Path) -> None:
    with device(endpoint, BOARD, shell_env(tmp_path), "--crcrlf") as (_, announced):
        address = announced if endpoint == "pty" else f"socket://127.0.0.1:{announced}"
        target = serial_target(address, tmp_path)
        with target:
            assert target.console.check("echo $LOGNAME").stdout == "root"
            facts = target.properties()
            assert target.jsonrpc_url is None
        assert facts["target"] == "board"
        assert facts["emulated"] == "false"
        assert facts["serial.port"] == address
        assert facts["serial.baud"] == "115200"
        assert facts["kernel"] == platform.release()
        assert "image" not in facts
        transcript = (tmp_path / "results" / "console-board.log").read_bytes()
        assert PASSWORD.encode() not in transcript
        assert b"Password: <password>" in transcript
        if endpoint == "pty":
            assert port_is_free(address)  # stop() let go of the line


def test_files_go_over_the_console_without_a_host_address(tmp_path: Path) -> None:
    with device("pty", BOARD, shell_env(tmp_path)) as (_, pty), serial_target(pty, tmp_path) as t:
        t.files.put(b"\x00binary\xff", str(tmp_path / "f"), mode=0o600)
        assert t.files.get(str(tmp_path / "f")) == b"\x00binary\xff"
        assert [r.method for r in t.files.history] == ["console", "console"]


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_files_go_over_http_with_a_host_address(tmp_path: Path) -> None:
    env = shell_env(tmp_path, applets=busybox_applets(tmp_path / "applets"))
    data = os.urandom(100_000)
    with (
        device("pty", BOARD, env) as (_, pty),
        serial_target(pty, tmp_path, host_address="127.0.0.1") as target,
    ):
        target.files.put(data, str(tmp_path / "f"))
        assert target.files.get(str(tmp_path / "f")) == data
        assert [r.method for r in target.files.history] == ["http", "http"]


def test_a_bad_host_address_is_refused_before_the_port_is_opened(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="--thunder-host-address=board: not an IP address"):
        serial_target("/dev/null", tmp_path, host_address="board")


def test_the_power_cycle_runs_first_and_the_boot_is_waited_for(tmp_path: Path) -> None:
    powered = tmp_path / "powered"
    # A board that stays dark until the power-cycle command has run, then boots noisily.
    board = ["/bin/sh", "-c", f'while [ ! -e {powered} ]; do sleep 0.05; done; exec "$@"', "sh"]
    board += [*BOARD, "--boot-log"]
    with device("pty", board, shell_env(tmp_path)) as (_, pty):
        target = serial_target(pty, tmp_path, power_cycle=f"echo cycling; touch {powered}")
        with target:
            assert target.console.check("echo up").stdout == "up"
            assert target.properties()["power_cycled"] == "true"
    transcript = (tmp_path / "results" / "console-board.log").read_bytes()
    assert b"Run /init as init process" in transcript  # the boot log was read, not lost
    assert "cycling" in target.power_cycle_log.read_text()


def test_nothing_is_sent_while_the_boot_loader_counts_down(tmp_path: Path) -> None:
    powered = tmp_path / "powered"
    # Dark for a moment after power-on, then a boot loader that stops on any key, as U-Boot does.
    loader = (
        f"while [ ! -e {powered} ]; do sleep 0.05; done; sleep 1; "
        'for n in 3 2 1; do echo "Hit any key to stop autoboot: $n"; '
        "if read -r -t 0.5 key; then echo 'autoboot stopped'; exec sleep 100; fi; done; "
        'exec "$@"'
    )
    board = ["bash", "-c", loader, "bash", *BOARD]
    with (
        device("pty", board, shell_env(tmp_path)) as (_, pty),
        serial_target(pty, tmp_path, power_cycle=f"touch {powered}") as target,
    ):
        assert target.console.check("echo booted").stdout == "booted"
    transcript = (tmp_path / "results" / "console-board.log").read_bytes()
    assert b"autoboot stopped" not in transcript
    assert b"Hit any key to stop autoboot: 1" in transcript


def test_a_board_silent_after_its_power_cycle_is_reported(tmp_path: Path) -> None:
    with device("pty", ["sleep", "100"], shell_env(tmp_path)) as (_, pty):
        target = serial_target(pty, tmp_path, power_cycle="true", timeout_factor=0.02)
        with pytest.raises(TargetError, match=r"said nothing within 4 s of its power cycle"):
            target.start()


def test_a_failing_power_cycle_is_a_target_error(tmp_path: Path) -> None:
    with device("pty", BOARD, shell_env(tmp_path)) as (_, pty):
        command = "echo 'PDU: outlet 3 unknown' >&2; exit 3 # token=pdu-Secret"
        target = serial_target(pty, tmp_path, power_cycle=command)
        with pytest.raises(TargetError) as failure:
            target.start()
        assert port_is_free(pty)
    message = str(failure.value)
    assert "power-cycle command (--thunder-power-cycle) for board exited with code 3" in message
    assert "PDU: outlet 3 unknown" in message
    assert "pdu-Secret" not in message  # the command line may carry credentials


def test_a_power_cycle_that_hangs_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "cycle.pid"
    with device("pty", BOARD, shell_env(tmp_path)) as (_, pty):
        target = serial_target(
            pty, tmp_path, power_cycle=f"echo $$ > {pid_file}; exec sleep 100", timeout_factor=0.02
        )
        started = time.monotonic()
        with pytest.raises(TargetError, match=r"did not finish within 1 s; it was killed"):
            target.start()
        assert time.monotonic() - started < 5
    assert not Path(f"/proc/{pid_file.read_text().strip()}").exists()


def test_a_wrong_password_is_reported_without_it(tmp_path: Path) -> None:
    with device("pty", BOARD, shell_env(tmp_path)) as (_, pty):
        target = serial_target(pty, tmp_path, login=Login("root", "wrong-Pa55"))
        with pytest.raises(ConsoleError, match="login incorrect") as failure:
            target.start()
        assert port_is_free(pty)
    assert "wrong-Pa55" not in str(failure.value)
    assert b"wrong-Pa55" not in (tmp_path / "results" / "console-board.log").read_bytes()


def test_a_program_holding_the_console_is_interrupted(tmp_path: Path) -> None:
    # A shell whose startup left `cat` in the foreground, as a stuck command would.
    rc = tmp_path / "rc"
    rc.write_text("cat\n")
    board = ["bash", "--rcfile", str(rc), "-i"]
    with device("pty", board, shell_env(tmp_path)) as (_, pty):
        target = serial_target(pty, tmp_path, login=None, timeout_factor=0.1)
        with target:
            assert target.console.check("echo free").stdout == "free"


def test_a_missing_port_is_a_target_error(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"can't open the serial console '/dev/ttyNOPE9'"):
        serial_target("/dev/ttyNOPE9", tmp_path).start()


def test_a_panicked_board_is_unhealthy_and_without_a_power_cycle_cannot_come_back(
    tmp_path: Path,
) -> None:
    with device("pty", BOARD, shell_env(tmp_path)) as (_, pty):
        target = serial_target(pty, tmp_path)
        with target:
            assert target.healthy()
            target.console.crashed = True  # what the console sets when it reads a kernel panic
            assert not target.healthy()
            with pytest.raises(TargetError, match="fix: --thunder-power-cycle=CMD"):
                target.restart()
