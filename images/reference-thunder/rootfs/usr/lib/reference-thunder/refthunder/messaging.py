"""The daemon's message files and the environment it hands to its plugin hosts.

Real Thunder (Source/messaging/MessageUnit.*) keeps its trace/log buffers in
<volatilepath>MessageDispatcher/: md.doorbell (a datagram socket), md.<id>.data (a shared buffer)
and md.<id>.metadata (a socket), id 0 being Thunder itself. It tells out-of-process hosts where
they are in MESSAGE_DISPATCHER_CONFIG, "<path>|<identifier>|<socketport>|<mode>|<datasize>" in R5
(R4.4 has no datasize field), each enabled category adding "|<type>|<module>|<category>|<0/1>".
The reference writes the same fields (no categories) and creates files of the same kinds.
"""

from __future__ import annotations

import contextlib
import os
import socket

from refthunder.rpcerrors import R5

IDENTIFIER = "md"
DATA_SIZE = 20 * 1024  # MessageUnit's default datasize
MODE_BACKGROUND = 1  # mode::BACKGROUND: Thunder runs as a daemon


def remove_tree(path: str) -> None:
    """Remove a folder and everything in it, ignoring what is already gone."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(root, name))
        for name in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(root, name))
    with contextlib.suppress(OSError):
        os.rmdir(path)


def dispatcher_config(path: str, generation: str) -> str:
    fields = [path, IDENTIFIER, "0", str(MODE_BACKGROUND)]
    if generation == R5:
        fields.append(str(DATA_SIZE))
    return "|".join(fields)


class MessageFiles:
    """Creates /tmp/MessageDispatcher/ with md.doorbell and md.0.data/.metadata; removes them."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._sockets: list[socket.socket] = []

    def open(self) -> None:
        # Like MessageUnit::Open: leftovers of an earlier run (stale sockets) go first.
        if os.path.isdir(self.path):
            remove_tree(self.path)
        os.makedirs(self.path, exist_ok=True)
        doorbell = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        doorbell.bind(os.path.join(self.path, f"{IDENTIFIER}.doorbell"))
        self._sockets.append(doorbell)
        with open(os.path.join(self.path, f"{IDENTIFIER}.0.data"), "wb") as data:
            data.truncate(DATA_SIZE)
        metadata = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        metadata.bind(os.path.join(self.path, f"{IDENTIFIER}.0.metadata"))
        metadata.listen(4)
        self._sockets.append(metadata)

    def remove_instance(self, instance: int) -> None:
        """Remove what a plugin host with exchange id `instance` may have left behind."""
        for suffix in ("data", "metadata"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.path, f"{IDENTIFIER}.{instance}.{suffix}"))

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        remove_tree(self.path)
