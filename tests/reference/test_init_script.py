"""/etc/init.d/S50thunder run with the host's sh: background start, silent, clean stop."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from reference_daemon import DAEMON, ROOTFS, ReferenceFactory, process_alive, wait_for

SCRIPT = ROOTFS / "etc" / "init.d" / "S50thunder"


def run_script(action: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(SCRIPT), action], env=env, capture_output=True, timeout=90,
                          stdin=subprocess.DEVNULL, check=False)  # fmt: skip


def test_start_runs_the_daemon_in_the_background_and_stop_removes_everything(
    reference: ReferenceFactory,
) -> None:
    thunder = reference.tree("R5")
    config = reference.write_config(thunder)
    reference.write_plugins(thunder)
    pidfile = thunder.root / "reference-thunder.pid"
    env = dict(os.environ, THUNDER_DAEMON=str(DAEMON), THUNDER_CONFIG=str(config),
               THUNDER_PIDFILE=str(pidfile), THUNDER_LOG=str(thunder.log_path),
               PYTHONDONTWRITEBYTECODE="1")  # fmt: skip
    started = run_script("start", env)
    assert (started.returncode, started.stdout, started.stderr) == (0, b"", b"")
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the pidfile"))
    wait_for(lambda: "Activated plugin [OCDM]:[OCDM]" in thunder.log(), "OCDM to be activated")
    assert run_script("status", env).returncode == 0
    assert run_script("start", env).returncode == 0  # already running: nothing happens
    assert len(thunder.hosts()) == 1
    stopped = run_script("stop", env)
    assert (stopped.returncode, stopped.stdout, stopped.stderr) == (0, b"", b"")
    assert not process_alive(pid)
    assert not pidfile.exists()
    assert thunder.hosts() == []
    assert not Path(thunder.communicator).exists()
    assert "reference Thunder stopped" in thunder.log()
    assert run_script("status", env).returncode != 0
