"""A fake runc for host-side tests of the reference Thunder's container path.

Logs every call (argv and environment) as a JSON line to $FAKE_RUNC_ROOT/calls.jsonl and keeps
container state in $FAKE_RUNC_ROOT/<id>.json. It behaves like runc 1.1.5 as far as the reference
needs: list -q/--quiet, state, create, exec --detach [--env K=V], run -d (no --args: Debian's runc
has none), delete -f/--force. Processes are started for real (no namespaces), so the plugin host
the reference asks for announces itself. $FAKE_RUNC_SLEEP_<VERB> (seconds) delays a verb.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

GLOBAL_WITH_VALUE = ("--log", "-log", "--root", "--log-format")


def root() -> str:
    return os.environ["FAKE_RUNC_ROOT"]


def state_path(container_id: str) -> str:
    return os.path.join(root(), f"{container_id}.json")


def load(container_id: str) -> dict | None:
    try:
        with open(state_path(container_id), encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def save(container_id: str, state: dict) -> None:
    with open(state_path(container_id), "w", encoding="utf-8") as handle:
        json.dump(state, handle)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"fake-runc: {message}\n")
    return code


def bundle_env(bundle: str) -> dict[str, str]:
    with open(os.path.join(bundle, "config.json"), encoding="utf-8") as handle:
        entries = json.load(handle).get("process", {}).get("env", [])
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def spawn(command: list[str], env: dict[str, str]) -> int:
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    return process.pid


def ids() -> list[str]:
    return sorted(n[:-5] for n in os.listdir(root()) if n.endswith(".json") and n != "calls.json")


def main(argv: list[str]) -> int:
    with open(os.path.join(root(), "calls.jsonl"), "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"argv": argv, "env": dict(os.environ)}) + "\n")
    args = list(argv)
    while args and args[0] in GLOBAL_WITH_VALUE:
        args = args[2:]
    if not args:
        return fail("no command")
    verb, rest = args[0], args[1:]
    delay = os.environ.get(f"FAKE_RUNC_SLEEP_{verb.upper()}")
    if delay:
        time.sleep(float(delay))
    if verb == "list":
        print("\n".join(ids()) if rest and rest[0] in ("-q", "--quiet") else "ID PID STATUS")
        return 0
    if verb == "state":
        state = load(rest[0])
        if state is None:
            return fail(f'container "{rest[0]}" does not exist')
        status = state["status"]
        if status == "running" and not alive(state["pid"]):
            status = "stopped"
        print(
            json.dumps(
                {"id": rest[0], "pid": state["pid"], "status": status, "bundle": state["bundle"]}
            )
        )
        return 0
    if verb == "create":
        if rest[:1] != ["--no-new-keyring"] or rest[1:2] != ["--bundle"] or len(rest) != 4:
            return fail(f"unexpected create arguments {rest}")
        bundle, container_id = rest[2], rest[3]
        if load(container_id) is not None:
            return fail(f"container with id exists: {container_id}")
        init = spawn(["sleep", "3600"], {"PATH": "/usr/bin:/bin"})
        save(container_id, {"status": "created", "pid": init, "bundle": bundle, "pids": [init]})
        return 0
    if verb == "exec":
        if rest[:1] != ["--detach"]:
            return fail("only exec --detach is faked")
        rest = rest[1:]
        overrides = {}
        while rest and rest[0] == "--env":
            key, _, value = rest[1].partition("=")
            overrides[key] = value
            rest = rest[2:]
        container_id, command = rest[0], rest[1:]
        state = load(container_id)
        if state is None:
            return fail(f'container "{container_id}" does not exist')
        env = {**bundle_env(state["bundle"]), **overrides}
        state["pids"].append(spawn(command, env))
        save(container_id, state)
        return 0
    if verb == "run":
        if "--args" in rest:
            return fail("flag provided but not defined: -args", 1)
        if rest[:2] != ["-d", "-b"] or rest[3:4] != ["--no-new-keyring"] or len(rest) != 5:
            return fail(f"unexpected run arguments {rest}")
        bundle, container_id = rest[2], rest[4]
        if load(container_id) is not None:
            return fail(f"container with id exists: {container_id}")
        with open(os.path.join(bundle, "config.json"), encoding="utf-8") as handle:
            command = json.load(handle)["process"]["args"]
        pid = spawn(command, bundle_env(bundle))
        save(container_id, {"status": "running", "pid": pid, "bundle": bundle, "pids": [pid]})
        return 0
    if verb == "delete":
        if not rest or rest[0] not in ("-f", "--force") or len(rest) != 2:
            return fail(f"unexpected delete arguments {rest}")
        state = load(rest[1])
        if state is None:
            return fail(f'container "{rest[1]}" does not exist')
        for pid in state["pids"]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        os.unlink(state_path(rest[1]))
        return 0
    return fail(f"unknown command {verb}", 2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
