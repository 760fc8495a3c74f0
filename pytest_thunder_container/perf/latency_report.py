"""thunder-latency.json (raw samples and statistics per target, merged across workers) and its SVG.

Emulated and hardware figures are never mixed: each target has its own block, its own panel and
its own axis, and carries `emulated` and the image it was measured on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.perf.start_latency import Benchmark, stats_of
from pytest_thunder_container.waits import flock_within

LATENCY_JSON = "thunder-latency.json"
LATENCY_SVG = "thunder-latency.svg"
SCHEMA_VERSION = 1
LOCK_TIMEOUT = 60.0
DESCRIPTIONS = {
    "activation.local": "Controller.1.activate request to its answer (Activated), mode Local",
    "activation.container": "Controller.1.activate request to its answer, mode Container",
    "container.preparation": "request to the start of runc create|run (Thunder's preparation, "
    "including its leftover checks)",
    "container.to_first_runc": "request to the start of the first runc call of any kind",
    "container.between_runc_calls": "Thunder's own time between runc calls, from the launch on",
    "container.after_last_runc": "end of the last runc call to Activated (host start, announce "
    "on the communicator, plugin initialisation)",
    "floor.runc_run_true": "runc run of /bin/true in a busybox-only bundle (harness timestamps)",
    "floor.host_exec": "fork/exec of the plugin host binary with a harmless flag (host_command)",
    "selfcheck.busybox_time_runc_run_true": "busybox time -p of the same runc run, by hand "
    "(10 ms resolution)",
    "selfcheck.wrapped_runc_run_true": "runc run of /bin/true through the logging wrapper",
    "selfcheck.harness_minus_busybox_time": "floor.runc_run_true minus the busybox time run "
    "right after it (pairs)",
    "selfcheck.wrapper_added_per_runc_call": "runc run /bin/true through the wrapper minus the "
    "same run of the real binary just before it (pairs)",
}
ORDER = ("activation.", "container.", "floor.", "selfcheck.")


@dataclass(frozen=True)
class LatencyTarget:
    label: str
    target: str
    emulated: bool
    image_sha256: str | None
    dialect: str
    callsign: str
    version: str = "unknown"  # what Thunder says of itself (Controller), e.g. 5.3.0


@dataclass(frozen=True)
class LatencyResult:
    """One target's block as written, and the files it went into."""

    record: dict[str, Any]
    path: Path
    svg: Path


def thunder_named(record: dict[str, Any]) -> str:
    """'5.3.0 (R5)': the version measured, and its API generation."""
    version = record.get("thunder_version") or "unknown"
    return f"{version} ({record.get('dialect')})"


def describe(name: str) -> str:
    if name.startswith("container.runc_"):
        return f"time inside `runc {name.removeprefix('container.runc_')}` (wrapper timestamps)"
    return DESCRIPTIONS.get(name, name)


