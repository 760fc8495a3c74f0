"""After an activation failed: a container Thunder leaked, and the runc call that was too slow."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from datetime import datetime

from pytest_thunder_container.conformance.runc_log import runc_timings
from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.deploy import RUNC, runc_containers

# Thunder does not kill a runc call it gave up on: a late `runc create` still makes its container.
RUNC_SETTLE_TIMEOUT = 30.0
DELETE_TIMEOUT = 60.0
# Succeeds while a runc process other than a container's `runc init` runs (seen on R5.3.0: a
# leaked container's init answers `pidof runc` until it is deleted).
RUNC_AT_WORK = (
    "for p in $(pidof runc); do tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null; echo; done "
    "| grep -v ' init $' | grep -q ."
)


@dataclass(frozen=True)
class ActivationFailure:
    """What was found after a failed activation."""

    state: str | None
    leaked: bool
    runc: tuple[str, ...]
    limit_ms: int | None = None  # Thunder's limit per runc call, for its version

    def describe(self) -> str:
        lines = [
            f"LEAKED CONTAINER: runc lists it while the plugin is {self.state or 'unknown'}"
            if self.leaked
            else "no leaked container"
        ]
        return "; ".join([*lines, *self.runc])


def wait_for_runc_idle(shell: Shell, timeout: float) -> bool:
    """Wait until no runc call runs on the target (a late create has finished). A container's
    `runc init` is not a call: a created container keeps one until it is started or deleted."""
    deadline = time.monotonic() + timeout
    while shell.run(RUNC_AT_WORK).ok:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True


def delete_leaked_container(
    shell: Shell, callsign: str, *, runc: str = RUNC, timeout_factor: float = 1.0
) -> bool:
    """`runc delete --force` a leaked container once runc's calls are done (a late call still
    holds the container's lock: on R5.3.0 under load the delete waited past 30 s behind one)."""
    wait_for_runc_idle(shell, RUNC_SETTLE_TIMEOUT * timeout_factor)
    deleted = shell.run(
        f"{runc} delete --force {shlex.quote(callsign)}", timeout=DELETE_TIMEOUT * timeout_factor
    )
    return deleted.ok


def diagnose_failed_activation(
    shell: Shell,
    thunder: ThunderClient,
    callsign: str,
    *,
    started: datetime | None,
    timeout_factor: float = 1.0,
) -> ActivationFailure:
    """Leaked container (runc lists the id while the plugin is not Activated) and runc timings."""
    wait_for_runc_idle(shell, RUNC_SETTLE_TIMEOUT * timeout_factor)
    try:
        state: str | None = thunder.state(callsign)
    except ThunderContainerError:
        state = None
    leaked = state not in ("Activated", "Resumed", "Suspended") and callsign in runc_containers(
        shell
    )
    try:
        version = thunder.version()
    except ThunderContainerError:
        version = None
    timings = runc_timings(shell, callsign, started=started, version=version)
    return ActivationFailure(state, leaked, tuple(timings.findings()), timings.limit_ms)
