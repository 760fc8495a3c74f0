"""Small, real SD card images for the tests: an MBR, a FAT boot partition, an ext4 root."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from pytest_thunder_container.image.partitions import SECTOR

MIB = 1 << 20
BOOT_START = 1 * MIB
BOOT_SIZE = 8 * MIB
ROOT_START = BOOT_START + BOOT_SIZE
ROOT_SIZE = 7 * MIB
CARD_SIZE = ROOT_START + ROOT_SIZE
DISK_SIGNATURE = 0x1234ABCD

needs_card_tools = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("mkfs.vfat", "mcopy", "mke2fs", "dtc", "fdtget")),
    reason="needs dosfstools, mtools, e2fsprogs and device-tree-compiler",
)

# A Pi 3 B device tree as the Raspberry Pi firmware ships it, in miniature: serial0 is the
# mini-UART, and the PL011 has a bluetooth child.
FIRMWARE_DTS = """/dts-v1/;
/ {
    compatible = "raspberrypi,3-model-b", "brcm,bcm2837";
    aliases {
        serial0 = "/soc/serial@7e215040";
        serial1 = "/soc/serial@7e201000";
    };
    chosen { };
    soc {
        serial@7e201000 {
            compatible = "arm,pl011";
            bluetooth { compatible = "brcm,bcm43438-bt"; };
        };
        serial@7e215040 { compatible = "brcm,bcm2835-aux-uart"; };
    };
};
"""
# An arm64 Image header: "ARM\x64" at 0x38.
ARM64_KERNEL = b"\0" * 0x38 + b"ARM\x64" + b"\0" * 8


def mbr_sector(slots: list[tuple[int, int, int]], signature: int = DISK_SIGNATURE) -> bytes:
    """A DOS partition table: (type, start byte, size in bytes) per slot."""
    sector = bytearray(SECTOR)
    struct.pack_into("<I", sector, 440, signature)
    for index, (kind, start, size) in enumerate(slots):
        entry = struct.pack("<B3sB3sII", 0, b"\0\0\0", kind, b"\0\0\0", start // 512, size // 512)
        sector[446 + 16 * index : 462 + 16 * index] = entry
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def dtb(folder: Path, source: str = FIRMWARE_DTS, name: str = "bcm2710-rpi-3-b.dtb") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    subprocess.run(
        ["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(out)], input=source.encode(), check=True
    )
    return out


def make_card(
    path: Path,
    boot_files: Mapping[str, bytes | Path],
    *,
    boot_type: int = 0x0C,
    root_label: str | None = "rootfs",
) -> Path:
    """An image with p1 (FAT, `boot_files`) and p2 (ext4, labelled), as a vendor build makes it."""
    with path.open("wb") as stream:
        stream.truncate(CARD_SIZE)
    slots = [(boot_type, BOOT_START, BOOT_SIZE), (0x83, ROOT_START, ROOT_SIZE)]
    subprocess.run(
        [
            "mkfs.vfat",
            "--invariant",
            "-n",
            "BOOT",
            f"--offset={BOOT_START // 512}",
            str(path),
            str(BOOT_SIZE // 1024),
        ],
        check=True,
        capture_output=True,
    )
    staging = path.parent / f"{path.name}.boot"
    staging.mkdir()
    for name, content in boot_files.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    drive = f"{path}@@{BOOT_START}"
    entries = sorted(str(p) for p in staging.iterdir())
    if entries:
        subprocess.run(
            ["mcopy", "-s", "-i", drive, *entries, "::"], check=True, env=env, capture_output=True
        )
    shutil.rmtree(staging)
    if root_label is not None:
        subprocess.run(
            [
                "mke2fs",
                "-q",
                "-F",
                "-t",
                "ext4",
                "-L",
                root_label,
                "-E",
                f"offset={ROOT_START}",
                str(path),
                f"{ROOT_SIZE // 1024}k",
            ],
            check=True,
        )
    with path.open("r+b") as stream:
        stream.write(mbr_sector(slots))
    return path


def standard_boot(folder: Path, **extra: bytes | Path) -> dict[str, bytes | Path]:
    """A 64-bit Pi 3 boot partition: config.txt, cmdline.txt, kernel8.img, the firmware dtb."""
    files: dict[str, bytes | Path] = {
        "config.txt": b"arm_64bit=1\ninitramfs initrd.img followkernel\n",
        "cmdline.txt": b"console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootwait\n",
        "kernel8.img": ARM64_KERNEL,
        "initrd.img": b"070701 not really a cpio",
        "bcm2710-rpi-3-b.dtb": dtb(folder),
    }
    files.update(extra)
    return files