def target_record(bench: Benchmark, facts: LatencyTarget) -> dict[str, Any]:
    """The block for one target: facts, clock, every measurement's samples and statistics."""
    measurements = {
        name: {
            "unit": "ms",
            "description": describe(name),
            "samples": [round(v, 3) for v in values],
            "stats": {
                k: round(v, 3) if isinstance(v, float) else v
                for k, v in asdict(stats_of(values)).items()
            },
        }
        for name, values in sorted(bench.samples.items(), key=lambda kv: _rank(kv[0]))
        if values
    }
    record: dict[str, Any] = {
        "target": facts.target,
        "label": facts.label,
        "emulated": facts.emulated,
        "image_sha256": facts.image_sha256,
        "dialect": facts.dialect,
        "thunder_version": facts.version,
        "callsign": facts.callsign,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "clock": None
        if bench.clock is None
        else {
            "name": bench.clock.name,
            "description": bench.clock.description,
            "resolution_ms": bench.clock.resolution_ms,
        },
        "runs": bench.runs,
        "warmup_runs": 1,
        "measurements": measurements,
        "phases": [p for p in bench.phases if p in measurements],
        "runc_calls": [
            [
                {
                    "subcommand": c.subcommand,
                    "start": c.start,
                    "end": c.end,
                    "returncode": c.returncode,
                    "args": c.args,
                }
                for c in run
            ]
            for run in bench.runc_calls
        ],
        "host_command": bench.host_command,
        "ratios": _ratios(measurements),
        "self_check": _self_check(measurements),
        "notes": bench.notes,
        "failed_activations": bench.failed_activations,
        "error": bench.error,
    }
    if facts.emulated:
        # Emulated figures follow the load of the machine that runs the emulator.
        record["emulator_host"] = {
            "cpus": os.cpu_count(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        }
    return record


def _rank(name: str) -> tuple[int, str]:
    return next((i for i, p in enumerate(ORDER) if name.startswith(p)), len(ORDER)), name


def _median(measurements: dict[str, Any], name: str) -> float | None:
    entry = measurements.get(name)
    return None if entry is None else float(entry["stats"]["median"])


def _ratios(measurements: dict[str, Any]) -> dict[str, Any]:
    local = _median(measurements, "activation.local")
    container = _median(measurements, "activation.container")
    if not local or container is None:
        return {}
    return {
        "container_over_local": {
            "value": round(container / local, 3),
            "definition": "median activation.container / median activation.local",
        }
    }


def _self_check(measurements: dict[str, Any]) -> dict[str, Any]:
    harness = _median(measurements, "floor.runc_run_true")
    by_hand = _median(measurements, "selfcheck.busybox_time_runc_run_true")
    check: dict[str, Any] = {
        "what": "the harness's own measurement overhead, NOT a property of the product: its "
        "timestamped figure for `runc run /bin/true` against busybox time of the same "
        "command run by hand (interleaved runs, medians)"
    }
    if harness is not None and by_hand:
        overhead = harness - by_hand
        check.update(
            harness_median_ms=harness,
            busybox_time_median_ms=by_hand,
            overhead_ms=round(overhead, 3),
            overhead_percent=round(100.0 * overhead / by_hand, 2),
            paired_overhead_median_ms=_median(measurements, "selfcheck.harness_minus_busybox_time"),
            busybox_time_resolution_ms=10.0,
        )
    added = _median(measurements, "selfcheck.wrapper_added_per_runc_call")
    if added is not None:
        check["wrapper_overhead_per_runc_call_ms"] = added
    return check


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive flock on <path>.lock: two xdist workers never interleave their updates."""
    lock = path.with_name(path.name + ".lock")
    with lock.open("a") as handle:
        if not flock_within(handle.fileno(), timeout):
            raise ThunderContainerError(
                f"{lock} stayed locked for {timeout:.0f} s: is another pytest stuck "
                "writing the latency figures? (fix: end it, or remove the lock file)"
            )
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def merge_latency(
    results: Path, record: dict[str, Any], *, timeout: float = LOCK_TIMEOUT
) -> tuple[Path, Path, dict[str, Any]]:
    """Put one target's block into <results>/thunder-latency.json (read-modify-write under a lock)
    and redraw thunder-latency.svg from the whole file; returns both paths and the document."""
    results.mkdir(parents=True, exist_ok=True)
    path, svg = results / LATENCY_JSON, results / LATENCY_SVG
    with _locked(path, timeout):
        document: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "targets": {}}
        if path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                old = None
            if (
                isinstance(old, dict)
                and old.get("schema_version") == SCHEMA_VERSION
                and isinstance(old.get("targets"), dict)
            ):
                document = old
            else:  # never overwrite what can't be merged: keep it next to the new file
                os.replace(path, path.with_name(f"{path.stem}.unmerged-{int(time.time())}.json"))
        document["targets"][record["label"]] = record
        _write(path, json.dumps(document, indent=1, ensure_ascii=False))
        _write(svg, latency_svg(document))
    return path, svg, document


def latency_svg(document: dict[str, Any]) -> str:
    """Every target's distributions on its own log-scale panel: samples, median, p90, min-max."""
    width, left, right, row, head = 960, 330, 110, 20, 46
    plot = width - left - right
    parts: list[str] = []
    y = 10
    for label, block in document.get("targets", {}).items():
        every = block.get("measurements", {})
        measurements = {n: m for n, m in every.items() if m["samples"] and min(m["samples"]) > 0}
        values = [v for m in measurements.values() for v in m["samples"]]
        kind = "emulated" if block.get("emulated") else "hardware"
        clock = (block.get("clock") or {}).get("name", "?")
        parts.append(
            f'<text x="10" y="{y + 16}" font-weight="bold">{escape(label)}: '
            f"{escape(str(block.get('target')))} ({kind}), Thunder "
            f"{escape(thunder_named(block))}, clock {escape(clock)}, "
            f"{block.get('runs')} runs, image "
            f"{escape(str(block.get('image_sha256') or '-')[:12])}</text>"
        )
        if not values:
            parts.append(
                f'<text x="10" y="{y + 36}">no figures: {escape(str(block.get("error")))}</text>'
            )
            y += head + 10
            continue
        low = 10 ** math.floor(math.log10(min(values)))
        high = 10 ** math.ceil(math.log10(max(values)))
        high = high * 10 if high <= low else high

        def x_of(value: float, low: float = low, high: float = high) -> float:
            share = math.log10(max(value, low) / low) / math.log10(high / low)
            return left + plot * share

        top, bottom = y + head - 14, y + head + row * len(measurements)
        decade = low
        while decade <= high:
            x = x_of(decade)
            text = f"{decade / 1000:g} s" if decade >= 1000 else f"{decade:g} ms"
            parts.append(
                f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" '
                'stroke="#ddd"/>'
                f'<text x="{x:.1f}" y="{top - 2}" text-anchor="middle" '
                f'font-size="10">{text}</text>'
            )
            decade *= 10
        for index, (name, entry) in enumerate(measurements.items()):
            cy = y + head + row * index + row / 2
            stats = entry["stats"]
            parts.append(
                f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end" '
                f'font-size="11">{escape(name)}</text>'
                f'<line x1="{x_of(stats["min"]):.1f}" y1="{cy:.1f}" '
                f'x2="{x_of(stats["max"]):.1f}" y2="{cy:.1f}" stroke="#999"/>'
            )
            parts += [
                f'<circle cx="{x_of(v):.1f}" cy="{cy:.1f}" r="2.5" fill="#3b6ea5" '
                'fill-opacity="0.5"/>'
                for v in entry["samples"]
            ]
            for key, colour, half in (("median", "#c0392b", 7), ("p90", "#e67e22", 5)):
                x = x_of(stats[key])
                parts.append(
                    f'<line x1="{x:.1f}" y1="{cy - half:.1f}" x2="{x:.1f}" '
                    f'y2="{cy + half:.1f}" stroke="{colour}" stroke-width="2"/>'
                )
            parts.append(
                f'<text x="{width - right + 6}" y="{cy + 4:.1f}" font-size="11">'
                f"{stats['median']:.0f} ms</text>"
            )
        left_out = [name for name in every if name not in measurements]
        if left_out:  # zeros and paired differences (which can be negative): in the JSON only
            parts.append(
                f'<text x="10" y="{bottom + 14}" font-size="10">not on a log axis (see the '
                f"JSON): {escape(', '.join(left_out))}</text>"
            )
        y = bottom + 24 + (14 if left_out else 0)
    legend = (
        f'<text x="10" y="{y}" font-size="11">dots: samples; red: median; orange: p90; '
        "grey: min-max; right: median. Each panel has its own axis: figures of "
        "different targets are not comparable.</text>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 16}" '
        f'font-family="sans-serif" font-size="12"><rect width="100%" height="100%" '
        f'fill="white"/>{"".join(parts)}{legend}</svg>\n'
    )


@dataclass(frozen=True)
class PerfVerdict:
    outcome: str  # pass, fail, not-applicable
    message: str


def perf_verdict(
    requirement: str, record: dict[str, Any], max_start_ms: float | None
) -> PerfVerdict:
    """TC-PERF-001 (median Container activation within the user's limit) or TC-PERF-002."""
    where = (
        f"{record.get('target')} ({'emulated' if record.get('emulated') else 'hardware'}, "
        f"Thunder {thunder_named(record)})"
    )
    container = record.get("measurements", {}).get("activation.container")
    if requirement == "TC-PERF-001":
        if max_start_ms is None:
            return PerfVerdict("not-applicable", "no --thunder-max-start-ms")
        if container is None:
            return PerfVerdict(
                "fail", f"no Container activation was measured on {where}: {record.get('error')}"
            )
        median = container["stats"]["median"]
        ok = median <= max_start_ms
        return PerfVerdict(
            "pass" if ok else "fail",
            f"median Container activation {median:.0f} ms on {where} "
            f"{'<=' if ok else '>'} limit {max_start_ms:g} ms "
            f"({container['stats']['n']} runs)",
        )
    missing = [
        name
        for name in ("activation.local", "activation.container")
        if record.get("measurements", {}).get(name, {}).get("stats", {}).get("n")
        != record.get("runs")
    ]
    if record.get("error") or missing or not record.get("target") or not record.get("clock"):
        return PerfVerdict(
            "fail",
            f"start latency not fully measured on {where}: "
            f"{record.get('error') or 'missing ' + ', '.join(missing)}",
        )
    local = record["measurements"]["activation.local"]["stats"]["median"]
    ratio = record["ratios"]["container_over_local"]["value"]
    return PerfVerdict(
        "pass",
        f"recorded for {where}: median Local {local:.0f} ms, Container "
        f"{container['stats']['median']:.0f} ms (x{ratio}), "
        f"{record['runs']} runs, clock {record['clock']['name']}" + _failures(record),
    )


def _failures(record: dict[str, Any]) -> str:
    """The Container activations that failed and were repeated (Thunder's, not the harness's)."""
    failed = record.get("failed_activations") or []
    if not failed:
        return ""
    return f"; {len(failed)} failed and were repeated: " + " | ".join(failed)
