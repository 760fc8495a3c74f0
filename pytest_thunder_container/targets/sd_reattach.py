"""Put a restored raspi3b's SD card back on the controller the guest drives (a QEMU 7.2 gap)."""

# raspi3b routes its one card to the Arasan SDHCI or to the SDHost controller by the function
# of GPIO 48-53. A reset puts it on SDHCI; loadvm restores the GPIO registers but does not move
# the card, so a guest driving SDHost (Linux's bcm2835 driver, the Pi 3 dtbs' SD slot) finds no
# card after a restore and loses its root filesystem. Writing the pins to "input" and back to
# ALT0 makes QEMU move it again. The writes go through QEMU's gdbstub in physical-memory mode
# while the VM is still paused: the guest runs nothing in between.

from __future__ import annotations

import socket
import time
from pathlib import Path

from pytest_thunder_container.errors import TargetError

GPFSEL4 = 0x3F200010  # function of GPIO 40-49, 3 bits each
GPFSEL5 = 0x3F200014  # function of GPIO 50-59
ALT0 = 4  # the SDHost function of GPIO 48-53
SD_PINS = {GPFSEL4: (8, 9), GPFSEL5: (0, 1, 2, 3)}  # pin slots in each register


def _packet(payload: str) -> bytes:
    return f"${payload}#{sum(payload.encode()) % 256:02x}".encode()


class GdbPhysicalMemory:
    """32-bit reads and writes of guest physical addresses over QEMU's gdbstub socket."""

    def __init__(self, path: Path, timeout: float) -> None:
        self._timeout = timeout
        self._socket = _connect(path, timeout)
        self._buffer = b""
        if self._command("Qqemu.PhyMemMode:1") != "OK":
            raise TargetError(f"QEMU's gdbstub at {path} has no physical-memory mode")

    def _receive(self, deadline: float) -> None:
        self._socket.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self._socket.recv(4096)
        except TimeoutError as error:
            raise TargetError("QEMU's gdbstub did not answer in time") from error
        if not chunk:
            raise TargetError("QEMU's gdbstub closed the connection")
        self._buffer += chunk

    def _command(self, payload: str) -> str:
        self._socket.sendall(_packet(payload))
        deadline = time.monotonic() + self._timeout
        while True:
            self._buffer = self._buffer.lstrip(b"+")  # acknowledgements
            start, end = self._buffer.find(b"$"), self._buffer.find(b"#")
            if start != -1 and end > start and len(self._buffer) >= end + 3:
                reply = self._buffer[start + 1 : end].decode()
                self._buffer = self._buffer[end + 3 :]
                self._socket.sendall(b"+")
                return reply
            self._receive(deadline)

    def read32(self, address: int) -> int:
        reply = self._command(f"m{address:x},4")
        if len(reply) != 8:
            raise TargetError(f"gdbstub read of {address:#x} failed: {reply!r}")
        return int.from_bytes(bytes.fromhex(reply), "little")

    def write32(self, address: int, value: int) -> None:
        reply = self._command(f"M{address:x},4:{value.to_bytes(4, 'little').hex()}")
        if reply != "OK":
            raise TargetError(f"gdbstub write of {address:#x} failed: {reply!r}")

    def close(self) -> None:
        self._socket.close()


def _connect(path: Path, timeout: float) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except OSError as error:
            sock.close()
            if time.monotonic() > deadline:
                raise TargetError(f"no gdbstub socket at {path}: {error}") from error
            time.sleep(0.05)


def _with_sd_pins(value: int, register: int, function: int) -> int:
    for slot in SD_PINS[register]:
        value = (value & ~(7 << 3 * slot)) | (function << 3 * slot)
    return value


def reattach_sd_card(gdb_socket: Path, timeout: float) -> bool:
    """Move the card to SDHost again if the restored guest had it there; True if it did."""
    memory = GdbPhysicalMemory(gdb_socket, timeout)
    try:
        saved = {register: memory.read32(register) for register in SD_PINS}
        on_sdhost = all(
            (saved[register] >> 3 * slot) & 7 == ALT0
            for register, slots in SD_PINS.items()
            for slot in slots
        )
        if not on_sdhost:
            return False  # SDHCI (or nothing) selected: where a reset leaves the card anyway
        for register in SD_PINS:  # all six pins "input": QEMU selects SDHCI
            memory.write32(register, _with_sd_pins(saved[register], register, 0))
        for register in SD_PINS:  # all six back to ALT0: QEMU moves the card to SDHost
            memory.write32(register, saved[register])
        return True
    finally:
        memory.close()
