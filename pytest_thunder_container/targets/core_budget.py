"""Whether the host has the cores for the emulated targets of a run (a warning, never a failure).

Emulated runc is slow: on this project's 2-core host one emulated rpi3 takes about 1.1 s per
`runc create` (median, R5.3.0), and Thunder R5.1+ gives up on a runc call after 2000 ms
(RunCImplementation.cpp). Measured there: one emulated target per two cores passes the suites on
R5.3.0; two emulated targets on two cores (`-n 2`) pushed `runc create` past the limit and three
MUST tests failed with ERROR_OPENING_FAILED. R4.4.3+ allows 5000 ms and passed with two.
The runc window (runc_window.py) narrows that exposure but can't remove it on such a host.
"""

from __future__ import annotations

CORES_PER_EMULATOR = 2


def emulator_warning(emulators: int, cores: int | None) -> str | None:
    """A line for the run's header when `emulators` targets would share too few cores."""
    if emulators < 1 or cores is None or emulators * CORES_PER_EMULATOR <= cores:
        return None
    fits = max(cores // CORES_PER_EMULATOR, 1)
    return (
        f"warning: {emulators} emulated targets on {cores} cores: emulated runc calls slow each "
        "other down, and Thunder R5 gives up on a runc call after 2000 ms (activations then "
        f"fail with ERROR_OPENING_FAILED, a finding about the host, not the plugin). Run at most "
        f"{fits} emulated target{'s' if fits > 1 else ''} here (-n {fits}), one per "
        f"{CORES_PER_EMULATOR} cores."
    )
