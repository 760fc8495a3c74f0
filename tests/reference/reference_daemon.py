"""Runs the reference Thunder daemon on the host, in a temporary tree, on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOTFS = Path(__file__).resolve().parents[2] / "images" / "reference-thunder" / "rootfs"
DAEMON = ROOTFS / "usr" / "bin" / "reference-thunder"
HOSTS = {
    "R5": ROOTFS / "usr" / "bin" / "ThunderPlugin",
    "R4.4": ROOTFS / "usr" / "bin" / "WPEProcess",
}
FAKE_RUNC = Path(__file__).with_name("fake_runc.py")
PLUGIN_HOST_PYTHON = Path("/usr/bin/python3")  # the hosts' shebang, as on the target
WAIT_S = 20.0


def wait_for(
    predicate: Callable[[], object], what: str | Callable[[], str], timeout: float = WAIT_S
) -> object:
    """The predicate's first true value; `what` (or what it returns, at the end) names the wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what() if callable(what) else what}"
    )


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def processes_with_argument(argument: str) -> list[int]:
    """Live processes whose argv contains `argument` (the tree's unique communicator path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in argv and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@dataclass
class ReferenceThunder:
    """One running daemon and the temporary tree it lives in."""

    root: Path
    api: str
    process: subprocess.Popen | None = None
    port: int = 0
    connection: http.client.HTTPConnection | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def communicator(self) -> str:
        return str(self.root / "communicator")

    @property
    def connector(self) -> str:
        return str(self.root / "ocdm")

    @property
    def log_path(self) -> Path:
        return self.root / "reference-thunder.log"

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def output(self) -> str:
        path = self.root / "stdout.txt"
        return path.read_text() if path.exists() else ""

    def post(self, body: bytes) -> tuple[int, bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT_S * 3)
        self.connection.request("POST", "/jsonrpc", body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, response.read()

    def call(self, method: str, params: object = None) -> dict:
        """The whole JSON-RPC answer ({"result": ...} or {"error": {...}})."""
        request: dict = {"jsonrpc": "2.0", "id": 7, "method": method}
        if params is not None:
            request["params"] = params
        _, body = self.post(json.dumps(request).encode())
        return json.loads(body)

    def result(self, method: str, params: object = None) -> object:
        answer = self.call(method, params)
        assert "error" not in answer, f"{method} failed: {answer}\n--- log:\n{self.log()}"
        return answer["result"]

    def state(self, callsign: str) -> str:
        method = "Controller.1.services@" if self.api == "R5" else "Controller.1.status@"
        answer = self.result(method + callsign)
        entry = answer if isinstance(answer, dict) else answer[0]
        return entry["state"]

    def wait_state(self, callsign: str, *states: str) -> str:
        return str(
            wait_for(
                lambda: self.state(callsign) in states and self.state(callsign),
                lambda: f"{callsign} in {states}\n--- log:\n{self.log()}",
            )
        )

    def hosts(self) -> list[int]:
        return processes_with_argument(self.communicator)

    def stop(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.hosts():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


class ReferenceFactory:
    """Writes a config tree and starts the daemon on it."""

    def __init__(self) -> None:
        self.started: list[ReferenceThunder] = []

    def tree(self, api: str = "R5") -> ReferenceThunder:
        # Short paths: a Unix socket path must fit in 108 bytes.
        root = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
        for name in ("plugin", "volatile", "persistent", "data", "run", "cgroup", "fake-runc"):
            (root / name).mkdir()
        thunder = ReferenceThunder(root=root, api=api)
        self.started.append(thunder)
        return thunder

    def write_config(
        self,
        thunder: ReferenceThunder,
        reference: dict | None = None,
        cmdline: str = "console=ttyAMA0\n",
    ) -> Path:
        root = thunder.root
        (root / "cmdline").write_text(cmdline)
        runc = root / "runc"
        runc.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_RUNC}" "$@"\n')
        runc.chmod(0o755)
        settings = {
            "api": thunder.api,
            "cmdline": str(root / "cmdline"),
            "hostapplication": str(HOSTS[thunder.api]),
            "runc": str(runc),
            "runtimepath": str(root / "run"),
            "cgrouproot": str(root / "cgroup"),
            "logfile": str(thunder.log_path),
            "runctimeout": 15000,
            "announcetimeout": 15000,
            "initializetimeout": 15000,
            "deinitializetimeout": 5000,
            "hostpollinterval": 50,
        }
        settings.update(reference or {})
        config = {
            "port": 0,
            "binding": "127.0.0.1",
            "communicator": f"{thunder.communicator}|0777",
            "volatilepath": str(root / "volatile"),
            "persistentpath": str(root / "persistent"),
            "datapath": str(root / "data"),
            "systempath": "/usr/lib/thunder/plugins/",
            "proxystubpath": "/usr/lib/thunder/proxystubs/",
            "configs": str(root / "plugin"),
            "softkillcheckwaittime": 2,
            "hardkillcheckwaittime": 2,
            "processcontainers": {"default": "runc"},
            "reference": settings,
        }
        path = root / "config.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def write_plugins(
        self,
        thunder: ReferenceThunder,
        mode: str | None = "Local",
        startmode: str = "Activated",
        configuration: dict | None = None,
    ) -> None:
        ocdm_configuration = configuration or {
            "connector": thunder.connector,
            "systems": [{"name": "PlayReady", "designators": ["com.microsoft.playready"]}],
            "root": {"mode": mode} if mode else {},
        }
        ocdm = {
            "callsign": "OCDM",
            "locator": "libThunderOCDM.so",
            "classname": "OCDM",
            "startmode": startmode,
            "configuration": ocdm_configuration,
        }
        containers = {
            "callsign": "Containers",
            "locator": "libThunderContainers.so",
            "classname": "Containers",
            "startmode": "Activated",
        }
        (thunder.root / "plugin" / "OCDM.json").write_text(json.dumps(ocdm))
        (thunder.root / "plugin" / "Containers.json").write_text(json.dumps(containers))

    def start(self, thunder: ReferenceThunder) -> ReferenceThunder:
        env = dict(os.environ, FAKE_RUNC_ROOT=str(thunder.root / "fake-runc"), **thunder.extra_env)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep __pycache__ out of the image's source tree
        out = (thunder.root / "stdout.txt").open("ab")
        thunder.process = subprocess.Popen(
            [sys.executable, str(DAEMON), "--config", str(thunder.root / "config.json"),
             "--pidfile", str(thunder.root / "pid")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        out.close()

        def listening() -> int:
            assert thunder.process is not None
            if thunder.process.poll() is not None:
                raise AssertionError(
                    f"daemon exited {thunder.process.returncode}:\n{thunder.output()}"
                )
            # Only a complete line counts: the log may be read while it is being written.
            found = re.search(r"JSON-RPC on http://127\.0\.0\.1:(\d+)/jsonrpc\n", thunder.log())
            return int(found.group(1)) if found else 0

        thunder.port = int(wait_for(listening, "the daemon to listen"))
        return thunder

    def launch(
        self,
        api: str = "R5",
        mode: str | None = "Local",
        startmode: str = "Activated",
        reference: dict | None = None,
        configuration: dict | None = None,
        cmdline: str = "console=ttyAMA0\n",
    ) -> ReferenceThunder:
        """A daemon with OCDM (in `mode`) and Containers; waits for start-up activation."""
        thunder = self.tree(api)
        self.write_config(thunder, reference, cmdline)
        self.write_plugins(thunder, mode, startmode, configuration)
        self.start(thunder)
        if startmode == "Activated":
            # Until the start-up thread reaches OCDM its state is still Deactivated.
            wait_for(
                lambda: (
                    "Activated plugin [OCDM]:[OCDM]" in thunder.log()
                    or "Activation of plugin [OCDM]:[OCDM], failed" in thunder.log()
                ),
                lambda: f"the start-up activation of OCDM\n--- log:\n{thunder.log()}",
            )
        return thunder

    def cleanup(self) -> None:
        for thunder in self.started:
            thunder.stop()
            shutil.rmtree(thunder.root, ignore_errors=True)
