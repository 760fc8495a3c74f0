"""A Raspberry Pi 3 (or virt) booted in QEMU: cold boot or snapshot restore, console, network."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from pytest_thunder_container.errors import ConsoleError, TargetError
from pytest_thunder_container.image.model import Image
from pytest_thunder_container.image.sdcard import SdCardImage
from pytest_thunder_container.shell.console import Console, Login
from pytest_thunder_container.shell.transcript import Transcript
from pytest_thunder_container.shell.transfer import QEMU_USER_NETWORK, FileTransfer
from pytest_thunder_container.targets.base import Target
from pytest_thunder_container.targets.qemu_process import (
    MACHINES,
    QemuProcess,
    build_argv,
    free_port,
    make_rundir,
    qemu_version,
    user_netdev,
)
from pytest_thunder_container.targets.qmp import Qmp
from pytest_thunder_container.targets.runc_window import runc_window
from pytest_thunder_container.targets.sd_reattach import reattach_sd_card
from pytest_thunder_container.targets.snapshots import (
    SNAPSHOT_TAG,
    SnapshotKey,
    SnapshotStore,
    create_state_file,
)
from pytest_thunder_container.targets.spawn import connect_unix_socket

BOOT_TIMEOUT = 120.0  # cold boot to a logged-in prompt, before the timeout factor
RESTORE_TIMEOUT = 30.0
QUIT_TIMEOUT = 5.0


class QemuTarget(Target):
    """One QEMU process per target; nothing of it survives stop(), a crash or Ctrl-C."""

    emulated = True

    def __init__(
        self,
        machine: str,
        image: Image | SdCardImage,
        *,
        results: Path,
        snapshots: SnapshotStore,
        login: Login | None,
        timeout_factor: float = 1.0,
        cold_boot: bool = False,
        extra_append: str = "",
        guest_port: int = 80,
        label: str | None = None,
    ) -> None:
        if machine not in MACHINES:
            raise TargetError(f"unknown QEMU machine {machine!r} (known: {', '.join(MACHINES)})")
        self.machine = MACHINES[machine]
        if isinstance(image, SdCardImage) and self.machine.drive_interface != "sd":
            raise TargetError(
                f"{image.path} is an SD card image; machine {machine} has no SD "
                "card slot (fix: --thunder-target=rpi3)"
            )
        self.name = label or machine
        self.image = image
        self._results = results
        self._snapshots = snapshots
        self._login = login
        self._factor = timeout_factor
        self._cold_boot = cold_boot
        self._append = " ".join(part for part in (image.append, extra_append) if part)
        self._guest_port = guest_port
        self._host_port: int | None = None
        self._rundir: Path | None = None
        self._process: QemuProcess | None = None
        self._qmp: Qmp | None = None
        self._console: Console | None = None
        self._files: FileTransfer | None = None
        self.restored = False
        self.timings: dict[str, float] = {}

    @property
    def files(self) -> FileTransfer:
        """Over HTTP from the host's loopback (10.0.2.2 in the guest), else the console."""
        if self._files is None:
            self._files = FileTransfer(
                self.console, QEMU_USER_NETWORK, name=self.name, timeout_factor=self._factor
            )
        return self._files

    @property
    def jsonrpc_url(self) -> str | None:
        if self._host_port is None or self._process is None:
            return None
        return f"http://127.0.0.1:{self._host_port}/jsonrpc"

    @property
    def qemu_log(self) -> Path:
        return self._results / f"qemu-{self.name}.log"

    @property
    def snapshot_key(self) -> SnapshotKey:
        return SnapshotKey(
            self.image.sha256 if self.image else "", self.machine.name, qemu_version(), self._append
        )

    def start(self) -> None:
        try:
            self._boot()
        except TargetError as error:
            self.stop()
            if not self.restored:
                raise
            # A saved state that doesn't come back to life is discarded, then a cold boot.
            self._snapshots.discard(self.snapshot_key)
            self._note(f"restore failed, snapshot discarded, booting cold: {error}")
            try:
                self._boot(allow_restore=False)
            except BaseException:
                self.stop()
                raise
        except BaseException:
            self.stop()
            raise

    def _boot(self, allow_restore: bool = True) -> None:
        if self.machine.needs_dtb and (self.image is None or self.image.dtb is None):
            raise TargetError(
                f"machine {self.machine.name} needs a device tree (.dtb) but image "
                f"{self.image.directory if self.image else '?'} has none"
            )
        started = time.monotonic()
        self._results.mkdir(parents=True, exist_ok=True)
        self._rundir = make_rundir()
        key = self.snapshot_key
        state = self._rundir / "state.qcow2"
        self.restored = (
            allow_restore and not self._cold_boot and self._snapshots.checkout(key, state)
        )
        sdcard = self.image if isinstance(self.image, SdCardImage) else None
        if sdcard is not None:
            # The card is an overlay of the vendor's image: it is the state drive too.
            if self.restored:
                sdcard.adopt_card(state)
            else:
                sdcard.create_card(state)
        elif not self.restored:
            create_state_file(state)
        # The same port across restarts: a client made before a reboot keeps working.
        self._host_port = self._host_port or free_port()
        netdev = user_netdev(self._host_port, self._guest_port)
        assert self.image is not None
        argv = build_argv(
            self.machine,
            kernel=self.image.kernel,
            initrd=self.image.initrd,
            dtb=self.image.dtb,
            append=self._append,
            rundir=self._rundir,
            drive=state,
            netdev=netdev,
            loadvm=SNAPSHOT_TAG if self.restored else None,
            console_serial=sdcard.console_serial if sdcard else 0,
            gdb_socket=self._rundir / "gdb.sock" if sdcard else None,
        )
        self._process = QemuProcess(argv, self.qemu_log)
        self._qmp = Qmp(f"qemu-{self.name}")
        self._wait_for_socket(self._rundir / "qmp.sock")
        self._qmp.connect(self._rundir / "qmp.sock", self._timeout(10))
        spawn = connect_unix_socket(self._rundir / "console.sock", self._timeout(10))
        transcript = Transcript(self._results / f"console-{self.name}.log")
        self._console = Console(
            spawn, transcript, name=self.name, login=self._login, timeout_factor=self._factor
        )
        if sdcard is not None and self.restored:
            # Before the guest runs: loadvm leaves the card where a reset put it.
            reattach_sd_card(self._rundir / "gdb.sock", self._timeout(10))
        self._qmp.execute("cont")
        try:
            if self.restored:
                self._console.resync(timeout=RESTORE_TIMEOUT)
                # A restored guest whose timers don't fire answers the prompt but hangs in sleep.
                self._console.check("sleep 0.1", timeout=10)
            else:
                self._console.attach(timeout=BOOT_TIMEOUT, booting=True)
        except ConsoleError as error:
            raise TargetError(self._boot_failure(error)) from error
        self.timings["to_prompt"] = time.monotonic() - started
        if not self.restored and not self._cold_boot:
            self._save_snapshot(key, state)
        if not self.machine.nic_migratable:
            self._hot_add_nic(netdev)

    def _save_snapshot(self, key: SnapshotKey, state: Path) -> None:
        assert self._qmp is not None
        began = time.monotonic()
        if not self._pause_without_pending_interrupts():
            self._note("no moment without a pending interrupt was found; no snapshot kept")
            return
        reply = self._qmp.hmp(f"savevm {SNAPSHOT_TAG}", timeout=self._timeout(60))
        self._qmp.execute("cont")
        if reply.strip():
            # QEMU reports savevm problems as text; a target without a snapshot still works.
            self._note(f"savevm failed, no snapshot kept: {reply.strip()}")
            return
        self._snapshots.save(key, state)
        self.timings["savevm"] = time.monotonic() - began

    def _pause_without_pending_interrupts(self, attempts: int = 200) -> bool:
        """Stop the VM at a moment when no interrupt is raised but not yet taken.

        QEMU 7.2 does not migrate the BCM2836 local controller's input levels: a timer that
        fired just before savevm is lost on restore and that core never gets a timer interrupt
        again (sleep hangs forever). Its pending-source registers read 0 when nothing waits.
        """
        assert self._qmp is not None
        address = self.machine.pending_irq_registers
        for _ in range(attempts):
            self._qmp.execute("stop")
            if address is None:
                return True
            dump = self._qmp.hmp(f"xp /8wx {address:#x}")
            words = [
                int(word, 16)
                for line in dump.splitlines()
                if ":" in line
                for word in line.split(":", 1)[1].split()
            ]
            if len(words) == 8 and not any(words):
                return True
            self._qmp.execute("cont")
            time.sleep(0.01)
        return False

    def _note(self, text: str) -> None:
        with open(self.qemu_log, "a") as log:
            log.write(f"[thunder-container] {text}\n")

    def _hot_add_nic(self, netdev: str) -> None:
        assert self._qmp is not None
        self._qmp.hmp(f"netdev_add {netdev}")
        self._qmp.execute(
            "device_add", {"driver": self.machine.nic, "netdev": "net0", "id": "nic0"}
        )

    def _wait_for_socket(self, path: Path) -> None:
        deadline = time.monotonic() + self._timeout(10)
        while not path.exists():
            assert self._process is not None
            if self._process.exited() is not None:
                raise TargetError(
                    f"QEMU exited at start (code {self._process.exited()}):\n"
                    f"{self._process.log_tail()}\n(log: {self.qemu_log})"
                )
            if time.monotonic() > deadline:
                raise TargetError(
                    f"QEMU did not create {path} within {self._timeout(10):.0f} s "
                    f"(log: {self.qemu_log})"
                )
            time.sleep(0.01)

    def _boot_failure(self, error: ConsoleError) -> str:
        what = "restore of the saved state" if self.restored else "boot"
        process = self._process
        if process is not None and process.exited() is not None:
            return (
                f"QEMU exited during {what} of {self.name} (code {process.exited()}):\n"
                f"{process.log_tail()}\n(QEMU log: {self.qemu_log})"
            )
        tail = self._console.tail(30) if self._console else ""
        log = self._console.transcript_path if self._console else "?"
        if "Kernel panic" in tail:
            # The panic's own lines say what the kernel gave up on; an unpacking error said
            # before them is often the cause (a truncated or corrupt initrd).
            earlier = [
                line
                for line in (self._console.tail(2000) if self._console else "").splitlines()
                if "Initramfs unpacking failed" in line or "Failed to execute" in line
            ]
            cause = "".join(f"\n{line}" for line in earlier[:3])
            return (
                f"the guest kernel panicked during {what} of {self.name}:{cause}\n{tail}\n"
                f"(console log: {log})"
            )
        if not tail.strip() and not self.restored:
            return (
                f"{what} of {self.name} failed: {str(error).splitlines()[0]}, and the target "
                "printed nothing at all: the kernel did not start or writes elsewhere: is "
                f"{self.image.kernel if self.image else '?'} an arm64 kernel for this machine, "
                f"and does its command line {self._append!r} name this console?\n"
                f"(console log: {log}, QEMU log: {self.qemu_log})"
            )
        return f"{what} of {self.name} failed: {error}"

    def _timeout(self, seconds: float) -> float:
        return seconds * self._factor

    def stop(self) -> None:
        if self._qmp is not None and self._process is not None and self._process.exited() is None:
            self._qmp.quit(timeout=self._timeout(QUIT_TIMEOUT))
        if self._process is not None:
            if not self._process.wait(self._timeout(QUIT_TIMEOUT)):
                self._process.kill()
            self._process.kill()
            self._process = None
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self._console is not None:
            with contextlib.suppress(Exception):
                self._console.close()
            self._console = None
        self._files = None
        if self._rundir is not None:
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._rundir = None

    def healthy(self) -> bool:
        running = self._process is not None and self._process.exited() is None
        return running and super().healthy()

    def runc_window(self) -> AbstractContextManager[None]:
        return runc_window(self._process.pid if self._process is not None else None)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The guest stopped (QMP stop) and continued after. An idle emulated Pi still costs
        about half a host core (measured: its USB controller interrupts the guest some 2000
        times a second for usb-net), which Thunder's timed runc calls elsewhere then lack.
        The guest's clocks stop with it, so it sees no time pass."""
        qmp, process = self._qmp, self._process
        if qmp is None or process is None or process.exited() is not None:
            yield
            return
        qmp.execute("stop")
        try:
            yield
        finally:
            if self._qmp is qmp and process.exited() is None:
                qmp.execute("cont")

    def restart(self) -> None:
        """Boot again (from the saved state when there is one) after the target died."""
        self.stop()
        self.start()

    def properties(self) -> dict[str, str]:
        facts = super().properties()
        facts.update(
            {
                "qemu.machine": " ".join(self.machine.args),
                "qemu.version": qemu_version(),
                "qemu.append": self._append,
                "boot": "snapshot restore" if self.restored else "cold boot",
            }
        )
        if isinstance(self.image, SdCardImage):
            facts["image"] = str(self.image.path)
            facts["image.boot_files"] = str(self.image.directory)
        return facts
