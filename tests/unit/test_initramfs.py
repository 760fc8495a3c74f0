"""The newc writer: what the host's cpio reads back, determinism, and the kernel-friendly xz."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.initramfs import (
    Entry,
    compress,
    ordered,
    tree_entries,
    write_newc,
)

needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="host cpio not installed")


def _archive(entries: list[Entry]) -> bytes:
    out = io.BytesIO()
    size = write_newc(entries, out)
    assert size == len(out.getvalue())
    return out.getvalue()


def _sample() -> list[Entry]:
    return [
        Entry.file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755),
        Entry.symlink("bin/sh", "busybox"),
        Entry.directory("bin"),
        Entry.file("etc/odd", b"12345"),  # a length that needs padding
        Entry.char_device("dev/console", 5, 1),
        Entry.directory("dev"),
        Entry.directory("etc"),
    ]


@needs_cpio
def test_host_cpio_extracts_files_links_and_modes(tmp_path: Path) -> None:
    archive = _archive(_sample())
    files = [e for e in _sample() if not stat.S_ISCHR(e.mode)]
    subprocess.run(
        ["cpio", "-i", "-d", "--quiet", "--no-absolute-filenames"],
        input=_archive(files),
        cwd=tmp_path,
        check=True,
    )
    assert (tmp_path / "bin" / "hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((tmp_path / "bin" / "hello").stat().st_mode) == 0o755
    assert os.readlink(tmp_path / "bin" / "sh") == "busybox"
    assert (tmp_path / "etc" / "odd").read_bytes() == b"12345"
    listing = subprocess.run(
        ["cpio", "-t", "-v", "--quiet"], input=archive, capture_output=True, check=True
    ).stdout.decode()
    console = next(line for line in listing.splitlines() if line.endswith("dev/console"))
    assert console.startswith("crw-------") and "5,   1" in console
    assert " root " in console


@needs_cpio
def test_directories_come_before_their_contents() -> None:
    listing = subprocess.run(
        ["cpio", "-t", "--quiet"], input=_archive(_sample()), capture_output=True, check=True
    ).stdout.decode()
    names = listing.split()
    assert names.index("bin") < names.index("bin/hello")
    assert names.index("dev") < names.index("dev/console")


def test_same_entries_give_the_same_bytes_whatever_their_order() -> None:
    entries = _sample()
    assert _archive(entries) == _archive(list(reversed(entries)))


def test_every_member_has_uid_gid_0_the_fixed_mtime_and_no_hard_link() -> None:
    archive = _archive(_sample())
    offset = 0
    while True:
        header = archive[offset : offset + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, uid, gid, nlink, mtime, size, namesize = (
            fields[1],
            fields[2],
            fields[3],
            fields[4],
            fields[5],
            fields[6],
            fields[11],
        )
        name = archive[offset + 110 : offset + 110 + namesize - 1].decode()
        if name == "TRAILER!!!":
            break
        assert (uid, gid, mtime) == (0, 0, 0)
        assert nlink == (2 if stat.S_ISDIR(mode) else 1)
        offset += 110 + namesize
        offset += -offset % 4
        offset += size + (-size % 4)
    assert offset + 110 + namesize <= len(archive)


def test_a_path_given_twice_keeps_its_last_definition() -> None:
    members = ordered([Entry.file("etc/a", b"old"), Entry.file("etc/a", b"new")])
    assert [(m.path, m.data) for m in members] == [("etc/a", b"new")]


def test_tree_entries_normalise_permissions_and_apply_overrides(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "shadow").write_text("root:x\n")
    (tmp_path / "etc" / "run").write_text("#!/bin/sh\n")
    (tmp_path / "etc" / "run").chmod(0o700)
    (tmp_path / "etc" / "link").symlink_to("shadow")
    entries = {e.path: e for e in tree_entries(tmp_path, {"etc/shadow": 0o600})}
    assert stat.S_IMODE(entries["etc/shadow"].mode) == 0o600
    assert stat.S_IMODE(entries["etc/run"].mode) == 0o755
    assert stat.S_ISLNK(entries["etc/link"].mode) and entries["etc/link"].data == b"shadow"
    assert stat.S_IMODE(entries["etc"].mode) == 0o755


def test_gzip_is_deterministic_and_round_trips() -> None:
    data = _archive(_sample())
    assert compress(data, "gzip-6") == compress(data, "gzip-6")
    assert gzip.decompress(compress(data, "gzip-1")) == data


def test_xz_uses_the_crc32_check_the_kernel_knows() -> None:
    packed = compress(b"x" * 1000, "xz")
    # Stream flags, byte 7 of the header: check type 0x01 is CRC32 (the default CRC64 is 0x04).
    assert packed[:6] == b"\xfd7zXZ\x00" and packed[7] == 0x01
    assert lzma.decompress(packed) == b"x" * 1000


def test_unknown_compression_names_the_known_ones() -> None:
    with pytest.raises(ImageError, match="gzip-6"):
        compress(b"", "zstd")
