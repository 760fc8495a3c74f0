"""When Thunder dies during a test: say so once, there, and skip the Thunder tests after it."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import pytest

from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.targets.base import Target
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.health import ThunderDown, thunder_down

# Fixtures of a test that needs Thunder (directly or through the deployment built on it).
THUNDER_FIXTURES = frozenset({"thunder_jsonrpc", "thunder_deployment", "thunder_assessment"})

Probe = Callable[[ThunderClient, Shell], "ThunderDown | None"]


@dataclass(frozen=True)
class Death:
    """The test during which Thunder was found dead, and what was seen then."""

    nodeid: str
    down: ThunderDown


class ThunderWatch:
    """A failed Thunder test is followed by a probe; a dead Thunder is booked once, on it."""

    def __init__(self, probe: Probe = thunder_down) -> None:
        self.probe = probe
        self.death: Death | None = None
        self._client: ThunderClient | None = None
        self._target: Target | None = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        if not report.failed or self.death is not None or not _needs_thunder(item):
            return
        funcargs = getattr(item, "funcargs", {})
        client, target = funcargs.get("thunder_jsonrpc"), funcargs.get("thunder_target")
        if client is None or target is None:
            return
        self._client, self._target = client, target
        down = self._probe()
        if down is None:
            return
        self.death = Death(report.nodeid, down)
        report.sections.append(
            ("Thunder died during this test", f"{down.describe()}\n{THUNDER_AFTER}")
        )

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self.death is None or not _needs_thunder(item):
            return
        if self._probe() is None:  # someone restarted it
            self.death = None
            return
        pytest.skip(
            f"infrastructure: Thunder died during {self.death.nodeid} and does not answer; "
            "this test was not run (restart Thunder on the target)"
        )

    def _probe(self) -> ThunderDown | None:
        """Thunder's death, or None; a dead target is not Thunder's (it is booted again)."""
        if self._client is None or self._target is None:
            return None
        try:
            if not self._target.healthy():
                return None
            return self.probe(self._client, self._target.shell)
        except ThunderContainerError:
            return None


THUNDER_AFTER = "The Thunder tests after this one are skipped as infrastructure failures."


def _needs_thunder(item: pytest.Item) -> bool:
    return bool(THUNDER_FIXTURES.intersection(getattr(item, "fixturenames", ())))
