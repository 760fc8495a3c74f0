"""Out-of-process plugin implementations: a plugin host started locally or inside runc.

Mirrors RPC::Communicator (Source/com/Communicator.h): the host command line is built exactly as
Communicator::Process builds it, started directly (Local) or through the container backend
(Container), and the activation completes once the host has announced itself and initialised
the implementation. Stopping: Deinitialize, then SIGTERM, then SIGKILL (soft/hard kill waits),
then the container is deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from refthunder import frames
from refthunder.communicator import CommunicatorServer, Link
from refthunder.config import PluginConfig, ServerConfig
from refthunder.messaging import MessageFiles
from refthunder.rpcerrors import R5
from refthunder.runc import (
    ContainerAdministrator,
    RuncContainer,
    RuncError,
    RuncRunner,
    find_bundle,
)

MODE_LOCAL = "Local"
MODE_CONTAINER = "Container"
NO_VERSION = 0xFFFFFFFF


class HostingError(Exception):
    """Starting the out-of-process implementation failed; the message goes to log and error.data."""


@dataclass(frozen=True)
class HostRequest:
    """What Service::Root asks for: the implementation class and how to host it."""

    plugin: PluginConfig
    classname: str
    interface_id: int
    mode: str
    user: str = ""
    group: str = ""
    threads: int = 1
    environments: tuple[tuple[str, str, str], ...] = ()  # (key, value, scope) from root


@dataclass(frozen=True)
class HostingContext:
    """The daemon's services an out-of-process host needs."""

    server: ServerConfig
    communicator: CommunicatorServer
    messages: MessageFiles
    containers: ContainerAdministrator
    log: logging.Logger


def plugin_paths(server: ServerConfig, plugin: PluginConfig) -> tuple[str, str, str]:
    """(persistent, volatile, data) of a plugin, as Plugin::Config derives them."""
    persistent = server.persistent_path + plugin.callsign + "/" if server.persistent_path else ""
    volatile = server.volatile_path + plugin.callsign + "/"
    data = server.data_path + plugin.classname + "/" if server.data_path else ""
    return persistent, volatile, data


def host_arguments(server: ServerConfig, request: HostRequest, exchange_id: int) -> list[str]:
    """The options after the host application, in Communicator::Process's order and quoting."""
    persistent, volatile, data = plugin_paths(server, request.plugin)
    arguments = [
        "-l", request.plugin.locator,
        "-c", request.classname,
        "-C", request.plugin.callsign,
        "-r", server.communicator_path,
        "-i", str(request.interface_id),
        "-x", str(exchange_id),
    ]  # fmt: skip
    if request.user:
        arguments += ["-u", request.user]
    if request.group:
        arguments += ["-g", request.group]
    quoted = [
        ("-p", persistent),
        ("-s", server.system_path),
        ("-d", data),
        ("-a", server.app_path),
        ("-v", volatile),
        ("-m", server.proxystub_path),
        ("-P", server.postmortem_path),
    ]
    arguments += [item for flag, path in quoted if path for item in (flag, f'"{path}"')]
    if request.threads > 1:
        arguments += ["-t", str(request.threads)]
    if server.api == R5:
        for key, value, scope in request.environments:
            arguments += ["-E" if scope.lower() == "global" else "-e", f"{key}={value}"]
    return arguments


