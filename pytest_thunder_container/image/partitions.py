"""The partition table of a raw disk image: MBR, or GPT behind its protective MBR."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pytest_thunder_container.errors import ImageError

SECTOR = 512
MBR_SIGNATURE = b"\x55\xaa"
MBR_TYPE_NAMES = {
    0x01: "FAT12",
    0x04: "FAT16 <32M",
    0x06: "FAT16",
    0x0B: "FAT32",
    0x0C: "FAT32 LBA",
    0x0E: "FAT16 LBA",
    0xEF: "EFI system (FAT)",
    0x83: "Linux",
    0x82: "Linux swap",
    0x05: "extended",
    0x0F: "extended LBA",
    0x85: "Linux extended",
    0xEE: "GPT protective",
}
FAT_MBR_TYPES = frozenset({0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E, 0xEF})
EXTENDED_MBR_TYPES = frozenset({0x05, 0x0F, 0x85})
GPT_PROTECTIVE = 0xEE
GPT_TYPE_NAMES = {
    "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7": "Microsoft basic data (FAT)",
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "EFI system (FAT)",
    "0fc63daf-8483-4772-8e79-3d69d8477de4": "Linux filesystem",
    "b921b045-1df0-41c3-af44-4c6f280d3fae": "Linux root (arm64)",
}
FAT_GPT_TYPES = frozenset(
    {"ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"}
)
MAX_LOGICAL = 64  # an EBR chain longer than this is a loop in a damaged table

# What a file that is not a whole disk image often is instead: (offset, magic, what, fix).
_NOT_A_DISK = (
    (0, b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip -k)"),
    (0, b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (xz -dk)"),
    (0, b"BZh", "bzip2-compressed", "decompress it first (bunzip2 -k)"),
    (0, b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first (zstd -d)"),
    (0, b"PK\x03\x04", "a zip archive", "unzip it first"),
    (0, b"QFI\xfb", "a qcow2 image", "convert it: qemu-img convert -O raw IN.qcow2 OUT.img"),
    (0, b"070701", "a cpio archive (an initramfs)", "give the whole SD card image"),
    (0, b"hsqs", "a squashfs filesystem", "give the whole SD card image, not a rootfs"),
    (1080, b"\x53\xef", "an ext2/3/4 filesystem", "give the whole SD card image, not a rootfs"),
)


@dataclass(frozen=True)
class Partition:
    """One partition: where it lies in the image and how the kernel names it."""

    number: int  # as in /dev/mmcblk0p<number>; logical MBR partitions count from 5
    start: int  # byte offset in the image
    size: int  # bytes
    type_id: str  # "0c" (MBR) or a type GUID (GPT)
    partuuid: str  # the kernel's PARTUUID: "1234abcd-02" (MBR) or the partition GUID (GPT)
    is_fat: bool

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def type_name(self) -> str:
        if len(self.type_id) == 2:
            return MBR_TYPE_NAMES.get(int(self.type_id, 16), "unknown")
        return GPT_TYPE_NAMES.get(self.type_id, "unknown")

    def describe(self) -> str:
        type_id = f"0x{self.type_id}" if len(self.type_id) == 2 else self.type_id
        return (
            f"p{self.number} {self.type_name} ({type_id}) at {self.start // 1024} KiB, "
            f"{self.size / 2**20:.0f} MiB"
        )


@dataclass(frozen=True)
class PartitionTable:
    """The partitions of a disk image, in number order."""

    scheme: str  # "mbr" or "gpt"
    disk_id: str  # MBR disk signature (8 hex digits) or the GPT disk GUID
    partitions: tuple[Partition, ...]

    def get(self, number: int) -> Partition | None:
        return next((p for p in self.partitions if p.number == number), None)

    def describe(self) -> str:
        return "; ".join(p.describe() for p in self.partitions) or "none"


def _read(stream: BinaryIO, offset: int, size: int) -> bytes:
    stream.seek(offset)
    return stream.read(size)


def _not_a_disk(path: Path, stream: BinaryIO, first: bytes) -> ImageError:
    for offset, magic, what, fix in _NOT_A_DISK:
        if _read(stream, offset, len(magic)) == magic:
            return ImageError(f"{path}: this is {what}, not a raw SD card image; {fix}")
    if len(first) < SECTOR:
        return ImageError(f"{path}: {len(first)} bytes is too small for a disk image")
    if _is_fat_boot_sector(first):
        return ImageError(
            f"{path}: this is a FAT filesystem (a boot partition alone), not a whole SD card "
            "image; give the raw SD card image as written by the vendor's build (sdcard.img)"
        )
    found = (
        "an MBR that lists no partition"
        if first[510:512] == MBR_SIGNATURE
        else "no partition table (no MBR signature 55 AA at byte 510)"
    )
    return ImageError(
        f"{path}: {found}; give the raw SD card image as written by the vendor's build "
        "(sdcard.img), not a rootfs or a kernel"
    )


def _is_fat_boot_sector(sector: bytes) -> bool:
    """A FAT filesystem's first sector: a jump, "FAT" in its type field, and 55 AA too."""
    jump = sector[:1] in (b"\xeb", b"\xe9")
    return jump and (b"FAT" in sector[0x36:0x3E] or b"FAT" in sector[0x52:0x5A])


def _mbr_entries(sector: bytes) -> list[tuple[int, int, int]]:
    """(type, first LBA, sector count) of the four slots, empty ones included."""
    return [
        (sector[446 + 16 * i + 4], *struct.unpack_from("<II", sector, 446 + 16 * i + 8))
        for i in range(4)
    ]


