"""Where Thunder looks for a plugin's container bundle, read off Thunder itself, never assumed.

Thunder (R4.4 and R5 alike, Communicator.h's ContainerProcess) tries, in order: the plugin's
`containerpath` (debug builds only), its volatile path `<volatilepath><callsign>/`, its
persistent path `<persistentpath><callsign>/` and its data path `<datapath><classname>/`, each
with `Container/config.json` appended; the first that exists wins. The plugin host gets the
same three paths as its quoted -v, -p and -d arguments.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_thunder_container.shell.protocol import Shell

# The daemon's own configuration file: /etc/<NAMESPACE>/config.json (PluginServer.cpp).
DAEMON_CONFIGS = ("/etc/Thunder/config.json", "/etc/WPEFramework/config.json")
DEFAULT_VOLATILE = "/tmp/"  # Config.h: volatilepath defaults to /tmp; the others to nothing


@dataclass(frozen=True)
class SearchPath:
    """One place Thunder looks: what kind it is and the plugin's directory there."""

    kind: str  # containerpath, volatile, persistent or data
    directory: str

    @property
    def bundle(self) -> str:
        return posixpath.normpath(posixpath.join(self.directory, "Container"))


@dataclass(frozen=True)
class SearchPaths:
    """A plugin's bundle search path in Thunder's order, and where it was read."""

    callsign: str
    paths: tuple[SearchPath, ...]
    source: str

    @property
    def bundles(self) -> tuple[str, ...]:
        return tuple(path.bundle for path in self.paths)

    def default_bundle(self) -> str:
        """The data path's bundle (the tutorial's choice), else the last place Thunder looks."""
        data = [path for path in self.paths if path.kind == "data"]
        return (data or list(self.paths))[-1].bundle

    def index_of(self, bundle: str) -> int | None:
        wanted = posixpath.normpath(bundle)
        return self.bundles.index(wanted) if wanted in self.bundles else None

    def describe(self) -> str:
        listed = ", ".join(f"{p.bundle} ({p.kind})" for p in self.paths)
        return f"{listed}; read from {self.source}"


def _unquoted(value: str | None) -> str | None:
    value = (value or "").strip().strip('"')
    return value or None


def _option(argv: Sequence[str], flag: str) -> str | None:
    for index, arg in enumerate(argv[:-1]):
        if arg == flag:
            return argv[index + 1]
    return None


def _container_path(plugin_configuration: dict[str, Any] | None) -> list[SearchPath]:
    root = (plugin_configuration or {}).get("root")
    backend = root.get("configuration") if isinstance(root, dict) else None
    value = backend.get("containerpath") if isinstance(backend, dict) else None
    return [SearchPath("containerpath", value)] if isinstance(value, str) and value else []


def from_host_argv(
    callsign: str, argv: Sequence[str], plugin_configuration: dict[str, Any] | None = None
) -> SearchPaths | None:
    """The search path from a running host's -v, -p and -d (None when it has none of them)."""
    found = [
        SearchPath(kind, value)
        for kind, flag in (("volatile", "-v"), ("persistent", "-p"), ("data", "-d"))
        if (value := _unquoted(_option(argv, flag))) is not None
    ]
    if not found:
        return None
    paths = (*_container_path(plugin_configuration), *found)
    return SearchPaths(callsign, paths, f"the -v/-p/-d arguments of {callsign}'s plugin host")


def from_daemon_config(
    callsign: str,
    classname: str,
    daemon: dict[str, Any],
    source: str,
    plugin: dict[str, Any] | None = None,
) -> SearchPaths:
    """The search path from Thunder's config.json and the plugin's entry (Plugin::Config)."""
    plugin = plugin or {}

    def base(key: str, default: str = "") -> str:
        value = daemon.get(key, default)
        return value if isinstance(value, str) else default

    def postfix(key: str) -> str:
        value = plugin.get(key)
        return value if isinstance(value, str) and value else callsign

    paths = []
    for kind, key, default, leaf in (
        ("volatile", "volatilepath", DEFAULT_VOLATILE, postfix("volatilepathpostfix")),
        ("persistent", "persistentpath", "", postfix("persistentpathpostfix")),
        ("data", "datapath", "", classname),
    ):
        root = base(key, default)
        if root:  # an empty base gives a relative path, not a place on the target
            paths.append(SearchPath(kind, posixpath.join(root, leaf) + "/"))
    configuration = plugin.get("configuration")
    extra = _container_path(configuration if isinstance(configuration, dict) else None)
    return SearchPaths(callsign, (*extra, *paths), source)


def read_daemon_config(shell: Shell) -> tuple[str, dict[str, Any]] | None:
    """Thunder's config.json on the target (R5's, else R4.4's) and its path, or None."""
    for path in DAEMON_CONFIGS:
        result = shell.run(f"cat {shlex.quote(path)} 2>/dev/null")
        if result.returncode != 0 or not result.stdout.strip():
            continue
        try:
            document = json.loads(result.stdout)
        except ValueError:
            continue
        if isinstance(document, dict):
            return path, document
    return None


def bundles_with_config(shell: Shell, bundles: Sequence[str]) -> list[str]:
    """Those of `bundles` that hold a config.json on the target, in the given order."""
    if not bundles:
        return []
    listed = " ".join(shlex.quote(b) for b in bundles)
    result = shell.run(f'for b in {listed}; do [ -f "$b/config.json" ] && echo "$b"; done; true')
    present = set(result.stdout.splitlines())
    return [b for b in bundles if b in present]
