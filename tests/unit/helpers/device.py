"""A stand-in for a target's serial line in tests: a program on its own pty, relayed to an endpoint.

Endpoints: stdio (the caller's pty), tcp (socket://), unix (QEMU's chardev socket), pty (QEMU's
`-serial pty`: prints /dev/pts/N) and rfc2217 (a network serial server in front of such a pty).
The relay can damage the line like a real one: kernel messages between lines, `\r\r\n` line ends,
and a slow line that delivers one byte at a time.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import socket
import sys
import time
import tty
from collections.abc import Callable

import serial
from serial.rfc2217 import PortManager

KERNEL_LINE = b"[   12.345678] usb 1-1: new device\r\n"

Writer = Callable[[bytes], None]


def announce(text: str) -> None:
    print(text, flush=True)


def write_all(fd: int) -> Writer:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    return write


def listen(family: socket.AddressFamily, address: str | tuple[str, int]) -> socket.socket:
    server = socket.socket(family)
    server.bind(address)
    server.listen(1)  # before announcing: a client may connect the moment it reads the line
    return server


def accept_one(server: socket.socket) -> socket.socket:
    conn, _ = server.accept()
    server.close()
    if conn.family == socket.AF_INET:
        # As a serial server should: a short write goes out at once, not after the peer's ACK.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


class SocketWriter:
    """The `write` that rfc2217's PortManager answers the client with."""

    def __init__(self, conn: socket.socket) -> None:
        self.write = conn.sendall


def open_endpoint(args: argparse.Namespace, routes: dict[int, Writer], target: int) -> list[object]:
    """Open the endpoint and route its input to the target and the target's output to it.

    Returns the objects that must stay referenced while the relay runs.
    """
    if args.endpoint == "stdio":
        if os.isatty(0):
            tty.setraw(0)
        routes[0] = write_all(target)
        routes[target] = write_all(1)
        return []
    if args.endpoint in ("tcp", "unix"):
        if args.endpoint == "tcp":
            server = listen(socket.AF_INET, ("127.0.0.1", 0))
            announce(str(server.getsockname()[1]))
        else:
            time.sleep(args.unix_delay)
            server = listen(socket.AF_UNIX, args.unix_path)
            announce(args.unix_path)
        conn = accept_one(server)
        routes[conn.fileno()] = write_all(target)
        routes[target] = write_all(conn.fileno())
        return [conn]
    if args.endpoint == "rfc2217":
        server = listen(socket.AF_INET, ("127.0.0.1", 0))
        announce(str(server.getsockname()[1]))
        conn = accept_one(server)
        # The line settings the client negotiates need a port to live on; the data bypasses it.
        settings = serial.serial_for_url("loop://")
        manager = PortManager(settings, SocketWriter(conn))
        to_target = write_all(target)
        routes[conn.fileno()] = lambda data: to_target(b"".join(manager.filter(data)))
        routes[target] = lambda data: conn.sendall(b"".join(manager.escape(data)))
        return [conn, settings, manager]
    # Like QEMU's `-serial pty`: the caller opens the other end of a pty pair.
    line, line_slave = os.openpty()
    tty.setraw(line_slave)  # no echo or line editing between the relay and the port's user
    routes[line] = write_all(target)
    routes[target] = write_all(line)
    announce(os.ttyname(line_slave))
    return [line_slave]


def damage(data: bytes, args: argparse.Namespace) -> bytes:
    if args.crcrlf:
        data = data.replace(b"\r\n", b"\r\r\n")
    if args.kmsg:
        data = data.replace(b"\n", b"\n" + KERNEL_LINE)
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", choices=["stdio", "tcp", "unix", "pty", "rfc2217"])
    parser.add_argument("--unix-path")
    parser.add_argument("--unix-delay", type=float, default=0.0)
    parser.add_argument("--kmsg", action="store_true", help="a kernel message after every line")
    parser.add_argument("--crcrlf", action="store_true", help="lines end \\r\\r\\n")
    parser.add_argument("--slow", type=float, default=0.0, help="seconds between output bytes")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()

    pid, target = pty.fork()
    if pid == 0:
        os.execvp(args.command[0], args.command)
    routes: dict[int, Writer] = {}
    _keep_alive = open_endpoint(args, routes, target)
    out = routes[target]

    def to_endpoint(data: bytes) -> None:
        data = damage(data, args)
        if not args.slow:
            out(data)
            return
        for byte in data:
            out(bytes([byte]))
            time.sleep(args.slow)

    routes[target] = to_endpoint
    while True:
        ready, _, _ = select.select(list(routes), [], [])
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:  # the program exited or the endpoint closed: the line is gone
                sys.exit(0)
            routes[fd](data)


if __name__ == "__main__":
    main()
