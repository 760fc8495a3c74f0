"""The reference image written as an SD card: layout, MBR, root tree, stage-1 initrd, sameness."""

from __future__ import annotations

import argparse
import gzip
import io
import subprocess
from pathlib import Path

import pytest
from helpers.sdcards import ARM64_KERNEL, dtb, needs_card_tools

from pytest_thunder_container.image.initramfs import Entry, write_newc
from pytest_thunder_container.image.model import Image
from pytest_thunder_container.image.partitions import read_partition_table
from pytest_thunder_container.image.sdcard import load_sdcard
from pytest_thunder_container.image.sdcard_build import (
    CMDLINE,
    add_arguments,
    build_sdcard,
    mbr,
    plan_layout,
    read_newc,
)

MIB = 1 << 20
TREE = [
    Entry.directory("bin"),
    Entry.file("bin/busybox", b"\x7fELF busybox", 0o755),
    Entry.directory("dev"),
    Entry.char_device("dev/console", 5, 1),
    Entry.directory("etc"),
    Entry.file("etc/shadow", b"root:$6$x:1::::::\n", 0o600),
    Entry.file("init", b"#!/bin/busybox sh\n", 0o755),
    Entry.directory("lib"),
    Entry.directory("lib/modules"),
    Entry.directory("lib/modules/6.1.0-56-arm64"),
    Entry.file("lib/modules/6.1.0-56-arm64/modules.dep", b""),
    Entry.directory("newroot"),
    Entry.directory("proc"),
    Entry.directory("sys"),
    Entry.directory("tmp", 0o1777),
    Entry.directory("usr"),
    Entry.directory("usr/bin"),
    Entry.file("usr/bin/python3.11", b"python", 0o755),
    Entry.symlink("usr/bin/python3", "python3.11"),
]


def _newc(entries: list[Entry]) -> bytes:
    out = io.BytesIO()
    write_newc(entries, out)
    return out.getvalue()


def _quiet(_: str) -> None:
    return None


def test_newc_archives_read_back_also_when_concatenated() -> None:
    first, second = TREE[:5], [Entry.file("etc/extra", b"odd length")]
    read = list(read_newc(_newc(first) + bytes(512) + _newc(second)))
    assert read == sorted(first, key=lambda e: e.path.split("/")) + second


def test_the_layout_is_a_power_of_two_with_the_boot_at_4_mib() -> None:
    layout = plan_layout(boot_bytes=48 * MIB, root_bytes=42 * MIB, root_free=64 * MIB)
    assert layout.boot_start == 4 * MIB
    assert layout.boot_size % (4 * MIB) == 0 and layout.boot_size >= 48 * MIB + 16 * MIB
    assert layout.root_start == layout.boot_start + layout.boot_size
    assert layout.total == 256 * MIB
    assert layout.root_size >= 42 * MIB + 64 * MIB


def test_the_mbr_reads_back(tmp_path: Path) -> None:
    layout = plan_layout(8 * MIB, 8 * MIB, 8 * MIB)
    image = tmp_path / "card.img"
    image.write_bytes(mbr(layout, 0xCAFE0001))
    with image.open("r+b") as stream:
        stream.truncate(layout.total)
    boot, root = read_partition_table(image).partitions
    assert (boot.type_id, boot.start, boot.size) == ("0c", layout.boot_start, layout.boot_size)
    assert (root.type_id, root.start, root.size) == ("83", layout.root_start, layout.root_size)
    assert root.partuuid == "cafe0001-02"


@pytest.fixture
def reference(tmp_path: Path) -> Image:
    """A built image in miniature: a kernel, a mainline dtb and a gzip initrd of TREE."""
    folder = tmp_path / "reference"
    folder.mkdir()
    (folder / "Image").write_bytes(ARM64_KERNEL)
    (folder / "initrd.img").write_bytes(gzip.compress(_newc(TREE), mtime=0))
    manifest = {
        "name": "rpi3",
        "built_at": "2026-11-28T22:21:16+00:00",
        "login": {"user": "root", "password": "thunder"},
    }
    return Image(
        folder,
        folder / "Image",
        folder / "initrd.img",
        dtb(folder, name="bcm2837-rpi-3-b.dtb"),
        manifest,
        "ab" * 32,
    )


def _debugfs(image: Path, offset: int, command: str) -> str:
    result = subprocess.run(
        ["debugfs", "-R", command, f"{image}?offset={offset}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@needs_card_tools
def test_the_card_boots_from_its_fat_and_roots_on_ext4(tmp_path: Path, reference: Image) -> None:
    out = build_sdcard(reference, tmp_path / "sdcard.img", root_free=8 * MIB, progress=_quiet)
    card = load_sdcard(out, tmp_path / "cache", _quiet)
    assert card.append == CMDLINE == "console=ttyAMA0 root=/dev/mmcblk0p2 rootwait rw"
    assert (card.console_serial, card.login) == (0, ("root", "thunder"))
    assert (card.manifest["root_partition"], card.manifest["root_filesystem"]) == (2, "ext4")
    assert card.kernel.read_bytes() == ARM64_KERNEL
    # The card's initrd carries only what stage 1 needs to mount the root.
    assert card.initrd is not None
    stage1 = {entry.path for entry in read_newc(gzip.decompress(card.initrd.read_bytes()))}
    assert {"init", "bin/busybox", "dev/console", "lib/modules/6.1.0-56-arm64/modules.dep"} < stage1
    assert not {"etc/shadow", "usr/bin/python3"} & stage1
    root = read_partition_table(out).get(2)
    assert root is not None
    fsck = subprocess.run(
        ["e2fsck", "-fn", f"{out}?offset={root.start}"], capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    shadow = _debugfs(out, root.start, "stat /etc/shadow")
    assert "Mode:  0600" in shadow and "User:     0   Group:     0" in shadow
    console = _debugfs(out, root.start, "stat /dev/console")
    assert "Type: character special" in console and "Device major/minor number: 05:01" in console
    assert 'Fast link dest: "python3.11"' in _debugfs(out, root.start, "stat /usr/bin/python3")
    assert "Mode:  01777" in _debugfs(out, root.start, "stat /tmp")


@needs_card_tools
def test_the_same_reference_gives_the_same_bytes(tmp_path: Path, reference: Image) -> None:
    first = build_sdcard(reference, tmp_path / "a.img", root_free=8 * MIB, progress=_quiet)
    second = build_sdcard(reference, tmp_path / "b.img", root_free=8 * MIB, progress=_quiet)
    assert first.read_bytes() == second.read_bytes()


def test_the_command_line_entry() -> None:
    parser = argparse.ArgumentParser(prog="thunder-container image")
    add_arguments(parser.add_subparsers(dest="image_command", required=True))
    args = parser.parse_args(["sdcard", "rpi3", "out.img", "--free", "32"])
    assert (args.name, args.out, args.free) == ("rpi3", "out.img", 32)
    assert callable(args.func)
    assert parser.parse_args(["sdcard", "rpi3", "out.img"]).free == 64
