"""A board of a labgrid farm: a place acquired on labgrid's coordinator, its console over the
exporter's RFC 2217 serial port, its power through the coordinator."""

from __future__ import annotations

from typing import Any

from pytest_thunder_container.errors import TargetError
from pytest_thunder_container.settings import SettingsError
from pytest_thunder_container.targets.labgrid_place import (
    Coordinator,
    PlaceClaim,
    Progress,
    claim_place,
    power_missing,
)
from pytest_thunder_container.targets.serial import SerialTarget

LABGRID_POWER = "labgrid"  # --thunder-power-cycle=labgrid: the place's own power port


class LabgridTarget(SerialTarget):
    """A SerialTarget whose line and power switch come from an acquired labgrid place."""

    def __init__(
        self,
        selector: str,
        coordinator: Coordinator,
        *,
        wait: float = 300.0,
        start_index: int = 0,
        progress: Progress | None = None,
        power_cycle: str | None = None,
        **board: Any,
    ) -> None:
        """`board`: SerialTarget's options (results, login, baudrate, ...); the line and the
        power-cycle command are the place's, known once it is acquired."""
        super().__init__(f"labgrid:{selector}", **board)
        self.selector = selector
        self.coordinator = coordinator
        self._asked_power = power_cycle
        self._wait = wait * self._factor
        self._start_index = start_index
        self._progress = progress
        self._claim: PlaceClaim | None = None

    def start(self) -> None:
        try:
            self._claim = claim_place(
                self.coordinator,
                self.selector,
                start_index=self._start_index,
                wait=self._wait,
                guard_log=self._results / f"labgrid-guard-{self.name}.log",
                progress=self._progress,
            )
        except SettingsError as error:  # the place went away since the options were checked
            raise TargetError(str(error)) from None
        place = self._claim.place
        serial = place.serial
        assert serial is not None  # claim_place returns a place serving its serial port
        # ser2net (as labgrid's exporter runs it) does not answer setting DTR on a line without
        # modem control; labgrid's own serial driver ignores those answers the same way.
        params = serial["params"]
        self.address = f"rfc2217://{params['host']}:{params['port']}?ign_set_control"
        cycle = self.coordinator.power_cycle_command(place.name) if place.power else None
        if self._asked_power == LABGRID_POWER and cycle is None:
            self.stop()
            raise TargetError(power_missing([place.name]))
        self._power_cycle = cycle if self._asked_power == LABGRID_POWER else self._asked_power
        self._recovery_cycle = cycle or self._power_cycle
        super().start()

    def stop(self) -> None:
        super().stop()
        if self._claim is not None:
            self._claim.release()

    def properties(self) -> dict[str, str]:
        facts = super().properties()
        facts["labgrid.coordinator"] = self.coordinator.address
        facts["labgrid.holder"] = self.coordinator.holder
        facts["console.transcript"] = str(self._results / f"console-{self.name}.log")
        if self._claim is not None:
            place = self._claim.place
            serial = place.serial or {}
            facts["labgrid.place"] = place.name
            facts["labgrid.tags"] = place.tag_text
            facts["labgrid.exporter"] = str(serial.get("exporter", ""))
            facts["labgrid.exporter_host"] = str(serial.get("params", {}).get("host", ""))
            facts["labgrid.power"] = (place.power or {}).get("cls", "none")
        return facts