class OutOfProcessHost:
    """One running plugin host (Local process or runc container) and its communicator link."""

    def __init__(self, context: HostingContext, request: HostRequest) -> None:
        self.context = context
        self.request = request
        self.callsign = request.plugin.callsign
        self.exchange_id = context.communicator.next_exchange_id()
        self.process: subprocess.Popen | None = None
        self.container: RuncContainer | None = None
        self.link: Link | None = None
        self._stopping = threading.Event()

    @property
    def log(self) -> logging.Logger:
        return self.context.log

    def start(self, on_lost: Callable[[str], None]) -> None:
        """Start, await Announce and Initialized; raise HostingError (after cleaning up) if not."""
        server = self.context.server
        timeouts = server.timeouts
        pending = self.context.communicator.expect(self.exchange_id)
        arguments = host_arguments(server, self.request, self.exchange_id)
        try:
            if self.request.mode == MODE_CONTAINER:
                self._start_container(arguments)
            else:
                self._start_local(arguments)
            self.link = self._await_announce(pending, timeouts.announce_ms)
            self.link.send(frames.SETUP, {
                "callsign": self.callsign,
                "classname": self.request.classname,
                "configuration": self.request.plugin.configuration,
                "pollinterval": timeouts.host_poll_ms,
                "requesttimeout": timeouts.ocdm_request_ms,
            })  # fmt: skip
            self.link.send(frames.INITIALIZE, {})
            self._await_initialized(timeouts.initialize_ms)
        except (HostingError, OSError) as error:
            self.context.communicator.forget(pending)
            self.stop()
            if isinstance(error, HostingError):
                raise
            raise HostingError(
                f"plugin host for '{self.callsign}' went away during set-up: {error}"
            ) from error
        self.link.watch(lambda link: self._lost(link, on_lost), self.log)

    def _start_local(self, arguments: list[str]) -> None:
        command = [self.context.server.host_application, *arguments]
        self.log.info("plugin host for '%s': starting %s", self.callsign, " ".join(command))
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        except OSError as error:
            raise HostingError(
                f"cannot start plugin host '{command[0]}' for '{self.callsign}': {error.strerror}"
            ) from error

    def _start_container(self, arguments: list[str]) -> None:
        server = self.context.server
        if server.container_backend != "runc":
            raise HostingError(
                f"root.mode 'Container' for '{self.callsign}' needs \"processcontainers\": "
                f'{{"default": "runc"}} in config.json (got {server.container_backend!r})'
            )
        persistent, volatile, data = plugin_paths(server, self.request.plugin)
        bundle = find_bundle([p for p in (volatile, persistent, data) if p])
        if bundle is None:
            self.log.info("Runc container configuration for '%s' not found!", self.callsign)
            raise HostingError(
                f"Runc container configuration for '{self.callsign}' not found! "
                f"(searched {volatile}Container/, {persistent}Container/, {data}Container/)"
            )
        self.log.info("Container '%s' created from '%sconfig.json'", self.callsign, bundle)
        runner = RuncRunner(server.runc_path, server.timeouts.runc_ms / 1000.0, self.log)
        container = RuncContainer(
            self.callsign,
            bundle,
            volatile + self.callsign + "/",
            server.api,
            runner,
            server.runtime_path,
        )
        self.container = container
        self.context.containers.add(container)
        try:
            container.start(server.host_application, arguments)
        except (RuncError, OSError) as error:
            raise HostingError(f"starting container '{self.callsign}': {error}") from error

    def _await_announce(self, pending, announce_ms: int) -> Link:
        deadline = time.monotonic() + announce_ms / 1000.0
        while not pending.arrived.wait(0.05):
            exited = self.process.poll() if self.process is not None else None
            if exited is not None:
                raise HostingError(
                    f"plugin host for '{self.callsign}' exited with code {exited} "
                    f"before announcing itself on {self.context.server.communicator_path}"
                )
            if time.monotonic() >= deadline:
                self.context.communicator.forget(pending)
                if pending.link is not None:  # arrived between the last wait and forget()
                    break
                raise HostingError(
                    f"plugin host for '{self.callsign}' did not announce itself on "
                    f"{self.context.server.communicator_path} within {announce_ms} ms"
                )
        self.log.info(
            "plugin host for '%s' announced itself (exchange %d)", self.callsign, self.exchange_id
        )
        return pending.link

    def _await_initialized(self, initialize_ms: int) -> None:
        assert self.link is not None
        try:
            while True:
                command, payload = self.link.receive(initialize_ms / 1000.0)
                if command == frames.INITIALIZED:
                    break
        except TimeoutError as error:
            raise HostingError(
                f"plugin host for '{self.callsign}' did not finish initialising "
                f"within {initialize_ms} ms"
            ) from error
        except (OSError, EOFError, frames.FrameError) as error:
            raise HostingError(
                f"plugin host for '{self.callsign}' went away while initialising: {error}"
            ) from error
        if payload.get("error"):
            raise HostingError(
                f"plugin host for '{self.callsign}' failed to initialise: {payload['error']}"
            )

    def _lost(self, link: Link, on_lost: Callable[[str], None]) -> None:
        self.context.communicator.drop(link)
        if not self._stopping.is_set():
            self.log.info(
                "plugin host for '%s' closed its communicator link unexpectedly", self.callsign
            )
            on_lost("the plugin host closed its communicator link")

    def host_pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid
        return self.link.peer_pid if self.link is not None else None

    def stop(self) -> None:
        """Deinitialize, SIGTERM, SIGKILL, delete the container: leave nothing behind."""
        self._stopping.set()
        timeouts = self.context.server.timeouts
        if self.link is not None and not self.link.closed.is_set():
            with contextlib.suppress(OSError):
                self.link.send(frames.DEINITIALIZE, {})
            self._wait_gone(timeouts.deinitialize_ms / 1000.0)
        self._end_process(timeouts.soft_kill_s, timeouts.hard_kill_s)
        if self.link is not None:
            self.link.close()
            self.context.communicator.drop(self.link)
        if self.container is not None:
            try:
                self.container.stop()
            except RuncError as error:
                self.log.info("deleting container '%s' failed: %s", self.callsign, error)
            self.context.containers.remove(self.container)
        self.context.messages.remove_instance(self.exchange_id)

    def _wait_gone(self, timeout_s: float) -> None:
        """Until the link closes or the host process is gone (whichever is seen first)."""
        deadline = time.monotonic() + timeout_s
        pid = self.host_pid()
        while time.monotonic() < deadline:
            if self.link is not None and self.link.closed.is_set():
                return
            if pid is not None and not self._alive(pid):
                return
            time.sleep(0.05)

    def _end_process(self, soft_s: int, hard_s: int) -> None:
        pid = self.host_pid()
        if pid is None or not self._alive(pid):
            return
        for sig, wait_s in ((signal.SIGTERM, soft_s), (signal.SIGKILL, hard_s)):
            self.log.info("plugin host for '%s' (pid %d): sending %s", self.callsign, pid, sig.name)
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if not self._alive(pid):
                    return
                time.sleep(0.05)

    def _alive(self, pid: int) -> bool:
        if self.process is not None and pid == self.process.pid:
            return self.process.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # A zombie still answers kill(0); its state in /proc says whether it is gone.
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
