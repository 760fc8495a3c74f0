"""The real-Thunder recipe (images/thunder/recipe.toml) and its source archives in a mirror."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ImageError
from .model import recipes_root, sha256_file
from .thunder_patches import Patch, parse_patches

MIRROR_ENV = "THUNDER_MIRROR"


class MirrorError(ImageError):
    """A source archive is missing from the mirror or does not match its sha256."""


@dataclass(frozen=True)
class Source:
    """One upstream repository at one tag: a build step of a line."""

    name: str
    repository: str
    tag: str
    commit: str
    archive: str
    sha256: str
    options: tuple[str, ...] = ()
    host: bool = False
    patches: tuple[Patch, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} {self.tag}"


@dataclass(frozen=True)
class Line:
    """One API line (R5, R4.4): its steps in order and what its runtime tree holds."""

    name: str
    version: str
    daemon: str
    plugin_host: str
    config: str
    plugin_configs: str
    keep: tuple[str, ...]
    steps: tuple[Source, ...]
    global_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ThunderRecipe:
    path: Path
    common_options: tuple[str, ...]
    build_packages: tuple[str, ...]
    runtime_packages: tuple[str, ...]
    runtime_libraries: tuple[str, ...]
    lines: dict[str, Line]

    def line(self, name: str) -> Line:
        if name not in self.lines:
            raise ImageError(
                f"no Thunder line {name!r} in {self.path}; known: {', '.join(self.lines)}"
            )
        return self.lines[name]


def _strings(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ImageError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ImageError(f"{where}: {key} is missing (a non-empty string)")
    return value


def _source(table: dict[str, Any], where: str) -> Source:
    name = _text(table, "name", where)
    where = f"{where} step {name}"
    fields = {key: _text(table, key, where) for key in ("repository", "tag", "commit", "archive")}
    sha256 = _text(table, "sha256", where)
    if len(sha256) != 64 or set(sha256) - set("0123456789abcdef"):
        raise ImageError(f"{where}: sha256 {sha256!r} is not 64 lowercase hex digits")
    return Source(
        name=name,
        sha256=sha256,
        options=_strings(table, "options", where),
        host=bool(table.get("host", False)),
        patches=parse_patches(table, where),
        **fields,
    )


def _line(name: str, table: dict[str, Any], where: str) -> Line:
    where = f"{where} [lines.{name}]"
    steps = tuple(_source(step, where) for step in table.get("steps", []))
    if not steps:
        raise ImageError(f"{where}: no steps")
    return Line(
        name=name,
        version=_text(table, "version", where),
        daemon=_text(table, "daemon", where),
        plugin_host=_text(table, "plugin_host", where),
        config=_text(table, "config", where),
        plugin_configs=_text(table, "plugin_configs", where),
        keep=_strings(table, "keep", where),
        steps=steps,
        global_config=dict(table.get("global_config", {})),
    )


def load_thunder_recipe(path: Path | None = None) -> ThunderRecipe:
    """Parse the recipe; every error names the file and the entry."""
    path = path or recipes_root() / "thunder" / "recipe.toml"
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ImageError(f"can't read the Thunder recipe {path}: {error}") from error
    where = str(path)
    lines = {name: _line(name, table, where) for name, table in data.get("lines", {}).items()}
    if not lines:
        raise ImageError(f"{where}: no [lines.<name>] tables")
    return ThunderRecipe(
        path=path,
        common_options=_strings(data, "common_options", where),
        build_packages=_strings(data, "build_packages", where),
        runtime_packages=_strings(data, "runtime_packages", where),
        runtime_libraries=_strings(data, "runtime_libraries", where),
        lines=lines,
    )


def mirror_dir(given: Path | str | None = None) -> Path:
    """The mirror: the argument, else $THUNDER_MIRROR, else ../shared/mirror/thunder of the repo."""
    if given:
        return Path(given).expanduser()
    configured = os.environ.get(MIRROR_ENV)
    if configured:
        return Path(configured).expanduser()
    default = recipes_root().resolve().parent.parent / "shared" / "mirror" / "thunder"
    if default.is_dir():
        return default
    raise MirrorError(
        f"no Thunder source mirror: pass --mirror DIR or set {MIRROR_ENV} (looked for {default})"
    )


def locate(source: Source, mirror: Path) -> Path:
    """The archive of `source` in `mirror`, checked against the recipe's sha256."""
    path = mirror / source.archive
    prefix = source.archive.removesuffix(".tar.gz")
    origin = (
        f"`git archive --format=tar.gz --prefix={prefix}/"
        f" {source.commit}` of github.com/{source.repository} (tag {source.tag})"
    )
    if not path.is_file():
        raise MirrorError(
            f"{source.archive} is missing from the Thunder mirror {mirror}: put {origin} there "
            f"as {path} (expected sha256 {source.sha256})"
        )
    actual = sha256_file(path)
    if actual != source.sha256:
        raise MirrorError(
            f"{path} is corrupted or another version: sha256 {actual}, expected "
            f"{source.sha256}; replace it with {origin}"
        )
    return path
