"""The comparison of two parity transcripts: field by field, and readable side by side."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from pytest_thunder_container.parity.scenario import (
    SECTION_TITLES,
    SECTIONS,
    Exchange,
    ParityTranscript,
    Scenario,
)

ABSENT = "<absent>"


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class Difference:
    section: str
    request: str
    path: str
    local: str
    container: str


@dataclass(frozen=True)
class ParityResult:
    scenario: Scenario
    local: ParityTranscript
    container: ParityTranscript
    differences: tuple[Difference, ...]

    def verdict(self, requirement: str) -> tuple[bool, str]:
        """(passed, message) for one TC-PAR requirement."""
        section = next(s for s, rid in SECTIONS.items() if rid == requirement)
        diffs = [d for d in self.differences if d.section == section]
        problems = [
            (t.mode, p)
            for t in (self.local, self.container)
            for p in t.problems
            if p.section == section
        ]
        if not diffs and not problems:
            count = sum(1 for e in self.local.exchanges if e.section == section)
            return True, f"{SECTION_TITLES[section]}: {count} exchanges identical in both modes"
        lines = [
            f"{d.request}: {d.path or 'response'}: Local {d.local} / Container {d.container}"
            for d in diffs
        ]
        lines += [f"{mode}: {p.request}: {p.message}" for mode, p in problems]
        return False, (
            f"{SECTION_TITLES[section]} of {self.scenario.callsign}: "
            f"{len(diffs)} difference(s), {len(problems)} problem(s)\n" + "\n".join(lines)
        )


def compare(
    scenario: Scenario, local: ParityTranscript, container: ParityTranscript
) -> ParityResult:
    """Entries paired by (section, request, occurrence), compared field by field."""
    left, right = _keyed(local), _keyed(container)
    differences = []
    for key in [*left, *(k for k in right if k not in left)]:
        section, request, _ = key
        a, b = left.get(key), right.get(key)
        if a is None or b is None:
            differences.append(
                Difference(
                    section,
                    request,
                    "",
                    _compact(a.compared) if a else ABSENT,
                    _compact(b.compared) if b else ABSENT,
                )
            )
            continue
        differences += [
            Difference(section, request, path, x, y)
            for path, x, y in structural_diff(a.compared, b.compared)
        ]
    return ParityResult(scenario, local, container, tuple(differences))


def _keyed(transcript: ParityTranscript) -> dict[tuple[str, str, int], Exchange]:
    keyed: dict[tuple[str, str, int], Exchange] = {}
    for exchange in transcript.exchanges:
        n = 0
        while (exchange.section, exchange.request, n) in keyed:
            n += 1
        keyed[(exchange.section, exchange.request, n)] = exchange
    return keyed


def structural_diff(a: Any, b: Any, path: str = "") -> list[tuple[str, str, str]]:
    """(path, left, right) for every place where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in [*a, *(k for k in b if k not in a)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                found.append(
                    (
                        where,
                        _compact(a[key]) if key in a else ABSENT,
                        _compact(b[key]) if key in b else ABSENT,
                    )
                )
            else:
                found += structural_diff(a[key], b[key], where)
        return found
    if isinstance(a, list) and isinstance(b, list):
        found = []
        for i in range(max(len(a), len(b))):
            if i >= len(a) or i >= len(b):
                found.append(
                    (
                        f"{path}[{i}]",
                        _compact(a[i]) if i < len(a) else ABSENT,
                        _compact(b[i]) if i < len(b) else ABSENT,
                    )
                )
            else:
                found += structural_diff(a[i], b[i], f"{path}[{i}]")
        return found
    same = a == b and (type(a) is type(b) or {type(a), type(b)} <= {int, float})
    return [] if same else [(path, _compact(a), _compact(b))]


def side_by_side(result: ParityResult, section: str, width: int = 60) -> str:
    """A readable diff of one section: the differing fields, then both answers side by side."""
    rid, title = SECTIONS[section], SECTION_TITLES[section]
    diffs = [d for d in result.differences if d.section == section]
    out = [
        f"{rid} - {title} of {result.scenario.callsign} (scenario {result.scenario.source})",
        f"dialect {result.local.dialect}"
        + (f", Thunder {result.local.version}" if result.local.version else "")
        + "; volatile fields ignored: "
        + (
            "; ".join(
                f"{v.request} {v.field}" + (f" when ~ {v.when}" if v.when else "")
                for v in result.scenario.volatile
            )
            or "none"
        ),
        "",
    ]
    for mode, transcript in (("Local", result.local), ("Container", result.container)):
        out += [
            f"problem in {mode}: {p.request}: {p.message}"
            for p in transcript.problems
            if p.section == section
        ]
    if not diffs:
        out.append("no differences")
        return "\n".join(out) + "\n"
    left, right = _keyed(result.local), _keyed(result.container)
    for key in dict.fromkeys((d.section, d.request) for d in diffs):
        out += ["", f"!! {key[1]}"]
        out += [
            f"   {d.path or 'response'}:\n      Local     {d.local}\n      Container {d.container}"
            for d in diffs
            if (d.section, d.request) == key
        ]
        a = _pretty(left.get((*key, 0))).splitlines()
        b = _pretty(right.get((*key, 0))).splitlines()
        out.append(f"   {'Local':<{width}} | Container")
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b).get_opcodes():
            for k in range(max(i2 - i1, j2 - j1)):
                x = a[i1 + k] if i1 + k < i2 else ""
                y = b[j1 + k] if j1 + k < j2 else ""
                mark = " " if tag == "equal" else "!"
                out.append(f" {mark} {_cut(x, width):<{width}} | {_cut(y, width)}")
    return "\n".join(out) + "\n"


def _pretty(exchange: Exchange | None) -> str:
    return (
        ABSENT
        if exchange is None
        else json.dumps(exchange.compared, indent=2, sort_keys=True, ensure_ascii=False)
    )


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def html_diff(result: ParityResult) -> str:
    """Both compared transcripts side by side as one HTML page (difflib's table)."""

    def lines(transcript: ParityTranscript) -> list[str]:
        return [
            f"[{e.section}] {e.request} -> {_compact(e.compared)}" for e in transcript.exchanges
        ]

    return difflib.HtmlDiff(wrapcolumn=70).make_file(
        lines(result.local), lines(result.container), "Local", "Container"
    )
