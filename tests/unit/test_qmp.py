"""QMP connection to a real QEMU whose socket is bound but not listening yet (a loaded host)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pytest_thunder_container.errors import TargetError
from pytest_thunder_container.targets.qmp import Qmp

QEMU = shutil.which("qemu-system-aarch64")
pytestmark = pytest.mark.skipif(QEMU is None, reason="qemu-system-aarch64 not installed")


def test_connect_waits_while_the_socket_refuses(tmp_path: Path) -> None:
    path = tmp_path / "qmp.sock"
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(str(path))  # bound, not listening: connect() is refused, as in QEMU's start
    started: list[subprocess.Popen[bytes]] = []

    def start_qemu() -> None:
        time.sleep(0.5)
        bound.close()
        path.unlink()
        assert QEMU is not None
        argv = [
            QEMU,
            "-M",
            "none",
            "-display",
            "none",
            "-S",
            "-qmp",
            f"unix:{path},server=on,wait=off",
        ]
        started.append(subprocess.Popen(argv))

    later = threading.Thread(target=start_qemu)
    later.start()
    qmp = Qmp("test")
    try:
        qmp.connect(path, timeout=20)
        assert "running" in qmp.execute("query-status")
    finally:
        qmp.close()
        later.join()
        for process in started:
            process.kill()
            process.wait()


def test_connect_gives_up_at_its_timeout_naming_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "qmp.sock"
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(str(path))
    qmp = Qmp("test")
    began = time.monotonic()
    try:
        with pytest.raises(TargetError, match=f"connect to {path}"):
            qmp.connect(path, timeout=0.5)
    finally:
        qmp.close()
        bound.close()
    assert time.monotonic() - began < 5
