"""Settings every test of the project's own run relies on, whatever started the run."""

from __future__ import annotations

import signal


def pytest_configure() -> None:
    """Ctrl-C reaches what the tests start. A shell starts background jobs without job control
    (`(make test &)`, `nohup ... &`) with SIGINT ignored, and every program they exec inherits
    the ignore: the console's Ctrl-C would then stop no command, and the interrupted inner runs
    would finish instead. With Python's handler in place, children exec with the default."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
