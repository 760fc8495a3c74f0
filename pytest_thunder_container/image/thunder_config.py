"""Thunder's generated configs in a runtime tree: the global settings set, the plugins checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ImageError
from .thunder_sources import Line

# Same as the compiled-in default (Config.h of both lines): written out so a reader sees it.
GLOBAL = {"port": 80, "binding": "0.0.0.0", "communicator": "/tmp/communicator|0777"}
CLEARKEY = "ClearKey"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ImageError(f"the build gave no readable {path}: {error}") from error
    if not isinstance(data, dict):
        raise ImageError(f"{path} is not a JSON object")
    return data


def _save(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def start_mode(plugin: dict[str, Any]) -> str:
    """`startmode`, or R4.4's `autostart` read the same way."""
    if "startmode" in plugin:
        return str(plugin["startmode"])
    if "autostart" in plugin:
        return "Activated" if plugin["autostart"] in (True, "true") else "Deactivated"
    return "Activated"


def configure_tree(root: Path, line: Line) -> dict[str, Any]:
    """Set the global config's port, binding, communicator and line extras; check the plugins."""
    config_path = root / line.config
    config = _load(config_path)
    config.update(GLOBAL)
    config.update(line.global_config)
    _save(config_path, config)

    plugins = root / line.plugin_configs
    ocdm = _load(plugins / "OCDM.json")
    ocdm.setdefault("callsign", "OCDM")
    options = ocdm.setdefault("configuration", {})
    options.setdefault("root", {})["mode"] = "Local"
    systems = [system.get("name") for system in options.get("systems", [])]
    if CLEARKEY not in systems:
        raise ImageError(f"{plugins / 'OCDM.json'} lists no {CLEARKEY} system: {systems}")
    _save(plugins / "OCDM.json", ocdm)

    containers = _load(plugins / "Containers.json")
    if containers.get("callsign", "Containers") != "Containers":
        raise ImageError(f"{plugins / 'Containers.json'} has callsign {containers['callsign']}")
    return {
        "global": {key: config[key] for key in [*GLOBAL, *line.global_config]},
        "OCDM": {
            "startmode": start_mode(ocdm),
            "root.mode": options["root"]["mode"],
            "systems": systems,
            "locator": ocdm.get("locator"),
        },
        "Containers": {"startmode": start_mode(containers), "locator": containers.get("locator")},
    }


# Paths of the global config that Thunder expects to exist: a plugin's storage is made with a
# single mkdir below them (IShell::EnableStoragePath), so OCDM fails to activate without them.
STATE_PATHS = ("persistentpath", "volatilepath")


def state_directories(config_file: Path) -> list[str]:
    """The folders (relative to /) a Thunder global config names for plugin state."""
    config = _load(config_file)
    return [str(config[key]).strip("/") for key in STATE_PATHS if config.get(key)]
