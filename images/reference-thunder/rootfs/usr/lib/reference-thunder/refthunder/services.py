"""Plugin lifecycle: states, activation and deactivation, and what a plugin reports about itself.

Follows Server::Service::Activate/Deactivate (Source/Thunder/PluginServer.cpp, R5.3.0):
activating an Activated plugin does nothing, Activation in progress gives ERROR_INPROGRESS,
Unavailable/Deactivation/Destroyed give ERROR_ILLEGAL_STATE; the configuration can be replaced
only while Deactivated, Deactivation, Precondition or Unavailable (PluginHost::Service::ConfigLine).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from refthunder.config import PluginConfig, ServerConfig
from refthunder.rpcerrors import (
    ERROR_ILLEGAL_STATE,
    ERROR_INPROGRESS,
    ERROR_UNAVAILABLE,
    R5,
    ThunderError,
)
from refthunder.subsystems import Subsystems

UNAVAILABLE = "Unavailable"
DEACTIVATED = "Deactivated"
DEACTIVATION = "Deactivation"
ACTIVATED = "Activated"
ACTIVATION = "Activation"
PRECONDITION = "Precondition"
DESTROYED = "Destroyed"
CONFIGURABLE_STATES = (DEACTIVATED, DEACTIVATION, PRECONDITION, UNAVAILABLE)

REQUESTED = "Requested"
STARTUP = "Startup"
SHUTDOWN = "Shutdown"
FAILURE = "Failure"

# Version block of the services metadata: the reference has no build hash of its own.
REFERENCE_VERSION = {
    "hash": "reference-thunder-not-a-real-build",
    "major": 1,
    "minor": 0,
    "patch": 0,
}


class PluginError(Exception):
    """Activation of a plugin failed; the message says why (log and error.data)."""


class Plugin(Protocol):
    """A plugin implementation inside the daemon (the part real Thunder loads from `locator`)."""

    def initialize(self, shell: Shell) -> None: ...

    def deinitialize(self) -> None: ...

    def invoke(
        self, method: str, index: str | None, params: object, has_params: bool
    ) -> object: ...


@dataclass(frozen=True)
class Shell:
    """What a plugin gets from the framework for one activation (IShell in miniature)."""

    config: PluginConfig
    server: ServerConfig
    subsystems: Subsystems
    log: logging.Logger
    failed: Callable[[str], None]  # the out-of-process part went away: deactivate (Failure)


PluginFactory = Callable[[], Plugin]


class PluginService:
    """One configured plugin and its state machine."""

    def __init__(
        self,
        config: PluginConfig,
        factory: PluginFactory | None,
        server: ServerConfig,
        subsystems: Subsystems,
        log: logging.Logger,
    ) -> None:
        self._config = config
        self._factory = factory
        self._server = server
        self._subsystems = subsystems
        self._log = log
        self._lock = threading.Lock()
        self._state = UNAVAILABLE if config.startmode == UNAVAILABLE else DEACTIVATED
        self._plugin: Plugin | None = None
        self._activation_id = 0
        self.processed_requests = 0

    @property
    def callsign(self) -> str:
        return self._config.callsign

    @property
    def config(self) -> PluginConfig:
        with self._lock:
            return self._config

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def activate(self, reason: str = REQUESTED) -> None:
        with self._lock:
            if self._state == ACTIVATION:
                raise ThunderError(ERROR_INPROGRESS)
            if self._state in (UNAVAILABLE, DEACTIVATION, DESTROYED):
                raise ThunderError(ERROR_ILLEGAL_STATE)
            if self._state == ACTIVATED:
                return
            self._state = ACTIVATION
            self._activation_id += 1
            activation_id = self._activation_id
            config = self._config
        self._log.info(
            "Activation plugin [%s]:[%s] (%s)", config.classname, config.callsign, reason
        )
        try:
            if self._factory is None:
                raise PluginError(
                    f"class '{config.classname}' does not exist in the reference Thunder"
                )
            plugin = self._factory()
            plugin.initialize(
                Shell(
                    config,
                    self._server,
                    self._subsystems,
                    self._log,
                    lambda why: self._failed(activation_id, why),
                )
            )
        except PluginError as error:
            with self._lock:
                self._state = DEACTIVATED
            self._log.info(
                "Activation of plugin [%s]:[%s], failed. Error [%s]",
                config.classname,
                config.callsign,
                error,
            )
            raise ThunderError(ERROR_UNAVAILABLE, data=str(error)) from error
        with self._lock:
            self._plugin = plugin
            self._state = ACTIVATED
        self._log.info("Activated plugin [%s]:[%s]", config.classname, config.callsign)

    def deactivate(self, reason: str = REQUESTED) -> None:
        with self._lock:
            if self._state == DEACTIVATION:
                raise ThunderError(ERROR_INPROGRESS)
            if self._state in (ACTIVATION, DESTROYED):
                raise ThunderError(ERROR_ILLEGAL_STATE)
            if self._state == DEACTIVATED:
                return
            previous = self._state
            self._state = DEACTIVATION
            plugin = self._plugin
            self._plugin = None
        if previous == ACTIVATED and plugin is not None:
            self._log.info(
                "Deactivating plugin [%s]:[%s] (%s)", self.config.classname, self.callsign, reason
            )
            try:
                plugin.deinitialize()
            except Exception:
                self._log.exception("deinitialising '%s' failed", self.callsign)
            self._log.info(
                "Deactivated plugin [%s]:[%s] (%s)", self.config.classname, self.callsign, reason
            )
        with self._lock:
            self._state = DEACTIVATED

    def _failed(self, activation_id: int, why: str) -> None:
        """The out-of-process part crashed: deactivate on a worker (OCDM::Deactivated does so)."""
        with self._lock:
            if self._activation_id != activation_id or self._state != ACTIVATED:
                return
        self._log.info(
            "plugin '%s' lost its implementation (%s): deactivating with reason %s",
            self.callsign,
            why,
            FAILURE,
        )
        threading.Thread(target=self._deactivate_quietly, args=(FAILURE,), daemon=True).start()

    def _deactivate_quietly(self, reason: str) -> None:
        try:
            self.deactivate(reason)
        except ThunderError as error:
            self._log.info("deactivating '%s' (%s) failed: %s", self.callsign, reason, error)

    def set_configuration(self, configuration: dict) -> None:
        with self._lock:
            if self._state not in CONFIGURABLE_STATES:
                raise ThunderError(ERROR_ILLEGAL_STATE)
            raw = dict(self._config.raw, configuration=configuration)
            self._config = replace(self._config, configuration=configuration, raw=raw)
        self._log.info("configuration of '%s' replaced", self.callsign)

    def invoke(self, method: str, index: str | None, params: object, has_params: bool) -> object:
        with self._lock:
            plugin = self._plugin if self._state == ACTIVATED else None
            self.processed_requests += 1
        if plugin is None:
            # R4.4's Service::Invoke words this error itself; R5 keeps SetError's text.
            raise ThunderError(
                ERROR_UNAVAILABLE, text=None if self._server.api == R5 else "Service is not active"
            )
        return plugin.invoke(method, index, params, has_params)

    def metadata(self, generation: str) -> dict:
        """One entry of services (R5, capitalised states) or status (R4.4, lowercase states)."""
        with self._lock:
            config, state, processed = self._config, self._state, self.processed_requests
        entry = {key: value for key, value in config.raw.items() if key != "configuration"}
        entry.update(
            callsign=config.callsign,
            locator=config.locator,
            classname=config.classname,
            startmode=config.startmode,
            configuration=config.configuration,
        )
        if generation == R5:
            entry.update(
                module=f"Plugin_{config.classname}",
                state=state,
                resumed=False,
                version=dict(REFERENCE_VERSION),
                observers=0,
                processedrequests=processed,
                processedobjects=0,
            )
        else:
            entry.update(
                state=state.lower(),
                processedrequests=processed,
                processedobjects=0,
                observers=0,
                module=f"Plugin_{config.classname}",
                version=dict(REFERENCE_VERSION),
            )
        return entry


class ServiceRegistry:
    """All configured plugins by callsign."""

    def __init__(self, services: list[PluginService], log: logging.Logger) -> None:
        self._services = {service.callsign: service for service in services}
        self._log = log

    def get(self, callsign: str) -> PluginService | None:
        return self._services.get(callsign)

    def all(self) -> list[PluginService]:
        return sorted(self._services.values(), key=lambda service: service.callsign)

    def startup(self) -> None:
        """Activate every plugin with startmode Activated, in startuporder."""
        starting = sorted(
            (s for s in self._services.values() if s.config.startmode == ACTIVATED),
            key=lambda service: (service.config.startuporder, service.callsign),
        )
        for service in starting:
            try:
                service.activate(STARTUP)
            except ThunderError as error:
                self._log.info("start-up activation of '%s' failed: %s", service.callsign, error)

    def shutdown(self) -> None:
        for service in reversed(self.all()):
            try:
                service.deactivate(SHUTDOWN)
            except ThunderError as error:
                self._log.info("shutdown deactivation of '%s' failed: %s", service.callsign, error)
