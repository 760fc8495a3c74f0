"""Faults of Thunder, injected for real into real Thunder on the reference image: Thunder
stopped, a plugin host killed, a bundle whose rootfs lacks the host binary, a host that can't
reach the communicator; and a JSON-RPC URL where something else (or nothing) answers.

A leftover container with the plugin's id is suites/test_lifecycle.py::TC-LIFE-004.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from faults.inner import ROOT, inner_env, run_inner
from faults.leftovers import assert_nothing_left, files_containing

from pytest_thunder_container.image.build import reference_image

DEVICE = ROOT / "tests" / "unit" / "helpers" / "device.py"
# The inner session: real Thunder faults, one target, in order (see its docstring).
THUNDER_SESSION = ROOT / "tests" / "e2e" / "faults" / "thunder_session.py"
FACTOR = 0.1  # the console fallback of connect() waits 60 s x factor: keep it short


def project(tmp_path: Path, tests: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_thunder_faults.py").write_text(tests)
    return folder


@pytest.mark.e2e
@pytest.mark.parametrize("api", ["R5", "R4.4"])
def test_thunder_and_plugin_host_faults_on_the_reference_image(api: str, tmp_path: Path) -> None:
    results = tmp_path / "results"
    tests = project(tmp_path, THUNDER_SESSION.read_text())
    run = run_inner(tests, results, f"--thunder-reference-api={api}", timeout=1800)
    assert run.returncode == 0, run
    assert {o.result for o in run.outcomes().values()} == {"passed"}, run
    said = {path.stem: path.read_text() for path in (results / "said").glob("*.txt")}

    assert "Is Thunder running on the target, listening on port" in said["call-while-stopped"]
    stopped = said["connect-while-stopped"]
    assert "Thunder did not answer within 8 s over http://127.0.0.1:" in stopped
    assert "(wget on the target)" in stopped and "Is Thunder running" in stopped

    killed = said["call-after-host-killed"]
    assert "OCDM.1.drms failed" in killed and "the plugin is not active" in killed
    assert said["left-after-host-killed"].startswith("nothing left after")

    missing = said["activation-without-host"]
    assert "Thunder could not activate OCDM" in missing
    died = said.get("thunder-died-without-host")
    if api == "R5":
        assert died is None, died
        assert "ERROR_OPENING_FAILED" in missing
        assert said["after-activation-without-host"].startswith("no leaked container"), said
    elif died is not None:  # R4.4.7 may die here (THUNDER.md): said once, with its process and log
        assert "Thunder does not answer" in died
        assert "last lines of /var/log/thunder.log" in died

    held = said["activation-without-communicator"]
    assert "Thunder could not activate OCDM" in held
    assert "Thunder holds OCDM in Activation until it restarts" in held

    # Nothing lost: the deployed configs, and no QEMU, run folder or password left behind.
    assert (results / "deployed" / "OCDM-01-deployed.json").is_file()
    assert_nothing_left(results)
    password = (reference_image().login or ("", ""))[1] or ""
    assert password and not files_containing(results, password)


class NotThunder(BaseHTTPRequestHandler):
    """Something else on the port the user gave: a web page instead of JSON-RPC."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"<html><body>router login</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@contextmanager
def garbage_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotThunder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jsonrpc"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_server() -> Iterator[str]:
    """A port that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/jsonrpc"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def board_on_a_socket(tmp_path: Path) -> Iterator[str]:
    """A "board" whose console is a local sh on a pty, served on socket:// (no QEMU)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "TERM": "vt100"}
    device = subprocess.Popen(
        [sys.executable, str(DEVICE), "--endpoint", "tcp", "--", "/bin/sh", "-i"],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert device.stdout is not None
        yield f"socket://127.0.0.1:{device.stdout.readline().strip()}"
    finally:
        device.kill()
        device.wait()


@pytest.mark.parametrize(
    ("server", "says"),
    [
        (garbage_server, "not a JSON-RPC response: '<html><body>router login</body></html>'"),
        (silent_server, "no answer within 0.5 s"),
    ],
    ids=["answers-garbage", "never-answers"],
)
def test_a_jsonrpc_url_where_thunder_is_not_stops_the_run_clearly(
    server: object, says: str, tmp_path: Path
) -> None:
    tests = project(tmp_path, "def test_thunder(thunder_jsonrpc):\n    pass\n")
    with server() as url, board_on_a_socket(tmp_path) as board:  # type: ignore[operator]
        run = run_inner(
            tests,
            tmp_path / "results",
            f"--thunder-target={board}",
            f"--thunder-jsonrpc={url}",
            f"--thunder-port={closed_port()}",
            f"--thunder-timeout-factor={FACTOR}",
            env=inner_env(THUNDER_CONTAINER_CACHE=str(tmp_path / "cache")),
            timeout=120,
        )
    assert run.returncode == 3, run
    assert "Traceback" not in run.output, run
    line = run.output[run.output.index("thunder: no Thunder on target serial-socket-") :]
    assert f"Thunder did not answer within 6 s over {url} or http://127.0.0.1:" in line
    assert f"[{url}] Thunder JSON-RPC at {url}" in line and says in line
    assert "Pass the right endpoint with --thunder-jsonrpc=URL" in line
    assert run.seconds < 40, run  # connect()'s 6 s, plus pytest and the console's attach
