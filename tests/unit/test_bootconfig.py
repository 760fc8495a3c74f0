"""config.txt and cmdline.txt as the Pi 3 firmware reads them: files, console, root."""

from __future__ import annotations

import pytest

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.bootconfig import (
    MINI_UART,
    PL011,
    BootConfig,
    choose_console,
    parse_config_txt,
    read_cmdline,
    root_argument,
    root_partition,
)
from pytest_thunder_container.image.partitions import Partition, PartitionTable

FIRMWARE_ALIASES = {"serial0": MINI_UART, "serial1": PL011}  # bcm2710-rpi-3-b.dtb
MAINLINE_ALIASES = {"serial0": PL011, "serial1": MINI_UART}  # bcm2837-rpi-3-b.dtb


def test_the_keys_that_choose_what_is_loaded() -> None:
    config = parse_config_txt(
        "# comment\n"
        "arm_64bit=1\n"
        "kernel=Image\n"
        "device_tree = my.dtb\n"
        "initramfs initrd.img followkernel\n"
        "dtoverlay=disable-bt\n"
        "dtoverlay=vc4-kms-v3d,cma-256\n"
        "cmdline=args.txt\n"
    )
    assert config == BootConfig(
        kernel="Image",
        device_tree="my.dtb",
        initramfs=("initrd.img",),
        arm_64bit=True,
        cmdline_file="args.txt",
        overlays=("disable-bt", "vc4-kms-v3d"),
    )


def test_sections_for_other_models_do_not_apply_and_all_resets() -> None:
    config = parse_config_txt(
        "kernel=common.img\n"
        "[pi4]\nkernel=pi4.img\narm_64bit=1\n"
        "[pi3]\ninitramfs pi3.cpio followkernel\n"
        "[pi3+]\ndevice_tree=plus.dtb\n"
        "[HDMI:0]\ndevice_tree=hdmi.dtb\n"
        "[all]\ncmdline=all.txt\n"
        "[none]\nkernel=never.img\n"
    )
    assert (config.kernel, config.arm_64bit, config.initramfs) == (
        "common.img",
        False,
        ("pi3.cpio",),
    )
    assert (config.device_tree, config.cmdline_file) == (None, "all.txt")


def test_include_is_read_in_place() -> None:
    files = {"extra.txt": "arm_64bit=1\ninclude deeper.txt\n", "deeper.txt": "kernel=k.img\n"}
    config = parse_config_txt("include extra.txt\nkernel=first.img\n", files.get)
    assert (config.arm_64bit, config.kernel) == (True, "first.img")
    with pytest.raises(ImageError, match=r"`include` nests deeper than 8"):
        parse_config_txt("include loop.txt\n", {"loop.txt": "include loop.txt\n"}.get)


def test_default_kernels_dtbs_and_initramfs() -> None:
    assert BootConfig(arm_64bit=True).kernel_candidates() == ("kernel8.img", "Image")
    assert BootConfig().kernel_candidates() == ("kernel7.img", "kernel.img")
    assert BootConfig(os_prefix="v2/").dtb_candidates()[0] == "v2/bcm2710-rpi-3-b.dtb"
    assert BootConfig(upstream_kernel=True).dtb_candidates()[0] == "bcm2837-rpi-3-b.dtb"
    assert BootConfig(auto_initramfs=True).initramfs_files("kernel8.img") == ("initramfs8",)
    assert BootConfig().initramfs_files("kernel8.img") == ()
    assert parse_config_txt("arm_control=0x200\n").arm_64bit
    assert parse_config_txt("ramfsfile=a.cpio,b.cpio\n").initramfs == ("a.cpio", "b.cpio")


def test_cmdline_is_its_first_line_with_spaces_squeezed() -> None:
    assert read_cmdline("  console=ttyAMA0   root=/dev/mmcblk0p2\nrootwait\n") == (
        "console=ttyAMA0 root=/dev/mmcblk0p2"
    )
    assert read_cmdline("") == ""


