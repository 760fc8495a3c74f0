"""A deterministic initramfs: a newc cpio archive written in pure Python, then compressed."""

from __future__ import annotations

import gzip
import lzma
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pytest_thunder_container.errors import ImageError

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"
COMPRESSIONS = ("gzip-1", "gzip-6", "gzip-9", "xz", "none")


@dataclass(frozen=True)
class Entry:
    """One archive member: a directory, regular file, symlink or device node."""

    path: str  # relative, no leading slash: "usr/bin/runc"
    mode: int  # full st_mode: type bits and permission bits
    data: bytes = b""  # file contents, or the target of a symlink
    rdev: tuple[int, int] = (0, 0)  # (major, minor) of a device node

    @staticmethod
    def directory(path: str, perm: int = 0o755) -> Entry:
        return Entry(path, stat.S_IFDIR | perm)

    @staticmethod
    def file(path: str, data: bytes, perm: int = 0o644) -> Entry:
        return Entry(path, stat.S_IFREG | perm, data)

    @staticmethod
    def symlink(path: str, target: str) -> Entry:
        return Entry(path, stat.S_IFLNK | 0o777, target.encode())

    @staticmethod
    def char_device(path: str, major: int, minor: int, perm: int = 0o600) -> Entry:
        return Entry(path, stat.S_IFCHR | perm, rdev=(major, minor))


def _normal_perm(st: os.stat_result) -> int:
    """Permission bits that don't depend on the umask or the checkout: 0755 or 0644."""
    if stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXUSR:
        return 0o755
    return 0o644


def tree_entries(root: Path, perms: Mapping[str, int] | None = None) -> list[Entry]:
    """Every directory, file and symlink under `root`, with normalised permissions.

    `perms` overrides the permission bits of chosen paths (e.g. {"etc/shadow": 0o600}).
    """
    overrides = perms or {}
    entries: list[Entry] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        perm = overrides.get(rel, _normal_perm(st))
        if stat.S_ISLNK(st.st_mode):
            entries.append(Entry.symlink(rel, os.readlink(path)))
        elif stat.S_ISDIR(st.st_mode):
            entries.append(Entry.directory(rel, perm))
        elif stat.S_ISREG(st.st_mode):
            entries.append(Entry.file(rel, path.read_bytes(), perm))
        else:
            raise ImageError(f"{path}: only directories, files and symlinks can go in an initramfs")
    return entries


def _sort_key(entry: Entry) -> list[str]:
    # Component-wise order puts every directory before what it contains.
    return entry.path.split("/")


def ordered(entries: Iterable[Entry]) -> list[Entry]:
    """Entries in archive order; a path given twice keeps its last definition."""
    by_path = {entry.path.strip("/"): entry for entry in entries}
    return sorted(by_path.values(), key=_sort_key)


def _header(ino: int, entry: Entry, name: bytes, mtime: int) -> bytes:
    is_dir = stat.S_ISDIR(entry.mode)
    has_data = stat.S_ISREG(entry.mode) or stat.S_ISLNK(entry.mode)
    fields = (
        ino,
        entry.mode,
        0,  # uid
        0,  # gid
        2 if is_dir else 1,  # nlink: never a hard link
        mtime,
        len(entry.data) if has_data else 0,
        0,  # devmajor
        0,  # devminor
        *entry.rdev,
        len(name) + 1,
        0,  # check
    )
    return NEWC_MAGIC + b"".join(b"%08X" % value for value in fields)


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _records(entries: Iterable[Entry], mtime: int) -> Iterator[bytes]:
    members = [*ordered(entries), Entry(TRAILER, 0)]
    for ino, entry in enumerate(members, start=1):
        name = entry.path.strip("/").encode()
        header = _header(ino if entry.path != TRAILER else 0, entry, name, mtime)
        yield header + name + b"\0" + _pad(len(header) + len(name) + 1)
        if entry.data:
            yield entry.data + _pad(len(entry.data))


def write_newc(entries: Iterable[Entry], out: BinaryIO, mtime: int = 0) -> int:
    """Write a newc archive (uid/gid 0, one fixed mtime, no hard links); return its size."""
    size = 0
    for chunk in _records(entries, mtime):
        out.write(chunk)
        size += len(chunk)
    return size


def compress(data: bytes, method: str) -> bytes:
    """Compress for the kernel's initramfs unpacker: gzip-N, xz (CRC32 check) or none."""
    if method.startswith("gzip-") and method in COMPRESSIONS:
        return gzip.compress(data, compresslevel=int(method[5:]), mtime=0)
    if method == "xz":
        # The kernel's xz decoder knows only the CRC32 check (and none).
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    if method == "none":
        return data
    raise ImageError(f"unknown initramfs compression {method!r}: use one of {COMPRESSIONS}")
