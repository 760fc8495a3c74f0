"""A vendor's raw SD card image, booted the way the Pi 3 firmware boots it from its FAT partition.

Nothing is mounted or written: mtools copies the boot files out, QEMU gets a qcow2 overlay."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
from pytest_thunder_container.image.fatfiles import BootPartition
from pytest_thunder_container.image.model import manifest_login, sha256_file
from pytest_thunder_container.image.partitions import (
    Partition,
    PartitionTable,
    filesystem_of,
    read_partition_table,
)
from pytest_thunder_container.image.rootfs import patch_dtb

Progress = Callable[[str], None]
EXTRACTOR_VERSION = "1"
BOOT_FACTS = "boot.json"
LOGIN_FILE = "thunder-container.json"  # optional, in the boot partition: name and login
PL011_NODE = "/soc/serial@7e201000"
UART_ADDRESSES = {"7e201000": PL011, "7e215040": MINI_UART}
RNG_SEED_BYTES = 32


@dataclass(frozen=True)
class SdCardImage:
    """The boot files of an SD card image, extracted; the image itself is the card QEMU sees."""

    path: Path  # the vendor's image: the overlay's backing file, never written
    directory: Path  # where the boot files were extracted
    kernel: Path
    dtb: Path
    initrd: Path | None
    append: str
    console_serial: int  # 0: the PL011 (ttyAMA0), 1: the mini-UART (ttyS)
    card_size: int  # the image's size rounded up to a power of two: QEMU's SD card wants one
    sha256: str  # of the image file: keys the saved VM states
    manifest: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.path.name)

    @property
    def login(self) -> tuple[str, str | None] | None:
        return manifest_login(self.manifest)

    def create_card(self, overlay: Path) -> None:
        """A fresh qcow2 overlay of the image (the guest's writes land there, and VM states)."""
        _qemu_img(
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            str(self.path.resolve()),
            str(overlay),
            str(self.card_size),
        )

    def adopt_card(self, overlay: Path) -> None:
        """Point a saved overlay at the image where it is now (same content, maybe moved)."""
        _qemu_img("rebase", "-u", "-F", "raw", "-b", str(self.path.resolve()), str(overlay))


def _qemu_img(*args: str) -> None:
    if shutil.which("qemu-img") is None:
        raise ImageError("qemu-img is not installed (fix: apt-get install qemu-utils)")
    result = subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageError(f"`qemu-img {' '.join(args)}` failed: {result.stderr.strip()}")


def card_size(image_size: int) -> int:
    """The smallest power of two that holds the image (at least one sector)."""
    return max(512, 1 << (image_size - 1).bit_length())


def image_sha256(path: Path, cache: Path, progress: Progress) -> str:
    """The image's sha256, computed once per path, size, mtime and inode change time."""
    resolved = path.resolve()
    st = resolved.stat()
    stamp = {
        "path": str(resolved),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "inode": st.st_ino,
    }
    record = (
        cache / "identity" / (hashlib.sha256(str(resolved).encode()).hexdigest()[:24] + ".json")
    )
    try:
        known = json.loads(record.read_text())
        if {key: known.get(key) for key in stamp} == stamp:
            return str(known["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    progress(f"[sdcard] sha256 of {path} ({st.st_size / 1e6:.0f} MB), once")
    digest = sha256_file(resolved)
    if resolved.stat().st_mtime_ns != st.st_mtime_ns:
        raise ImageError(f"{path}: the image changed while it was read; wait for its build to end")
    record.parent.mkdir(parents=True, exist_ok=True)
    partial = record.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps({**stamp, "sha256": digest}) + "\n")
    os.replace(partial, record)
    return digest


def boot_partition(path: Path, table: PartitionTable) -> Partition:
    """The partition the firmware boots from: the first FAT one."""
    fat = [p for p in table.partitions if p.is_fat]
    if not fat:
        fat = [p for p in table.partitions if filesystem_of(path, p)[0] == "vfat"]
    if not fat:
        raise ImageError(
            f"{path}: no FAT boot partition found in the {table.scheme.upper()} (partitions: "
            f"{table.describe()}); give the raw SD card image as written by the vendor's build "
            "(sdcard.img), not a rootfs"
        )
    return fat[0]


def _first(boot: BootPartition, names: tuple[str, ...]) -> str | None:
    return next((found for name in names if (found := boot.find(name))), None)


def _kernel(boot: BootPartition, config: BootConfig) -> str:
    names = config.kernel_candidates()
    found = _first(boot, names)
    if found is not None:
        return found
    other = _first(boot, BootConfig(arm_64bit=not config.arm_64bit).kernel_candidates())
    hint = (
        f"config.txt asks for {'64' if config.arm_64bit else '32'}-bit mode but the card has "
        f"{other}: {'remove arm_64bit=1' if config.arm_64bit else 'add arm_64bit=1'} or set kernel="
        if other
        else "set kernel=<file> in config.txt"
    )
    raise ImageError(
        f"{boot.image}: no kernel in the boot partition: none of {', '.join(names)} "
        f"(files: {boot.listing()}); {hint}"
    )


def _dtb(boot: BootPartition, config: BootConfig) -> str:
    if config.device_tree == "":
        raise ImageError(f"{boot.image}: config.txt says device_tree= (none); raspi3b needs one")
    names = config.dtb_candidates()
    found = _first(boot, names)
    if found is None:
        raise ImageError(
            f"{boot.image}: no Pi 3 B device tree in the boot partition: none of "
            f"{', '.join(names)} (files: {boot.listing()}); name it with device_tree= in "
            "config.txt"
        )
    return found


def _uart_aliases(dtb: Path) -> dict[str, str]:
    """serial0/serial1 of the device tree's /aliases, as PL011 or MINI_UART."""
    aliases = {}
    for alias in ("serial0", "serial1"):
        result = subprocess.run(
            ["fdtget", "-t", "s", str(dtb), "/aliases", alias],
            capture_output=True,
            text=True,
            check=False,
        )
        for address, uart in UART_ADDRESSES.items():
            if result.returncode == 0 and address in result.stdout:
                aliases[alias] = uart
    return aliases


def _has_node(dtb: Path, node: str) -> bool:
    result = subprocess.run(["fdtget", "-l", str(dtb), node], capture_output=True, check=False)
    return result.returncode == 0


def _has_rng_seed(dtb: Path) -> bool:
    result = subprocess.run(
        ["fdtget", "-p", str(dtb), "/chosen"], capture_output=True, text=True, check=False
    )
    return "rng-seed" in result.stdout.split()


def _kernel_format(kernel: Path) -> str:
    with kernel.open("rb") as stream:
        head = stream.read(64)
    if head[56:60] == b"ARM\x64":
        return "arm64 Image"
    if head[:2] == b"\x1f\x8b":
        return "gzip-compressed"
    if head[36:40] == b"\x18\x28\x6f\x01":
        return "32-bit zImage"
    return "unknown format"


def _login_file(boot: BootPartition) -> dict[str, Any]:
    """The optional name and login an image built by `thunder-container image sdcard` carries."""
    text = boot.read_text(LOGIN_FILE)
    if text is None:
        return {}
    try:
        data = json.loads(text)
        login = data.get("login")
        if login is not None and not isinstance(login.get("user"), str):
            raise ValueError("login.user must be a string")
    except (ValueError, AttributeError) as error:
        raise ImageError(f"{boot.image}: {LOGIN_FILE} in the boot partition: {error}") from error
    return dict(data)


def extract_boot(path: Path, table: PartitionTable, sha256: str, dest: Path) -> dict[str, Any]:
    """Copy kernel, dtb and initramfs out of the boot partition into `dest`; say what they are."""
    if shutil.which("fdtget") is None:
        raise ImageError("fdtget is not installed (fix: apt-get install device-tree-compiler)")
    partition = boot_partition(path, table)
    boot = BootPartition(path, partition)
    config_text = boot.read_text("config.txt")
    config = parse_config_txt(config_text or "", boot.read_text)
    kernel_name, dtb_name = _kernel(boot, config), _dtb(boot, config)
    initrd_names = config.initramfs_files(kernel_name)
    missing = [name for name in initrd_names if boot.find(name) is None]
    if missing:
        raise ImageError(
            f"{path}: config.txt names initramfs {', '.join(missing)}, which is not in the boot "
            f"partition (files: {boot.listing()}); fix the initramfs line of config.txt"
        )
    kernel = dest / Path(kernel_name).name
    boot.copy(kernel_name, kernel)
    dtb = dest / Path(dtb_name).name
    boot.copy(dtb_name, dtb)
    initrd = None
    if initrd_names:
        initrd = dest / "initramfs"
        with initrd.open("wb") as out:
            for name in initrd_names:
                out.write(boot.read(name) or b"")
    cmdline_text = boot.read_text(config.os_prefix + config.cmdline_file)
    cmdline = read_cmdline(cmdline_text or "")
    aliases = _uart_aliases(dtb)
    console = choose_console(cmdline, aliases, config.overlays, "bcm2837" in dtb.name)
    notes = list(console.notes)
    if config_text is None:
        notes.append("no config.txt: the firmware's defaults apply")
    if cmdline_text is None:
        notes.append(f"no {config.cmdline_file}: the kernel gets only {console.append!r}")
    root = root_argument(console.append)
    filesystems = {p.number: filesystem_of(path, p) for p in table.partitions}
    root_part = root_partition(root, table, filesystems, str(path)) if root else None
    if root and root_part is None:
        notes.append(f"root={root} is not a partition of this card")
    # What the firmware does to the device tree, and what QEMU needs: the PL011's bluetooth
    # child would keep /dev/ttyAMA0 from existing; a seed keeps getrandom() from blocking.
    delete = [f"{PL011_NODE}/bluetooth"] if _has_node(dtb, f"{PL011_NODE}/bluetooth") else []
    patch_dtb(dtb, delete, 0 if _has_rng_seed(dtb) else RNG_SEED_BYTES)
    extra = _login_file(boot)
    return {
        "sdcard_sha256": sha256,
        "extractor_version": EXTRACTOR_VERSION,
        "partition_table": table.scheme,
        "boot_partition": partition.number,
        "root": root,
        "root_partition": root_part.number if root_part else None,
        "root_filesystem": filesystems[root_part.number][0] if root_part else None,
        "kernel": {"file": kernel.name, "from": kernel_name, "format": _kernel_format(kernel)},
        "dtb": {"file": dtb.name, "from": dtb_name, "removed_nodes": delete},
        "initrd": {"file": initrd.name, "from": list(initrd_names)} if initrd else None,
        "cmdline": cmdline,
        "append": console.append,
        "console_serial": console.serial,
        "config": asdict(config),
        "notes": notes,
        "name": extra.get("name"),
        "login": extra.get("login"),
    }


def load_sdcard(path: Path, cache: Path, progress: Progress) -> SdCardImage:
    """The SD card image at `path`, its boot files extracted into the cache once per content."""
    image = path.expanduser()
    if not image.is_file():
        raise ImageError(f"--thunder-image={path}: no such file")
    table = read_partition_table(image)
    boot_partition(image, table)  # the plain error first, before the image is hashed
    store = cache / "sdcards"
    sha256 = image_sha256(image, store, progress)
    directory = store / f"{sha256[:16]}-v{EXTRACTOR_VERSION}"
    facts_file = directory / BOOT_FACTS
    if not facts_file.is_file():
        store.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".extract-", dir=store))
        try:
            facts = extract_boot(image, table, sha256, work)
            (work / BOOT_FACTS).write_text(json.dumps(facts, indent=2) + "\n")
            with contextlib.suppress(OSError):
                # Fails when another session extracted the same image first: theirs will do.
                work.rename(directory)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        progress(f"[sdcard] {path}: boot files in {directory}")
    if not facts_file.is_file():
        raise ImageError(f"{directory} is incomplete (no {BOOT_FACTS}): remove it and run again")
    facts = json.loads(facts_file.read_text())
    initrd = facts["initrd"]
    return SdCardImage(
        path=image.resolve(),
        directory=directory,
        kernel=directory / facts["kernel"]["file"],
        dtb=directory / facts["dtb"]["file"],
        initrd=directory / initrd["file"] if initrd else None,
        append=facts["append"],
        console_serial=int(facts["console_serial"]),
        card_size=card_size(image.stat().st_size),
        sha256=sha256,
        manifest=facts,
    )


def check_sdcard_file(path: Path) -> None:
    """Cheap checks before anything boots: a partitioned disk image with a FAT partition."""
    boot_partition(path, read_partition_table(path))
