"""The harness's own small process that talks to labgrid's coordinator with labgrid's Python API.

It runs apart from pytest (`python -m ...labgrid_coordinator`): labgrid's client session brings
gRPC threads and an asyncio loop of its own, which stay out of the pytest process that way.

- `places ADDRESS`: every place with its tags, holder and matching resources, as JSON.
- `guard ADDRESS HOLDER`: waits until its stdin ends (the pytest process that started it ended,
  however it ended, even SIGKILL), then releases every place HOLDER still holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any


def read_places(address: str) -> dict[str, Any]:
    """{"places": [{name, tags, comment, acquired, resources: [...]}]} from the coordinator."""
    from labgrid.remote.client import start_session

    session = start_session(address)
    try:
        places = []
        for name, place in sorted(session.places.items()):
            resources = []
            for exporter, groups in sorted(session.resources.items()):
                for group, entries in sorted(groups.items()):
                    for resource_name, entry in sorted(entries.items()):
                        if not place.hasmatch((exporter, group, entry.cls, resource_name)):
                            continue
                        resources.append(
                            {
                                "cls": entry.cls,
                                "name": resource_name,
                                "exporter": exporter,
                                "group": group,
                                "avail": bool(entry.avail),
                                "params": {k: v for k, v in entry.args.items()},
                            }
                        )
            places.append(
                {
                    "name": name,
                    "tags": dict(place.tags),
                    "comment": place.comment or "",
                    "acquired": place.acquired,
                    "resources": resources,
                }
            )
        return {"places": places}
    finally:
        session.loop.run_until_complete(session.stop())
        session.loop.run_until_complete(session.close())


def client_argv(address: str, *args: str) -> list[str]:
    """labgrid-client, run by this Python (its script directory may not be on PATH)."""
    return [sys.executable, "-m", "labgrid.remote.client", "-x", address, *args]


def guard(address: str, holder: str) -> int:
    """Block until stdin ends, then release what `holder` holds (atomically: release-from)."""
    while sys.stdin.buffer.read(4096):
        pass
    print(f"{time.ctime()}: the harness ended; releasing the places held by {holder}", flush=True)
    try:
        held = [p["name"] for p in read_places(address)["places"] if p["acquired"] == holder]
    except Exception as error:  # the coordinator may be gone: nothing left to release there
        print(f"can't read the places: {error}", flush=True)
        return 1
    for name in held:
        done = subprocess.run(
            client_argv(address, "-p", name, "release-from", holder), capture_output=True, text=True
        )
        print(f"{name}: {(done.stdout + done.stderr).strip()}", flush=True)
    if not held:
        print("nothing held", flush=True)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "places":
        try:
            print(json.dumps(read_places(argv[1])))
        except Exception as error:  # said on stderr; the caller turns it into its own message
            print(f"{type(error).__name__}: {error}", file=sys.stderr)
            return 2
        return 0
    if len(argv) == 3 and argv[0] == "guard":
        return guard(argv[1], argv[2])
    print("usage: labgrid_coordinator places ADDRESS | guard ADDRESS HOLDER", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