@pytest.mark.parametrize(
    ("cmdline", "aliases", "overlays", "mainline", "append", "serial"),
    [
        # The PL011 named as such: as is, on QEMU's first serial.
        ("console=ttyAMA0,115200 root=/dev/mmcblk0p2", FIRMWARE_ALIASES, (), False,
         "console=ttyAMA0,115200 root=/dev/mmcblk0p2", 0),
        # Raspberry Pi OS: serial0 is the mini-UART, ttyS0, on QEMU's second serial.
        ("console=serial0,115200 console=tty1 rootwait", FIRMWARE_ALIASES, (), False,
         "console=ttyS0,115200 console=tty1 rootwait", 1),
        # dtoverlay=disable-bt gives serial0 to the PL011.
        ("console=serial0,115200", FIRMWARE_ALIASES, ("disable-bt",), False,
         "console=ttyAMA0,115200", 0),
        # Mainline numbers the mini-UART by its alias: serial1 is ttyS1.
        ("console=serial1", MAINLINE_ALIASES, (), True, "console=ttyS1", 1),
        ("console=ttyS1,115200", MAINLINE_ALIASES, (), True, "console=ttyS1,115200", 1),
        # The last console is /dev/console: it decides.
        ("console=ttyS0 console=ttyAMA0", FIRMWARE_ALIASES, (), False,
         "console=ttyS0 console=ttyAMA0", 0),
        # No UART console at all: the PL011 is added.
        ("console=tty1 quiet", FIRMWARE_ALIASES, (), False,
         "console=tty1 quiet console=ttyAMA0", 0),
        ("", {}, (), False, "console=ttyAMA0", 0),
        # serial0 without an alias can't be resolved: left alone, the PL011 added.
        ("console=serial0", {}, (), False, "console=serial0 console=ttyAMA0", 0),
    ],
)  # fmt: skip
def test_the_console_and_the_qemu_serial_that_carries_it(
    cmdline: str,
    aliases: dict[str, str],
    overlays: tuple[str, ...],
    mainline: bool,
    append: str,
    serial: int,
) -> None:
    choice = choose_console(cmdline, aliases, overlays, mainline)
    assert (choice.append, choice.serial) == (append, serial)


def _table() -> PartitionTable:
    mib = 1 << 20
    parts = (
        Partition(1, 4 * mib, 64 * mib, "0c", "1234abcd-01", True),
        Partition(2, 68 * mib, 60 * mib, "83", "1234abcd-02", False),
    )
    return PartitionTable("mbr", "1234abcd", parts)


FILESYSTEMS = {1: ("vfat", "BOOT", "1234-ABCD"), 2: ("ext4", "rootfs", "0b6e-uuid")}


@pytest.mark.parametrize(
    ("root", "number"),
    [
        ("/dev/mmcblk0p2", 2),
        ("PARTUUID=1234ABCD-02", 2),
        ("PARTUUID=1234abcd-01/PARTNROFF=1", 1),
        ("LABEL=rootfs", 2),
        ("UUID=0b6e-uuid", 2),
        ("/dev/sda2", None),
        ("/dev/ram0", None),
    ],
)
def test_root_names_a_partition_of_the_card(root: str, number: int | None) -> None:
    found = root_partition(root, _table(), FILESYSTEMS, "sdcard.img")
    assert (found.number if found else None) == number


@pytest.mark.parametrize(
    ("root", "message"),
    [
        ("/dev/mmcblk0p3", r"root=/dev/mmcblk0p3 but the image has no partition 3 \(p1 FAT32"),
        ("PARTUUID=deadbeef-02", r"their PARTUUIDs: 1234abcd-01, 1234abcd-02\); fix root="),
        ("LABEL=writable", r"root=LABEL=writable matches no filesystem on the image"),
    ],
)
def test_a_root_the_card_does_not_have(root: str, message: str) -> None:
    with pytest.raises(ImageError, match=rf"^sdcard.img: .*{message}"):
        root_partition(root, _table(), FILESYSTEMS, "sdcard.img")


def test_the_kernel_takes_the_last_root() -> None:
    assert root_argument("root=/dev/mmcblk0p1 quiet root=PARTUUID=1234abcd-02") == (
        "PARTUUID=1234abcd-02"
    )
    assert root_argument("console=ttyAMA0") is None
