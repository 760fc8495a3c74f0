"""What the Pi firmware makes of config.txt and cmdline.txt: files to load, console, root."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.partitions import Partition, PartitionTable

# The model QEMU's raspi3b emulates, as config.txt's conditional filters name it.
MODEL_FILTER = "pi3"
MODEL_FILTERS = frozenset(
    {"pi0", "pi0w", "pi02", "pi1", "pi2", "pi3", "pi3+", "pi4", "pi400", "pi5", "pi500"}
    | {"cm1", "cm3", "cm3+", "cm4", "cm4s", "cm5"}
)
MAX_INCLUDE_DEPTH = 8
KERNELS_64 = ("kernel8.img", "Image")
KERNELS_32 = ("kernel7.img", "kernel.img")
# The Pi 3 Model B's device tree: the Raspberry Pi firmware's name, then mainline's.
PI3_DTBS = ("bcm2710-rpi-3-b.dtb", "bcm2837-rpi-3-b.dtb", "broadcom/bcm2837-rpi-3-b.dtb")
# auto_initramfs=1: the initramfs named after the kernel.
AUTO_INITRAMFS = {
    "kernel8.img": "initramfs8",
    "kernel7.img": "initramfs7",
    "kernel.img": "initramfs",
}
# Overlays that give the PL011 to the GPIO pins: serial0 becomes the PL011, serial1 the mini-UART.
SWAP_UART_OVERLAYS = frozenset({"disable-bt", "pi3-disable-bt", "miniuart-bt", "pi3-miniuart-bt"})
PL011 = "pl011"
MINI_UART = "mini-uart"
# Which QEMU -serial each UART of raspi3b is wired to.
QEMU_SERIAL = {PL011: 0, MINI_UART: 1}
DEFAULT_CONSOLE = "console=ttyAMA0"


@dataclass(frozen=True)
class BootConfig:
    """The settings of config.txt that decide what the firmware loads (for a Pi 3)."""

    kernel: str | None = None
    device_tree: str | None = None
    initramfs: tuple[str, ...] = ()
    arm_64bit: bool = False
    os_prefix: str = ""
    cmdline_file: str = "cmdline.txt"
    auto_initramfs: bool = False
    upstream_kernel: bool = False
    overlays: tuple[str, ...] = ()

    def kernel_candidates(self) -> tuple[str, ...]:
        """The kernel file the firmware loads: kernel=, else the default of the mode."""
        if self.kernel:
            return (self.os_prefix + self.kernel,)
        names = KERNELS_64 if self.arm_64bit else KERNELS_32
        return tuple(self.os_prefix + name for name in names)

    def dtb_candidates(self) -> tuple[str, ...]:
        if self.device_tree:
            return (self.os_prefix + self.device_tree,)
        names = (PI3_DTBS[1], PI3_DTBS[0], PI3_DTBS[2]) if self.upstream_kernel else PI3_DTBS
        return tuple(self.os_prefix + name for name in names)

    def initramfs_files(self, kernel: str) -> tuple[str, ...]:
        """The initramfs files (concatenated in order), or () when there is none."""
        if self.initramfs:
            return tuple(self.os_prefix + name for name in self.initramfs)
        base = kernel.removeprefix(self.os_prefix)
        if self.auto_initramfs and base in AUTO_INITRAMFS:
            return (self.os_prefix + AUTO_INITRAMFS[base],)
        return ()


def _filter_applies(name: str) -> bool | None:
    """Whether a [section] filter holds on an emulated Pi 3 B; None for [all]."""
    if name == "all":
        return None
    if name in MODEL_FILTERS:
        return name == MODEL_FILTER
    # [none], [tryboot], [HDMI:1], [EDID=...], [gpio4=1], [0x<serial>]: false on an emulated
    # board without a display, GPIO levels or a tryboot flag.
    return False


def _lines(text: str, read: Callable[[str], str | None], where: str, depth: int = 0) -> list[str]:
    """The lines of config.txt with `include FILE` expanded in place."""
    if depth > MAX_INCLUDE_DEPTH:
        raise ImageError(f"{where}: `include` nests deeper than {MAX_INCLUDE_DEPTH} files")
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("include "):
            name = line.split(None, 1)[1].strip()
            included = read(name)
            if included is not None:
                lines.extend(_lines(included, read, name, depth + 1))
            continue
        lines.append(line)
    return lines


def parse_config_txt(
    text: str, read: Callable[[str], str | None] = lambda _: None, where: str = "config.txt"
) -> BootConfig:
    """The settings that apply to a Pi 3 B; `read` gives the text of an included file."""
    values: dict[str, str] = {}
    initramfs: tuple[str, ...] = ()
    overlays: list[str] = []
    model_ok: bool = True
    other_ok: bool = True
    for line in _lines(text, read, where):
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip().lower()
            applies = _filter_applies(name)
            if applies is None:
                model_ok = other_ok = True
            elif name in MODEL_FILTERS:
                model_ok = applies  # model filters replace each other
            else:
                other_ok = applies
            continue
        if not (model_ok and other_ok):
            continue
        if line.startswith("initramfs ") or line.startswith("initramfs\t"):
            # `initramfs FILE[,FILE...] followkernel|ADDRESS`: a space, not `=`.
            initramfs = tuple(f for f in line.split()[1].split(",") if f)
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "ramfsfile":
            initramfs = tuple(f for f in value.split(",") if f)
        elif key == "dtoverlay":
            overlays.append(value.split(",")[0].split(":")[0])
        else:
            values[key] = value
    return BootConfig(
        kernel=values.get("kernel") or None,
        device_tree=values.get("device_tree"),
        initramfs=initramfs,
        arm_64bit=_flag(values.get("arm_64bit")) or _arm_control_64(values.get("arm_control")),
        os_prefix=values.get("os_prefix", ""),
        cmdline_file=values.get("cmdline") or "cmdline.txt",
        auto_initramfs=_flag(values.get("auto_initramfs")),
        upstream_kernel=_flag(values.get("upstream_kernel")),
        overlays=tuple(o for o in overlays if o),
    )


def _flag(value: str | None) -> bool:
    try:
        return value is not None and int(value, 0) != 0
    except ValueError:
        return False


def _arm_control_64(value: str | None) -> bool:
    """The old way to ask for 64-bit mode: bit 9 of arm_control."""
    try:
        return value is not None and bool(int(value, 0) & 0x200)
    except ValueError:
        return False


def read_cmdline(text: str) -> str:
    """cmdline.txt's arguments: its first line (the firmware reads no further), spaces squeezed."""
    lines = text.splitlines()
    return " ".join(lines[0].split()) if lines else ""


