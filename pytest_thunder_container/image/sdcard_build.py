"""An SD card image made of the reference image: a FAT boot partition and an ext4 root."""

# No loop mount and no root privileges: mkfs.vfat and mke2fs write at their partition's offset,
# mcopy fills the FAT, `mke2fs -d` copies the reference root tree, debugfs gives every file to
# root, and the MBR is written here. The same reference image gives the same bytes.

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.initramfs import (
    NEWC_MAGIC,
    TRAILER,
    Entry,
    compress,
    write_newc,
)
from pytest_thunder_container.image.model import Image
from pytest_thunder_container.image.partitions import SECTOR

Progress = Callable[[str], None]
MIB = 1 << 20
ALIGN = 4 * MIB  # where the boot partition starts and how partitions are aligned
BOOT_SLACK = 16 * MIB
BOOT_MIN = 64 * MIB  # FAT32 needs 65525 clusters: less and mcopy finds "no directory slots"
ROOT_FREE = 64 * MIB  # room on the root for bundles, logs and a container's rootfs copy
ROOT_NUMBER = 2
CMDLINE = f"console=ttyAMA0 root=/dev/mmcblk0p{ROOT_NUMBER} rootwait rw"
BOOT_FILES = {"kernel": "kernel8.img", "initrd": "initrd.img"}
CONFIG_TXT = (
    "# The reference image on an SD card (thunder-container image sdcard).\n"
    "arm_64bit=1\n"
    "kernel={kernel}\n"
    "device_tree={dtb}\n"
    "initramfs {initrd} followkernel\n"
)
FAT32_LBA = 0x0C
LINUX = 0x83
# The stage-1 initrd: /init, busybox, the kernel modules and the mount points it uses.
STAGE1_PATHS = frozenset(
    {"init", "bin", "bin/busybox", "dev", "dev/console", "proc", "sys", "newroot", "lib"}
    | {"lib/modules"}
)
TOOLS = ("mkfs.vfat", "mcopy", "mke2fs", "debugfs")


@dataclass(frozen=True)
class SdLayout:
    """Where the two partitions lie in the image, in bytes."""

    boot_start: int
    boot_size: int
    root_start: int
    root_size: int

    @property
    def total(self) -> int:
        return self.root_start + self.root_size


