"""Broken user image folders made from the reference image: real files, broken on purpose."""

from __future__ import annotations

import gzip
import io
import random
import shutil
from pathlib import Path

from pytest_thunder_container.image.build import reference_image
from pytest_thunder_container.image.initramfs import Entry, compress, write_newc
from pytest_thunder_container.image.model import Image

KERNEL = "Image"
DTB = "bcm2837-rpi-3-b.dtb"
INITRD = "initrd.img"
NEWC_HEADER = 110
# Cut inside the first file of the archive (busybox, about 1.8 MB): nothing runnable unpacks.
TRUNCATED_SIZE = 200_000
SLEEPING_INIT = (
    "#!/bin/busybox sh\n"
    "echo 'custom init: waiting for the root device /dev/mmcblk0p2'\n"
    "exec /bin/busybox sleep 100000\n"
)


def user_image(
    directory: Path,
    *,
    kernel: bytes | None = None,
    initrd: bytes | None = None,
    dtb: bool = True,
) -> Path:
    """A user's kernel + dtb + initrd folder (no manifest): the reference's files or those given."""
    reference = reference_image()
    directory.mkdir(parents=True)
    files = {KERNEL: kernel, INITRD: initrd, **({DTB: None} if dtb else {})}
    for name, replacement in files.items():
        if replacement is None:
            shutil.copyfile(reference.directory / name, directory / name)
        else:
            (directory / name).write_bytes(replacement)
    return directory


def garbage_kernel() -> bytes:
    """A megabyte of noise where the kernel should be (the same noise every run)."""
    return random.Random(20240607).randbytes(1 << 20)


def truncated_initrd(reference: Image) -> bytes:
    """The reference initrd cut short, as an interrupted copy leaves it."""
    return reference.initrd.read_bytes()[:TRUNCATED_SIZE]


def newc_member(archive: bytes, name: str) -> bytes:
    """One file's data from an uncompressed newc (cpio) archive."""
    offset = 0
    while archive[offset : offset + 6] == b"070701":
        header = archive[offset : offset + NEWC_HEADER]
        size, name_size = int(header[54:62], 16), int(header[94:102], 16)
        start = offset + NEWC_HEADER
        member = archive[start : start + name_size - 1].decode()
        data_at = (start + name_size + 3) // 4 * 4
        if member == name:
            return archive[data_at : data_at + size]
        offset = (data_at + size + 3) // 4 * 4
    raise LookupError(f"{name} is not in the archive")


def sleeping_initrd(reference: Image) -> bytes:
    """An initramfs whose /init says one line and then waits forever: no prompt ever comes."""
    busybox = newc_member(gzip.decompress(reference.initrd.read_bytes()), "bin/busybox")
    entries = [
        Entry.directory("bin"),
        Entry.file("bin/busybox", busybox, 0o755),
        Entry.directory("dev"),
        Entry.char_device("dev/console", 5, 1),
        Entry.file("init", SLEEPING_INIT.encode(), 0o755),
    ]
    stream = io.BytesIO()
    write_newc(entries, stream)
    return compress(stream.getvalue(), "gzip-6")
