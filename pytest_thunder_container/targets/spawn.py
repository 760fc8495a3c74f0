"""pexpect spawns over the byte streams a target's console comes on: a socket or a serial port."""

from __future__ import annotations

import contextlib
import io
import math
import select
import socket
import time
from pathlib import Path

import serial
from pexpect import EOF, TIMEOUT
from pexpect.socket_pexpect import SocketSpawn
from pexpect.spawnbase import SpawnBase

from pytest_thunder_container.errors import TargetError

# Large reads: a burst of output is taken in one system call rather than in 2000-byte slices.
_MAXREAD = 256 * 1024
# How long a read may block on a port without a descriptor: the worst overshoot of a timeout.
_NO_DESCRIPTOR_WAIT = 0.05
_CONNECT_RETRY = 0.05


def _poller(fd: int) -> select.poll:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return poller


def _wait_readable(poller: select.poll, timeout: float | None) -> bool:
    """Block until the polled descriptor has data (or a hang-up) or `timeout` seconds pass."""
    return bool(poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000))))


class SocketStream(SocketSpawn):
    """pexpect over a connected stream socket; EOF when the peer closes or resets it."""

    def __init__(self, sock: socket.socket, timeout: float = 30) -> None:
        sock.setblocking(True)
        super().__init__(sock, timeout=timeout, maxread=_MAXREAD)
        self._poller = _poller(self.child_fd)

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> bytes:
        if timeout == -1:
            timeout = self.timeout
        if not _wait_readable(self._poller, timeout):
            raise TIMEOUT(f"nothing received within {timeout} s")
        try:
            data = self.socket.recv(size)
        except OSError as exc:
            self.flag_eof = True
            raise EOF(f"socket failed: {exc}") from exc
        if not data:
            self.flag_eof = True
            raise EOF("the peer closed the socket")
        self._log(data, "read")
        return data

    def close(self) -> None:
        if self.closed:
            return
        # The peer may be gone already: a failed shutdown must not stop the close.
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        self.child_fd = -1
        self.closed = True


def has_descriptor(port: serial.SerialBase) -> bool:
    """Whether the port is a file descriptor (a tty, socket://) rather than a queue (rfc2217)."""
    return type(port).fileno is not io.RawIOBase.fileno


class SerialStream(SpawnBase):
    """pexpect over a pyserial port: a tty device, a pty, `socket://` or `rfc2217://`."""

    def __init__(self, port: serial.SerialBase, timeout: float = 30) -> None:
        super().__init__(timeout=timeout, maxread=_MAXREAD)
        self.serial = port
        self.name = f"<serial {port.portstr}>"
        self.closed = False
        self.child_fd = port.fileno() if has_descriptor(port) else -1
        self._poller = _poller(self.child_fd) if self.child_fd >= 0 else None

    def _read_available(self, size: int) -> bytes:
        try:
            if self._poller is not None:
                return self.serial.read(size)  # timeout=0: what is there, without waiting
            # No descriptor to wait on: the port's own short timeout does the waiting.
            data = self.serial.read(1)
            waiting = self.serial.in_waiting if data and size > 1 else 0
            return data + self.serial.read(min(waiting, size - 1)) if waiting else data
        except (serial.SerialException, OSError) as exc:
            self.flag_eof = True
            raise EOF(f"serial port {self.serial.portstr} failed: {exc}") from exc

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> bytes:
        if timeout == -1:
            timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            data = self._read_available(size)
            if data:
                self._log(data, "read")
                return data
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TIMEOUT(f"nothing received within {timeout} s")
            if self._poller is not None:
                _wait_readable(self._poller, remaining)

    def send(self, s: bytes | str) -> int:
        data = self._coerce_send_string(s)
        self._log(data, "send")
        self.serial.write(data)
        return len(data)

    def sendline(self, s: bytes | str = b"") -> int:
        return self.send(self._coerce_send_string(s) + self.linesep)

    def isalive(self) -> bool:
        return self.serial.is_open and not self.flag_eof

    def close(self) -> None:
        if not self.closed:
            self.serial.close()
            self.closed = True


def connect_unix_socket(path: Path, timeout: float) -> SocketStream:
    """Connect to a console served on a Unix socket, retrying until it exists and accepts."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            if time.monotonic() >= deadline:
                raise TargetError(
                    f"no console on Unix socket {path} after {timeout:.1f} s ({exc.strerror}): "
                    "check that the target was started with its serial line served on this socket"
                ) from None
            time.sleep(_CONNECT_RETRY)
        except OSError as exc:
            sock.close()
            raise TargetError(f"can't connect to the console socket {path}: {exc}") from None
        else:
            return SocketStream(sock)


def open_serial(url: str, baudrate: int = 115200) -> SerialStream:
    """Open a serial console: a device (/dev/ttyUSB0, /dev/pts/N), `rfc2217://` or `socket://`."""
    try:
        port = serial.serial_for_url(url, baudrate=baudrate, exclusive=True, do_not_open=True)
        # With a descriptor, reads never block and SerialStream waits on it; without one
        # (rfc2217's reader thread feeds a queue), a read waits a moment for the first byte.
        port.timeout = 0 if has_descriptor(port) else _NO_DESCRIPTOR_WAIT
        port.open()
    except (serial.SerialException, OSError, ValueError) as exc:
        raise TargetError(
            f"can't open the serial console {url!r}: {exc}; check the device path or host:port "
            "and that no other program holds the port"
        ) from None
    # socket:// and rfc2217:// leave Nagle on: every command would wait for the delayed ACK of
    # the last one (about 40 ms a round trip). pyserial offers no option, hence its socket.
    network = getattr(port, "_socket", None)
    if isinstance(network, socket.socket):
        network.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return SerialStream(port)
