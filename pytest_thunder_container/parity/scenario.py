"""A parity scenario: the calls to make on one plugin, as data (TOML), and its volatile fields.

The format is documented in the package's scenarios/ocdm.toml. A vendor adds a plugin's methods
with a file of their own (--thunder-scenario=FILE), no code.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_thunder_container.errors import ThunderContainerError

SECTIONS = {"methods": "TC-PAR-001", "controller": "TC-PAR-002", "cycles": "TC-PAR-003"}
SECTION_TITLES = {
    "methods": "the plugin's JSON-RPC methods",
    "controller": "Controller's view of the plugin",
    "cycles": "activate/deactivate cycles",
}
EXPECTATIONS = ("result", "error", "any", "empty", "non-empty")
EMPTY: tuple[Any, ...] = ([], {}, "", None)
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
VOLATILE = "<volatile>"
DEFAULT_CYCLES = 5


class ScenarioError(ThunderContainerError):
    """A scenario file can't be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class ForEach:
    """Repeat a call for every value at `path` of the result saved as `saved`, bound to `name`."""

    saved: str
    path: str
    name: str


@dataclass(frozen=True)
class Call:
    """One JSON-RPC call of a scenario."""

    method: str
    params: Any = None
    expect: str = "any"
    save: str | None = None
    foreach: ForEach | None = None
    dialects: tuple[str, ...] = ()
    since: str | None = None  # the first Thunder version that has the method, e.g. "5.2.0"

    def skipped_because(self, dialect: str, version: str | None) -> str | None:
        """Why this call is not made on this Thunder, or None when it is."""
        if self.dialects and dialect not in self.dialects:
            return f"only on {' and '.join(self.dialects)}; this Thunder is {dialect}"
        if self.since is None:
            return None
        if version is None:
            return f"needs Thunder {self.since} or later; this Thunder's version can't be read"
        found = version_key(version)
        if found is None:
            return f"needs Thunder {self.since} or later; this Thunder says version {version!r}"
        if found < (version_key(self.since) or (0, 0, 0)):
            return f"needs Thunder {self.since} or later; this Thunder is {version}"
        return None


