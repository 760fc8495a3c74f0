"""The restored SD card is moved back to SDHost through a gdbstub: the packets and the writes."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from pytest_thunder_container.errors import TargetError
from pytest_thunder_container.targets.sd_reattach import GPFSEL4, GPFSEL5, reattach_sd_card

ALL_ALT0_4 = 0o44 << 24  # GPIO 48 and 49 on ALT0, 40-47 as inputs
ALL_ALT0_5 = 0o4444 | 0o1 << 12  # GPIO 50-53 on ALT0, 54 an output


class FakeGdbStub:
    """A gdbstub in physical-memory mode over registers: it checks every checksum it gets."""

    def __init__(self, path: Path, registers: dict[int, int]) -> None:
        self.registers = registers
        self.writes: list[tuple[int, int]] = []
        self.bad_checksums = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _answer(self, payload: str) -> str:
        if payload == "Qqemu.PhyMemMode:1":
            return "OK"
        if payload.startswith("m"):
            address = int(payload[1:].split(",")[0], 16)
            return self.registers[address].to_bytes(4, "little").hex()
        if payload.startswith("M"):
            where, data = payload[1:].split(":")
            address = int(where.split(",")[0], 16)
            self.registers[address] = int.from_bytes(bytes.fromhex(data), "little")
            self.writes.append((address, self.registers[address]))
            return "OK"
        return ""

    def _serve(self) -> None:
        connection, _ = self._server.accept()
        buffer = b""
        with connection:
            while chunk := connection.recv(4096):
                buffer += chunk
                while b"#" in buffer and len(buffer) >= buffer.index(b"#") + 3:
                    end = buffer.index(b"#")
                    start = buffer.index(b"$")
                    payload = buffer[start + 1 : end].decode()
                    if int(buffer[end + 1 : end + 3], 16) != sum(payload.encode()) % 256:
                        self.bad_checksums += 1
                    buffer = buffer[end + 3 :].lstrip(b"+")
                    reply = self._answer(payload)
                    checksum = sum(reply.encode()) % 256
                    connection.sendall(b"+" + f"${reply}#{checksum:02x}".encode())

    def close(self) -> None:
        self._server.close()
        self._thread.join(timeout=5)


def test_the_card_goes_through_sdhci_back_to_sdhost(tmp_path: Path) -> None:
    stub = FakeGdbStub(tmp_path / "gdb.sock", {GPFSEL4: ALL_ALT0_4, GPFSEL5: ALL_ALT0_5})
    assert reattach_sd_card(tmp_path / "gdb.sock", timeout=5) is True
    stub.close()
    # All six SD pins to "input" (QEMU: SDHCI), then all back (QEMU: the card moves to SDHost);
    # the other pins of the two registers keep their function throughout.
    assert stub.writes == [
        (GPFSEL4, 0),
        (GPFSEL5, 0o1 << 12),
        (GPFSEL4, ALL_ALT0_4),
        (GPFSEL5, ALL_ALT0_5),
    ]
    assert stub.bad_checksums == 0


def test_a_card_on_sdhci_is_left_alone(tmp_path: Path) -> None:
    stub = FakeGdbStub(tmp_path / "gdb.sock", {GPFSEL4: 0, GPFSEL5: 0})
    assert reattach_sd_card(tmp_path / "gdb.sock", timeout=5) is False
    stub.close()
    assert stub.writes == []


def test_no_gdbstub_is_a_target_error(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"no gdbstub socket at .*gdb.sock"):
        reattach_sd_card(tmp_path / "gdb.sock", timeout=0.2)
