"""Running one QEMU process: its private run directory, its argv, and killing it for sure."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

from pytest_thunder_container.errors import TargetError

QEMU = "qemu-system-aarch64"
RUNDIR_PREFIX = "thunder-qemu-"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Machine:
    """A QEMU machine the harness knows how to boot."""

    name: str
    args: tuple[str, ...]
    needs_dtb: bool
    nic: str  # the -device that carries the user network
    nic_migratable: bool  # usb-net blocks savevm: hot-add it after a snapshot instead
    drive_interface: str  # where the snapshot-carrying qcow2 is attached
    # Physical address of interrupt-pending registers that QEMU does not migrate (see qemu.py).
    pending_irq_registers: int | None = None


MACHINES: dict[str, Machine] = {
    # Single-threaded TCG: raspi3b's 4 vCPUs under MTTCG booted in 12-34 s here, 4-7 s without.
    "rpi3": Machine(
        "rpi3",
        ("-M", "raspi3b", "-accel", "tcg,thread=single"),
        True,
        "usb-net",
        False,
        "sd",
        pending_irq_registers=0x40000060,
    ),
    "virt": Machine(
        "virt",
        ("-M", "virt", "-cpu", "cortex-a53", "-m", "1G"),
        False,
        "virtio-net-device",
        True,
        "none",
    ),
}


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise TargetError(
            f"{QEMU} is not installed (fix: apt-get install --no-install-recommends "
            "qemu-system-arm qemu-utils)"
        )
    return path


def qemu_version() -> str:
    out = subprocess.run([qemu_binary(), "--version"], capture_output=True, text=True, check=False)
    first = out.stdout.splitlines()[0] if out.stdout else "unknown"
    return first.removeprefix("QEMU emulator version ").strip()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (QEMU's hostfwd needs a number, not 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_rundir() -> Path:
    """A private (0700) directory for the QMP and console sockets, tagged with our pid."""
    reap_stale_rundirs()
    rundir = Path(tempfile.mkdtemp(prefix=RUNDIR_PREFIX))
    (rundir / "owner.pid").write_text(str(os.getpid()))
    return rundir


def reap_stale_rundirs() -> None:
    """Remove run directories left by harness processes that died without cleaning up."""
    for rundir in Path(tempfile.gettempdir()).glob(f"{RUNDIR_PREFIX}*"):
        try:
            owner = int((rundir / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not process_alive(owner):
            shutil.rmtree(rundir, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> None:
    # If pytest dies (even by SIGKILL) the kernel kills QEMU: no orphan ever.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_LIVE: weakref.WeakSet[QemuProcess] = weakref.WeakSet()


class QemuProcess:
    """A QEMU child process whose stdout/stderr go to a log file."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        with open(log, "ab") as sink:
            sink.write(("$ " + " ".join(argv) + "\n").encode())
            sink.flush()
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def exited(self) -> int | None:
        return self._popen.poll()

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait(self, timeout: float) -> bool:
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.kill()
            self._popen.wait()
        _LIVE.discard(self)


@atexit.register
def _kill_survivors() -> None:
    for process in list(_LIVE):
        process.kill()


def build_argv(
    machine: Machine,
    *,
    kernel: Path,
    initrd: Path | None,
    dtb: Path | None,
    append: str,
    rundir: Path,
    drive: Path,
    netdev: str | None,
    loadvm: str | None,
    console_serial: int = 0,
    gdb_socket: Path | None = None,
) -> list[str]:
    """The whole QEMU command line: paused (-S) until the console is connected."""
    argv = [
        qemu_binary(),
        *machine.args,
        "-nodefaults",
        "-display",
        "none",
        "-S",
        "-kernel",
        str(kernel),
        "-append",
        append,
        "-chardev",
        f"socket,id=console,path={rundir / 'console.sock'},server=on,wait=off",
    ]
    # The console is -serial number `console_serial`: on raspi3b 0 is the PL011 (ttyAMA0), 1 the
    # mini-UART (ttyS0/ttyS1); the serials before it stay unconnected.
    argv += ["-serial", "null"] * console_serial + ["-serial", "chardev:console"]
    argv += ["-qmp", f"unix:{rundir / 'qmp.sock'},server=on,wait=off"]
    if initrd is not None:
        argv += ["-initrd", str(initrd)]
    if dtb is not None and machine.needs_dtb:  # virt makes its own device tree
        argv += ["-dtb", str(dtb)]
    if machine.drive_interface == "sd":
        argv += ["-drive", f"if=sd,format=qcow2,file={drive}"]
    else:
        argv += ["-drive", f"if=none,id=state,format=qcow2,file={drive}"]
    if netdev is not None and machine.nic_migratable:
        argv += ["-netdev", netdev, "-device", f"{machine.nic},netdev=net0"]
    if gdb_socket is not None:  # for register writes while paused (a restored SD card)
        argv += ["-gdb", f"unix:{gdb_socket},server=on,wait=off"]
    if loadvm is not None:
        argv += ["-loadvm", loadvm]
    return argv


def user_netdev(host_port: int, guest_port: int) -> str:
    """User networking with one forward, bound to 127.0.0.1 only."""
    return f"user,id=net0,hostfwd=tcp:127.0.0.1:{host_port}-:{guest_port}"
