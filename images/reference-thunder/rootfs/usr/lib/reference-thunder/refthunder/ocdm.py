"""The reference OCDM plugin (classname OCDM): the daemon side of OpenCDMi.

As the real plugin (ThunderNanoServicesRDK OpenCDMi/OCDM.cpp) it asks IShell::Root for the
class "OCDMImplementation" (interface IContentDecryption) in the mode of configuration.root, and
the Decryption subsystem is up while it is activated. Every JSON-RPC call is answered by asking
the implementation over its connector socket (/tmp/ocdm), so a host that can't be reached there
(no /tmp bind mount) breaks OCDM as it would on a device.
JSON-RPC: drms and keysystems@<drm> (R4.4 and R5); systems, designators@<system> (R5, JOpenCDM);
sessions[@<system>] (R5, reference-only: not confirmed in real Thunder's JSON-RPC).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading

from refthunder.config import ConfigError, root_mode
from refthunder.hosting import (
    MODE_CONTAINER,
    HostingContext,
    HostingError,
    HostRequest,
    OutOfProcessHost,
)
from refthunder.ocdm_impl import (
    ERROR_UNKNOWN_KEY,
    IMPLEMENTATION_CLASS,
    OcdmImplementation,
    connector_path,
)
from refthunder.rpcerrors import (
    ERROR_UNKNOWN_METHOD,
    R5,
    R44,
    ThunderError,
)
from refthunder.services import PluginError, Shell

ERROR_RPC_CALL_FAILED = 25
# ID_CONTENTDECRYPTION = ID_EXTERNAL_INTERFACE_OFFSET + 0xA0, the offset 0x80 (R5) or 0x40 (R4.4).
INTERFACE_IDS = {R5: 0x80 + 0xA0, R44: 0x40 + 0xA0}
DECRYPTION = "Decryption"


class OcdmPlugin:
    """One activation of the OCDM plugin."""

    def __init__(self, context: HostingContext) -> None:
        self.context = context
        self.generation = context.server.api
        self.connector = ""
        self.timeout_s = context.server.timeouts.ocdm_request_ms / 1000.0
        self._host: OutOfProcessHost | None = None
        self._local: OcdmImplementation | None = None
        self._shell: Shell | None = None

    def initialize(self, shell: Shell) -> None:
        configuration = shell.config.configuration
        try:
            mode = root_mode(configuration)
        except ConfigError as error:
            raise PluginError(f"'{shell.config.callsign}': {error}") from error
        self.connector = connector_path(configuration)
        persistent = shell.server.persistent_path
        if persistent:
            path = persistent + shell.config.callsign + "/"
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as error:
                raise PluginError(
                    f"Could not setup persistent path: {path} ({error.strerror})"
                ) from error
        if mode == "Distributed":
            raise PluginError(
                f"root.mode 'Distributed' of '{shell.config.callsign}' is not supported by the "
                "reference Thunder (use Off, Local or Container)"
            )
        if mode == "Off":
            self._start_in_process(configuration)
        else:
            root = configuration.get("root", {})
            request = HostRequest(
                plugin=shell.config,
                classname=IMPLEMENTATION_CLASS,
                interface_id=INTERFACE_IDS[self.generation],
                mode=MODE_CONTAINER if mode == "Container" else mode,
                user=str(root.get("user", "")),
                group=str(root.get("group", "")),
                threads=int(root.get("threads", 1))
                if isinstance(root.get("threads", 1), int)
                else 1,
                environments=_environments(root.get("environments")),
            )
            host = OutOfProcessHost(self.context, request)
            try:
                host.start(shell.failed)
            except HostingError as error:
                raise PluginError(str(error)) from error
            self._host = host
        self._shell = shell
        shell.subsystems.set(DECRYPTION, True)

    def _start_in_process(self, configuration: dict) -> None:
        implementation = OcdmImplementation(configuration)
        try:
            implementation.open()
        except OSError as error:
            raise PluginError(f"OCDM implementation (in process): {error}") from error
        self._local = implementation
        threading.Thread(
            target=self._serve_in_process,
            args=(implementation,),
            name="ocdm-in-process",
            daemon=True,
        ).start()
        self.context.log.info(
            "OCDM implementation runs in process, serving %s", implementation.path
        )

    def _serve_in_process(self, implementation: OcdmImplementation) -> None:
        listener = implementation.listener
        while listener is not None:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            implementation.serve(connection, self.timeout_s)

    def deinitialize(self) -> None:
        if self._shell is not None:
            self._shell.subsystems.set(DECRYPTION, False)
        if self._host is not None:
            self._host.stop()
            self._host = None
        if self._local is not None:
            self._local.close()
            self._local = None

    def invoke(self, method: str, index: str | None, params: object, has_params: bool) -> object:
        if method == "drms":
            systems = self._ask([("systems", {})])[0]
            answers = (
                self._ask([("designators", {"system": name}) for name in systems])
                if systems
                else []
            )
            return [
                {"name": name, "keysystems": designators if isinstance(designators, list) else []}
                for name, designators in zip(systems, answers, strict=True)
            ]
        if method == "keysystems":
            try:
                return self._ask([("designators", {"system": index or ""})])[0]
            except ThunderError as error:
                if error.code != ERROR_UNKNOWN_KEY:
                    raise
                # Real OCDM answers an unknown DRM with an empty list, not an error
                # (OpenCDMi OCDMJsonRpc.cpp with FrameworkRPC.cpp, R4.4.6 and R5.3.0).
                return []
        if self.generation == R5 and method == "systems":
            return self._ask([("systems", {})])[0]
        if self.generation == R5 and method == "designators":
            return self._ask([("designators", {"system": index or ""})])[0]
        if self.generation == R5 and method == "sessions":
            return self._ask([("sessions", {"system": index} if index else {})])[0]
        raise ThunderError(ERROR_UNKNOWN_METHOD)

    def _ask(self, requests: list[tuple[str, dict]]) -> list[object]:
        """Send requests over one connection to the connector; the results in order.

        An answer carrying an error raises ThunderError with its code (designators of an
        unknown system: ERROR_UNKNOWN_KEY), except inside a batch where it yields None.
        """
        lines = b"".join(
            json.dumps({"method": m, "params": p}).encode() + b"\n" for m, p in requests
        )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        received = b""
        try:
            sock.connect(self.connector)
            sock.sendall(lines)
            while received.count(b"\n") < len(requests):
                data = sock.recv(65536)
                if not data:
                    break
                received += data
        except OSError as error:
            raise ThunderError(
                ERROR_RPC_CALL_FAILED,
                text=f"OCDM implementation unreachable at {self.connector}",
                data=f"{self.connector}: {error.strerror or error}",
            ) from error
        finally:
            with contextlib.suppress(OSError):
                sock.close()
        try:
            answers = [json.loads(line) for line in received.split(b"\n") if line.strip()]
        except ValueError:
            answers = []
        if len(answers) < len(requests):
            raise ThunderError(
                ERROR_RPC_CALL_FAILED,
                text=f"OCDM implementation at {self.connector} did not answer",
            )
        results: list[object] = []
        for answer in answers[: len(requests)]:
            error = answer.get("error") if isinstance(answer, dict) else None
            if error is None:
                results.append(answer.get("result") if isinstance(answer, dict) else None)
            elif len(requests) > 1:
                results.append(None)
            else:
                code = error.get("code", ERROR_UNKNOWN_KEY)
                raise ThunderError(
                    code if isinstance(code, int) else ERROR_UNKNOWN_KEY,
                    data=str(error.get("message", "")),
                )
        return results


def _environments(value: object) -> tuple[tuple[str, str, str], ...]:
    entries = value if isinstance(value, list) else []
    return tuple(
        (str(e.get("key", "")), str(e.get("value", "")), str(e.get("scope", "local")))
        for e in entries
        if isinstance(e, dict) and e.get("key")
    )
