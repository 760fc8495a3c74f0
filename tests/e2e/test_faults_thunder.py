"""Faults of Thunder, injected for real: Thunder stopped on the target, a JSON-RPC URL where
something else (or nothing) answers, a plugin host that never announces itself or that crashes.

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
FACTOR = 0.1  # the console fallback of connect() waits 60 s x factor: keep it short

# One inner session on one target, in this order; each test puts back what it changed. What a
# user would read is written to <results>/said/<name>.txt for the outer test to check.
THUNDER_FAULT_TESTS = r"""
import time

import pytest

from pytest_thunder_container.errors import DeployError
from pytest_thunder_container.conformance.leftovers import leftovers
from pytest_thunder_container.conformance.observe import find_plugin_hosts
from pytest_thunder_container.targets.base import TargetShell
from pytest_thunder_container.thunder.client import ThunderError, ThunderUnreachable, connect

CALLSIGN = "OCDM"
CONFIG = "/etc/Thunder/config.json"
SERVICE = "/etc/init.d/S50thunder"
ANNOUNCE_MS = 5000
SLEEPING_HOST = b"#!/bin/sh\n# never announces itself to Thunder\nexec sleep 1000\n"


def said(results, name, text):
    (results / "said").mkdir(exist_ok=True)
    (results / "said" / f"{name}.txt").write_text(text)


def restart_thunder(shell, thunder):
    shell.check(f"{SERVICE} restart", timeout=120)
    thunder.wait_for_state(CALLSIGN, "Activated", 120)


def test_thunder_stopped_is_reported_within_the_timeouts(
    thunder_jsonrpc, thunder_target, thunder_shell, thunder_results
):
    thunder_jsonrpc.wait_for_state(CALLSIGN, "Activated", 120)
    thunder_shell.check(f"{SERVICE} stop", timeout=120)
    try:
        started = time.monotonic()
        with pytest.raises(ThunderUnreachable) as call:
            thunder_jsonrpc.call("Controller.1.subsystems", timeout=5)
        assert time.monotonic() - started < 10
        said(thunder_results, "call-while-stopped", str(call.value))
        started = time.monotonic()
        with pytest.raises(ThunderUnreachable) as connecting:
            url, shell = thunder_target.jsonrpc_url, TargetShell(thunder_target)
            connect(url, shell, wait=8, network_grace=2)
        # Its wait, plus at most one call (5 s) over each way, plus the console's margin.
        assert time.monotonic() - started < 8 + 5 + 5 + 5
        said(thunder_results, "connect-while-stopped", str(connecting.value))
    finally:
        thunder_shell.check(f"{SERVICE} start")
    thunder_jsonrpc.wait_for_state(CALLSIGN, "Activated", 120)


def test_a_host_that_crashes_is_seen_and_a_reactivation_works(
    thunder_deployment, thunder_jsonrpc, thunder_shell, thunder_results
):
    thunder_deployment.use_container()
    hosts = find_plugin_hosts(thunder_shell, CALLSIGN)
    assert len(hosts) == 1, hosts
    thunder_shell.check(f"kill -9 {hosts[0].pid}")
    thunder_jsonrpc.wait_for_state(CALLSIGN, "Deactivated", 60)
    with pytest.raises(ThunderError) as call:
        thunder_jsonrpc.call(f"{CALLSIGN}.1.drms")
    said(thunder_results, "call-after-host-crash", str(call.value))
    assert call.value.core_code == 2  # ERROR_UNAVAILABLE: the plugin is not active
    thunder_deployment.activate()
    assert thunder_jsonrpc.call(f"{CALLSIGN}.1.drms")[0]["name"] == "PlayReady"
    assert len(find_plugin_hosts(thunder_shell, CALLSIGN)) == 1


def test_a_host_that_never_announces_fails_its_activation_clearly(
    thunder_deployment, thunder_jsonrpc, thunder_shell, thunder_results
):
    host = f"{thunder_deployment.bundle}/rootfs/usr/bin/ThunderPlugin"
    thunder_deployment.deactivate()
    thunder_shell.check(
        f"cp {CONFIG} {CONFIG}.tc-faults && "
        f"sed -i 's/\"announcetimeout\": *[0-9]*/\"announcetimeout\": {ANNOUNCE_MS}/' {CONFIG} && "
        f"grep -q '\"announcetimeout\": {ANNOUNCE_MS}' {CONFIG} && mv {host} {host}.tc-faults"
    )
    thunder_shell.put(SLEEPING_HOST, host, mode=0o755)
    try:
        restart_thunder(thunder_shell, thunder_jsonrpc)
        started = time.monotonic()
        with pytest.raises(DeployError) as failure:
            thunder_deployment.use_container()
        took = time.monotonic() - started
        message = f"{failure.value}\n(after {took:.0f} s)"
        said(thunder_results, "activation-never-announced", message)
        assert took < 60  # the plugin's announce timeout ended it, not the harness's 120 s
        assert thunder_jsonrpc.state(CALLSIGN) == "Deactivated"
        deadline = time.monotonic() + 30
        while leftovers(thunder_shell, CALLSIGN) and time.monotonic() < deadline:
            time.sleep(1)
        assert not leftovers(thunder_shell, CALLSIGN), leftovers(thunder_shell, CALLSIGN).describe()
    finally:
        thunder_shell.check(f"mv {host}.tc-faults {host} && mv {CONFIG}.tc-faults {CONFIG}")
        restart_thunder(thunder_shell, thunder_jsonrpc)
    thunder_deployment.use_container()
    assert thunder_jsonrpc.call(f"{CALLSIGN}.1.drms")[0]["name"] == "PlayReady"
"""


def project(tmp_path: Path, tests: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_thunder_faults.py").write_text(tests)
    return folder


@pytest.mark.e2e
def test_thunder_and_plugin_host_faults_on_the_reference_image(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run = run_inner(project(tmp_path, THUNDER_FAULT_TESTS), results, timeout=900)
    assert run.returncode == 0, run
    assert {o.result for o in run.outcomes().values()} == {"passed"}, run
    said = {path.stem: path.read_text() for path in (results / "said").glob("*.txt")}

    assert "Is Thunder running on the target, listening on port" in said["call-while-stopped"]
    stopped = said["connect-while-stopped"]
    assert "Thunder did not answer within 8 s over http://127.0.0.1:" in stopped
    assert "(wget on the target)" in stopped and "Is Thunder running" in stopped

    crashed = said["call-after-host-crash"]
    assert "OCDM.1.drms failed" in crashed and "the plugin is not active" in crashed

    never = said["activation-never-announced"]
    assert "Thunder could not activate OCDM" in never and "ERROR_OPENING_FAILED" in never

    # Nothing lost: the deployed config.json, and a transcript that shows the restore at the end.
    assert (results / "deployed" / "OCDM-01-deployed.json").is_file()
    transcript = (results / "console-rpi3.log").read_bytes()
    assert b"exec sleep 1000" not in transcript  # the sleeping host went as a file, not a line
    # The reference image has no /usr/share: the deployment made it, and removes it at the end.
    assert transcript.rindex(b"{ :; rm -rf /usr/share\n") > transcript.rindex(b"S50thunder restart")
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
