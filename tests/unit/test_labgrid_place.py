"""Choosing a labgrid place, naming its holder, and releasing a dead holder's place (no
coordinator here: the end-to-end test runs a real one)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from pytest_thunder_container.settings import (
    Settings,
    SettingsError,
    TargetSpec,
    check_settings,
    parse_targets,
)
from pytest_thunder_container.targets.labgrid_place import (
    Coordinator,
    Place,
    coordinator_address,
    holder_name,
    parse_selector,
    select_places,
)

SERIAL = {"cls": "NetworkSerialPort", "exporter": "lab1", "params": {"host": "h", "port": 1}}
POWER = {"cls": "NetworkPowerPort", "exporter": "lab1", "params": {"model": "simplerest"}}


def place(name: str, tags: dict[str, str], *resources: dict[str, Any], held: str | None = None):
    return Place(name, tags, held, tuple(resources))


FARM = [
    place("rpi3-a", {"board": "rpi3"}, SERIAL, POWER),
    place("rpi3-b", {"board": "rpi3"}, SERIAL, held="ci2/bob"),
    place("psu-only", {"board": "rpi4"}, POWER),
]


def test_a_target_names_a_place_or_tags() -> None:
    assert parse_targets("labgrid:rpi3-a") == (TargetSpec("labgrid", "rpi3-a"),)
    assert parse_targets("labgrid:board=rpi3")[0].label == "labgrid-board-rpi3"
    assert parse_selector("board=rpi3, lab=2") == {"board": "rpi3", "lab": "2"}
    assert parse_selector("rpi3-a") is None
    with pytest.raises(SettingsError, match="'lab' is not KEY=VALUE"):
        parse_selector("board=rpi3,lab")
    with pytest.raises(SettingsError, match="no pool"):
        parse_targets("labgrid:rpi3-a|rpi3")


def test_places_are_chosen_by_name_or_by_all_their_tags() -> None:
    assert [p.name for p in select_places("rpi3-b", FARM)] == ["rpi3-b"]
    assert [p.name for p in select_places("board=rpi3", FARM)] == ["rpi3-a", "rpi3-b"]
    assert FARM[0].power is POWER and FARM[1].power is None
    assert FARM[0].tag_text == "board=rpi3"


def test_an_unknown_place_lists_what_the_coordinator_has() -> None:
    with pytest.raises(SettingsError) as error:
        select_places("rpi3-c", FARM)
    text = str(error.value)
    assert "--thunder-target=labgrid:rpi3-c: no place 'rpi3-c'" in text
    assert "rpi3-a [board=rpi3]; rpi3-b [board=rpi3], acquired by ci2/bob" in text
    assert "psu-only [board=rpi4] (no serial port)" in text
    with pytest.raises(SettingsError, match="no place tagged board=rpi5"):
        select_places("board=rpi5", FARM)


def test_a_place_without_a_serial_port_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"psu-only: no serial port \(NetworkSerialPort\)"):
        select_places("board=rpi4", FARM)


def test_the_coordinator_is_found_as_labgrid_users_expect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    assert coordinator_address(None) == "127.0.0.1:20408"
    monkeypatch.setenv("LG_COORDINATOR", "coord.lab:20408")
    assert coordinator_address(None) == "coord.lab:20408"
    assert coordinator_address("other:1") == "other:1"


def test_the_holder_names_labgrid_user_worker_and_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LG_HOSTNAME", "ci7")
    monkeypatch.setenv("LG_USERNAME", "nightly")
    assert holder_name("gw1", pid=4242) == ("ci7", "nightly-thunder-gw1-4242")


class RecordingCoordinator(Coordinator):
    """Records labgrid-client calls instead of making them."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1:1", "ci7", "nightly-thunder-main-1")
        self.calls: list[tuple[str, ...]] = []

    def client(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        return subprocess.CompletedProcess(args, 0, "released", "")


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_place_held_by_a_dead_harness_process_on_this_host_is_released() -> None:
    coordinator = RecordingCoordinator()
    gone = f"ci7/nightly-thunder-gw0-{dead_pid()}"
    said: list[str] = []
    assert coordinator.release_stale(place("a", {}, SERIAL, held=gone), said.append)
    assert coordinator.calls == [("-p", "a", "release-from", gone)]
    assert "its holder " + gone + " is gone" in said[0]


@pytest.mark.parametrize(
    "holder",
    [
        "ci7/nightly-thunder-gw0-{alive}",  # still running
        "ci8/nightly-thunder-gw0-{dead}",  # another host: its processes can't be seen from here
        "ci7/bob",  # a person, not the harness
    ],
)
def test_a_live_or_foreign_holder_is_left_alone(holder: str) -> None:
    import os

    coordinator = RecordingCoordinator()
    held = holder.format(alive=os.getpid(), dead=dead_pid())
    assert not coordinator.release_stale(place("a", {}, SERIAL, held=held), None)
    assert coordinator.calls == []


def test_the_power_cycle_command_acts_as_the_holder() -> None:
    command = RecordingCoordinator().power_cycle_command("rpi3-a")
    assert command.startswith("env LG_HOSTNAME=ci7 LG_USERNAME=nightly-thunder-main-1 ")
    assert command.endswith("-x 127.0.0.1:1 -p rpi3-a power cycle")


def test_power_cycle_labgrid_needs_a_labgrid_target() -> None:
    settings = Settings(targets=(TargetSpec("serial", "/dev/ttyUSB0"),), power_cycle="labgrid")
    with pytest.raises(SettingsError, match="--thunder-power-cycle=labgrid switches a labgrid"):
        check_settings(settings)
    check_settings(Settings(targets=(TargetSpec("labgrid", "a"),), power_cycle="labgrid"))
    with pytest.raises(SettingsError, match="--thunder-cold-boot applies to QEMU targets only"):
        check_settings(Settings(targets=(TargetSpec("labgrid", "a"),), cold_boot=True))


class FarmCoordinator(RecordingCoordinator):
    """Places as a coordinator lists them; acquire refuses `refusals` times, then succeeds."""

    def __init__(self, places: list[Place], refusals: int) -> None:
        super().__init__()
        self._places = places
        self._refusals = refusals

    def places(self) -> list[Place]:
        return self._places

    def client(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if self._refusals:
            self._refusals -= 1
            return subprocess.CompletedProcess(args, 1, "", "Failed to acquire resources")
        return subprocess.CompletedProcess(args, 0, "acquired", "")


def test_a_free_place_refused_while_its_exporter_releases_is_tried_again() -> None:
    from pytest_thunder_container.targets.labgrid_place import _acquire_one

    coordinator = FarmCoordinator([place("a", {}, SERIAL)], refusals=1)
    said: list[str] = []
    assert _acquire_one(coordinator, "a", 0, 10.0, said.append).name == "a"
    assert coordinator.calls == [("-p", "a", "acquire")] * 2
    assert "labgrid refused to acquire a: Failed to acquire resources" in said[0]


def test_a_place_that_stays_held_fails_naming_its_holder() -> None:
    from pytest_thunder_container.errors import TargetError
    from pytest_thunder_container.targets.labgrid_place import _acquire_one

    coordinator = FarmCoordinator([place("a", {"board": "x"}, SERIAL, held="ci2/bob")], 0)
    with pytest.raises(TargetError, match=r"no free place after 0 s \(a acquired by ci2/bob\)"):
        _acquire_one(coordinator, "board=x", 0, 0.0, None)
    assert coordinator.calls == []
