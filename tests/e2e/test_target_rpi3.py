"""End to end on the emulated Raspberry Pi 3: the booted target and its shell."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pytest_thunder_container.conformance.static_rules import lint_config
from pytest_thunder_container.oci.config import load_config
from pytest_thunder_container.shell.console import Console
from pytest_thunder_container.targets.base import Target
from pytest_thunder_container.targets.qemu import QemuTarget

pytestmark = pytest.mark.e2e


def test_the_target_is_an_arm64_raspberry_pi_3(thunder_shell: Console) -> None:
    assert thunder_shell.check("uname -m").stdout == "aarch64"
    model = thunder_shell.check("tr -d '\\000' < /proc/device-tree/model").stdout
    assert "Raspberry Pi 3" in model


def test_runc_answers(thunder_shell: Console) -> None:
    result = thunder_shell.check("runc --version")
    assert result.stdout.startswith("runc version")


def test_a_trivial_container_runs_and_its_exit_code_comes_back(thunder_shell: Console) -> None:
    bundle = "/tmp/tc-trivial"
    thunder_shell.check(
        f"rm -rf {bundle} && mkdir -p {bundle}/rootfs/proc {bundle}/rootfs/dev "
        f"{bundle}/rootfs/sys {bundle}/rootfs/tmp {bundle}/rootfs/usr && cd {bundle} && "
        "cp -a /bin /lib rootfs/ && runc spec && "
        'sed -i -e \'s/"terminal": true/"terminal": false/\' '
        '-e \'s/"sh"$/"sh", "-c", "exit 7"/\' config.json'
    )
    result = thunder_shell.run(f"cd {bundle} && runc run tc-trivial-$$", timeout=60)
    assert result.returncode == 7, result.stdout
    assert thunder_shell.run(f"rm -rf {bundle}").returncode == 0


def test_target_reports_its_identity(thunder_target: Target) -> None:
    facts = thunder_target.properties()
    assert facts["target"].startswith("rpi3")
    assert facts["emulated"] == "true"
    assert len(facts["image.sha256"]) == 64


def test_lint_of_runc_spec_made_on_the_target_gives_the_tutorials_findings(
    thunder_shell: Console, tmp_path: Path
) -> None:
    thunder_shell.check("rm -rf /tmp/tc-spec && mkdir /tmp/tc-spec && cd /tmp/tc-spec && runc spec")
    config = tmp_path / "config.json"
    config.write_bytes(thunder_shell.get("/tmp/tc-spec/config.json"))
    thunder_shell.check("rm -rf /tmp/tc-spec")
    findings = {(f.id, f.level) for f in lint_config(load_config(config), dialect="R5")}
    assert findings == {
        ("TC-COM-001", "MUST"),  # no /tmp bind mount: the communicator is out of reach
        ("TC-MNT-001", "MUST"),  # ... nor /tmp/ocdm
        ("TC-PROC-001", "MUST"),  # terminal true
        ("TC-ENV-001", "MUST"),  # no COMMUNICATOR_CONNECTOR
        ("TC-ENV-002", "SHOULD"),  # no MESSAGE_DISPATCHER_CONFIG
        ("TC-CAP-003", "SHOULD"),  # runc's default ambient set
        ("TC-PROC-005", "SHOULD"),  # no seccomp profile
    }


def _cpu_seconds(pid: int, seconds: float) -> float:
    """The CPU time (user + system) a process used during the next `seconds`."""

    def used() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = used()
    time.sleep(seconds)
    return used() - before


def test_a_paused_emulator_uses_no_cpu_and_its_guest_goes_on_after(
    thunder_target: Target, thunder_shell: Console
) -> None:
    assert isinstance(thunder_target, QemuTarget)
    pid = thunder_target._process.pid if thunder_target._process else None
    assert pid is not None
    waiting = _cpu_seconds(pid, 5)
    with thunder_target.paused():
        assert thunder_target._qmp is not None
        assert thunder_target._qmp.execute("query-status")["status"] == "paused"
        paused = _cpu_seconds(pid, 5)
    # Measured here: an idle emulated Pi uses about half a core; paused, next to nothing.
    assert paused < 0.1 * 5, f"paused QEMU used {paused:.2f} s of CPU in 5 s"
    assert paused < waiting / 4, f"paused {paused:.2f} s against running {waiting:.2f} s"
    assert thunder_shell.check("sleep 0.2; echo back").stdout == "back"
