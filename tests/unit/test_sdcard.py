"""SD card images: partition tables, the boot files read out of the FAT, the card QEMU gets."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import uuid
from pathlib import Path

import pytest
from helpers.sdcards import (
    ARM64_KERNEL,
    BOOT_SIZE,
    BOOT_START,
    CARD_SIZE,
    ROOT_START,
    dtb,
    make_card,
    mbr_sector,
    needs_card_tools,
    standard_boot,
)

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.model import sha256_file
from pytest_thunder_container.image.partitions import filesystem_of, read_partition_table
from pytest_thunder_container.image.sdcard import card_size, check_sdcard_file, load_sdcard
from pytest_thunder_container.inputs import check_inputs
from pytest_thunder_container.settings import (
    Settings,
    SettingsError,
    TargetSpec,
    check_settings,
)
from pytest_thunder_container.targets.factory import resolve_image
from pytest_thunder_container.targets.qemu_process import MACHINES, build_argv

MIB = 1 << 20


def _quiet(_: str) -> None:
    return None


def _fdtget(dtb_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["fdtget", str(dtb_file), *args], capture_output=True, text=True, check=False
    )


# -- partition tables ----------------------------------------------------------------------


def test_mbr_partitions_with_offsets_sizes_and_partuuids(tmp_path: Path) -> None:
    image = tmp_path / "card.img"
    image.write_bytes(mbr_sector([(0x0C, 4 * MIB, 64 * MIB), (0x83, 68 * MIB, 60 * MIB)]))
    os.truncate(image, 128 * MIB)
    table = read_partition_table(image)
    assert (table.scheme, table.disk_id) == ("mbr", "1234abcd")
    boot, root = table.partitions
    assert (boot.number, boot.start, boot.size, boot.is_fat) == (1, 4 * MIB, 64 * MIB, True)
    assert (root.number, root.start, root.size, root.is_fat) == (2, 68 * MIB, 60 * MIB, False)
    assert (boot.partuuid, root.partuuid) == ("1234abcd-01", "1234abcd-02")
    assert "p1 FAT32 LBA (0x0c)" in table.describe()


def test_logical_partitions_count_from_five(tmp_path: Path) -> None:
    image = tmp_path / "card.img"
    data = bytearray(16 * MIB)
    data[:512] = mbr_sector([(0x0C, 1 * MIB, 4 * MIB), (0x05, 5 * MIB, 11 * MIB)])
    # The chain: the first EBR at 5 MiB holds a logical partition 1 MiB further, then a link.
    first = mbr_sector([(0x83, 1 * MIB, 4 * MIB), (0x05, 5 * MIB, 6 * MIB)], signature=0)
    second = mbr_sector([(0x83, 1 * MIB, 5 * MIB)], signature=0)
    data[5 * MIB : 5 * MIB + 512] = first
    data[10 * MIB : 10 * MIB + 512] = second
    image.write_bytes(bytes(data))
    table = read_partition_table(image)
    numbers = [(p.number, p.start // MIB, p.size // MIB) for p in table.partitions]
    assert numbers == [(1, 1, 4), (5, 6, 4), (6, 11, 5)]
    assert table.get(6) is not None and table.get(6).partuuid == "1234abcd-06"


def test_gpt_partitions_behind_a_protective_mbr(tmp_path: Path) -> None:
    image = tmp_path / "card.img"
    data = bytearray(8 * MIB)
    data[:512] = mbr_sector([(0xEE, 512, 8 * MIB - 512)])
    disk, part = uuid.uuid4(), uuid.uuid4()
    header = b"EFI PART" + bytes(48) + disk.bytes_le + struct.pack("<QII", 2, 128, 128)
    data[512 : 512 + len(header)] = header
    fat_type = uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")
    entry = fat_type.bytes_le + part.bytes_le + struct.pack("<QQ", 2048, 4095)
    data[1024 : 1024 + len(entry)] = entry
    image.write_bytes(bytes(data))
    table = read_partition_table(image)
    assert (table.scheme, table.disk_id) == ("gpt", str(disk))
    (only,) = table.partitions
    assert (only.number, only.start, only.size, only.is_fat) == (1, MIB, MIB, True)
    assert only.partuuid == str(part)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\0" * 100, r"100 bytes is too small for a disk image"),
        (gzip.compress(b"\0" * 4096), r"gzip-compressed, not a raw SD card image; decompress"),
        (b"QFI\xfb" + bytes(4096), r"a qcow2 image.*qemu-img convert -O raw"),
        (b"\1" * 4096, r"no partition table \(no MBR signature 55 AA at byte 510\)"),
        (bytes(510) + b"\x55\xaa", r"an MBR that lists no partition"),
    ],
    ids=["tiny", "gzip", "qcow2", "no-mbr", "empty-mbr"],
)
def test_what_is_not_a_disk_image_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    image = tmp_path / "sdcard.img"
    image.write_bytes(content)
    with pytest.raises(ImageError, match=rf"^{image}: .*{message}"):
        read_partition_table(image)


@needs_card_tools
def test_a_rootfs_or_a_lone_fat_is_not_taken_for_a_card(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.ext4"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", str(rootfs), "4M"], check=True)
    with pytest.raises(ImageError, match=r"an ext2/3/4 filesystem.*not a rootfs"):
        read_partition_table(rootfs)
    boot = tmp_path / "boot.vfat"
    subprocess.run(["mkfs.vfat", "-C", str(boot), "4096"], check=True, capture_output=True)
    with pytest.raises(ImageError, match=r"a FAT filesystem \(a boot partition alone\)"):
        read_partition_table(boot)


def test_a_truncated_image_is_reported(tmp_path: Path) -> None:
    image = tmp_path / "card.img"
    image.write_bytes(mbr_sector([(0x0C, MIB, 8 * MIB)]) + bytes(MIB))
    with pytest.raises(ImageError, match=r"partition 1 ends at byte 9437184 .* truncated"):
        read_partition_table(image)


@needs_card_tools
def test_filesystem_labels_and_uuids(tmp_path: Path) -> None:
    image = make_card(tmp_path / "card.img", {"a.txt": b"a"}, root_label="vendor-root")
    boot, root = read_partition_table(image).partitions
    assert filesystem_of(image, boot) == ("vfat", "BOOT", "1234-ABCD")
    kind, label, fs_uuid = filesystem_of(image, root)
    blkid = subprocess.run(
        ["dumpe2fs", "-h", f"{image}?offset={ROOT_START}"], capture_output=True, text=True
    ).stdout
    assert (kind, label) == ("ext4", "vendor-root")
    assert f"Filesystem UUID:          {fs_uuid}" in blkid


# -- boot files --------------------------------------------------------------------------


@needs_card_tools
def test_a_firmware_card_boots_as_the_firmware_would(tmp_path: Path) -> None:
    image = make_card(tmp_path / "sdcard.img", standard_boot(tmp_path / "dt"))
    before = (sha256_file(image), image.stat().st_mtime_ns)
    card = load_sdcard(image, tmp_path / "cache", _quiet)
    assert (sha256_file(image), image.stat().st_mtime_ns) == before
    assert card.sha256 == before[0]
    assert card.kernel.read_bytes() == ARM64_KERNEL
    assert card.initrd is not None and card.initrd.read_bytes() == b"070701 not really a cpio"
    # serial0 is the firmware's mini-UART: ttyS0, on QEMU's second serial; tty1 stays.
    assert card.append == "console=ttyS0,115200 console=tty1 root=/dev/mmcblk0p2 rootwait"
    assert card.console_serial == 1
    assert card.card_size == CARD_SIZE == 16 * MIB  # a power of two already
    facts = card.manifest
    assert (facts["root_partition"], facts["root_filesystem"]) == (2, "ext4")
    assert facts["kernel"]["format"] == "arm64 Image"
    # The extracted dtb lost the PL011's bluetooth child and gained a seed; the card's did not.
    assert _fdtget(card.dtb, "-l", "/soc/serial@7e201000").stdout == ""
    assert len(_fdtget(card.dtb, "-t", "x", "/chosen", "rng-seed").stdout.split()) == 8
    original = tmp_path / "dt" / "bcm2710-rpi-3-b.dtb"
    assert _fdtget(original, "-l", "/soc/serial@7e201000").stdout.split() == ["bluetooth"]


@needs_card_tools
def test_the_image_hash_is_computed_once_per_path_size_and_times(tmp_path: Path) -> None:
    image = make_card(tmp_path / "sdcard.img", standard_boot(tmp_path / "dt"))
    cache = tmp_path / "cache"
    real = load_sdcard(image, cache, _quiet).sha256
    (record,) = (cache / "sdcards" / "identity").glob("*.json")
    stamp = json.loads(record.read_text())
    record.write_text(json.dumps({**stamp, "sha256": "f" * 64}))
    assert load_sdcard(image, cache, _quiet).sha256 == "f" * 64  # the record was believed
    os.utime(image, ns=(stamp["mtime_ns"] + 1, stamp["mtime_ns"] + 1))
    assert load_sdcard(image, cache, _quiet).sha256 == real  # a new time: hashed again


@needs_card_tools
def test_config_txt_names_kernel_dtb_and_initramfs(tmp_path: Path) -> None:
    config = b"[pi4]\nkernel=wrong.img\n[all]\nkernel=boot/vmlinuz\ndevice_tree=my.dtb\n"
    files = {
        "config.txt": config + b"initramfs first.cpio,second.cpio followkernel\n",
        "cmdline.txt": b"console=ttyAMA0,115200 root=PARTUUID=1234ABCD-02 rootwait\nignored\n",
        "boot/vmlinuz": ARM64_KERNEL,
        "my.dtb": dtb(tmp_path / "dt"),
        "first.cpio": b"one",
        "second.cpio": b"two",
    }
    card = load_sdcard(make_card(tmp_path / "c.img", files), tmp_path / "cache", _quiet)
    assert card.kernel.name == "vmlinuz" and card.dtb.name == "my.dtb"
    assert card.initrd is not None and card.initrd.read_bytes() == b"onetwo"
    assert card.append == "console=ttyAMA0,115200 root=PARTUUID=1234ABCD-02 rootwait"
    assert (card.console_serial, card.manifest["root_partition"]) == (0, 2)


@needs_card_tools
def test_a_card_without_console_gets_the_pl011(tmp_path: Path) -> None:
    boot = standard_boot(tmp_path / "dt", **{"cmdline.txt": b"root=LABEL=rootfs quiet\n"})
    card = load_sdcard(make_card(tmp_path / "c.img", boot), tmp_path / "cache", _quiet)
    assert card.append == "root=LABEL=rootfs quiet console=ttyAMA0"
    assert card.console_serial == 0
    assert card.manifest["root_partition"] == 2


@needs_card_tools
def test_no_fat_partition(tmp_path: Path) -> None:
    image = make_card(tmp_path / "sdcard.img", {}, boot_type=0x83)
    # The "boot" partition is typed Linux but holds a FAT: found by its content.
    check_sdcard_file(image)
    with image.open("r+b") as stream:
        stream.seek(BOOT_START)
        stream.write(bytes(4096))  # no filesystem left in p1
    with pytest.raises(ImageError) as caught:
        check_sdcard_file(image)
    assert str(caught.value) == (
        f"{image}: no FAT boot partition found in the MBR (partitions: "
        f"p1 Linux (0x83) at 1024 KiB, {BOOT_SIZE // MIB} MiB; p2 Linux (0x83) at "
        f"{ROOT_START // 1024} KiB, 7 MiB); give the raw SD card image as written by the vendor's "
        "build (sdcard.img), not a rootfs"
    )


def load_sdcard_error(image: Path, tmp_path: Path) -> str:
    """The ImageError message of loading `image`, or "" when it loads."""
    try:
        load_sdcard(image, tmp_path / "cache", _quiet)
    except ImageError as error:
        return str(error)
    return ""


@needs_card_tools
def test_no_kernel_names_the_files_and_the_64_bit_switch(tmp_path: Path) -> None:
    boot = standard_boot(tmp_path / "dt", **{"config.txt": b"# nothing\n"})
    message = load_sdcard_error(make_card(tmp_path / "c.img", boot), tmp_path)
    assert message.startswith(f"{tmp_path / 'c.img'}: no kernel in the boot partition: none of ")
    assert "kernel7.img, kernel.img (files: " in message
    assert (
        "config.txt asks for 32-bit mode but the card has kernel8.img: add arm_64bit=1" in message
    )


@needs_card_tools
def test_no_kernel_at_all(tmp_path: Path) -> None:
    boot = standard_boot(tmp_path / "dt")
    del boot["kernel8.img"]
    message = load_sdcard_error(make_card(tmp_path / "c.img", boot), tmp_path)
    assert "no kernel in the boot partition: none of kernel8.img, Image" in message
    assert message.endswith("set kernel=<file> in config.txt")


@needs_card_tools
def test_no_device_tree(tmp_path: Path) -> None:
    boot = standard_boot(tmp_path / "dt")
    del boot["bcm2710-rpi-3-b.dtb"]
    message = load_sdcard_error(make_card(tmp_path / "c.img", boot), tmp_path)
    assert "no Pi 3 B device tree in the boot partition: none of bcm2710-rpi-3-b.dtb" in message
    assert message.endswith("name it with device_tree= in config.txt")


@needs_card_tools
def test_a_missing_initramfs_and_a_root_that_is_not_there(tmp_path: Path) -> None:
    boot = standard_boot(tmp_path / "dt")
    del boot["initrd.img"]
    message = load_sdcard_error(make_card(tmp_path / "a.img", boot), tmp_path)
    assert "config.txt names initramfs initrd.img, which is not in the boot partition" in message
    boot = standard_boot(tmp_path / "dt", **{"cmdline.txt": b"root=/dev/mmcblk0p3 rootwait\n"})
    message = load_sdcard_error(make_card(tmp_path / "b.img", boot), tmp_path)
    assert "root=/dev/mmcblk0p3 but the image has no partition 3" in message


# -- the card QEMU gets ------------------------------------------------------------------


@needs_card_tools
def test_the_card_is_an_overlay_and_the_image_is_never_written(tmp_path: Path) -> None:
    image = make_card(tmp_path / "sdcard.img", standard_boot(tmp_path / "dt"))
    with image.open("ab") as stream:
        stream.write(bytes(512))  # vendor images are seldom a power of two
    card = load_sdcard(image, tmp_path / "cache", _quiet)
    before = sha256_file(image)
    overlay = tmp_path / "state.qcow2"
    card.create_card(overlay)
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(overlay)], capture_output=True, check=True
        ).stdout
    )
    assert info["virtual-size"] == 2 * CARD_SIZE
    assert (info["backing-filename"], info["backing-filename-format"]) == (str(image), "raw")
    # A guest writing the whole card changes the overlay only.
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", f"write -P 0xab 0 {2 * CARD_SIZE}", str(overlay)],
        capture_output=True,
        check=True,
    )
    assert sha256_file(image) == before
    moved = image.rename(tmp_path / "moved.img")
    card_there = load_sdcard(moved, tmp_path / "cache", _quiet)
    card_there.adopt_card(overlay)
    info = subprocess.run(["qemu-img", "info", str(overlay)], capture_output=True, text=True)
    assert f"backing file: {moved}" in info.stdout


def test_card_sizes_are_powers_of_two() -> None:
    assert [card_size(n) for n in (1, 512, 513, 16 * MIB, 16 * MIB + 1)] == [
        512,
        512,
        1024,
        16 * MIB,
        32 * MIB,
    ]


def test_qemu_argv_puts_the_console_on_the_chosen_serial(tmp_path: Path) -> None:
    argv = build_argv(
        MACHINES["rpi3"],
        kernel=tmp_path / "k",
        initrd=None,
        dtb=tmp_path / "d",
        append="console=ttyS1",
        rundir=tmp_path,
        drive=tmp_path / "s.qcow2",
        netdev=None,
        loadvm=None,
        console_serial=1,
    )
    line = " ".join(argv)
    assert "-serial null -serial chardev:console" in line
    assert "-initrd" not in argv
    assert line.count("-drive") == 1 and f"if=sd,format=qcow2,file={tmp_path}/s.qcow2" in line


# -- wiring ------------------------------------------------------------------------------


@needs_card_tools
def test_an_image_file_is_an_sd_card_for_rpi3_only(tmp_path: Path, monkeypatch) -> None:
    image = make_card(tmp_path / "sdcard.img", standard_boot(tmp_path / "dt"))
    check_settings(Settings(targets=(TargetSpec("qemu", "rpi3"),), image=image))
    with pytest.raises(SettingsError, match=r"QEMU machine virt has no SD card slot"):
        check_settings(Settings(targets=(TargetSpec("qemu", "virt"),), image=image))
    monkeypatch.setenv("THUNDER_CONTAINER_CACHE", str(tmp_path / "cache"))
    settings = Settings(targets=(TargetSpec("qemu", "rpi3"),), image=image)
    assert resolve_image(settings, _quiet).sha256 == sha256_file(image)


def test_a_file_that_is_no_card_is_a_usage_error(tmp_path: Path) -> None:
    kernel = tmp_path / "Image"
    kernel.write_bytes(ARM64_KERNEL * 20)
    with pytest.raises(SettingsError, match=rf"--thunder-image={kernel}: .*no partition table"):
        check_inputs(Settings(targets=(TargetSpec("qemu", "rpi3"),), image=kernel))