def _logical(stream: BinaryIO, path: Path, disk_id: str, base: int) -> list[Partition]:
    """The logical partitions in the EBR chain of the extended partition starting at `base`."""
    found: list[Partition] = []
    ebr = base
    while len(found) < MAX_LOGICAL:
        sector = _read(stream, ebr * SECTOR, SECTOR)
        if len(sector) < SECTOR or sector[510:512] != MBR_SIGNATURE:
            raise ImageError(f"{path}: the extended partition's table at sector {ebr} is damaged")
        (kind, first, count), (next_kind, next_first, _), *_ = _mbr_entries(sector)
        if kind and count:
            number = 5 + len(found)
            found.append(
                Partition(
                    number,
                    (ebr + first) * SECTOR,
                    count * SECTOR,
                    f"{kind:02x}",
                    f"{disk_id}-{number:02x}",
                    kind in FAT_MBR_TYPES,
                )
            )
        if next_kind not in EXTENDED_MBR_TYPES or not next_first:
            return found
        ebr = base + next_first
    raise ImageError(f"{path}: the extended partition's chain of tables loops")


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw))


def _gpt(stream: BinaryIO, path: Path) -> PartitionTable:
    header = _read(stream, SECTOR, 92)
    if header[:8] != b"EFI PART":
        raise ImageError(f"{path}: a protective MBR but no GPT header at sector 1")
    disk_guid = _guid(header[56:72])
    entries_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
    if not 128 <= entry_size <= 4096 or count > 1024:
        raise ImageError(f"{path}: the GPT header is damaged ({count} entries of {entry_size} B)")
    table = _read(stream, entries_lba * SECTOR, count * entry_size)
    partitions = []
    for index in range(count):
        entry = table[index * entry_size : (index + 1) * entry_size]
        if len(entry) < 128 or not any(entry[:16]):
            continue
        type_guid = _guid(entry[:16])
        first, last = struct.unpack_from("<QQ", entry, 32)
        partitions.append(
            Partition(
                index + 1,
                first * SECTOR,
                (last - first + 1) * SECTOR,
                type_guid,
                _guid(entry[16:32]),
                type_guid in FAT_GPT_TYPES,
            )
        )
    return PartitionTable("gpt", disk_guid, tuple(partitions))


def read_partition_table(path: Path) -> PartitionTable:
    """The image's partitions; ImageError saying what the file is when it is no disk image."""
    try:
        stream = path.open("rb")
    except OSError as error:
        raise ImageError(f"{path}: can't read it ({error.strerror})") from error
    with stream:
        size = path.stat().st_size
        first = _read(stream, 0, SECTOR)
        if len(first) < SECTOR or first[510:512] != MBR_SIGNATURE or _is_fat_boot_sector(first):
            raise _not_a_disk(path, stream, first)
        entries = _mbr_entries(first)
        if any(kind == GPT_PROTECTIVE for kind, _, _ in entries):
            table = _gpt(stream, path)
        else:
            table = _mbr(stream, path, first, entries)
        if not table.partitions:
            raise _not_a_disk(path, stream, first)
    for partition in table.partitions:
        if partition.end > size:
            raise ImageError(
                f"{path}: partition {partition.number} ends at byte {partition.end} but the file "
                f"has {size} bytes; the image is truncated (copy it again)"
            )
    return table


def _mbr(
    stream: BinaryIO, path: Path, first: bytes, entries: list[tuple[int, int, int]]
) -> PartitionTable:
    disk_id = f"{struct.unpack_from('<I', first, 440)[0]:08x}"
    partitions: list[Partition] = []
    logical: list[Partition] = []
    for index, (kind, lba, count) in enumerate(entries):
        if not kind or not count:
            continue
        if kind in EXTENDED_MBR_TYPES:
            logical = _logical(stream, path, disk_id, lba)
            continue
        number = index + 1
        partitions.append(
            Partition(
                number,
                lba * SECTOR,
                count * SECTOR,
                f"{kind:02x}",
                f"{disk_id}-{number:02x}",
                kind in FAT_MBR_TYPES,
            )
        )
    return PartitionTable("mbr", disk_id, tuple(partitions + logical))


def filesystem_of(path: Path, partition: Partition) -> tuple[str, str, str]:
    """(type, label, uuid) of the filesystem in a partition, as blkid names them; "" if unknown."""
    with path.open("rb") as stream:
        superblock = _read(stream, partition.start + 1024, 256)
        boot = _read(stream, partition.start, SECTOR)
    if superblock[0x38:0x3A] == b"\x53\xef":
        features = struct.unpack_from("<III", superblock, 0x5C)
        kind = "ext4" if features[1] & 0x2C0 else "ext3" if features[0] & 0x4 else "ext2"
        label = superblock[0x78:0x88].split(b"\0")[0].decode(errors="replace")
        return kind, label, str(uuid.UUID(bytes=superblock[0x68:0x78]))
    if boot[510:512] == MBR_SIGNATURE and boot[:1] in (b"\xeb", b"\xe9"):
        # FAT32 keeps its volume id and label at 0x43, FAT12/16 at 0x27.
        at = 0x43 if boot[0x52:0x57] == b"FAT32" else 0x27
        serial = struct.unpack_from("<I", boot, at)[0]
        label = boot[at + 4 : at + 15].decode(errors="replace").strip()
        return (
            "vfat",
            "" if label == "NO NAME" else label,
            f"{serial >> 16:04X}-{serial & 0xFFFF:04X}",
        )
    return "", "", ""
