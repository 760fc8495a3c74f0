"""The HTML page of the certification summary: one file, no external assets, every text escaped."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import PurePosixPath
from string import Template
from typing import Any
from urllib.parse import quote

_STATS = ("n", "median", "p90", "min", "max")
_SHOWN = ("passed", "not-applicable")


def render_html(report: Mapping[str, Any]) -> str:
    """A single readable page: verdict, image, targets, requirements with evidence, latency."""
    template = Template(
        resources.files(__package__)
        .joinpath("templates", "thunder-report.html")
        .read_text(encoding="utf-8")
    )
    verdict = report["verdict"]
    return template.substitute(
        verdict=_e(verdict),
        verdict_class="ok" if verdict == "certified" else "warn" if report["certified"] else "bad",
        harness=_e(f"{report['harness']['name']} {report['harness']['version']}"),
        run=_e(
            f"started {report['run']['started_at']}, finished {report['run']['finished_at']}, "
            f"exit status {report['run']['exit_status']}"
        ),
        reasons=_reasons_html(report),
        images=_list(
            f"{i['image'] or '(unnamed)'} sha256 {i['sha256'] or 'unknown'} "
            f"on {', '.join(i['targets'])}"
            for i in report["images"]
        )
        or "<p>unknown</p>",
        counts=_counts_html(report["counts"]),
        targets="".join(_target_html(t) for t in report["targets"]) or "<p>none recorded</p>",
        requirements=_requirements_html(report["requirements"]),
        other_tests="".join(_test_html(test) for test in report["other_tests"]) or "<p>none</p>",
        latency=_latency_html(report["latency"], report["latency_note"]),
        integrity=_e(_integrity_line(report.get("integrity"))),
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _list(items: Iterable[str]) -> str:
    rows = "".join(f"<li>{_e(item)}</li>" for item in items)
    return f"<ul>{rows}</ul>" if rows else ""


def _integrity_line(integrity: Mapping[str, Any] | None) -> str:
    if integrity is None:
        return "no file list: this report can't be verified"
    check = "`thunder-container report verify DIR` checks every file of this folder"
    signature = integrity.get("signature")
    if not signature:
        return f"not signed; {check}"
    return (
        f"signed ({signature['algorithm']}) by the key {signature['key_fingerprint']}; "
        f"{check}, with --public-key=PUB the signature too"
    )


def _reasons_html(report: Mapping[str, Any]) -> str:
    """Why the verdict is what it is: the run, then each level's unshown IDs by result."""
    lines = [] if report["run"]["complete"] else [_e(report["verdict_reasons"][0])]
    for level in ("MUST", "SHOULD"):
        by_result: dict[str, list[str]] = {}
        for requirement in report["requirements"]:
            if requirement["level"] == level and requirement["result"] not in _SHOWN:
                by_result.setdefault(requirement["result"], []).append(requirement["id"])
        for result in report["counts"][level]:  # failures first
            if not (ids := by_result.get(result)):
                continue
            links = ", ".join(f'<a href="#{_e(rid)}">{_e(rid)}</a>' for rid in ids)
            lines.append(f"{level} {_e(result.replace('-', ' '))} ({len(ids)}): {links}")
    return "<ul>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>" if lines else ""


def _counts_html(counts: Mapping[str, Mapping[str, int]]) -> str:
    results = list(next(iter(counts.values()), {}))
    head = "".join(f"<th>{_e(result)}</th>" for result in results)
    rows = "".join(
        f"<tr><th>{_e(level)}</th>"
        + "".join(f"<td>{per_level[result]}</td>" for result in results)
        + "</tr>"
        for level, per_level in counts.items()
    )
    return f"<table><tr><th></th>{head}</tr>{rows}</table>"


