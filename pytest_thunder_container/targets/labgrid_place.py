"""A place of labgrid's coordinator: found by name or tags, acquired for this process, released.

Holding a place is labgrid's own lock: every labgrid user sees it taken and by whom
(`labgrid-client who`). The coordinator keeps a place acquired until someone releases it, even
when the client is gone, so the harness releases it three ways: on stop (end of run, Ctrl-C, a
failed start), by a guard process of its own session that releases when this process ends
however it ends (a SIGKILLed xdist worker too), and, should both have died, the next run on the
same host releases a holder of this harness whose process no longer exists.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pytest_thunder_container.errors import TargetError
from pytest_thunder_container.settings import SettingsError
from pytest_thunder_container.targets.labgrid_coordinator import client_argv
from pytest_thunder_container.targets.qemu_process import process_alive

DEFAULT_COORDINATOR = "127.0.0.1:20408"
SERIAL_CLASS = "NetworkSerialPort"
# The resources `labgrid-client power` can switch.
POWER_CLASSES = frozenset(
    {
        "NetworkPowerPort",
        "PDUDaemonPort",
        "TasmotaPowerPort",
        "NetworkUSBPowerPort",
        "NetworkSiSPMPowerPort",
        "NetworkYKUSHPowerPort",
        "NetworkSysfsGPIO",
    }
)
CLIENT_TIMEOUT = 60.0
_POLL = 2.0
_HOLDER = re.compile(r"-thunder-(?P<worker>[\w.]+)-(?P<pid>\d+)$")

Progress = Callable[[str], None]


class LabgridError(TargetError):
    """The coordinator can't be asked, or refused what the harness asked."""


@dataclass(frozen=True)
class Place:
    """A place as the coordinator knows it, with the resources its matches select."""

    name: str
    tags: dict[str, str]
    acquired: str | None
    resources: tuple[dict[str, Any], ...]

    def resource(self, classes: frozenset[str]) -> dict[str, Any] | None:
        return next((r for r in self.resources if r["cls"] in classes), None)

    @property
    def serial(self) -> dict[str, Any] | None:
        return self.resource(frozenset({SERIAL_CLASS}))

    @property
    def power(self) -> dict[str, Any] | None:
        return self.resource(POWER_CLASSES)

    @property
    def tag_text(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.tags.items()))

    def shown(self) -> str:
        held = f", acquired by {self.acquired}" if self.acquired else ""
        tags = f" [{self.tag_text}]" if self.tags else ""
        return f"{self.name}{tags}{held}"


def power_missing(places: list[str]) -> str:
    """What --thunder-power-cycle=labgrid says about places without a power resource."""
    return (
        f"--thunder-power-cycle=labgrid: {', '.join(places)} has no power port on the "
        "coordinator (fix: add-match its NetworkPowerPort, or give a host command)"
    )


def coordinator_address(option: str | None) -> str:
    """The option, else LG_COORDINATOR (as labgrid-client reads it), else labgrid's default."""
    return option or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


def holder_name(worker: str, pid: int | None = None) -> tuple[str, str]:
    """(host, user) this process acquires as: labgrid's LG_HOSTNAME/LG_USERNAME (or the
    system's), the user suffixed with the worker and pid so a holder can be traced to a process."""
    host = os.environ.get("LG_HOSTNAME") or socket.gethostname()
    user = os.environ.get("LG_USERNAME") or getpass.getuser()
    return host, f"{user}-thunder-{worker}-{os.getpid() if pid is None else pid}"


def parse_selector(text: str) -> dict[str, str] | None:
    """`board=rpi3,lab=2` -> tags to match; a plain place name -> None."""
    if "=" not in text:
        return None
    tags = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SettingsError(
                f"--thunder-target=labgrid:{text}: {pair!r} is not KEY=VALUE "
                "(fix: labgrid:PLACE or labgrid:board=rpi3[,KEY=VALUE...])"
            )
        tags[key.strip()] = value.strip()
    return tags


