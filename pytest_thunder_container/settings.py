"""The command-line options, parsed and checked once, before anything boots."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

QEMU_MACHINES = ("rpi3", "virt")
SERIAL_PREFIXES = ("serial:", "rfc2217://", "socket://")
DIALECTS = ("R5", "R4.4")


class SettingsError(ValueError):
    """An option is wrong; the message names it and the fix (plugin.py turns it into UsageError)."""


@dataclass(frozen=True)
class TargetSpec:
    """One entry of --thunder-target: a QEMU machine or a serial line."""

    kind: str  # "qemu", "serial" or "labgrid" (a place of labgrid's coordinator)
    address: str  # machine name, device path / pyserial URL, or place name / KEY=VALUE tags

    @property
    def label(self) -> str:
        if self.kind == "qemu":
            return self.address
        return f"{self.kind}-" + "".join(c if c.isalnum() else "-" for c in self.address).strip("-")

    @property
    def is_board(self) -> bool:
        """A board the harness attaches to (not a QEMU machine it boots)."""
        return self.kind in ("serial", "labgrid")


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
    if entry.startswith("labgrid:"):
        place = entry.removeprefix("labgrid:").strip()
        if not place or entry != whole.strip():
            raise SettingsError(
                f"--thunder-target={whole}: 'labgrid:' takes one place name or KEY=VALUE tags "
                "and no pool: labgrid's coordinator is the pool (e.g. labgrid:board=rpi3)"
            )
        return TargetSpec("labgrid", place)
    raise SettingsError(
        f"--thunder-target={whole}: unknown target {entry!r} (fix: one of "
        f"{', '.join(QEMU_MACHINES)}, serial:/dev/ttyUSB0, rfc2217://host:port, "
        "socket://host:port, labgrid:PLACE, 'A|B' for a pool, or @poolfile)"
    )


@dataclass(frozen=True)
class Option:
    """One command-line option, declared once on the Settings field it fills."""

    flag: str
    help: str
    default: Any = None
    metavar: str | None = None
    type: Callable[[str], Any] | None = None
    action: str | None = None
    choices: tuple[str, ...] | None = None
    convert: Callable[[Any], Any] | None = None  # the parsed value -> the field's value
    hidden: bool = False  # for the harness's own tests; not in --help

    @property
    def dest(self) -> str:
        """The attribute pytest stores the value under (config.option.<dest>)."""
        return self.flag.removeprefix("--").replace("-", "_")

    def value(self, parsed: Any) -> Any:
        """The Settings value of what the command line gave."""
        return parsed if self.convert is None else self.convert(parsed)


def _option(flag: str, help: str, **spec: Any) -> Any:
    """A Settings field filled from `flag`; its default is the option's default, converted."""
    option = Option(flag, help, **spec)
    default = option.value(option.default)
    return field(default=default, metadata={OPTION: option})


def _password(value: str | None) -> str | None:
    return value or os.environ.get("THUNDER_PASSWORD")


OPTION = "thunder_option"