def _target_html(target: Mapping[str, Any]) -> str:
    kind = {True: "emulated", False: "hardware", None: "emulated or hardware: unknown"}
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in target["facts"].items())
    return (
        f"<h3>{_e(target['target'])} ({kind[target['emulated']]}, worker "
        f"{_e(target['worker'])})</h3><table>{rows}</table>"
    )


def _requirements_html(requirements: Sequence[Mapping[str, Any]]) -> str:
    rows, area = [], None
    for requirement in requirements:
        if requirement["area"] != area:
            area = requirement["area"]
            rows.append(
                f'<tr><th colspan="5">{_e(area)}: {_e(requirement["area_title"])}</th></tr>'
            )
        tests = "".join(_test_html(test) for test in requirement["tests"]) or "no test"
        rows.append(
            f'<tr class="r-{_e(requirement["result"])}"><td id="{_e(requirement["id"])}">'
            f"{_e(requirement['id'])}</td><td>{_e(requirement['level'])}</td>"
            f"<td>{_e(requirement['statement'])}</td><td>{_e(requirement['result'])}</td>"
            f"<td>{tests}</td></tr>"
        )
    return "".join(rows)


def _test_html(test: Mapping[str, Any]) -> str:
    links = " ".join(_evidence_link(item) for item in test["evidence"])
    where = f" on {test['target'] or test['worker']}"
    message = f"<pre>{_e(test['message'])}</pre>" if test["message"] else ""
    details = (
        f"<details><summary>details</summary><pre>{_e(test['details'])}</pre></details>"
        if test["details"]
        else ""
    )
    return (
        f'<div class="test"><code>{_e(test["nodeid"])}</code> {_e(test["outcome"])}'
        f"{_e(where)} ({test['duration_s']:.2f} s) {links}{message}{details}</div>"
    )


def _evidence_link(item: Mapping[str, str]) -> str:
    path = PurePosixPath(item["path"])
    if path.is_absolute() or ".." in path.parts or ":" in item["path"]:
        return f"<span>{_e(item['name'])}: {_e(item['path'])}</span>"
    return f'<a href="{_e(quote(item["path"]))}">{_e(item["name"])}</a>'


def _latency_html(latency: Mapping[str, Any] | None, note: str | None) -> str:
    notes = f"<p>{_e(note)}</p>" if note else ""
    if latency is None:
        return notes or "<p>no latency figures in this run</p>"
    sections = []
    # Hardware first, and never in one table with emulated figures: each block stands alone.
    for label, emulated in (("Hardware", False), ("Emulated", True), ("Unknown kind", None)):
        for block in (b for b in latency.values() if b["emulated"] is emulated):
            sections.append(f"<h3>{label}: {_e(block['target'])}</h3>{_figures_html(block)}")
    return notes + "".join(sections)


def _figures_html(block: Mapping[str, Any]) -> str:
    """The block's plain facts, a table of each measurement's statistics, then all of it raw."""
    figures = block["figures"]
    facts = ", ".join(
        f"{key} {value}" for key, value in figures.items() if isinstance(value, str | int | float)
    )
    measurements = figures.get("measurements")
    rows = []
    for name, measurement in measurements.items() if isinstance(measurements, dict) else ():
        if not isinstance(measurement, dict) or not isinstance(measurement.get("stats"), dict):
            continue
        cells = "".join(f"<td>{_e(measurement['stats'].get(key, ''))}</td>" for key in _STATS)
        rows.append(
            f"<tr><th>{_e(name)}</th><td>{_e(measurement.get('unit', ''))}</td>{cells}</tr>"
        )
    head = "<tr><th>measurement</th><th>unit</th>" + "".join(f"<th>{k}</th>" for k in _STATS)
    table = f"<table>{head}</tr>{''.join(rows)}</table>" if rows else ""
    raw = json.dumps(figures, indent=1, ensure_ascii=False)
    return (
        f"<p>{_e(facts)}</p>{table}"
        f"<details><summary>all figures as measured</summary><pre>{_e(raw)}</pre></details>"
    )
