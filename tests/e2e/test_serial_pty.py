"""End to end: the serial-board path against QEMU's `-serial pty`, as against a USB serial adapter.

The test starts the reference image in QEMU, paused, and runs pytest in a subprocess with
--thunder-target=serial:/dev/pts/N and a --thunder-power-cycle command that lets QEMU run: the
harness sees a board switched on, boots it, logs in, and knows nothing of QEMU. A second run
attaches to the booted board. On the same boot, file transfer over HTTP (QEMU's usb-net) is
measured against the console. Another board deploys a user's rootfs.tar through the plugin's
fixtures, with --thunder-host-address (over HTTP) and without it (over the console).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_thunder_container.image.build import reference_image
from pytest_thunder_container.image.model import Image
from pytest_thunder_container.shell.console import Console, Login
from pytest_thunder_container.shell.transcript import Transcript
from pytest_thunder_container.shell.transfer import QEMU_USER_NETWORK, FileTransfer
from pytest_thunder_container.targets.qemu_process import MACHINES, QemuProcess, qemu_binary
from pytest_thunder_container.targets.qmp import Qmp
from pytest_thunder_container.targets.spawn import open_serial

pytestmark = pytest.mark.e2e

INNER_TIMEOUT = 600.0

# What a user would write against a real board: nothing in it knows about QEMU.
BOARD_TESTS = """
def test_the_shell_is_an_arm64_board(thunder_shell):
    assert thunder_shell.check("uname -m").stdout == "aarch64"


def test_thunder_answers_through_the_console(thunder_jsonrpc):
    # The board was just switched on: OCDM may still be activating.
    thunder_jsonrpc.wait_for_state("OCDM", "Activated", timeout=60)
    assert "wget on the target" in thunder_jsonrpc.endpoint


def test_a_file_goes_there_and_back(thunder_target):
    data = bytes(range(256)) * 40
    thunder_target.files.put(data, "/tmp/tc-serial-e2e.bin", mode=0o600)
    assert thunder_target.files.get("/tmp/tc-serial-e2e.bin") == data
    assert [r.method for r in thunder_target.files.history] == ["console", "console"]
    mode = thunder_target.console.check("stat -c %a /tmp/tc-serial-e2e.bin").stdout
    assert mode == "600"


def test_the_board_reports_what_it_is(thunder_target):
    facts = thunder_target.properties()
    assert facts["emulated"] == "false"
    assert facts["serial.port"].startswith("/dev/pts/")
    assert facts["kernel"].endswith("-arm64")
    assert facts["runc"][0].isdigit()
"""

# A user's rootfs.tar deployed by the plugin's own fixture; the test hands back its transfer.
ROOTFS_TESTS = """
import io
import json
import os
import time

import pytest


@pytest.fixture(scope="session")
def ocdm_settled(thunder_jsonrpc):
    # The board was just switched on: OCDM may still be (de)activating, whichever its start mode.
    deadline = time.monotonic() + 120
    while thunder_jsonrpc.state("OCDM") in ("Activation", "Deactivation"):
        assert time.monotonic() < deadline, "OCDM never settled"
        time.sleep(1)


def test_the_users_rootfs_is_in_the_bundle(ocdm_settled, thunder_deployment, thunder_target):
    moved = [r for r in thunder_target.files.history if r.path.endswith("/rootfs.tar")]
    with open(os.environ["TRANSFERS"], "w") as out:
        json.dump([{"method": r.method, "size": r.size, "seconds": r.seconds, "note": r.note}
                   for r in moved], out)
    listing = thunder_target.shell.check(f"ls -l {thunder_deployment.bundle}/rootfs/usr/lib")
    assert "tc-blob" in listing.stdout
"""

# The "power switch": lets the paused QEMU run, through a QMP socket of its own.
POWER_ON = """
import json, socket, sys
conn = socket.socket(socket.AF_UNIX)
conn.connect(sys.argv[1])
replies = conn.makefile()
replies.readline()
for command in ("qmp_capabilities", "cont"):
    conn.sendall(json.dumps({"execute": command}).encode() + b"\\n")
    reply = {"event": ""}
    while "event" in reply:  # events (RESUME) may come before the answer
        reply = json.loads(replies.readline())
    assert "return" in reply, reply
