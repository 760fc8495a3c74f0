"""A labgrid board farm on 127.0.0.1 for the end-to-end tests, made of real parts.

- labgrid-coordinator and labgrid-exporter (their own state folders, free ports).
- Boards: the reference rpi3 image in QEMU, switched off (paused) at first, console on a pty,
  exported as a RawSerialPort (the exporter serves it through ser2net's RFC 2217 on acquire).
- A power switch for labgrid's simplerest backend: an HTTP endpoint per board index. Off pauses
  the board's QEMU; on resets it and lets it run, so the machine boots again from its kernel as a
  board does when its power comes back (QEMU's system_reset keeps the pty the exporter serves).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pytest_thunder_container.image.model import Image
from pytest_thunder_container.targets.qemu_process import MACHINES, QemuProcess, qemu_binary

EXPORTER = "farm"


def qmp(path: Path, *commands: str) -> list[Any]:
    """Run QMP commands on a fresh connection; their return values."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(20)
        conn.connect(str(path))
        replies = conn.makefile("r")
        replies.readline()  # the greeting
        answers = []
        for command in ("qmp_capabilities", *commands):
            conn.sendall(json.dumps({"execute": command}).encode() + b"\n")
            reply: dict[str, Any] = {"event": ""}
            while "event" in reply:  # events (STOP, RESET, RESUME) may come first
                reply = json.loads(replies.readline())
            assert "return" in reply, reply
            answers.append(reply["return"])
        return answers[1:]


