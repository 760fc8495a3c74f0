"""ConsoleTransport: busybox wget run by the host's real sh against a local replayed Thunder."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from thunder_payloads import OCDM_CONFIGURATION, R4_4, R5, ReplayThunder

from pytest_thunder_container.errors import ConsoleError, ThunderContainerError
from pytest_thunder_container.shell.protocol import CommandResult
from pytest_thunder_container.thunder.client import (
    ConsoleTransport,
    ThunderClient,
    ThunderError,
    ThunderUnreachable,
)

BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(
    BUSYBOX is None, reason="busybox is not installed on this host (apt-get install busybox)"
)


class LocalShell:
    """The Shell protocol on the host: `sh -c`, stdout and stderr merged as on a console."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.commands: list[str] = []
        self.files: dict[str, bytes] = {}

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        self.commands.append(cmd)
        started = time.monotonic()
        process = subprocess.Popen(
            ["/bin/sh", "-c", cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={"PATH": self.path, "LC_ALL": "C"},
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise ConsoleError(f"{cmd!r} gave no prompt within {timeout} s") from exc
        return CommandResult(
            cmd, process.returncode, output.decode("utf-8", "replace"), time.monotonic() - started
        )

    def check(self, cmd: str, timeout: float | None = None) -> CommandResult:
        return self.run(cmd, timeout)

    def put(self, data: bytes, path: str, mode: int | None = None) -> None:
        self.files[path] = data
        Path(path).write_bytes(data)

    def get(self, path: str) -> bytes:
        return Path(path).read_bytes()


@pytest.fixture
def wget_dir(tmp_path: Path) -> Path:
    """A directory where `wget` is busybox's, as on the target (GNU wget is not the target's)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    assert BUSYBOX is not None
    (bin_dir / "wget").symlink_to(BUSYBOX)
    return bin_dir


@pytest.fixture
def shell(wget_dir: Path) -> LocalShell:
    return LocalShell(f"{wget_dir}:/usr/bin:/bin")


@pytest.fixture(params=[R4_4, R5])
def thunder(request: pytest.FixtureRequest) -> Iterator[ReplayThunder]:
    replay = ReplayThunder(request.param)
    yield replay
    replay.close()


def client_for(shell: LocalShell, port: int, timeout: float = 5.0) -> ThunderClient:
    return ThunderClient(ConsoleTransport(shell, port=port), timeout=timeout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_client_works_through_wget(thunder: ReplayThunder, shell: LocalShell) -> None:
    client = client_for(shell, thunder.port)
    assert client.dialect == thunder.dialect
    client.activate("OCDM")
    assert client.status("OCDM")["state"] == "Activated"
    assert client.configuration("OCDM") == OCDM_CONFIGURATION
    assert all(command.startswith("(wget -q -O - ") for command in shell.commands)


def test_errors_keep_their_codes_through_wget(thunder: ReplayThunder, shell: LocalShell) -> None:
    with pytest.raises(ThunderError) as caught:
        client_for(shell, thunder.port).call("OCDM.1.drms")
    expected = -31002 if thunder.dialect == R5 else 2
    assert (caught.value.code, caught.value.core_code) == (expected, 2)


HOSTILE = [
    "'; touch {p}; '",
    "$(touch {p})",
    "`touch {p}`",
    "\ntouch {p}\n",
    '"; touch {p}; "',
    "x' \"$(touch {p})\" '",
    "\\'; touch {p}; #",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_callsigns_reach_thunder_verbatim_and_run_nothing(
    thunder: ReplayThunder, shell: LocalShell, tmp_path: Path, template: str
) -> None:
    pwned = tmp_path / "pwned"
    callsign = template.format(p=pwned)
    with pytest.raises(ThunderError) as caught:
        client_for(shell, thunder.port).activate(callsign)
    assert caught.value.core_code == 22
    assert thunder.requests[-1]["params"] == {"callsign": callsign}
    assert not pwned.exists()


def test_hostile_values_in_a_large_body_run_nothing(
    thunder: ReplayThunder, shell: LocalShell, tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned"
    configuration = {
        "connector": f"'; touch {pwned}; '",
        "note": f"$(touch {pwned}) `touch {pwned}`\n" * 200,
    }
    client = client_for(shell, thunder.port)
    client.set_configuration("OCDM", configuration)
    assert thunder.configurations["OCDM"] == configuration
    assert not pwned.exists()
    # Too long for one console line: it went through a file, removed afterwards.
    assert len(shell.files) == 1
    assert not any(Path(path).exists() for path in shell.files)
    assert max(len(command) for command in shell.commands) < 2000


def test_a_body_that_quoting_makes_long_goes_through_a_file(
    thunder: ReplayThunder, shell: LocalShell
) -> None:
    configuration = {"note": "'" * 400}  # 400 quotes: 417 bytes of JSON, 2000 once shell-quoted
    client_for(shell, thunder.port).set_configuration("OCDM", configuration)
    assert thunder.configurations["OCDM"] == configuration
    assert len(shell.files) == 1
    assert max(len(command) for command in shell.commands) < 2000


def test_http_500_is_unreachable_with_wgets_message(
    thunder: ReplayThunder, shell: LocalShell
) -> None:
    thunder.override = lambda request: (500, b"<h1>boom</h1>")
    with pytest.raises(ThunderUnreachable, match=r"server returned error: HTTP/1.1 500"):
        client_for(shell, thunder.port).call("Controller.1.links")


def test_http_202_that_old_busybox_hides_is_a_thunder_error() -> None:
    """Busybox before 1.26 treats 202 (R4.4's JSON-RPC error status) as a failure."""

    class OldWgetShell(LocalShell):
        def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
            return CommandResult(cmd, 1, "wget: server returned error: HTTP/1.1 202 Accepted\n")

    with pytest.raises(ThunderError) as caught:
        client_for(OldWgetShell("/bin"), 80).call("OCDM.1.drms")
    assert (caught.value.code, caught.value.core_code) == (0, None)
    assert "HTTP 202" in str(caught.value)


def test_connection_refused_is_unreachable(shell: LocalShell) -> None:
    port = free_port()
    with pytest.raises(ThunderUnreachable) as caught:
        client_for(shell, port).call("Controller.1.links")
    message = str(caught.value)
    assert "can't connect to remote host (127.0.0.1): Connection refused" in message
    assert f"127.0.0.1:{port}" in message and "Is Thunder running" in message


def test_a_target_without_wget_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ThunderUnreachable, match="no wget"):
        client_for(LocalShell(str(empty)), 80).call("Controller.1.links")


def test_a_hanging_thunder_is_unreachable_when_the_console_times_out(
    thunder: ReplayThunder, shell: LocalShell
) -> None:
    thunder.hang = True
    started = time.monotonic()
    with pytest.raises(ThunderUnreachable, match="console command failed"):
        client_for(shell, thunder.port, timeout=0.2).call("Controller.1.links")
    assert time.monotonic() - started < 5.0


def test_a_bad_endpoint_is_refused(shell: LocalShell) -> None:
    with pytest.raises(ThunderContainerError, match="port 1-65535"):
        ConsoleTransport(shell, port=0)
    with pytest.raises(ThunderContainerError, match="starting with '/'"):
        ConsoleTransport(shell, path="jsonrpc")