def _align(size: int, unit: int = ALIGN) -> int:
    return -(-size // unit) * unit


def plan_layout(boot_bytes: int, root_bytes: int, root_free: int = ROOT_FREE) -> SdLayout:
    """Boot at 4 MiB; the root fills the image up to the next power of two (what QEMU wants)."""
    boot_size = max(BOOT_MIN, _align(boot_bytes + boot_bytes // 10 + BOOT_SLACK))
    root_start = ALIGN + boot_size
    # ext4's own tables and journal take about a fifth of a small filesystem.
    needed = root_start + _align(root_bytes + root_bytes // 4 + root_free)
    total = 1 << (needed - 1).bit_length()
    return SdLayout(ALIGN, boot_size, root_start, total - root_start)


def mbr(layout: SdLayout, disk_signature: int) -> bytes:
    """A DOS partition table: p1 FAT32 (LBA) for the firmware, p2 Linux for the root."""
    sector = bytearray(SECTOR)
    struct.pack_into("<I", sector, 440, disk_signature)
    slots = (
        (FAT32_LBA, layout.boot_start, layout.boot_size),
        (LINUX, layout.root_start, layout.root_size),
    )
    for index, (kind, start, size) in enumerate(slots):
        # CHS fields hold the "use LBA" marker (1023/254/63): nothing reads CHS any more.
        entry = struct.pack(
            "<B3sB3sII", 0, b"\xfe\xff\xff", kind, b"\xfe\xff\xff", start // SECTOR, size // SECTOR
        )
        sector[446 + 16 * index : 462 + 16 * index] = entry
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def read_newc(data: bytes) -> Iterator[Entry]:
    """The members of a newc cpio archive (several archives back to back too)."""
    offset = 0
    while offset + 110 <= len(data):
        if data[offset : offset + 4] == b"\0\0\0\0":
            offset += 4  # zeros between archives, as the kernel allows
            continue
        if data[offset : offset + 6] != NEWC_MAGIC:
            raise ImageError(f"initrd: not a newc cpio archive at byte {offset}")
        fields = [int(data[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rdev = fields[1], fields[6], (fields[9], fields[10])
        name_size = fields[11]
        name_start = offset + 110
        name = data[name_start : name_start + name_size - 1].decode()
        body = name_start + name_size + (-(110 + name_size) % 4)
        content = data[body : body + filesize]
        offset = body + filesize + (-filesize % 4)
        if name == TRAILER:
            continue
        yield Entry(name.removeprefix("./"), mode, content, rdev)


def decompress(data: bytes) -> bytes:
    """An initrd as gzip, xz or plain cpio."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data)
    return data


def unpack_tree(entries: Iterator[Entry], root: Path, mtime: int) -> list[Entry]:
    """Write files, directories and symlinks under `root`; return what a tree can't hold."""
    special: list[Entry] = []
    directories: list[tuple[Path, int]] = []
    for entry in entries:
        if entry.path in (".", ""):
            continue
        target = root / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        kind = stat.S_IFMT(entry.mode)
        if kind == stat.S_IFDIR:
            target.mkdir(exist_ok=True)
            directories.append((target, stat.S_IMODE(entry.mode)))
        elif kind == stat.S_IFLNK:
            target.unlink(missing_ok=True)
            target.symlink_to(entry.data.decode())
            os.utime(target, (mtime, mtime), follow_symlinks=False)
        elif kind == stat.S_IFREG:
            target.write_bytes(entry.data)
            target.chmod(stat.S_IMODE(entry.mode))
            os.utime(target, (mtime, mtime))
        else:
            special.append(entry)  # device nodes: made in the filesystem by debugfs
    for directory, perm in reversed(directories):
        directory.chmod(perm)
        os.utime(directory, (mtime, mtime))
    return special


def _run(command: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise ImageError(f"{what}: `{' '.join(command)}` failed ({result.returncode}): {output}")
    return result.stdout


def _tree_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*"))


def _fix_ownership(
    image: Path, layout: SdLayout, root: Path, special: list[Entry], epoch: int
) -> None:
    """Every inode owned by root with the build's time, and the device nodes made."""
    owner_and_times = (("uid", "0"), ("gid", "0"), ("ctime", f"@{epoch}"), ("atime", f"@{epoch}"))
    lines = []
    for path in [root, root / "lost+found", *sorted(root.rglob("*"))]:
        rel = "/" + path.relative_to(root).as_posix().removeprefix(".")
        lines += [f'sif "{rel}" {field} {value}' for field, value in owner_and_times]
    for entry in special:
        if stat.S_ISCHR(entry.mode) or stat.S_ISBLK(entry.mode):
            kind = "c" if stat.S_ISCHR(entry.mode) else "b"
            folder, _, name = ("/" + entry.path).rpartition("/")
            # mknod makes a name in the current directory: it takes no path.
            lines += [
                f'cd "{folder or "/"}"',
                f'mknod "{name}" {kind} {entry.rdev[0]} {entry.rdev[1]}',
                'cd "/"',
                f'sif "/{entry.path}" mode 0{entry.mode:o}',
            ]
            lines += [f'sif "/{entry.path}" {field} {value}' for field, value in owner_and_times]
    script = root.parent / "debugfs.cmd"
    script.write_text("\n".join(lines) + "\n")
    device = f"{image}?offset={layout.root_start}"
    result = subprocess.run(
        ["debugfs", "-w", "-f", str(script), device],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "E2FSPROGS_FAKE_TIME": str(epoch)},
    )
    # debugfs exits 0 whatever its commands did: their complaints on stderr are the errors.
    errors = [line for line in result.stderr.splitlines() if not line.startswith("debugfs ")]
    if result.returncode != 0 or errors:
        raise ImageError(f"fixing owners in the root filesystem: debugfs: {'; '.join(errors[:5])}")


def build_sdcard(
    image: Image, out: Path, *, root_free: int = ROOT_FREE, progress: Progress = print
) -> Path:
    """Write the SD card image `out` from a built reference image (kernel, dtb, initrd)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise ImageError(
            f"{', '.join(missing)} not installed (fix: apt-get install dosfstools mtools e2fsprogs)"
        )
    if image.dtb is None:
        raise ImageError(f"image {image.directory} has no device tree: raspi3b needs one")
    seed = hashlib.sha256(f"sdcard {image.sha256}".encode()).digest()
    fs_uuid = str(uuid.UUID(bytes=seed[:16], version=4))
    epoch = _build_epoch(image.manifest)
    with tempfile.TemporaryDirectory(prefix="thunder-sdcard-") as scratch:
        work = Path(scratch)
        tree = work / "root"
        tree.mkdir()
        entries = list(read_newc(decompress(image.initrd.read_bytes())))
        special = unpack_tree(iter(entries), tree, epoch)
        boot = _boot_files(image, stage1_initrd(entries), work / "boot", epoch)
        boot_bytes = sum(p.stat().st_size for p in boot.iterdir())
        layout = plan_layout(boot_bytes, _tree_bytes(tree), root_free)
        partial = out.with_name(f".{out.name}.partial")
        partial.unlink(missing_ok=True)
        with partial.open("wb") as stream:
            stream.truncate(layout.total)
        fat_env = {"MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"}
        _run(
            [
                "mkfs.vfat",
                "--invariant",
                "-F",
                "32",
                "-n",
                "BOOT",
                f"--offset={layout.boot_start // SECTOR}",
                str(partial),
                str(layout.boot_size // 1024),
            ],
            "making the boot partition",
        )
        drive = f"{partial}@@{layout.boot_start}"
        files = sorted(str(p) for p in boot.iterdir())
        _run(["mcopy", "-m", "-i", drive, *files, "::"], "filling the boot partition", fat_env)
        ext_env = {"E2FSPROGS_FAKE_TIME": str(epoch)}
        _run(
            [
                "mke2fs",
                "-q",
                "-F",
                "-t",
                "ext4",
                "-b",
                "4096",
                "-L",
                "rootfs",
                "-U",
                fs_uuid,
                "-E",
                f"offset={layout.root_start},hash_seed={fs_uuid}",
                "-d",
                str(tree),
                str(partial),
                f"{layout.root_size // 1024}k",
            ],
            "making the root filesystem",
            ext_env,
        )
        _fix_ownership(partial, layout, tree, special, epoch)
        with partial.open("r+b") as stream:
            stream.write(mbr(layout, int.from_bytes(seed[16:20], "little")))
        partial.replace(out)
    progress(
        f"[sdcard] {out}: {layout.total // MIB} MiB, boot {layout.boot_size // MIB} MiB, "
        f"root {layout.root_size // MIB} MiB (p{ROOT_NUMBER}, ext4)"
    )
    return out


def _build_epoch(manifest: Mapping[str, Any]) -> int:
    """The reference image's build time: file times that do not change from build to build."""
    built = manifest.get("built_at")
    try:
        return int(datetime.fromisoformat(str(built)).timestamp())
    except ValueError:
        return 946684800  # 2000-01-01: FAT can't say 1970


def stage1_initrd(entries: list[Entry]) -> bytes:
    """The initrd of the card: only what /init needs to mount the root (busybox, modules)."""
    kept = [entry for entry in entries if _stage1_path(entry.path)]
    archive = io.BytesIO()
    write_newc(kept, archive)
    return compress(archive.getvalue(), "gzip-6")


def _stage1_path(path: str) -> bool:
    return path in STAGE1_PATHS or path.startswith("lib/modules/")


def _boot_files(image: Image, initrd: bytes, folder: Path, epoch: int) -> Path:
    """kernel8.img, the dtb, initrd.img, config.txt, cmdline.txt and the login, with one mtime."""
    assert image.dtb is not None
    folder.mkdir()
    shutil.copyfile(image.kernel, folder / BOOT_FILES["kernel"])
    shutil.copyfile(image.dtb, folder / image.dtb.name)
    (folder / BOOT_FILES["initrd"]).write_bytes(initrd)
    config = CONFIG_TXT.format(
        kernel=BOOT_FILES["kernel"], dtb=image.dtb.name, initrd=BOOT_FILES["initrd"]
    )
    (folder / "config.txt").write_text(config)
    (folder / "cmdline.txt").write_text(CMDLINE + "\n")
    login = {"name": f"{image.name}-sdcard", "login": image.manifest.get("login")}
    (folder / "thunder-container.json").write_text(json.dumps(login, indent=2) + "\n")
    for path in folder.iterdir():
        os.utime(path, (epoch, epoch))
    return folder


def _sdcard_command(args: argparse.Namespace) -> int:
    from pytest_thunder_container.image.build import reference_image

    image = reference_image(args.name)
    out = Path(args.out).expanduser()
    if out.is_dir():
        raise ImageError(f"{out} is a directory; give the file to write, e.g. {out}/sdcard.img")
    build_sdcard(image, out, root_free=args.free * MIB, progress=_stderr)
    print(out)
    return 0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_arguments(subparsers: Any) -> None:
    """`thunder-container image sdcard NAME OUT.img`."""
    sdcard = subparsers.add_parser(
        "sdcard",
        help="write the reference image NAME as an SD card image (boot FAT + ext4 root)",
        description="Build (or find in the cache) the reference image NAME and write it as a raw "
        "SD card image: p1 FAT32 with kernel8.img, the device tree, initrd.img, config.txt and "
        f"cmdline.txt ({CMDLINE}); p2 ext4 with the root tree. Boot it with "
        "--thunder-target=rpi3 --thunder-image=OUT.img, or write it to a card.",
    )
    sdcard.add_argument("name", metavar="NAME", help="recipe name, e.g. rpi3")
    sdcard.add_argument("out", metavar="OUT.img", help="the image file to write")
    sdcard.add_argument(
        "--free",
        type=int,
        default=ROOT_FREE // MIB,
        metavar="MIB",
        help=f"free space on the root filesystem, at least (default {ROOT_FREE // MIB})",
    )
    sdcard.set_defaults(func=_sdcard_command)