class Coordinator:
    """labgrid's coordinator at `address`, asked through labgrid's own client and Python API."""

    def __init__(self, address: str, host: str, user: str) -> None:
        self.address = address
        self.host = host
        self.user = user

    @property
    def holder(self) -> str:
        return f"{self.host}/{self.user}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "LG_HOSTNAME": self.host, "LG_USERNAME": self.user}

    def places(self) -> list[Place]:
        try:
            done = subprocess.run(
                _helper("places", self.address),
                capture_output=True,
                text=True,
                timeout=CLIENT_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise LabgridError(self._unreachable("no answer within 60 s")) from None
        if done.returncode != 0:
            said = done.stderr.strip().splitlines()
            raise LabgridError(self._unreachable(said[-1] if said else f"exit {done.returncode}"))
        return [
            Place(p["name"], p["tags"], p["acquired"], tuple(p["resources"]))
            for p in json.loads(done.stdout)["places"]
        ]

    def _unreachable(self, why: str) -> str:
        return (
            f"labgrid's coordinator at {self.address} can't be asked: {why} (fix: start "
            "labgrid-coordinator there, or set LG_COORDINATOR / --thunder-labgrid-coordinator)"
        )

    def client(self, *args: str) -> subprocess.CompletedProcess[str]:
        """labgrid-client as this process's holder; its own words in stdout and stderr."""
        try:
            return subprocess.run(
                client_argv(self.address, *args),
                env=self.env,
                capture_output=True,
                text=True,
                timeout=CLIENT_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise LabgridError(
                f"labgrid-client {' '.join(args)} got no answer within 60 s"
            ) from None

    def power_cycle_command(self, place: str) -> str:
        """A shell command line, as a user gives --thunder-power-cycle, that cycles `place`."""
        import shlex

        env = ["env", f"LG_HOSTNAME={self.host}", f"LG_USERNAME={self.user}"]
        return shlex.join([*env, *client_argv(self.address, "-p", place, "power", "cycle")])

    def release_stale(self, place: Place, say: Progress | None) -> bool:
        """Release `place` if this harness on this host holds it from a process that is gone."""
        host, _, user = (place.acquired or "").partition("/")
        match = _HOLDER.search(user)
        if host != self.host or match is None or process_alive(int(match.group("pid"))):
            return False
        done = self.client("-p", place.name, "release-from", place.acquired or "")
        if say is not None:
            said = (done.stdout + done.stderr).strip()
            say(f"[thunder] place {place.name}: its holder {place.acquired} is gone: {said}")
        return done.returncode == 0


def _helper(*args: str) -> list[str]:
    """The harness's labgrid helper process, run by this Python from its file: it imports
    labgrid only, not this package (-P: nor this folder, whose serial.py would hide pyserial)."""
    return [sys.executable, "-P", str(Path(__file__).with_name("labgrid_coordinator.py")), *args]


def select_places(selector: str, places: list[Place]) -> list[Place]:
    """The places `selector` names (a place name or tags); a usage error listing the known ones
    when it names none, or when a named place has no serial port."""
    tags = parse_selector(selector)
    if tags is None:
        chosen = [p for p in places if p.name == selector]
        what = f"no place {selector!r}"
    else:
        chosen = [p for p in places if all(p.tags.get(k) == v for k, v in tags.items())]
        what = f"no place tagged {selector}"
    if chosen:
        usable = [p for p in chosen if p.serial is not None]
        if usable:
            return usable
        what = f"{', '.join(p.name for p in chosen)}: no serial port (NetworkSerialPort)"
    known = "; ".join(p.shown() + ("" if p.serial else " (no serial port)") for p in places)
    raise SettingsError(
        f"--thunder-target=labgrid:{selector}: {what} on the coordinator; it knows: "
        f"{known or 'no places'} (fix: labgrid-client -p PLACE create; add-match "
        "EXPORTER/GROUP/NetworkSerialPort; set-tags KEY=VALUE)"
    )


class PlaceClaim:
    """A place this process holds, and the guard that releases it if this process dies."""

    def __init__(self, coordinator: Coordinator, place: Place, guard: subprocess.Popen[bytes]):
        self.coordinator = coordinator
        self.place = place
        self._guard: subprocess.Popen[bytes] | None = guard

    def release(self, timeout: float = CLIENT_TIMEOUT) -> None:
        """Let the guard release it now and wait for it (safe to call twice)."""
        guard, self._guard = self._guard, None
        if guard is None:
            return
        stdin: IO[bytes] | None = guard.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()
        try:
            guard.wait(timeout)
        except subprocess.TimeoutExpired:
            guard.kill()
            guard.wait()


def start_guard(coordinator: Coordinator, log: Path) -> subprocess.Popen[bytes]:
    """The guard, in a session of its own so Ctrl-C and a killed process group spare it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as sink:
        return subprocess.Popen(
            _helper("guard", coordinator.address, coordinator.holder),
            stdin=subprocess.PIPE,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def claim_place(
    coordinator: Coordinator,
    selector: str,
    *,
    start_index: int,
    wait: float,
    guard_log: Path,
    progress: Progress | None = None,
) -> PlaceClaim:
    """Acquire the first free place of `selector`, from `start_index` on (xdist workers spread
    over the matching places); wait up to `wait` s for one, saying who holds them."""
    guard = start_guard(coordinator, guard_log)  # before acquiring: no window without it
    try:
        place = _acquire_one(coordinator, selector, start_index, wait, progress)
    except BaseException:
        PlaceClaim(coordinator, Place(selector, {}, None, ()), guard).release()
        raise
    return PlaceClaim(coordinator, place, guard)


def _acquire_one(
    coordinator: Coordinator,
    selector: str,
    start_index: int,
    wait: float,
    progress: Progress | None,
) -> Place:
    deadline = time.monotonic() + wait
    said = False
    while True:
        candidates = select_places(selector, coordinator.places())
        start = start_index % len(candidates)
        refused: list[str] = []
        for place in candidates[start:] + candidates[:start]:
            if place.acquired and not coordinator.release_stale(place, progress):
                continue
            done = coordinator.client("-p", place.name, "acquire")
            if done.returncode == 0:
                if said and progress is not None:
                    progress(f"[thunder] got labgrid place {place.name}")
                return _serving(coordinator, place.name)
            refused.append(f"{place.name}: {(done.stdout + done.stderr).strip()}")
        fresh = select_places(selector, coordinator.places())
        held = [f"{p.name} acquired by {p.acquired}" for p in fresh if p.acquired]
        # A refusal of a free place is mostly a release still under way at its exporter (the
        # place is free before its resources are): tried again like a held place.
        why = "; ".join(held or [f"labgrid refused to acquire {r}" for r in refused])
        if time.monotonic() >= deadline:
            raise LabgridError(
                f"labgrid:{selector}: no free place after {wait:.0f} s ({why}). A place serves "
                "one holder at a time: wait for it, raise --thunder-pool-wait, or ask the holder "
                "to release it (labgrid-client -p PLACE release)"
            )
        if not said and progress is not None:
            progress(f"[thunder] labgrid:{selector}: {why}; waiting up to {wait:.0f} s")
            said = True
        time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))


def _serving(coordinator: Coordinator, name: str, timeout: float = 30.0) -> Place:
    """The acquired place once its exporter serves the serial port (ser2net starts on acquire)."""
    deadline = time.monotonic() + timeout
    while True:
        place = next(p for p in coordinator.places() if p.name == name)
        serial = place.serial
        if serial is not None and serial["params"].get("port"):
            return place
        if time.monotonic() > deadline:
            raise LabgridError(
                f"place {name}: its exporter serves no serial port {timeout:.0f} s after the "
                f"acquire ({serial}); see the exporter's log (ser2net installed there?)"
            )
        time.sleep(0.5)
