"""A booted target that the running test does not use is paused for that test's call.

The project's own end-to-end tests and a user's mixed session both run tests that start their
own emulators, or none, while this session's target waits; an emulated target waits at a cost
(targets/qemu.py QemuTarget.paused), and Thunder's timed runc calls elsewhere pay for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator

import pytest

from pytest_thunder_container.targets.base import Target

# A test that uses any of the plugin's fixtures may reach the target, even late (the latency
# check asks for the benchmark in its call): only a test with none of them lets it pause.
PLUGIN_FIXTURES = "thunder_"


class IdleTargets:
    """The session's booted targets; each is paused around the call of a test that uses none
    of the plugin's fixtures (setup and teardown always find it running)."""

    def __init__(self) -> None:
        self.booted: list[Target] = []

    @contextlib.contextmanager
    def booted_target(self, target: Target) -> Iterator[Target]:
        """Track `target` while it is up (the thunder_target fixture's lifetime)."""
        self.booted.append(target)
        try:
            yield target
        finally:
            self.booted.remove(target)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        names = getattr(item, "fixturenames", ())
        with contextlib.ExitStack() as paused:
            if not any(name.startswith(PLUGIN_FIXTURES) for name in names):
                for target in list(self.booted):
                    paused.enter_context(target.paused())
            yield
