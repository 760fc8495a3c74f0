"""runc calls, as Thunder's RunC process-container backend makes them, for R5 and for R4.4.

R5 (Source/extensions/processcontainers/implementations/RunCImplementation): purge a leftover
(`runc list --quiet`, `runc state <id>`, `runc --log <log> delete --force <id>`), then
`runc --log <log> create --no-new-keyring --bundle <bundle> <id>` and
`runc --log <log> exec --detach [--env VAR=<host value> ...] <id> <command> <params...>`.
R4.4 (R4.4.0-R4.4.2): `runc list -q` and `runc delete -f <id>` for a leftover, then
`runc -log <log> run -d --args <json> -b <bundle> --no-new-keyring <id> <command>`, a flag only
RDK's patched runc has. The reference stands in for that patch: it writes a runtime copy of the
bundle's config.json with process.args = the host command line and an absolute root.path, and
runs `runc -log <log> run -d -b <runtime bundle> --no-new-keyring <id>` (see the README).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass

from refthunder.rpcerrors import R5


class RuncError(Exception):
    """A runc call failed, timed out or could not be started; the message says which and why."""


@dataclass(frozen=True)
class RuncResult:
    returncode: int
    output: str
    seconds: float


class RuncRunner:
    """Runs runc with a per-call timeout and logs every command line with its duration."""

    def __init__(self, runc_path: str, timeout_s: float, log: logging.Logger) -> None:
        self.runc_path = runc_path
        self.timeout_s = timeout_s
        self.log = log

    def run(self, arguments: list[str], capture: bool = False) -> RuncResult:
        """Run `runc <arguments>`; raise RuncError on timeout (the call is killed) or start failure.

        Only list/state capture stdout: create/run/exec hand runc's stdio to the container, so a
        pipe would never see its end.
        """
        command = [self.runc_path, *arguments]
        line = shlex.join(command)
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else None,
                text=True,
            )
        except OSError as error:
            self.log.info("runc: %s -> cannot start: %s", line, error.strerror)
            raise RuncError(f"cannot start {self.runc_path}: {error.strerror}") from error
        try:
            output, _ = process.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired as error:
            process.kill()
            process.communicate()
            elapsed = time.monotonic() - started
            self.log.info("runc: %s -> TIMED OUT after %.0f ms (killed)", line, elapsed * 1000)
            raise RuncError(f"'{line}' timed out after {self.timeout_s * 1000:.0f} ms") from error
        elapsed = time.monotonic() - started
        self.log.info("runc: %s -> exit %d in %.0f ms", line, process.returncode, elapsed * 1000)
        return RuncResult(process.returncode, output or "", elapsed)

    def checked(self, arguments: list[str], what: str) -> RuncResult:
        result = self.run(arguments)
        if result.returncode != 0:
            raise RuncError(f"runc {what} failed with exit code {result.returncode}")
        return result


class ContainerAdministrator:
    """The ids of the containers this daemon started (Containers.1.containers lists them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._containers: dict[str, RuncContainer] = {}

    def add(self, container: RuncContainer) -> None:
        with self._lock:
            self._containers[container.id] = container

    def remove(self, container: RuncContainer) -> None:
        with self._lock:
            if self._containers.get(container.id) is container:
                del self._containers[container.id]

    def get(self, container_id: str) -> RuncContainer | None:
        with self._lock:
            return self._containers.get(container_id)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._containers)


def find_bundle(search_paths: list[str]) -> str | None:
    """The first '<path>Container/' holding a config.json, in Thunder's search order."""
    for path in search_paths:
        bundle = path.rstrip("/") + "/Container/"
        if os.path.isfile(bundle + "config.json"):
            return bundle
    return None


def inherited_environment(bundle: str, environ: dict[str, str]) -> list[str]:
    """`--env VAR=value` for every config.json env entry 'VAR=$HOSTVAR' whose host value is set.

    As InheritHostEnvironmentVariables (R5): the value part is what follows the first '=' up to
    the next one; it must be longer than one character and start with '$'; unset or empty
    host variables are skipped.
    """
    try:
        with open(bundle + "config.json", encoding="utf-8") as handle:
            entries = json.load(handle).get("process", {}).get("env", [])
    except (OSError, ValueError, AttributeError):
        return []
    arguments: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, str) or "=" not in entry:
            continue
        name, rest = entry.split("=", 1)
        value = rest.split("=", 1)[0]
        if len(value) > 1 and value.startswith("$"):
            host_value = environ.get(value[1:], "")
            if host_value:
                arguments += ["--env", f"{name}={host_value}"]
    return arguments


