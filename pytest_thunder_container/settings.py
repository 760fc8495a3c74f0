"""The command-line options, parsed and checked once, before anything boots."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

QEMU_MACHINES = ("rpi3", "virt")
SERIAL_PREFIXES = ("serial:", "rfc2217://", "socket://")
DIALECTS = ("R5", "R4.4")


class SettingsError(ValueError):
    """An option is wrong; the message names it and the fix (plugin.py turns it into UsageError)."""


@dataclass(frozen=True)
class TargetSpec:
    """One entry of --thunder-target: a QEMU machine or a serial line."""

    kind: str  # "qemu" or "serial"
    address: str  # machine name, or the device path / pyserial URL

    @property
    def label(self) -> str:
        if self.kind == "qemu":
            return self.address
        return "serial-" + "".join(c if c.isalnum() else "-" for c in self.address).strip("-")


@dataclass(frozen=True)
class Settings:
    """Everything the fixtures need from the command line."""

    targets: tuple[TargetSpec, ...]
    image: Path | None = None
    timeout_factor: float = 1.0
    results: Path = Path("thunder-results")
    cold_boot: bool = False
    jsonrpc_url: str | None = None
    reference_api: str | None = None
    guest_port: int = 80
    login_user: str | None = None
    password: str | None = None
    baudrate: int = 115200
    power_cycle: str | None = None
    callsign: str = "OCDM"
    rootfs: Path | None = None
    container_config: Path | None = None
    bundle_dir: str | None = None
    bench_runs: int = 10
    max_start_ms: float | None = None
    stress: bool = False  # run the opt-in stress tests (TC-STRESS-*)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def uses_qemu(self) -> bool:
        return any(spec.kind == "qemu" for spec in self.targets)


def parse_targets(value: str) -> tuple[TargetSpec, ...]:
    """`rpi3`, `virt`, `serial:/dev/ttyUSB0`, pyserial URLs, `A|B` pools, or `@file` pools."""
    text = value.strip()
    if text.startswith("@"):
        pool = Path(text[1:])
        if not pool.is_file():
            raise SettingsError(
                f"--thunder-target={value}: pool file {pool} does not exist "
                "(fix: one target per line, e.g. serial:/dev/ttyUSB0)"
            )
        entries = [line.split("#", 1)[0].strip() for line in pool.read_text().splitlines()]
    else:
        entries = text.split("|")
    specs = tuple(_parse_one(entry.strip(), value) for entry in entries if entry.strip())
    if not specs:
        raise SettingsError(
            f"--thunder-target={value!r} names no target "
            f"(fix: one of {', '.join(QEMU_MACHINES)} or serial:/dev/ttyUSB0)"
        )
    return specs


def _parse_one(entry: str, whole: str) -> TargetSpec:
    if entry in QEMU_MACHINES:
        return TargetSpec("qemu", entry)
    if entry.startswith("serial:"):
        device = entry.removeprefix("serial:")
        if not device:
            raise SettingsError(
                f"--thunder-target={whole}: 'serial:' needs a device, e.g. serial:/dev/ttyUSB0"
            )
        return TargetSpec("serial", device)
    if entry.startswith(SERIAL_PREFIXES):
        return TargetSpec("serial", entry)
    raise SettingsError(
        f"--thunder-target={whole}: unknown target {entry!r} (fix: one of "
        f"{', '.join(QEMU_MACHINES)}, serial:/dev/ttyUSB0, rfc2217://host:port, "
        "socket://host:port, 'A|B' for a pool, or @poolfile)"
    )


def check_settings(settings: Settings) -> None:
    """Contradictions and impossible values, reported before anything boots."""
    if not settings.timeout_factor > 0:
        raise SettingsError(
            f"--thunder-timeout-factor={settings.timeout_factor}: must be > 0 "
            "(fix: e.g. 2 on a slow machine)"
        )
    serial = [spec for spec in settings.targets if spec.kind == "serial"]
    if serial and settings.image is not None:
        raise SettingsError(
            "--thunder-image boots an image in QEMU; it can't apply to serial "
            f"target {serial[0].address} (fix: drop one of the two options)"
        )
    if serial and settings.cold_boot:
        raise SettingsError(
            "--thunder-cold-boot applies to QEMU targets only; the board on "
            f"{serial[0].address} is not booted by the harness"
        )
    if settings.reference_api is not None:
        if settings.reference_api not in DIALECTS:
            raise SettingsError(
                f"--thunder-reference-api={settings.reference_api}: must be one "
                f"of {', '.join(DIALECTS)}"
            )
        if settings.image is not None or serial:
            raise SettingsError(
                "--thunder-reference-api selects the API of the reference image's "
                "Thunder; a vendor image or board brings its own (fix: drop it)"
            )
    no_slot = [s.address for s in settings.targets if s.kind == "qemu" and s.address != "rpi3"]
    if settings.image is not None and settings.image.is_file() and no_slot:
        raise SettingsError(
            f"--thunder-image={settings.image} is an SD card image; QEMU machine {no_slot[0]} "
            "has no SD card slot (fix: --thunder-target=rpi3)"
        )
    if not 0 < settings.guest_port < 65536:
        raise SettingsError(f"--thunder-port={settings.guest_port}: not a TCP port")
    if settings.bench_runs < 1:
        raise SettingsError(f"--thunder-bench-runs={settings.bench_runs}: must be at least 1")
    if settings.max_start_ms is not None and settings.max_start_ms <= 0:
        raise SettingsError(f"--thunder-max-start-ms={settings.max_start_ms}: must be > 0")


def worker_id() -> str:
    """The pytest-xdist worker name (gw0, gw1, ...) or 'main'."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")
