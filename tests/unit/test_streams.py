"""The stream adapters against real endpoints: a pty like QEMU's `-serial pty`, a TCP socket
(`socket://`), an RFC 2217 serial server and a Unix socket like QEMU's chardev."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect
import pytest
from helpers.console_targets import device, make_console, shell_env
from pexpect.spawnbase import SpawnBase

from pytest_thunder_container.errors import ConsoleError, TargetError
from pytest_thunder_container.shell.console import Console
from pytest_thunder_container.targets.spawn import connect_unix_socket, open_serial

# pyserial's rfc2217 client still calls Thread.setDaemon().
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217")

SHELL = ["/bin/sh", "-i"]
SEQ_5000 = "\n".join(str(n) for n in range(1, 5001))

Opener = Callable[[str, Path], SpawnBase]

ENDPOINTS: dict[str, Opener] = {
    "pty": lambda announced, _: open_serial(announced),
    "tcp": lambda announced, _: open_serial(f"socket://127.0.0.1:{announced}"),
    "rfc2217": lambda announced, _: open_serial(f"rfc2217://127.0.0.1:{announced}"),
    "unix": lambda _, path: connect_unix_socket(path, timeout=10),
}


@contextmanager
def console_over(endpoint: str, tmp_path: Path) -> Iterator[tuple[Console, object]]:
    socket_path = tmp_path / "console.sock"
    options = ("--unix-path", str(socket_path)) if endpoint == "unix" else ()
    with device(endpoint, SHELL, shell_env(tmp_path), *options, announce=endpoint != "unix") as (
        proc,
        announced,
    ):
        # pyserial flushes input on open, so the first prompt may be gone: attach then waits for
        # silence before it sends a newline; a small factor keeps that wait short.
        stream = ENDPOINTS[endpoint](announced, socket_path)
        session = make_console(stream, tmp_path, timeout_factor=0.3)
        try:
            session.attach(timeout=10)
            yield session, proc
        finally:
            session.close()


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_a_shell_session_over_the_stream(endpoint: str, tmp_path: Path) -> None:
    with console_over(endpoint, tmp_path) as (session, _):
        result = session.run("echo over; (exit 7)")
        assert (result.stdout, result.returncode) == ("over", 7)
        assert session.run("seq 1 5000").stdout == SEQ_5000
        data = bytes(range(256)) * 64
        session.put(data, str(tmp_path / "f.bin"))
        assert session.get(str(tmp_path / "f.bin")) == data
        with pytest.raises(ConsoleError, match="did not finish"):
            session.run("sleep 100", timeout=1)
        assert session.run("echo recovered").stdout == "recovered"
    # What came over the stream reached the transcript (the Console wires logfile_read).
    assert re.search(rb"\nover\r*\n", session.transcript_path.read_bytes())


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_the_end_of_the_stream_is_reported_at_once(endpoint: str, tmp_path: Path) -> None:
    with console_over(endpoint, tmp_path) as (session, proc):
        assert proc.poll() is None
        # The peer goes away in the middle of a command: the error comes without the timeout.
        threading.Timer(0.3, proc.kill).start()
        started = time.monotonic()
        with pytest.raises(ConsoleError, match="stream ended") as failure:
            session.run("sleep 30", timeout=20)
        assert time.monotonic() - started < 5
        assert str(session.transcript_path) in str(failure.value)


def test_the_unix_socket_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "late.sock"
    env = shell_env(tmp_path)
    options = ("--unix-path", str(path), "--unix-delay", "0.5")
    with device("unix", SHELL, env, *options, announce=False):
        started = time.monotonic()
        stream = connect_unix_socket(path, timeout=10)
        assert time.monotonic() - started >= 0.4
        stream.send(b"echo 'late''-ok'\n")
        stream.expect_exact(b"late-ok", timeout=10)
        stream.close()


def test_a_missing_unix_socket_is_a_target_error(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"no console on Unix socket .*missing\.sock"):
        connect_unix_socket(tmp_path / "missing.sock", timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2


@pytest.mark.parametrize("url", ["/dev/no-such-tty", "socket://127.0.0.1:1", "nosuch://x"])
def test_a_serial_port_that_cannot_be_opened_is_a_target_error(url: str) -> None:
    with pytest.raises(TargetError, match="can't open the serial console"):
        open_serial(url)


def test_a_port_without_a_descriptor_is_polled() -> None:
    # loop:// echoes what is written and, like rfc2217, has no file descriptor.
    stream = open_serial("loop://")
    assert stream.child_fd == -1
    started = time.monotonic()
    with pytest.raises(pexpect.TIMEOUT):
        stream.read_nonblocking(100, timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 1
    stream.send(b"ping")
    assert stream.expect_exact([b"ping"], timeout=2) == 0
    stream.close()
    assert not stream.isalive()