def runtime_bundle(bundle: str, runtime_dir: str, args: list[str]) -> str:
    """R4.4 stand-in for `--args`: config.json with new process.args and an absolute root.path."""
    with open(bundle + "config.json", encoding="utf-8") as handle:
        document = json.load(handle)
    document.setdefault("process", {})["args"] = args
    root = document.setdefault("root", {})
    root_path = root.get("path", "rootfs")
    root["path"] = os.path.normpath(os.path.join(bundle, root_path))
    os.makedirs(runtime_dir, exist_ok=True)
    with open(os.path.join(runtime_dir, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    return runtime_dir


class RuncContainer:
    """One runc container named after the plugin's callsign."""

    def __init__(
        self,
        container_id: str,
        bundle: str,
        volatile_callsign_dir: str,
        generation: str,
        runner: RuncRunner,
        runtime_root: str,
    ) -> None:
        self.id = container_id
        self.bundle = bundle
        self.generation = generation
        self.runner = runner
        self.runtime_dir = os.path.join(runtime_root, container_id)
        # Real Thunder logs to <volatile>/<callsign>/runc.container.log (R5), container.log (R4.4).
        name = "runc.container.log" if generation == R5 else "container.log"
        self.log_file = volatile_callsign_dir + name

    def purge_leftover(self) -> None:
        """Force-delete a container with our id that an earlier run left behind."""
        if self.generation == R5:
            listed = self.runner.run(["list", "--quiet"], capture=True)
            if listed.returncode == 0 and self.id in listed.output:
                state = self.runner.run(["state", self.id], capture=True)
                if state.returncode == 0 and _status(state.output):
                    self.runner.run(["--log", self.log_file, "delete", "--force", self.id])
        else:
            listed = self.runner.run(["list", "-q"], capture=True)
            if listed.returncode == 0 and self.id in listed.output:
                self.runner.run(["delete", "-f", self.id])

    def start(self, command: str, parameters: list[str]) -> None:
        """Create the container and start the plugin host in it; raise RuncError on failure."""
        os.makedirs(os.path.dirname(self.log_file), exist_ok=True)
        self.purge_leftover()
        if self.generation == R5:
            self.runner.checked(
                [
                    "--log",
                    self.log_file,
                    "create",
                    "--no-new-keyring",
                    "--bundle",
                    self.bundle,
                    self.id,
                ],
                "create",
            )
            environment = inherited_environment(self.bundle, dict(os.environ))
            self.runner.checked(
                [
                    "--log",
                    self.log_file,
                    "exec",
                    "--detach",
                    *environment,
                    self.id,
                    command,
                    *parameters,
                ],
                "exec",
            )
        else:
            bundle = runtime_bundle(self.bundle, self.runtime_dir, [command, *parameters])
            self.runner.checked(
                ["-log", self.log_file, "run", "-d", "-b", bundle, "--no-new-keyring", self.id],
                "run",
            )

    def pid(self) -> int | None:
        """The pid runc reports (R5: the container's init, not the plugin host)."""
        result = self.runner.run(["state", self.id], capture=True)
        try:
            return int(json.loads(result.output).get("pid")) if result.returncode == 0 else None
        except (ValueError, TypeError, AttributeError):
            return None

    def stop(self) -> None:
        """Delete the container so that nothing of it is left; raise RuncError if runc fails."""
        try:
            if self.generation == R5:
                self.purge_leftover()
            else:
                listed = self.runner.run(["list", "-q"], capture=True)
                if listed.returncode == 0 and self.id in listed.output:
                    self.runner.checked(["delete", "-f", self.id], "delete")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.runtime_dir, "config.json"))
            with contextlib.suppress(OSError):
                os.rmdir(self.runtime_dir)


def _status(output: str) -> str:
    try:
        value = json.loads(output).get("status")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""