@dataclass(frozen=True)
class ConsoleChoice:
    """The command line QEMU passes, and which of raspi3b's serials carries the console."""

    append: str
    serial: int  # 0: the PL011 (ttyAMA), 1: the mini-UART (ttyS)
    notes: tuple[str, ...] = field(default=())


def uart_of_alias(alias: str, aliases: Mapping[str, str], overlays: tuple[str, ...]) -> str | None:
    """The UART (PL011 or MINI_UART) that serial0/serial1 names, as the firmware resolves it."""
    uart = aliases.get(alias)
    if uart is not None and SWAP_UART_OVERLAYS.intersection(overlays):
        uart = {"serial0": PL011, "serial1": MINI_UART}.get(alias, uart)
    return uart


def _tty_of(uart: str, alias_number: int, mainline: bool) -> str:
    # The firmware's kernel numbers the PL011 ttyAMA0 and the mini-UART ttyS0 whatever the
    # aliases say; mainline numbers both by their serialN alias (mini-UART: ttyS1).
    if uart == PL011:
        return f"ttyAMA{alias_number}" if mainline else "ttyAMA0"
    return f"ttyS{alias_number}" if mainline else "ttyS0"


def choose_console(
    cmdline: str,
    aliases: Mapping[str, str],
    overlays: tuple[str, ...] = (),
    mainline_dtb: bool = False,
) -> ConsoleChoice:
    """Rewrite console=serialN as the firmware does; pick the serial of the last UART console."""
    # `aliases` maps serial0/serial1 to the UART the device tree's /aliases point at. With no
    # console on a UART (none at all, or only tty1), console=ttyAMA0 is added on the PL011.
    words: list[str] = []
    serial: int | None = None
    notes: list[str] = []
    for word in cmdline.split():
        if word.startswith("console="):
            device, _, options = word.removeprefix("console=").partition(",")
            if device in ("serial0", "serial1"):
                uart = uart_of_alias(device, aliases, overlays)
                if uart is None:
                    notes.append(f"console={device}: the device tree has no {device} alias")
                else:
                    alias_number = 0 if aliases.get("serial0") == uart else 1
                    tty = _tty_of(uart, alias_number, mainline_dtb)
                    notes.append(f"console={device} is {tty} (the {uart}), as the firmware says")
                    device = tty
                    word = f"console={device}" + (f",{options}" if options else "")
            if device.startswith("ttyAMA"):
                serial = QEMU_SERIAL[PL011]
            elif device.startswith("ttyS"):
                serial = QEMU_SERIAL[MINI_UART]
        words.append(word)
    if serial is None:
        notes.append(f"no console on a UART in the command line: {DEFAULT_CONSOLE} added")
        words.append(DEFAULT_CONSOLE)
        serial = QEMU_SERIAL[PL011]
    return ConsoleChoice(" ".join(words), serial, tuple(notes))


