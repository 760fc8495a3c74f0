"""The reference Thunder's configuration: Thunder's config.json keys plus a `reference` section.

Real keys read: port, binding, communicator ("/tmp/communicator|0777"), volatilepath,
persistentpath, datapath, systempath, proxystubpath, postmortempath, configs (plugin folder),
processcontainers.default, softkillcheckwaittime, hardkillcheckwaittime (seconds).
Reference-only keys live under "reference": api, hostapplication, runc, runtimepath, cgrouproot,
cmdline, logfile and the timeouts in milliseconds (emulation is 10-30x slower than hardware).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field

from refthunder.rpcerrors import R5, R44

GENERATIONS = (R5, R44)
HOST_APPLICATIONS = {R5: "ThunderPlugin", R44: "WPEProcess"}
CMDLINE_API = re.compile(r"(?:^|\s)thunder\.api=(\S+)")


class ConfigError(Exception):
    """The configuration can't be used; the message names the file and the key."""


@dataclass(frozen=True)
class Timeouts:
    """Every wait of the reference, in milliseconds unless named otherwise."""

    runc_ms: int = 30000
    announce_ms: int = 60000
    initialize_ms: int = 30000
    deinitialize_ms: int = 10000
    ocdm_request_ms: int = 10000
    host_poll_ms: int = 200
    http_idle_s: int = 300
    soft_kill_s: int = 10
    hard_kill_s: int = 4


@dataclass(frozen=True)
class ServerConfig:
    """Everything the daemon reads from config.json, with paths normalised to end in '/'."""

    api: str
    api_source: str
    port: int
    binding: str
    communicator_path: str
    communicator_mode: int | None
    volatile_path: str
    persistent_path: str
    data_path: str
    system_path: str
    proxystub_path: str
    postmortem_path: str
    app_path: str
    plugin_dir: str
    container_backend: str | None
    host_application: str
    runc_path: str
    runtime_path: str
    cgroup_root: str
    log_file: str
    timeouts: Timeouts = field(default_factory=Timeouts)

    @property
    def messaging_path(self) -> str:
        return self.volatile_path + "MessageDispatcher"


@dataclass(frozen=True)
class PluginConfig:
    """One /etc/Thunder/plugin/<Callsign>.json; `raw` keeps every key for the status output."""

    callsign: str
    locator: str
    classname: str
    startmode: str
    startuporder: int
    configuration: dict
    raw: dict
    source: str


def directory(value: str) -> str:
    """Core::Directory::Normalize in short: non-empty paths end in exactly one '/'."""
    return value.rstrip("/") + "/" if value else ""


def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from error
    except ValueError as error:
        raise ConfigError(f"{path}: not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top")
    return document


def api_generation(cmdline_path: str, configured: object) -> tuple[str, str]:
    """thunder.api=R4.4|R5 on the kernel command line wins, then reference.api, then R5."""
    try:
        with open(cmdline_path, encoding="utf-8") as handle:
            match = CMDLINE_API.search(handle.read())
    except OSError:
        match = None
    if match and match.group(1) in GENERATIONS:
        return match.group(1), f"{cmdline_path} (thunder.api={match.group(1)})"
    if configured in GENERATIONS:
        return str(configured), "config.json reference.api"
    return R5, "default"


def _int(document: dict, key: str, default: int, where: str) -> int:
    value = document.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: '{key}' must be a non-negative integer, got {value!r}")
    return value


def _str(document: dict, key: str, default: str, where: str) -> str:
    value = document.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: '{key}' must be a string, got {value!r}")
    return value


def parse_communicator(value: str) -> tuple[str, int | None]:
    """ "/tmp/communicator|0777" -> ("/tmp/communicator", 0o777)."""
    path, _, mode = value.partition("|")
    try:
        return path, int(mode, 8) if mode else None
    except ValueError as error:
        raise ConfigError(f"communicator '{value}': the part after '|' must be octal") from error


