"""reference-thunder: start-up and shutdown of the reference Thunder daemon (NOT real Thunder).

Order, as Thunder's PluginHost: environment (COMMUNICATOR_CONNECTOR, MESSAGE_DISPATCHER_CONFIG),
message files, communicator, JSON-RPC server, then the plugins with startmode Activated. SIGTERM
or SIGINT deactivates every plugin (reason Shutdown) and removes the daemon's sockets and files.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time

from refthunder import messaging
from refthunder.communicator import CommunicatorServer
from refthunder.config import ConfigError, ServerConfig, load_plugin_configs, load_server_config
from refthunder.containers import ContainersPlugin, cgroup_version
from refthunder.controller import Controller
from refthunder.hosting import HostingContext
from refthunder.httpserver import JsonRpcHttpServer
from refthunder.jsonrpc import JsonRpcDispatcher
from refthunder.ocdm import OcdmPlugin
from refthunder.runc import ContainerAdministrator
from refthunder.services import PluginFactory, PluginService, ServiceRegistry
from refthunder.subsystems import Subsystems

EXIT_CONFIG = 2
EXIT_STARTUP = 3


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="reference-thunder",
        description="Reference Thunder for testing pytest-thunder-container (NOT real Thunder).",
    )
    parser.add_argument("--config", default="/etc/Thunder/config.json", help="config.json to read")
    parser.add_argument("--log", help="log file (default: reference.logfile of the config)")
    parser.add_argument("--pidfile", help="write the daemon's pid here and remove it at exit")
    return parser.parse_args(argv)


def setup_logging(path: str) -> logging.Logger:
    log = logging.getLogger("reference-thunder")
    log.setLevel(logging.INFO)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(
        logging.Formatter("%(asctime)s.%(msecs)03d %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    log.addHandler(handler)
    return log


class Daemon:
    """The running reference Thunder: owns every server, plugin and file it creates."""

    def __init__(self, config: ServerConfig, log: logging.Logger) -> None:
        self.config = config
        self.log = log
        self.stopping = threading.Event()
        self.messages = messaging.MessageFiles(config.messaging_path)
        self.communicator = CommunicatorServer(
            config.communicator_path,
            config.communicator_mode,
            config.timeouts.announce_ms / 1000.0,
            log,
        )
        self.containers = ContainerAdministrator()
        self.subsystems = Subsystems(config.api)
        self.http: JsonRpcHttpServer | None = None
        self.registry = ServiceRegistry([], log)

    def factories(self) -> dict[str, PluginFactory]:
        context = HostingContext(
            self.config, self.communicator, self.messages, self.containers, self.log
        )
        return {
            "OCDM": lambda: OcdmPlugin(context),
            "Containers": lambda: ContainersPlugin(self.containers),
        }

    def start(self) -> None:
        config = self.config
        os.environ["COMMUNICATOR_CONNECTOR"] = config.communicator_path
        os.environ["MESSAGE_DISPATCHER_CONFIG"] = messaging.dispatcher_config(
            config.messaging_path, config.api
        )
        self.log.info(
            "environment: COMMUNICATOR_CONNECTOR=%s MESSAGE_DISPATCHER_CONFIG=%s",
            os.environ["COMMUNICATOR_CONNECTOR"],
            os.environ["MESSAGE_DISPATCHER_CONFIG"],
        )
        self.messages.open()
        self.communicator.open()
        factories = self.factories()
        services = [
            PluginService(
                plugin, factories.get(plugin.classname), config, self.subsystems, self.log
            )
            for plugin in load_plugin_configs(config.plugin_dir, config.api)
        ]
        self.registry = ServiceRegistry(services, self.log)
        for service in services:
            plugin = service.config
            # PluginHost::Service creates every plugin's volatile path when it loads the plugin.
            with contextlib.suppress(OSError):
                os.makedirs(config.volatile_path + plugin.callsign, exist_ok=True)
            self.log.info(
                "plugin '%s' (class %s, startmode %s) from %s",
                plugin.callsign,
                plugin.classname,
                plugin.startmode,
                plugin.source,
            )
        controller = Controller(
            config.api,
            self.registry,
            self.subsystems,
            self.communicator,
            lambda: self.http.links.report() if self.http else [],
        )
        dispatcher = JsonRpcDispatcher(config.api, controller, self.registry, self.log)
        self.http = JsonRpcHttpServer(
            (config.binding, config.port), dispatcher, config.timeouts.http_idle_s, self.log
        )
        threading.Thread(target=self.http.serve_forever, name="http", daemon=True).start()
        self.log.info(
            "JSON-RPC on http://%s:%d/jsonrpc", config.binding, self.http.server_address[1]
        )
        threading.Thread(target=self.registry.startup, name="startup", daemon=True).start()

    def stop(self) -> None:
        self.log.info("shutting down: deactivating plugins")
        self.registry.shutdown()
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        self.communicator.close()
        self.messages.close()
        self.log.info("reference Thunder stopped")


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        config = load_server_config(arguments.config, arguments.log)
    except ConfigError as error:
        sys.stderr.write(f"reference-thunder: {error}\n")
        return EXIT_CONFIG
    log = setup_logging(config.log_file)
    log.info(
        "reference Thunder (NOT real Thunder) pid %d starting: API %s (from %s), config %s",
        os.getpid(),
        config.api,
        config.api_source,
        arguments.config,
    )
    log.info(
        "host application %s, runc %s (timeout %d ms), announce timeout %d ms, cgroup %s",
        config.host_application,
        config.runc_path,
        config.timeouts.runc_ms,
        config.timeouts.announce_ms,
        cgroup_version(config.cgroup_root),
    )
    daemon = Daemon(config, log)

    def request_stop(signum: int, frame: object) -> None:
        daemon.stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # Started in the background by an init script: the end of that session must not stop us.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        daemon.start()
    except (OSError, ConfigError) as error:
        log.info("start-up failed: %s", error)
        sys.stderr.write(f"reference-thunder: start-up failed: {error}\n")
        daemon.stop()
        return EXIT_STARTUP
    if arguments.pidfile:
        with open(arguments.pidfile, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
    started = time.monotonic()
    while not daemon.stopping.wait(1.0):
        pass
    log.info("stop requested after %.0f s", time.monotonic() - started)
    daemon.stop()
    if arguments.pidfile:
        with contextlib.suppress(OSError):
            os.unlink(arguments.pidfile)
    return 0
