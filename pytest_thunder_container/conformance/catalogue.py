"""The requirement catalogue: stable IDs, levels and sources, loaded from requirements.toml."""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_thunder_container.errors import ThunderContainerError

LEVELS = ("MUST", "SHOULD")
CHECKS = ("static", "runtime", "static+runtime")
DIALECTS = ("R4.4", "R5")
ID_PATTERN = re.compile(r"^TC-(?P<area>[A-Z]+)-(?P<number>\d{3})$")

_REQUIRED_FIELDS = ("id", "area", "level", "statement", "source", "checks")
_OPTIONAL_FIELDS = ("dialects", "note", "subject", "paths")


class CatalogueError(ThunderContainerError):
    """The requirement catalogue is malformed."""


@dataclass(frozen=True)
class Requirement:
    """One requirement: what a conforming container has, how binding it is, how it's checked."""

    id: str
    area: str
    level: str
    statement: str
    source: str
    checks: str
    dialects: tuple[str, ...] = DIALECTS
    note: str = ""
    subject: str = ""  # NS: the namespace type; MASK, RO: the path
    paths: tuple[str, ...] = ()  # host paths it is judged against (allowed, sensitive)

    @property
    def is_static(self) -> bool:
        """True when a lint rule of config.json checks it."""
        return "static" in self.checks

    @property
    def is_runtime(self) -> bool:
        """True when it is observed on a running target."""
        return "runtime" in self.checks

    def applies_to(self, dialect: str | None) -> bool:
        """True for the given API generation (an unknown one, None, gets every requirement)."""
        return dialect is None or dialect in self.dialects


@dataclass(frozen=True)
class Catalogue:
    """All requirements in catalogue order, looked up by ID."""

    requirements: tuple[Requirement, ...]
    area_titles: Mapping[str, str]
    origin: str
    sha256: str = ""  # of the TOML text it was parsed from

    def get(self, requirement_id: str) -> Requirement:
        """The requirement with this ID; a CatalogueError names an unknown one."""
        for requirement in self.requirements:
            if requirement.id == requirement_id:
                return requirement
        raise CatalogueError(f"{self.origin}: no requirement {requirement_id!r} in the catalogue")

    def __contains__(self, requirement_id: object) -> bool:
        return any(requirement.id == requirement_id for requirement in self.requirements)

    def __iter__(self) -> Iterator[Requirement]:
        return iter(self.requirements)

    def __len__(self) -> int:
        return len(self.requirements)

    def areas(self) -> tuple[str, ...]:
        """Area codes in the order the catalogue declares them."""
        return tuple(self.area_titles)

    def title(self, area: str) -> str:
        """The human title of an area code."""
        if area not in self.area_titles:
            raise CatalogueError(f"{self.origin}: no area {area!r} in the catalogue")
        return self.area_titles[area]

    def in_area(self, area: str) -> tuple[Requirement, ...]:
        """The requirements of one area, in catalogue order."""
        return tuple(requirement for requirement in self.requirements if requirement.area == area)

    def subjects(self, area: str) -> tuple[str, ...]:
        """The subjects of an area in catalogue order: e.g. the masked paths for MASK."""
        return tuple(r.subject for r in self.in_area(area) if r.subject)


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Load and validate the catalogue: the packaged requirements.toml unless a path is given."""
    if path is None:
        source = resources.files(__package__).joinpath("requirements.toml")
        origin = "requirements.toml (package data)"
        raw = source.read_bytes()
    else:
        origin = str(path)
        try:
            raw = Path(path).read_bytes()
        except OSError as error:
            raise CatalogueError(f"{origin}: can't read the catalogue: {error.strerror}") from None
    try:
        text = raw.decode("utf-8")  # bytes as they are: the sha256 is the file's
    except UnicodeDecodeError as error:
        raise CatalogueError(f"{origin}: not UTF-8 text: {error}") from None
    return parse_catalogue(text, origin=origin)


def parse_catalogue(text: str, *, origin: str = "<catalogue>") -> Catalogue:
    """Parse catalogue TOML text, raising CatalogueError that names the entry at fault."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CatalogueError(f"{origin}: not valid TOML: {error}") from None
    area_titles = _area_titles(document.get("areas"), origin)
    entries = document.get("requirement")
    if not isinstance(entries, list) or not entries:
        raise CatalogueError(f"{origin}: no [[requirement]] entries")
    requirements: list[Requirement] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        requirement = _requirement(entry, f"{origin}: requirement #{index + 1}", area_titles)
        if requirement.id in seen:
            raise CatalogueError(f"{origin}: requirement ID {requirement.id} appears twice")
        seen.add(requirement.id)
        requirements.append(requirement)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Catalogue(tuple(requirements), area_titles, origin, digest)


def _area_titles(table: Any, origin: str) -> dict[str, str]:
    if not isinstance(table, dict) or not table:
        raise CatalogueError(f"{origin}: missing [areas] table (area code = title)")
    for code, title in table.items():
        if not re.fullmatch(r"[A-Z]+", code) or not isinstance(title, str) or not title:
            raise CatalogueError(f"{origin}: [areas] {code!r} needs an upper-case code and a title")
    return dict(table)


def _requirement(entry: Any, where: str, area_titles: Mapping[str, str]) -> Requirement:
    if not isinstance(entry, dict):
        raise CatalogueError(f"{where}: not a table")
    if isinstance(entry.get("id"), str):
        where = f"{where} ({entry['id']})"
    unknown = sorted(set(entry) - set(_REQUIRED_FIELDS) - set(_OPTIONAL_FIELDS))
    if unknown:
        raise CatalogueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for field in _REQUIRED_FIELDS:
        value = entry.get(field)
        if not isinstance(value, str) or not value.strip():
            raise CatalogueError(f"{where}: field {field!r} must be a non-empty string")
    match = ID_PATTERN.match(entry["id"])
    if match is None:
        raise CatalogueError(f"{where}: ID must look like TC-<AREA>-NNN")
    if match["area"] != entry["area"]:
        raise CatalogueError(f"{where}: area {entry['area']!r} does not match the ID")
    if entry["area"] not in area_titles:
        raise CatalogueError(f"{where}: area {entry['area']!r} is not declared in [areas]")
    if entry["level"] not in LEVELS:
        raise CatalogueError(f"{where}: level must be one of {', '.join(LEVELS)}")
    if entry["checks"] not in CHECKS:
        raise CatalogueError(f"{where}: checks must be one of {', '.join(CHECKS)}")
    if "\n" in entry["statement"]:
        raise CatalogueError(f"{where}: the statement must be one line")
    dialects = entry.get("dialects", list(DIALECTS))
    if (
        not isinstance(dialects, list)
        or not dialects
        or any(dialect not in DIALECTS for dialect in dialects)
    ):
        raise CatalogueError(f"{where}: dialects must be a non-empty list of {', '.join(DIALECTS)}")
    note, subject = entry.get("note", ""), entry.get("subject", "")
    if not isinstance(note, str) or not isinstance(subject, str):
        raise CatalogueError(f"{where}: note and subject must be strings")
    paths = entry.get("paths", [])
    if not isinstance(paths, list) or not all(
        isinstance(p, str) and p.startswith("/") for p in paths
    ):
        raise CatalogueError(f"{where}: paths must be a list of absolute paths")
    return Requirement(
        id=entry["id"],
        area=entry["area"],
        level=entry["level"],
        statement=entry["statement"],
        source=entry["source"],
        checks=entry["checks"],
        dialects=tuple(dialects),
        note=note,
        subject=subject,
        paths=tuple(paths),
    )
