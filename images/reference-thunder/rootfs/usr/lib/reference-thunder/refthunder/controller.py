"""The Controller's JSON-RPC methods, in the dialect of the configured API generation.

R5 (Source/Thunder/Controller.cpp, IController): activate, deactivate, services[@callsign]
(status is its deprecated alias; one element is sent as an object), configuration@callsign,
subsystems, links. R4.4 (Source/WPEFramework/Controller.cpp): activate, deactivate,
status[@callsign] (always an array, lowercase states), configuration@callsign, subsystems,
links, processinfo. Error normalisation as in Controller::Activate/Deactivate/Configuration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from refthunder.communicator import CommunicatorServer
from refthunder.rpcerrors import (
    ERROR_BAD_REQUEST,
    ERROR_CLOSING_FAILED,
    ERROR_GENERAL,
    ERROR_ILLEGAL_STATE,
    ERROR_INCOMPLETE_CONFIG,
    ERROR_INPROGRESS,
    ERROR_OPENING_FAILED,
    ERROR_PENDING_CONDITIONS,
    ERROR_PRIVILIGED_REQUEST,
    ERROR_UNKNOWN_KEY,
    ERROR_UNKNOWN_METHOD,
    R5,
    ThunderError,
)
from refthunder.services import ACTIVATED, REFERENCE_VERSION, ServiceRegistry
from refthunder.subsystems import Subsystems

CALLSIGN = "Controller"


class Controller:
    """Answers Controller.1.<method>[@index] for one API generation."""

    def __init__(
        self,
        generation: str,
        registry: ServiceRegistry,
        subsystems: Subsystems,
        communicator: CommunicatorServer,
        http_links: Callable[[], list[dict]],
    ) -> None:
        self.generation = generation
        self.registry = registry
        self.subsystems = subsystems
        self.communicator = communicator
        self.http_links = http_links
        self._methods: dict[str, Callable[[str | None, object, bool], object]] = {
            "activate": self._activate,
            "deactivate": self._deactivate,
            "configuration": self._configuration,
            "subsystems": lambda index, params, has: self.subsystems.report(),
            "links": lambda index, params, has: self._links(),
        }
        if generation == R5:
            self._methods["services"] = self._services
            self._methods["status"] = self._services
        else:
            self._methods["status"] = self._status
            self._methods["processinfo"] = lambda index, params, has: self._processinfo()

    def invoke(self, method: str, index: str | None, params: object, has_params: bool) -> object:
        handler = self._methods.get(method)
        if handler is None:
            raise ThunderError(ERROR_UNKNOWN_METHOD)
        return handler(index, params, has_params)

    def _callsign_param(self, params: object) -> str:
        callsign = params.get("callsign") if isinstance(params, dict) else None
        if isinstance(callsign, str) and callsign:
            return callsign
        # R5's generated JSON-RPC rejects a missing mandatory parameter with ERROR_BAD_REQUEST;
        # R4.4 looks the empty callsign up and does not find it.
        raise ThunderError(ERROR_BAD_REQUEST if self.generation == R5 else ERROR_UNKNOWN_KEY)

    def _activate(self, index: str | None, params: object, has_params: bool) -> None:
        callsign = self._callsign_param(params)
        if callsign == CALLSIGN:
            raise ThunderError(ERROR_PRIVILIGED_REQUEST)
        service = self.registry.get(callsign)
        if service is None:
            raise ThunderError(ERROR_UNKNOWN_KEY)
        try:
            service.activate()
        except ThunderError as error:
            if error.code in (ERROR_ILLEGAL_STATE, ERROR_INPROGRESS, ERROR_PENDING_CONDITIONS):
                raise
            raise ThunderError(ERROR_OPENING_FAILED, data=error.data) from error
        return None

    def _deactivate(self, index: str | None, params: object, has_params: bool) -> None:
        callsign = self._callsign_param(params)
        if callsign == CALLSIGN:
            raise ThunderError(ERROR_PRIVILIGED_REQUEST)
        service = self.registry.get(callsign)
        if service is None:
            raise ThunderError(ERROR_UNKNOWN_KEY)
        try:
            service.deactivate()
        except ThunderError as error:
            if error.code in (ERROR_ILLEGAL_STATE, ERROR_INPROGRESS):
                raise
            raise ThunderError(ERROR_CLOSING_FAILED, data=error.data) from error
        return None

    def _configuration(self, index: str | None, params: object, has_params: bool) -> object:
        service = self.registry.get(index) if index else None
        if service is None:
            raise ThunderError(ERROR_UNKNOWN_KEY)
        if not has_params:
            return service.config.configuration
        if not isinstance(params, dict):
            raise ThunderError(ERROR_INCOMPLETE_CONFIG)
        try:
            service.set_configuration(params)
        except ThunderError as error:
            # Controller::Configuration normalises every ConfigLine failure to ERROR_GENERAL.
            raise ThunderError(
                ERROR_GENERAL,
                data="the configuration can only be changed while "
                "the plugin is Deactivated, Deactivation, Precondition or "
                "Unavailable",
            ) from error
        return None

    def _entries(self, index: str | None) -> list[dict]:
        if index:
            if index == CALLSIGN:
                return [self._controller_entry()]
            service = self.registry.get(index)
            if service is None:
                raise ThunderError(ERROR_UNKNOWN_KEY)
            return [service.metadata(self.generation)]
        entries = [self._controller_entry()]
        entries += [service.metadata(self.generation) for service in self.registry.all()]
        return sorted(entries, key=lambda entry: entry["callsign"])

    def _services(self, index: str | None, params: object, has_params: bool) -> object:
        entries = self._entries(index)
        # IController's generated JSON-RPC omits the array when there is one element.
        return entries[0] if len(entries) == 1 else entries

    def _status(self, index: str | None, params: object, has_params: bool) -> object:
        return self._entries(index)

    def _controller_entry(self) -> dict:
        state = ACTIVATED if self.generation == R5 else ACTIVATED.lower()
        return {
            "callsign": CALLSIGN,
            "locator": "",
            "classname": CALLSIGN,
            "startmode": ACTIVATED,
            "configuration": {},
            "state": state,
            "module": "Thunder_Controller",
            "version": dict(REFERENCE_VERSION),
            "observers": 0,
            "processedrequests": 0,
            "processedobjects": 0,
        }

    def _links(self) -> list[dict]:
        links = list(self.http_links())
        for link in self.communicator.links():
            links.append(
                {
                    "remote": link.remote,
                    "state": "COMRPC",
                    "activity": True,
                    "id": link.exchange_id,
                    "name": link.callsign,
                }
            )
        return links

    def _processinfo(self) -> dict:
        threads = [
            {"id": thread.ident or 0, "job": thread.name, "runs": 0}
            for thread in threading.enumerate()
        ]
        return {"threads": threads, "pending": []}
