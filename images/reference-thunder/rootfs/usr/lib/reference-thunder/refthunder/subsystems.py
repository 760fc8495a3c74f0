"""The subsystems Controller.1.subsystems reports, in ISubSystem::subsystem order."""

from __future__ import annotations

import threading

from refthunder.rpcerrors import R5

# Source/plugins/ISubSystem.h; R4.4 has no Cryptography.
NAMES_R5 = (
    "Platform", "Security", "Network", "Identifier", "Graphics", "Internet", "Location", "Time",
    "Provisioning", "Decryption", "WebSource", "Streaming", "Bluetooth", "Cryptography",
    "Installation",
)  # fmt: skip
NAMES_R44 = tuple(name for name in NAMES_R5 if name != "Cryptography")


class Subsystems:
    """Which subsystems are up: Platform from the start, the others set by plugins."""

    def __init__(self, generation: str) -> None:
        self.names = NAMES_R5 if generation == R5 else NAMES_R44
        self._lock = threading.Lock()
        self._active = {"Platform"}

    def set(self, name: str, active: bool) -> None:
        with self._lock:
            if active:
                self._active.add(name)
            else:
                self._active.discard(name)

    def is_active(self, name: str) -> bool:
        with self._lock:
            return name in self._active

    def report(self) -> list[dict]:
        with self._lock:
            return [{"subsystem": name, "active": name in self._active} for name in self.names]