print("power on")
"""


@dataclass(frozen=True)
class PtyBoard:
    """A switched-off board (QEMU paused) whose console is a pty, and its power switch."""

    pty: str
    image: Image
    power_on: str  # a shell command line, as a user would give --thunder-power-cycle


def wait_for_file(path: Path, process: QemuProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.exited() is None, process.log_tail()
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.02)


@pytest.fixture
def pty_board(tmp_path: Path) -> Iterator[PtyBoard]:
    image = reference_image()
    assert image.dtb is not None
    rundir = tmp_path / "qemu"
    rundir.mkdir()
    monitor, switch = rundir / "qmp.sock", rundir / "power.sock"
    argv = [
        *(qemu_binary(), *MACHINES["rpi3"].args, "-nodefaults", "-display", "none"),
        *("-monitor", "none", "-S", "-kernel", str(image.kernel), "-initrd", str(image.initrd)),
        *("-dtb", str(image.dtb), "-append", image.append, "-serial", "pty"),
        *("-qmp", f"unix:{monitor},server=on,wait=off"),
        *("-qmp", f"unix:{switch},server=on,wait=off"),
        # A network only for the transfer measurement; the board tests don't use it.
        *("-netdev", "user,id=n0", "-device", "usb-net,netdev=n0"),
    ]
    # QemuProcess: QEMU dies with this process even when it is killed; kill() below otherwise.
    process = QemuProcess(argv, tmp_path / "qemu.log")
    qmp = Qmp("serial-pty-board")
    fd = -1
    try:
        wait_for_file(monitor, process, 10)
        qmp.connect(monitor, 10)
        chardevs = qmp.execute("query-chardev")
        pty = next(c["filename"] for c in chardevs if c["label"] == "serial0")
        pty = pty.removeprefix("pty:")
        # Held open from before the guest runs: QEMU drops what it writes to a pty nobody holds.
        fd = os.open(pty, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        script = tmp_path / "power_on.py"
        script.write_text(POWER_ON)
        power_on = shlex.join([sys.executable, str(script), str(switch)])
        yield PtyBoard(pty, image, power_on)
    finally:
        qmp.close()
        process.kill()
        if fd >= 0:
            os.close(fd)
    assert process.exited() is not None


def run_board_tests(
    board: PtyBoard,
    tmp_path: Path,
    results: Path,
    *options: str,
    tests: str = BOARD_TESTS,
    env_extra: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "board-tests"
    project.mkdir(exist_ok=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_board.py").write_text(tests)
    user, password = board.image.login or ("root", None)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update(env_extra or {})
    env["THUNDER_PASSWORD"] = password or ""
    env["THUNDER_CONTAINER_CACHE"] = str(tmp_path / "cache")  # its own lock files
    argv = [
        *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v"),
        *(f"--thunder-target=serial:{board.pty}", f"--thunder-login-user={user}"),
        *(f"--thunder-results={results}", *options),
    ]
    return subprocess.run(
        argv, cwd=project, env=env, capture_output=True, text=True, timeout=INNER_TIMEOUT
    )


def test_a_board_on_a_serial_line(pty_board: PtyBoard, tmp_path: Path) -> None:
    label = "serial-dev-pts-" + pty_board.pty.rsplit("/", 1)[1]
    # Switched on by the harness: the whole boot comes over the line, then the login.
    switched_on = tmp_path / "results-power-cycle"
    inner = run_board_tests(
        pty_board, tmp_path, switched_on, f"--thunder-power-cycle={pty_board.power_on}"
    )
    assert inner.returncode == 0, f"{inner.stdout[-6000:]}\n{inner.stderr[-3000:]}"
    assert "4 passed" in inner.stdout
    transcript = (switched_on / f"console-{label}.log").read_bytes()
    assert b"Linux version" in transcript  # the kernel's first line: nothing was lost
    assert b"Password: <password>" in transcript
    password = (pty_board.image.login or ("root", ""))[1] or ""
    assert password and password.encode() not in transcript  # the password itself never is
    assert "power on" in (switched_on / f"power-cycle-{label}.log").read_text()

    # Attached to the booted board, as to one on a bench.
    attached = tmp_path / "results-attach"
    inner = run_board_tests(pty_board, tmp_path, attached, "-k", "arm64")
    assert inner.returncode == 0, f"{inner.stdout[-6000:]}\n{inner.stderr[-3000:]}"
    assert "1 passed" in inner.stdout
    assert b"Linux version" not in (attached / f"console-{label}.log").read_bytes()

    rates = measure_transfers(pty_board, tmp_path)
    (tmp_path / "transfer-rates.json").write_text(json.dumps(rates, indent=2))
    print(json.dumps(rates, indent=2))
    assert rates["http"]["put"] > rates["console"]["put"]


def measure_transfers(board: PtyBoard, tmp_path: Path) -> dict[str, object]:
    """Upload and download rates over HTTP (usb-net) and over the console, in bytes/s."""
    user, password = board.image.login or ("root", None)
    console = Console(
        open_serial(board.pty),
        Transcript(tmp_path / "measure.log"),
        name="measure",
        login=Login(user, password),
    )
    try:
        console.attach(timeout=60)
        # DHCP on usb0 finished long ago in practice; wait for it rather than assume.
        console.check(
            "i=0; until ip -4 addr show usb0 | grep -q inet; do i=$((i+1)); "
            "[ $i -gt 60 ] && exit 1; sleep 1; done",
            timeout=90,
        )
        http = FileTransfer(console, QEMU_USER_NETWORK, name="measure")
        serial = FileTransfer(console, None, name="measure")
        big, small = os.urandom(512 * 1024), os.urandom(48 * 1024)
        http.put(big, "/tmp/tc-rate-http")
        assert http.get("/tmp/tc-rate-http") == big
        serial.put(small, "/tmp/tc-rate-console")
        assert serial.get("/tmp/tc-rate-console") == small
        console.check("rm -f /tmp/tc-rate-http /tmp/tc-rate-console")
    finally:
        console.close()
    assert [r.method for r in http.history] == ["http", "http"]
    measured: dict[str, object] = {
        "target": "rpi3 reference image in QEMU raspi3b (emulated), console on -serial pty, "
        "network usb-net with user networking",
    }
    for method, transfer in (("http", http), ("console", serial)):
        measured[method] = {r.direction: round(r.rate) for r in transfer.history}
        measured[method + "_bytes"] = transfer.history[0].size
    return measured


ROOTFS_BLOB = 1024 * 1024  # incompressible bytes in the user's rootfs.tar


def host_address() -> str | None:
    """An IPv4 address of this host that is not loopback: QEMU's user network (NAT) lets the
    guest reach it as a board reaches its host over a LAN."""
    listing = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True
    )
    for line in listing.stdout.splitlines():
        words = line.split()
        if "inet" in words:
            return words[words.index("inet") + 1].split("/")[0]
    return None


def users_rootfs(path: Path) -> Path:
    with tarfile.open(path, "w") as archive:
        for name in ("bin", "etc", "usr/lib"):
            folder = tarfile.TarInfo(name)
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(folder)
        blob = tarfile.TarInfo("usr/lib/tc-blob")
        blob.size = ROOTFS_BLOB
        archive.addfile(blob, io.BytesIO(os.urandom(ROOTFS_BLOB)))
    return path


def test_a_users_rootfs_goes_over_http_with_a_host_address(
    pty_board: PtyBoard, tmp_path: Path
) -> None:
    address = host_address()
    if address is None:
        pytest.skip("this host has no IPv4 address besides loopback for the board to reach")
    rootfs = users_rootfs(tmp_path / "rootfs.tar")
    moved: dict[str, dict[str, object]] = {}
    runs = {
        # Switched on by the harness, with this host's address: the tar goes over HTTP.
        "http": (
            f"--thunder-power-cycle={pty_board.power_on}",
            f"--thunder-host-address={address}",
        ),
        # Attached to the same board, without it: the tar goes over the console.
        "console": (),
    }
    for method, options in runs.items():
        transfers = tmp_path / f"transfers-{method}.json"
        inner = run_board_tests(
            pty_board,
            tmp_path,
            tmp_path / f"results-{method}",
            f"--thunder-rootfs={rootfs}",
            *options,
            tests=ROOTFS_TESTS,
            env_extra={"TRANSFERS": str(transfers)},
        )
        assert inner.returncode == 0, f"{inner.stdout[-6000:]}\n{inner.stderr[-3000:]}"
        records = json.loads(transfers.read_text())
        assert len(records) == 1, records
        moved[method] = records[0]
    assert moved["http"]["method"] == "http", moved["http"]
    assert moved["console"]["method"] == "console", moved["console"]
    assert "--thunder-host-address" in str(moved["console"]["note"])
    assert moved["http"]["size"] == moved["console"]["size"] == rootfs.stat().st_size
    figures = {
        "target": "rpi3 reference image in QEMU raspi3b (emulated) as serial:/dev/pts/N, "
        f"host address {address} reached through usb-net with user networking",
        "rootfs_tar_bytes": rootfs.stat().st_size,
        "seconds": {method: round(float(r["seconds"]), 2) for method, r in moved.items()},
    }
    (tmp_path / "rootfs-transfer.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    assert float(moved["http"]["seconds"]) < float(moved["console"]["seconds"]) / 2, figures