def version_key(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of the first version in `text` ("5.3.0", "R4.4.7-rc1"), or None."""
    match = _VERSION.search(text)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


@dataclass(frozen=True)
class VolatileField:
    """A field left out of the comparison, with the reason the scenario documents."""

    request: str  # fnmatch pattern on a transcript entry's request
    field: str  # dotted path into the response; `*` is any key or element
    reason: str
    when: str | None = None  # a regex the value's JSON text must match to count as volatile

    def matches(self, request: str) -> bool:
        return fnmatch.fnmatchcase(request, self.request)


@dataclass(frozen=True)
class Scenario:
    callsign: str
    calls: tuple[Call, ...]
    cycles: int = DEFAULT_CYCLES
    volatile: tuple[VolatileField, ...] = ()
    source: str = ""


def load_scenario(path: Path | str) -> Scenario:
    """Read and check one scenario file (ScenarioError says what is wrong and how to fix it)."""
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ScenarioError(
            f"scenario {where}: can't read it: {error.strerror} "
            "(fix: --thunder-scenario=<an existing TOML file>)"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"scenario {where}: not valid TOML: {error}") from None
    return scenario_from_dict(data, where)


def scenario_from_dict(data: dict[str, Any], where: str) -> Scenario:
    def bad(what: str) -> ScenarioError:
        return ScenarioError(f"scenario {where}: {what} (see the package's scenarios/ocdm.toml)")

    unknown = set(data) - {"callsign", "cycles", "call", "volatile"}
    if unknown:
        raise bad(f"unknown key(s) {sorted(unknown)}; known: callsign, cycles, call, volatile")
    callsign = data.get("callsign")
    if not isinstance(callsign, str) or not callsign:
        raise bad("'callsign' must be the plugin's callsign, e.g. callsign = \"OCDM\"")
    cycles = data.get("cycles", DEFAULT_CYCLES)
    if not isinstance(cycles, int) or isinstance(cycles, bool) or cycles < 0:
        raise bad(f"'cycles' must be a whole number >= 0, got {cycles!r}")
    calls = [_call(entry, index, bad) for index, entry in enumerate(data.get("call", []), 1)]
    saved: set[str] = set()
    for index, call in enumerate(calls, 1):
        if call.foreach is not None and call.foreach.saved not in saved:
            raise bad(
                f"call {index} ({call.method}) loops over {call.foreach.saved!r}, which no "
                'earlier call saves (fix: save = "..." on an earlier call)'
            )
        if call.save:
            saved.add(call.save)
    volatile = [
        _volatile(entry, index, bad) for index, entry in enumerate(data.get("volatile", []), 1)
    ]
    return Scenario(callsign, tuple(calls), cycles, tuple(volatile), where)


def _call(entry: Any, index: int, bad: Callable[[str], ScenarioError]) -> Call:
    if not isinstance(entry, dict) or not isinstance(entry.get("method"), str):
        raise bad(f'[[call]] {index} needs method = "<Callsign>.1.<method>"')
    unknown = set(entry) - {"method", "params", "expect", "save", "foreach", "dialects", "since"}
    if unknown:
        raise bad(f"[[call]] {index}: unknown key(s) {sorted(unknown)}")
    expect = entry.get("expect", "any")
    if expect not in EXPECTATIONS:
        raise bad(f"[[call]] {index}: expect = {expect!r}; use one of {', '.join(EXPECTATIONS)}")
    loop = entry.get("foreach")
    foreach = None
    if loop is not None:
        if not isinstance(loop, dict) or not all(
            isinstance(loop.get(k), str) for k in ("saved", "path", "as")
        ):
            raise bad(
                f'[[call]] {index}: foreach = {{ saved = "...", path = "*.name", as = "name" }}'
            )
        foreach = ForEach(loop["saved"], loop["path"], loop["as"])
        if "{" + foreach.name + "}" not in entry["method"]:
            raise bad(f"[[call]] {index}: the method must use {{{foreach.name}}}")
    dialects = entry.get("dialects", [])
    if not isinstance(dialects, list) or not all(d in ("R4.4", "R5") for d in dialects):
        raise bad(f'[[call]] {index}: dialects must list "R4.4" and/or "R5"')
    since = entry.get("since")
    if since is not None and not (isinstance(since, str) and _VERSION.fullmatch(since)):
        raise bad(f'[[call]] {index}: since = {since!r}; write a Thunder version, e.g. "5.2.0"')
    return Call(
        entry["method"],
        entry.get("params"),
        expect,
        entry.get("save"),
        foreach,
        tuple(dialects),
        since,
    )


def _volatile(entry: Any, index: int, bad: Callable[[str], ScenarioError]) -> VolatileField:
    if not isinstance(entry, dict) or not all(
        isinstance(entry.get(k), str) and entry[k] for k in ("request", "field", "reason")
    ):
        raise bad(f"[[volatile]] {index} needs request, field and a reason (why it changes)")
    when = entry.get("when")
    try:
        re.compile(when or "")
    except re.error as error:
        raise bad(f"[[volatile]] {index}: when = {when!r} is not a regex: {error}") from None
    return VolatileField(entry["request"], entry["field"], entry["reason"], when)


def default_scenarios() -> dict[str, Scenario]:
    """The scenarios shipped with the package, by callsign."""
    folder = resources.files(__package__) / "scenarios"
    found = {}
    for item in folder.iterdir():
        if item.name.endswith(".toml"):
            data = tomllib.loads(item.read_text(encoding="utf-8"))
            scenario = scenario_from_dict(data, f"package scenarios/{item.name}")
            found[scenario.callsign] = scenario
    return found


def scenario_for(callsign: str, user_files: Sequence[Path] | None) -> Scenario | None:
    """The user's scenario for `callsign` (one file per callsign), else the package's, else None."""
    chosen: dict[str, Scenario] = {}
    for path in user_files or []:
        scenario = load_scenario(path)
        if scenario.callsign in chosen:
            raise ScenarioError(
                f"scenarios {chosen[scenario.callsign].source} and {path} are "
                f"both for {scenario.callsign} (fix: pass one of them)"
            )
        chosen[scenario.callsign] = scenario
    return chosen.get(callsign) or default_scenarios().get(callsign)


def values_at(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(concrete path, value) for every place `path` names; `*` is any key or list element."""
    yield from _walk(value, [part for part in path.split(".") if part], "")


def _walk(value: Any, parts: list[str], where: str) -> Iterator[tuple[str, Any]]:
    if not parts:
        yield where, value
        return
    head, rest = parts[0], parts[1:]
    if isinstance(value, list):
        indices = range(len(value)) if head == "*" else [int(head)] if head.isdigit() else []
        for i in indices:
            if i < len(value):
                yield from _walk(value[i], rest, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key in list(value) if head == "*" else [head]:
            if key in value:
                yield from _walk(value[key], rest, f"{where}.{key}" if where else key)


def masked(response: dict[str, Any], request: str, volatile: tuple[VolatileField, ...]) -> Any:
    """The response with every documented volatile field of this request set to <volatile>."""
    result = copy.deepcopy(response)
    for rule in volatile:
        if rule.matches(request):
            _mask(result, [p for p in f"*.{rule.field}".split(".") if p], rule.when)
    return result


def _mask(value: Any, parts: list[str], when: str | None) -> None:
    head, rest = parts[0], parts[1:]
    if isinstance(value, list):
        keys: list[Any] = (
            list(range(len(value)))
            if head == "*"
            else ([int(head)] if head.isdigit() and int(head) < len(value) else [])
        )
    elif isinstance(value, dict):
        keys = list(value) if head == "*" else [head] if head in value else []
    else:
        return
    for key in keys:
        if rest:
            _mask(value[key], rest, when)
        elif when is None or re.search(when, json.dumps(value[key])):
            value[key] = VOLATILE


@dataclass(frozen=True)
class Exchange:
    """One request of a transcript and what came back (result, error code+message, or failure)."""

    section: str
    request: str
    response: dict[str, Any]
    compared: Any  # the response with the scenario's volatile fields masked
    params: Any = None


@dataclass(frozen=True)
class Problem:
    """Something wrong in one mode whatever the other did (an expectation, a state, a leftover)."""

    section: str
    request: str
    message: str


@dataclass(frozen=True)
class ParityTranscript:
    """What one mode answered to the scenario: every exchange, the problems, Thunder's version."""

    mode: str
    callsign: str
    dialect: str
    exchanges: tuple[Exchange, ...]
    problems: tuple[Problem, ...] = ()
    version: str | None = None  # Thunder's own version, when a call needed it (`since`)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
