"""The per-target transcript: every byte to and from the target, in one file, as it happened."""

from __future__ import annotations

import re
from pathlib import Path

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), charset selection (ESC ( B) and the
# two-byte escapes: what a shell, busybox or the kernel may put around text on a serial line.
_TERMINAL_CODE = re.compile(
    rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|[@-Z\\-_78=>])"
)


def strip_terminal_codes(data: bytes) -> bytes:
    """Remove ANSI escape sequences and carriage returns, leaving plain `\\n`-separated text."""
    if b"\x1b" in data:
        data = _TERMINAL_CODE.sub(b"", data)
    return data.replace(b"\r", b"")


class Transcript:
    """Appends received and sent bytes verbatim to one file and keeps the latest received bytes."""

    def __init__(self, path: Path, ring_bytes: int = 64 * 1024) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        # Unbuffered: every chunk is in the file the moment it is written, even if we die next.
        self._file = path.open("ab", buffering=0)
        self._ring_bytes = ring_bytes
        self._ring = bytearray()

    @property
    def path(self) -> Path:
        return self._path

    def received(self, data: bytes) -> None:
        """Record raw bytes from the target."""
        self._file.write(data)
        self._ring += data
        # Trim only when twice the size, so that small chunks cost no copy of the whole ring.
        if len(self._ring) > 2 * self._ring_bytes:
            del self._ring[: -self._ring_bytes]

    def sent(self, data: bytes) -> None:
        """Record bytes sent to the target."""
        self._file.write(data)

    def sent_secret(self, label: str = "<password>") -> None:
        """Record that a secret was sent, without the secret."""
        self._file.write(label.encode())

    def tail(self, lines: int) -> str:
        """The last `lines` lines received, without terminal codes."""
        if lines <= 0:
            return ""
        text = strip_terminal_codes(bytes(self._ring[-self._ring_bytes :]))
        return "\n".join(text.decode("utf-8", "replace").split("\n")[-lines:])

    def close(self) -> None:
        self._file.close()
