"""pytest glue: options, markers and fixtures (no logic of its own)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_thunder_container import __version__
from pytest_thunder_container.conformance.catalogue import Catalogue, CatalogueError, load_catalogue
from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.inputs import check_inputs
from pytest_thunder_container.plugin import suite_fixtures
from pytest_thunder_container.plugin.idle_targets import IdleTargets
from pytest_thunder_container.plugin.markers import CATALOGUE
from pytest_thunder_container.plugin.reporting import Reporting, record_facts
from pytest_thunder_container.plugin.terminal import progress_printer
from pytest_thunder_container.plugin.thunder_watch import ThunderWatch
from pytest_thunder_container.settings import (
    Settings,
    SettingsError,
    TargetSpec,
    check_settings,
    options,
    settings_from,
    worker_id,
)
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.targets.base import Target, system_facts
from pytest_thunder_container.targets.core_budget import emulator_warning
from pytest_thunder_container.thunder.client import ThunderClient, connect

SETTINGS = pytest.StashKey[Settings]()
IDLE_TARGETS = pytest.StashKey[IdleTargets]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("thunder", "Thunder plugins in runc containers")
    for option in options():
        spec = {
            "default": option.default,
            "metavar": option.metavar,
            "type": option.type,
            "action": option.action,
            "choices": option.choices,
            "help": argparse.SUPPRESS if option.hidden else option.help,
        }
        # Only what the option sets: argparse refuses e.g. a type with store_true.
        group.addoption(
            option.flag, **{key: value for key, value in spec.items() if value is not None}
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requirement(*ids): the catalogue requirement IDs (TC-...) a test checks"
    )
    try:
        settings = settings_from(config.option)
        check_settings(settings)
        check_inputs(settings)
    except SettingsError as error:
        raise pytest.UsageError(str(error)) from None
    try:
        catalogue = load_catalogue(settings.catalogue)
    except CatalogueError as error:
        where = f"--thunder-catalogue={settings.catalogue}: " if settings.catalogue else ""
        raise pytest.UsageError(f"{where}{error}") from None
    config.stash[SETTINGS] = settings
    config.stash[CATALOGUE] = catalogue
    config.pluginmanager.register(Reporting(config, settings, catalogue), "thunder-reporting")
    config.pluginmanager.register(suite_fixtures, "thunder-suite-fixtures")
    config.pluginmanager.register(ThunderWatch(), "thunder-watch")
    config.stash[IDLE_TARGETS] = IdleTargets()
    config.pluginmanager.register(config.stash[IDLE_TARGETS], "thunder-idle-targets")


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    settings = config.stash.get(SETTINGS, None)
    if hasattr(config, "workerinput") or settings is None or not settings.uses_qemu:
        return
    if settings.static_only:
        return
    workers = getattr(config.option, "numprocesses", None)
    emulators = workers if isinstance(workers, int) and workers > 0 else 1
    warning = emulator_warning(emulators, os.cpu_count())
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if warning and reporter is not None:
        reporter.write_line(warning, yellow=True)  # shown with -q too


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.stash[SETTINGS].static_only:
        return
    # --thunder-static-only: no target, so only the tests of the static rules can run.
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        static = "thunder_static" in getattr(item, "fixturenames", ())
        (kept if static else dropped).append(item)
    config.hook.pytest_deselected(items=dropped)
    items[:] = kept


@pytest.fixture(scope="session")
def thunder_settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def thunder_catalogue(pytestconfig: pytest.Config) -> Catalogue:
    """The run's requirement catalogue, loaded once: every layer judges by this one."""
    return pytestconfig.stash[CATALOGUE]


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
            wait=thunder_settings.pool_wait,
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
                host_address=thunder_settings.host_address,
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
        with pytestconfig.stash[IDLE_TARGETS].booted_target(target):
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
            runc_window=thunder_target.runc_window,
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
