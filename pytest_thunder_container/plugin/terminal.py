"""Progress lines on the terminal while pytest captures output (boot, image build, benchmark)."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def progress_printer(config: pytest.Config) -> Callable[[str], None]:
    """A function printing one line to the terminal now, capture or not."""
    capture = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")

    def say(line: str) -> None:
        if capture is not None and reporter is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)

    return say