@dataclass
class Board:
    """One switched-off board: a paused QEMU whose console is a pty."""

    name: str
    process: QemuProcess
    pty: str
    switch: Path  # the QMP socket the power switch uses
    fd: int  # the pty held open: QEMU drops what it writes to a pty nobody holds

    @classmethod
    def start(cls, name: str, image: Image, folder: Path) -> Board:
        assert image.dtb is not None
        folder.mkdir(parents=True)
        monitor, switch = folder / "qmp.sock", folder / "power.sock"
        argv = [
            *(qemu_binary(), *MACHINES["rpi3"].args, "-nodefaults", "-display", "none"),
            *("-monitor", "none", "-S", "-kernel", str(image.kernel)),
            *("-initrd", str(image.initrd), "-dtb", str(image.dtb), "-append", image.append),
            *("-serial", "pty", "-qmp", f"unix:{monitor},server=on,wait=off"),
            *("-qmp", f"unix:{switch},server=on,wait=off"),
        ]
        process = QemuProcess(argv, folder / "qemu.log")
        try:
            deadline = time.monotonic() + 20
            while not monitor.exists():
                assert process.exited() is None, process.log_tail()
                assert time.monotonic() < deadline, "QEMU made no QMP socket"
                time.sleep(0.05)
            [chardevs] = qmp(monitor, "query-chardev")
            pty = next(c["filename"] for c in chardevs if c["label"] == "serial0")
            pty = pty.removeprefix("pty:")
            fd = os.open(pty, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(fd)
        except BaseException:
            process.kill()
            raise
        return cls(name, process, pty, switch, fd)

    def power(self, on: bool) -> None:
        qmp(self.switch, *(("system_reset", "cont") if on else ("stop",)))

    def powered(self) -> bool:
        [status] = qmp(self.switch, "query-status")
        return bool(status["running"])

    def stop(self) -> None:
        self.process.kill()
        with contextlib.suppress(OSError):
            os.close(self.fd)


class PowerSwitch:
    """GET /power/<index>/<0|1> switches board <index>; GET /power/<index> says 1 or 0."""

    def __init__(self, boards: list[Board]) -> None:
        self.boards = boards
        self.calls: list[tuple[int, str]] = []
        switch = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                match = re.fullmatch(r"/power/(\d+)(?:/([01]))?", self.path)
                if match is None or int(match.group(1)) >= len(switch.boards):
                    self.send_error(404)
                    return
                board, value = switch.boards[int(match.group(1))], match.group(2)
                switch.calls.append((int(match.group(1)), value or "get"))
                if value is not None:
                    board.power(value == "1")
                body = (value or ("1" if board.powered() else "0")).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/power/{{index}}/{{value}}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def exporter_yaml(boards: list[Board], power_url: str) -> str:
    """The exporter's configuration: one group per board, as the README shows it."""
    lines = []
    for index, board in enumerate(boards):
        lines += [
            f"{board.name}:",
            "  RawSerialPort:",
            f"    port: {board.pty}",
            "    speed: 115200",
            "  NetworkPowerPort:",
            "    model: simplerest",
            f"    host: '{power_url}'",
            f"    index: {index}",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Farm:
    """A running coordinator and exporter serving `boards`; stop() leaves nothing behind."""

    folder: Path
    boards: list[Board]
    address: str = ""
    coordinator: subprocess.Popen[bytes] | None = None
    exporter: subprocess.Popen[bytes] | None = None
    switch: PowerSwitch | None = None
    pids: list[int] = field(default_factory=list)

    def start(self) -> None:
        state = self.folder / "coordinator"
        state.mkdir(parents=True)
        log = open(self.folder / "coordinator.log", "wb")  # noqa: SIM115 - kept by the process
        self.coordinator = subprocess.Popen(
            [sys.executable, "-m", "labgrid.remote.coordinator", "-l", "127.0.0.1:0"],
            cwd=state,  # places.yaml and resources.yaml go here
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
        assert self.coordinator.stdout is not None
        said = self.coordinator.stdout.readline().decode()
        match = re.search(r"listening on (\S+:\d+)", said)
        assert match, f"coordinator said {said!r}"
        self.address = match.group(1)
        self.switch = PowerSwitch(self.boards)
        config = self.folder / "exporter.yaml"
        config.write_text(exporter_yaml(self.boards, self.switch.url))
        exporter_dir = self.folder / "exporter"
        exporter_dir.mkdir()
        with open(self.folder / "exporter.log", "wb") as sink:
            self.exporter = subprocess.Popen(
                [
                    *(sys.executable, "-m", "labgrid.remote.exporter", "-c", self.address),
                    *("-n", EXPORTER, "--hostname", "127.0.0.1", str(config)),
                ],
                cwd=exporter_dir,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # ser2net, its child, is in its process group
            )
        wanted = {f"{EXPORTER}/{b.name}/NetworkSerialPort" for b in self.boards}
        deadline = time.monotonic() + 60
        while not wanted <= set(self.client("resources").stdout.split()):
            assert self.exporter.poll() is None, (self.folder / "exporter.log").read_text()
            assert time.monotonic() < deadline, "the exporter's resources never showed"
            time.sleep(0.5)

    def client(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LG_USERNAME": "farm-admin"}
        return subprocess.run(
            [sys.executable, "-m", "labgrid.remote.client", "-x", self.address, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=check,
        )

    def create_place(self, name: str, board: Board, tags: str) -> None:
        self.client("-p", name, "create", check=True)
        self.client("-p", name, "add-match", f"{EXPORTER}/{board.name}/*", check=True)
        self.client("-p", name, "set-tags", tags, check=True)

    def holder(self, place: str) -> str | None:
        """Who `labgrid-client show` says holds the place (None: nobody)."""
        shown = self.client("-p", place, "show", check=True).stdout
        match = re.search(r"^\s*acquired: (\S+)$", shown, re.MULTILINE)
        assert match, shown
        return None if match.group(1) == "None" else match.group(1)

    def stop(self) -> None:
        for process in (self.exporter, self.coordinator):
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.exporter is not None:
            # ser2net instances the exporter started are in its process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.exporter.pid, signal.SIGKILL)
        if self.switch is not None:
            self.switch.close()
        for board in self.boards:
            board.stop()

    def leftovers(self) -> list[str]:
        """Processes of this farm still running: coordinator, exporter, ser2net, QEMU, guards."""
        left = []
        marks = [self.address, *(b.pty for b in self.boards), *(str(b.switch) for b in self.boards)]
        if self.coordinator is not None and self.coordinator.poll() is None:
            left.append(f"{self.coordinator.pid}: the coordinator")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and any(mark and mark in argv for mark in marks):
                left.append(f"{entry.name}: {argv}")
        return left