@dataclass(frozen=True)
class Settings:
    """Everything the fixtures need from the command line: each field declares its option."""

    targets: tuple[TargetSpec, ...] = _option(
        "--thunder-target",
        "rpi3 or virt (QEMU), serial:/dev/ttyUSB0, rfc2217://host:port, socket://host:port;"
        " 'A|B' or @file for a pool of targets; labgrid:PLACE or labgrid:KEY=VALUE for a place"
        " of labgrid's coordinator (default: rpi3)",
        default="rpi3",
        metavar="TARGET",
        convert=parse_targets,
    )
    image: Path | None = _option(
        "--thunder-image",
        "an SD card image (.img) or a kernel + dtb + initrd directory to boot instead of "
        "the reference image",
        type=Path,
        metavar="PATH",
    )
    timeout_factor: float = _option(
        "--thunder-timeout-factor",
        "multiply every wait by F (default 1)",
        default=1.0,
        type=float,
        metavar="F",
    )
    results: Path = _option(
        "--thunder-results",
        "where console transcripts, deployed configs, samples and reports go",
        default=Path("thunder-results"),
        type=Path,
        metavar="DIR",
    )
    cold_boot: bool = _option(
        "--thunder-cold-boot",
        "boot from scratch instead of restoring the saved VM state",
        default=False,
        action="store_true",
    )
    jsonrpc_url: str | None = _option(
        "--thunder-jsonrpc",
        "Thunder's JSON-RPC URL for a board with a network (default: through the console)",
        metavar="URL",
    )
    reference_api: str | None = _option(
        "--thunder-reference-api",
        "API generation of the reference image's Thunder (default R5)",
        choices=DIALECTS,
    )
    guest_port: int = _option(
        "--thunder-port",
        "Thunder's port on the target (default 80)",
        default=80,
        type=int,
        metavar="PORT",
    )
    login_user: str | None = _option(
        "--thunder-login-user", "console login (default: from the image)", metavar="USER"
    )
    # Not _option: its default would read THUNDER_PASSWORD once, at import.
    password: str | None = field(
        default=None,
        metadata={
            OPTION: Option(
                "--thunder-password",
                "console password (or set THUNDER_PASSWORD; never written to logs)",
                metavar="PASSWORD",
                convert=_password,
            )
        },
    )
    baudrate: int = _option(
        "--thunder-baud",
        "serial line speed (default 115200)",
        default=115200,
        type=int,
        metavar="BAUD",
    )
    power_cycle: str | None = _option(
        "--thunder-power-cycle",
        "host command that power-cycles the board before the session (and after a kernel "
        "panic); 'labgrid': the labgrid place's power resource",
        metavar="CMD",
    )
    host_address: str | None = _option(
        "--thunder-host-address",
        "this host's address on the board's network: files of 16 KiB and more go over "
        "HTTP from there (default: through the console)",
        metavar="IP",
    )
    pool_wait: float = _option(
        "--thunder-pool-wait",
        "how long a worker waits for a free serial target of the pool (default 300)",
        default=300.0,
        type=float,
        metavar="SECONDS",
    )
    labgrid_coordinator: str | None = _option(
        "--thunder-labgrid-coordinator",
        "labgrid's coordinator for labgrid: targets (default: LG_COORDINATOR, else "
        "127.0.0.1:20408)",
        metavar="HOST:PORT",
    )
    callsign: str = _option(
        "--thunder-callsign",
        "plugin to deploy in a container (default OCDM)",
        default="OCDM",
        metavar="CALLSIGN",
    )
    rootfs: Path | None = _option(
        "--thunder-rootfs",
        "container rootfs tarball (default: a copy of the target's own root)",
        type=Path,
        metavar="TAR",
    )
    container_config: Path | None = _option(
        "--thunder-container-config",
        "container config.json (default: the tutorial's example adjusted for the target)",
        type=Path,
        metavar="JSON",
    )
    bundle_dir: str | None = _option(
        "--thunder-bundle-dir",
        "where the bundle goes (default /usr/share/Thunder/<callsign>/Container)",
        metavar="DIR",
    )
    bench_runs: int = _option(
        "--thunder-bench-runs",
        "benchmark repetitions after a warm-up (default 10)",
        default=10,
        type=int,
        metavar="N",
    )
    max_start_ms: float | None = _option(
        "--thunder-max-start-ms",
        "fail TC-PERF-001 when the median container start latency exceeds MS",
        type=float,
        metavar="MS",
    )
    stress: bool = _option(
        "--thunder-stress",
        "also run the stress tests (TC-STRESS-*): activation while the target's CPUs are "
        "busy; off by default",
        default=False,
        action="store_true",
    )
    allowed_binds: tuple[str, ...] = _option(
        "--thunder-allow-bind",
        "a host path a writable bind mount of config.json may carry besides Thunder's /tmp "
        "(TC-MNT-007); repeatable, listed in the report",
        default=[],
        action="append",
        metavar="PATH",
        convert=lambda paths: tuple(posixpath.normpath(path) for path in paths),
    )
    scenarios: tuple[Path, ...] = _option(
        "--thunder-scenario",
        "parity scenario (TOML) for a plugin, one per callsign; repeatable "
        "(default: the package's scenario for OCDM)",
        default=[],
        type=Path,
        action="append",
        metavar="FILE",
        convert=tuple,
    )
    static_only: bool = _option(
        "--thunder-static-only",
        "judge --thunder-container-config by the static rules alone: no target is started and "
        "the runtime tests are deselected (a check before the real run; it certifies nothing)",
        default=False,
        action="store_true",
    )
    sign_key: Path | None = _option(
        "--thunder-sign-key",
        "sign thunder-report.json with this Ed25519 private key (PEM PKCS#8)",
        type=Path,
        metavar="KEY",
    )
    list_requirements: bool = _option(
        "--thunder-requirements",
        "list the requirement catalogue with the tests that cover each ID and run nothing;"
        " exit status 1 when an ID has no test",
        default=False,
        action="store_true",
    )
    # A certification with another catalogue is not a certification (the report names it).
    catalogue: Path | None = _option(
        "--thunder-catalogue",
        "a small catalogue instead of the packaged one, for the harness's own tests",
        type=Path,
        metavar="TOML",
        hidden=True,
    )

    @property
    def uses_qemu(self) -> bool:
        return any(spec.kind == "qemu" for spec in self.targets)


def options() -> tuple[Option, ...]:
    """Every option of the plugin, in the order of the Settings fields."""
    return tuple(f.metadata[OPTION] for f in fields(Settings) if OPTION in f.metadata)


def settings_from(parsed: object) -> Settings:
    """Settings from the parsed command line (pytest's config.option): the one route."""
    values = {
        f.name: f.metadata[OPTION].value(getattr(parsed, f.metadata[OPTION].dest))
        for f in fields(Settings)
        if OPTION in f.metadata
    }
    return Settings(**values)


def check_settings(settings: Settings) -> None:
    """Contradictions and impossible values, reported before anything boots."""
    if not settings.timeout_factor > 0:
        raise SettingsError(
            f"--thunder-timeout-factor={settings.timeout_factor}: must be > 0 "
            "(fix: e.g. 2 on a slow machine)"
        )
    if settings.static_only and settings.container_config is None:
        raise SettingsError(
            "--thunder-static-only needs --thunder-container-config=JSON: the config.json "
            "to judge (fix: add it)"
        )
    serial = [spec for spec in settings.targets if spec.is_board]
    if settings.power_cycle == "labgrid" and not any(s.kind == "labgrid" for s in serial):
        raise SettingsError(
            "--thunder-power-cycle=labgrid switches a labgrid place's power port; the target "
            "is not a place (fix: --thunder-target=labgrid:PLACE, or give a host command)"
        )
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
    for path in settings.allowed_binds:
        if not path.startswith("/"):
            raise SettingsError(
                f"--thunder-allow-bind={path}: not an absolute host path "
                "(fix: e.g. /var/cache/ocdm)"
            )


def worker_id() -> str:
    """The pytest-xdist worker name (gw0, gw1, ...) or 'main'."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")
