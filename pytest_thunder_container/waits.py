"""Where the timeout factor is applied: once, by whatever waits.

Every timeout in the code is a nominal number of seconds, and nominal seconds are what one layer
hands to the next. The factor (--thunder-timeout-factor) is applied only where time is really
spent: the Console (a command, a login, a resync), the HTTP transport (one request), a watchdog
the target or the host runs by itself, and a Deadline (a loop over several of those waits).
"""

from __future__ import annotations

import fcntl
import time


class Deadline:
    """A nominal budget on the real clock, for a loop whose steps are waits of their own: what is
    `left` is nominal again, so the step that waits applies the factor, and only it."""

    def __init__(self, nominal: float, factor: float) -> None:
        if nominal < 0 or factor <= 0:
            raise ValueError(f"a deadline of {nominal} s x factor {factor}: both must be positive")
        self.nominal = nominal
        self.factor = factor
        self.real = nominal * factor  # for messages: what the user waited
        self._end = time.monotonic() + self.real

    def left(self) -> float:
        """Nominal seconds left (0 once expired)."""
        return max(self._end - time.monotonic(), 0.0) / self.factor

    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def describe(self) -> str:
        """`N s (timeout T s x factor F)`: the wait as the user saw it."""
        return f"{self.real:.1f} s (timeout {self.nominal:g} s x factor {self.factor:g})"


def flock_within(fd: int, seconds: float, poll: float = 0.05) -> bool:
    """Take an exclusive flock on `fd`, waiting at most `seconds`; False when it stayed held."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        else:
            return True