def root_argument(cmdline: str) -> str | None:
    """The value of the last root= in the command line (the kernel takes the last one)."""
    roots = [word.removeprefix("root=") for word in cmdline.split() if word.startswith("root=")]
    return roots[-1] if roots else None


def _mmcblk_partition(device: str) -> int | None:
    """N of /dev/mmcblkXpN, or None."""
    name = device.removeprefix("/dev/")
    if not name.startswith("mmcblk") or "p" not in name[6:]:
        return None
    disk, _, number = name[6:].partition("p")
    return int(number) if disk.isdigit() and number.isdigit() else None


def root_partition(
    root: str,
    table: PartitionTable,
    filesystems: Mapping[int, tuple[str, str, str]],
    where: str,
) -> Partition | None:
    """The partition root= names on this card, None for another kind of root (/dev/sda2);
    ImageError when it names one the image lacks. `filesystems`: number -> (type, label, uuid)."""
    listing = table.describe()
    number = _mmcblk_partition(root)
    if number is not None:
        found = table.get(number)
        if found is None:
            raise ImageError(
                f"{where}: root={root} but the image has no partition {number} ({listing}); "
                "fix root= in cmdline.txt"
            )
        return found
    key, _, value = root.partition("=")
    if key == "PARTUUID":
        wanted = value.split("/")[0].lower()
        found = next((p for p in table.partitions if p.partuuid == wanted), None)
        if found is None:
            known = ", ".join(p.partuuid for p in table.partitions)
            raise ImageError(
                f"{where}: root=PARTUUID={wanted} is none of the image's partitions "
                f"(their PARTUUIDs: {known}); fix root= in cmdline.txt"
            )
        return found
    if key in ("LABEL", "UUID"):
        column = 1 if key == "LABEL" else 2
        for partition in table.partitions:
            fs = filesystems.get(partition.number)
            if fs and fs[column] and fs[column].lower() == value.lower():
                return partition
        raise ImageError(
            f"{where}: root={root} matches no filesystem on the image ({listing}); "
            "fix root= in cmdline.txt"
        )
    return None
