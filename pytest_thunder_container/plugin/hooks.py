"""pytest glue: options, markers and fixtures (no logic of its own)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_thunder_container import __version__
from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.inputs import check_inputs
from pytest_thunder_container.plugin import suite_fixtures
from pytest_thunder_container.plugin.reporting import Reporting, add_options, record_facts
from pytest_thunder_container.plugin.terminal import progress_printer
from pytest_thunder_container.plugin.thunder_watch import ThunderWatch
from pytest_thunder_container.settings import (
    Settings,
    SettingsError,
    TargetSpec,
    check_settings,
    parse_targets,
    worker_id,
)
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.targets.base import Target, system_facts
from pytest_thunder_container.thunder.client import ThunderClient, connect

SETTINGS = pytest.StashKey[Settings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("thunder", "Thunder plugins in runc containers")
    add = group.addoption
    add(
        "--thunder-target",
        default="rpi3",
        metavar="TARGET",
        help="rpi3 or virt (QEMU), serial:/dev/ttyUSB0, rfc2217://host:port, socket://host:port;"
        " 'A|B' or @file for a pool of targets (default: rpi3)",
    )
    add(
        "--thunder-image",
        type=Path,
        metavar="PATH",
        help="an SD card image (.img) or a kernel + dtb + initrd directory to boot instead of "
        "the reference image",
    )
    add(
        "--thunder-timeout-factor",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply every wait by F (default 1)",
    )
    add(
        "--thunder-results",
        type=Path,
        default=Path("thunder-results"),
        metavar="DIR",
        help="where console transcripts, deployed configs, samples and reports go",
    )
    add(
        "--thunder-cold-boot",
        action="store_true",
        help="boot from scratch instead of restoring the saved VM state",
    )
    add(
        "--thunder-jsonrpc",
        metavar="URL",
        help="Thunder's JSON-RPC URL for a board with a network (default: through the console)",
    )
    add(
        "--thunder-reference-api",
        choices=("R5", "R4.4"),
        help="API generation of the reference image's Thunder (default R5)",
    )
    add(
        "--thunder-port",
        type=int,
        default=80,
        metavar="PORT",
        help="Thunder's port on the target (default 80)",
    )
    add("--thunder-login-user", metavar="USER", help="console login (default: from the image)")
    add(
        "--thunder-password",
        metavar="PASSWORD",
        help="console password (or set THUNDER_PASSWORD; never written to logs)",
    )
    add(
        "--thunder-baud",
        type=int,
        default=115200,
        metavar="BAUD",
        help="serial line speed (default 115200)",
    )
    add(
        "--thunder-power-cycle",
        metavar="CMD",
        help="host command that power-cycles the board before the session",
    )
    add(
        "--thunder-host-address",
        metavar="IP",
        help="this host's address on the board's network: files of 16 KiB and more go over "
        "HTTP from there (default: through the console)",
    )
    add(
        "--thunder-pool-wait",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long a worker waits for a free serial target of the pool (default 300)",
    )
    add(
        "--thunder-callsign",
        default="OCDM",
        metavar="CALLSIGN",
        help="plugin to deploy in a container (default OCDM)",
    )
    add(
        "--thunder-rootfs",
        type=Path,
        metavar="TAR",
        help="container rootfs tarball (default: a copy of the target's own root)",
    )
    add(
        "--thunder-container-config",
        type=Path,
        metavar="JSON",
        help="container config.json (default: the tutorial's example adjusted for the target)",
    )
    add(
        "--thunder-bundle-dir",
        metavar="DIR",
        help="where the bundle goes (default /usr/share/Thunder/<callsign>/Container)",
    )
    add(
        "--thunder-bench-runs",
        type=int,
        default=10,
        metavar="N",
        help="benchmark repetitions after a warm-up (default 10)",
    )
    add(
        "--thunder-max-start-ms",
        type=float,
        metavar="MS",
        help="fail TC-PERF-001 when the median container start latency exceeds MS",
    )
    add(
        "--thunder-stress",
        action="store_true",
        help="also run the stress tests (TC-STRESS-*): activation while the target's CPUs are "
        "busy; off by default",
    )
    add(
        "--thunder-scenario",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="parity scenario (TOML) for a plugin, one per callsign; repeatable "
        "(default: the package's scenario for OCDM)",
    )
    add_options(group)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requirement(*ids): the catalogue requirement IDs (TC-...) a test checks"
    )
    option = config.option
    try:
        settings = Settings(
            targets=parse_targets(option.thunder_target),
            image=option.thunder_image,
            timeout_factor=option.thunder_timeout_factor,
            results=option.thunder_results,
            cold_boot=option.thunder_cold_boot,
            jsonrpc_url=option.thunder_jsonrpc,
            reference_api=option.thunder_reference_api,
            guest_port=option.thunder_port,
            login_user=option.thunder_login_user,
            password=option.thunder_password or os.environ.get("THUNDER_PASSWORD"),
            baudrate=option.thunder_baud,
            power_cycle=option.thunder_power_cycle,
            callsign=option.thunder_callsign,
            rootfs=option.thunder_rootfs,
            container_config=option.thunder_container_config,
            bundle_dir=option.thunder_bundle_dir,
            bench_runs=option.thunder_bench_runs,
            max_start_ms=option.thunder_max_start_ms,
            stress=option.thunder_stress,
        )
        check_settings(settings)
        check_inputs(settings)
    except SettingsError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[SETTINGS] = settings
    config.pluginmanager.register(Reporting(config), "thunder-reporting")
    config.pluginmanager.register(suite_fixtures, "thunder-suite-fixtures")
    config.pluginmanager.register(ThunderWatch(), "thunder-watch")


@pytest.fixture(scope="session")
def thunder_settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def thunder_results(thunder_settings: Settings) -> Path:
    thunder_settings.results.mkdir(parents=True, exist_ok=True)
    return thunder_settings.results


@pytest.fixture(scope="session")
def thunder_target(
    pytestconfig: pytest.Config, thunder_settings: Settings, thunder_results: Path
) -> Iterator[Target]:
    from pytest_thunder_container.targets.factory import make_target
    from pytest_thunder_container.targets.pool import claim_target

    worker = worker_id()
    say = progress_printer(pytestconfig)
    try:
        claim = claim_target(
            thunder_settings.targets,
            worker=worker,
            progress=say,
            wait=pytestconfig.option.thunder_pool_wait,
            timeout_factor=thunder_settings.timeout_factor,
        )
    except ThunderContainerError as error:
        pytest.exit(f"thunder: no target for {worker}: {error}", returncode=3)
    spec: TargetSpec = claim.spec
    label = spec.label if worker == "main" else f"{spec.label}-{worker}"
    with claim:
        try:
            target = make_target(
                thunder_settings,
                spec,
                results=thunder_results,
                label=label,
                progress=say,
                host_address=pytestconfig.option.thunder_host_address,
            )
            say(f"[thunder] starting target {label}")
            target.start()
        except ThunderContainerError as error:
            pytest.exit(f"thunder: target {label} could not be started: {error}", returncode=3)
        say(f"[thunder] target {label} ready")
        record_facts(
            pytestconfig,
            {**target.properties(), **system_facts(target.shell), "harness": __version__},
        )
        yield target
        target.stop()


@pytest.fixture
def thunder_shell(pytestconfig: pytest.Config, thunder_target: Target) -> Shell:
    """The target's shell; a target that died in an earlier test is booted again first."""
    if not thunder_target.healthy():
        progress_printer(pytestconfig)(f"[thunder] target {thunder_target.name} died: restarting")
        try:
            thunder_target.restart()
        except ThunderContainerError as error:
            pytest.exit(
                f"thunder: target {thunder_target.name} died and could not be restarted: {error}",
                returncode=3,
            )
        record_facts(pytestconfig, {"target": thunder_target.name, "restarted": "yes"})
    return thunder_target.shell


@pytest.fixture(scope="session")
def thunder_jsonrpc(
    pytestconfig: pytest.Config, thunder_target: Target, thunder_settings: Settings
) -> ThunderClient:
    """A client of Thunder's Controller on the target (HTTP when reachable, else the console)."""
    url = thunder_settings.jsonrpc_url or thunder_target.jsonrpc_url
    try:
        client = connect(
            url,
            thunder_target.shell,
            port=thunder_settings.guest_port,
            timeout_factor=thunder_settings.timeout_factor,
        )
        facts = {
            "target": thunder_target.name,
            "thunder.dialect": client.dialect,
            "thunder.version": client.version() or "unknown",
            "thunder.jsonrpc": client.endpoint,
        }
    except ThunderContainerError as error:
        pytest.exit(f"thunder: no Thunder on target {thunder_target.name}: {error}", returncode=3)
    record_facts(pytestconfig, facts)
    return client