def load_server_config(path: str, log_file: str | None = None) -> ServerConfig:
    document = read_json(path)
    reference = document.get("reference", {})
    if not isinstance(reference, dict):
        raise ConfigError(f"{path}: 'reference' must be an object")
    where = f"{path} reference"
    api, api_source = api_generation(
        _str(reference, "cmdline", "/proc/cmdline", where), reference.get("api")
    )
    communicator, mode = parse_communicator(
        _str(document, "communicator", "/tmp/communicator|0777", path)
    )
    containers = document.get("processcontainers", {})
    backend = containers.get("default") if isinstance(containers, dict) else None
    timeouts = Timeouts(
        runc_ms=_int(reference, "runctimeout", Timeouts.runc_ms, where),
        announce_ms=_int(reference, "announcetimeout", Timeouts.announce_ms, where),
        initialize_ms=_int(reference, "initializetimeout", Timeouts.initialize_ms, where),
        deinitialize_ms=_int(reference, "deinitializetimeout", Timeouts.deinitialize_ms, where),
        ocdm_request_ms=_int(reference, "ocdmrequesttimeout", Timeouts.ocdm_request_ms, where),
        host_poll_ms=_int(reference, "hostpollinterval", Timeouts.host_poll_ms, where),
        http_idle_s=_int(reference, "httpidletimeout", Timeouts.http_idle_s, where),
        soft_kill_s=_int(document, "softkillcheckwaittime", Timeouts.soft_kill_s, path),
        hard_kill_s=_int(document, "hardkillcheckwaittime", Timeouts.hard_kill_s, path),
    )
    executable_dir = os.path.dirname(os.path.realpath(sys.argv[0])) if sys.argv else ""
    return ServerConfig(
        api=api,
        api_source=api_source,
        port=_int(document, "port", 80, path),
        binding=_str(document, "binding", "0.0.0.0", path),
        communicator_path=communicator,
        communicator_mode=mode,
        volatile_path=directory(_str(document, "volatilepath", "/tmp/", path)),
        persistent_path=directory(_str(document, "persistentpath", "", path)),
        data_path=directory(_str(document, "datapath", "/usr/share/Thunder/", path)),
        system_path=directory(_str(document, "systempath", "", path)),
        proxystub_path=directory(_str(document, "proxystubpath", "", path)),
        postmortem_path=directory(_str(document, "postmortempath", "/opt/minidumps", path)),
        app_path=directory(executable_dir),
        plugin_dir=directory(_str(document, "configs", "/etc/Thunder/plugin/", path)),
        container_backend=backend if isinstance(backend, str) else None,
        host_application=_str(reference, "hostapplication", HOST_APPLICATIONS[api], where),
        runc_path=_str(reference, "runc", "/usr/bin/runc", where),
        runtime_path=directory(_str(reference, "runtimepath", "/run/reference-thunder/", where)),
        cgroup_root=directory(_str(reference, "cgrouproot", "/sys/fs/cgroup/", where)),
        log_file=log_file or _str(reference, "logfile", "/var/log/reference-thunder.log", where),
        timeouts=timeouts,
    )


def load_plugin_config(path: str, api: str) -> PluginConfig:
    document = read_json(path)
    default_callsign = os.path.splitext(os.path.basename(path))[0]
    callsign = _str(document, "callsign", default_callsign, path)
    for key in ("locator", "classname"):
        if not isinstance(document.get(key), str):
            raise ConfigError(f"{path}: '{key}' is mandatory and must be a string")
    # R5's default start mode is Activated; R4.4 has startmode Deactivated but autostart true.
    default_start = "Activated"
    if "startmode" not in document and api == R44 and document.get("autostart") is False:
        default_start = "Deactivated"
    startmode = _str(document, "startmode", default_start, path)
    if startmode not in ("Unavailable", "Deactivated", "Activated"):
        raise ConfigError(f"{path}: 'startmode' must be Unavailable, Deactivated or Activated")
    configuration = document.get("configuration", {})
    if not isinstance(configuration, dict):
        raise ConfigError(f"{path}: 'configuration' must be an object")
    return PluginConfig(
        callsign=callsign,
        locator=document["locator"],
        classname=document["classname"],
        startmode=startmode,
        startuporder=_int(document, "startuporder", 50, path),
        configuration=configuration,
        raw=document,
        source=path,
    )


def load_plugin_configs(plugin_dir: str, api: str) -> list[PluginConfig]:
    """Every *.json of the plugin folder, sorted by file name; a missing folder gives none."""
    try:
        names = sorted(name for name in os.listdir(plugin_dir) if name.endswith(".json"))
    except FileNotFoundError:
        return []
    return [load_plugin_config(os.path.join(plugin_dir, name), api) for name in names]


ROOT_MODES = ("Off", "Local", "Container", "Distributed")


def root_mode(configuration: dict) -> str:
    """How IShell::Root hosts the implementation: configuration.root.mode, else outofprocess.

    As in Source/plugins/Shell.cpp: no mode and outofprocess false (the default) -> in process
    ("Off"); no mode and outofprocess true -> "Local"; otherwise the mode as written.
    """
    root = configuration.get("root", {})
    if not isinstance(root, dict):
        raise ConfigError("configuration.root must be an object")
    mode = root.get("mode")
    if mode is None:
        return "Local" if root.get("outofprocess") is True else "Off"
    if mode not in ROOT_MODES:
        raise ConfigError(f"configuration.root.mode {mode!r} is not one of {', '.join(ROOT_MODES)}")
    return str(mode)
