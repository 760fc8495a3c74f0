"""Put a bundle where Thunder looks, switch a plugin between Local and Container, restore it."""

from __future__ import annotations

import copy
import json
import shlex
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_thunder_container.errors import DeployError, ThunderContainerError
from pytest_thunder_container.oci.config import dump_config
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.thunder.bundle_paths import (
    SearchPaths,
    bundles_with_config,
    from_daemon_config,
    from_host_argv,
    read_daemon_config,
)
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.hosts import find_plugin_hosts

if TYPE_CHECKING:
    from pytest_thunder_container.conformance.failed_activation import ActivationFailure

ACTIVATION_TIMEOUT = 120.0  # a container start is runc create + exec + a host announce
SWITCH_TIMEOUT = 60.0
RUNC = "/usr/bin/runc"  # real Thunder calls runc by this path

# Copies the target's own root (as the tutorial's rootfs.tar would hold it) into $1, leaving out
# the bundle itself ($2) and the contents of other file systems mounted directly under /.
COPY_ROOT = r"""
tc_copy() {
  case "$3" in
    "$1") return 0 ;;
    "$1"/*) mkdir -p "$2" && for e in "$1"/* "$1"/.[!.]*; do
              [ -e "$e" ] || [ -L "$e" ] || continue
              tc_copy "$e" "$2/${e##*/}" "$3" || return 1
            done ;;
    *) cp -a "$1" "$2" ;;
  esac
}
tc_copy_root() {
  mounts=" $(awk '{printf "%s ", $2}' /proc/mounts)"
  mkdir -p "$1" || return 1
  for e in /* /.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    case "$mounts" in *" $e "*) mkdir -p "$1$e"; continue ;; esac
    tc_copy "$e" "$1$e" "$2" || return 1
  done
}
"""


@dataclass(frozen=True)
class BundleSpec:
    """What to deploy for one callsign."""

    callsign: str
    directory: str  # "": Thunder's data path for the plugin, read off Thunder at deploy time
    config: dict[str, Any]
    rootfs_tar: Path | None = None  # None: a copy of the target's own root

    @staticmethod
    def default_directory(callsign: str) -> str:
        """No fixed place: the deployment asks Thunder where it looks (see bundle_paths)."""
        return ""


class ContainerDeployment:
    """A plugin's container bundle on a target, and the plugin's mode switched through Thunder."""

    def __init__(
        self, shell: Shell, thunder: ThunderClient, spec: BundleSpec, *, results: Path
    ) -> None:
        self.shell = shell
        self.thunder = thunder
        self.spec = spec
        self.results = results
        self.config = spec.config
        self.original_configuration: dict[str, Any] | None = None
        self.original_state: str | None = None
        self._written = 0
        self._created: str | None = None  # the topmost directory this deployment made
        self._backup: str | None = None  # a bundle that was there before, moved aside
        self._bundle = spec.directory
        self.search_paths: SearchPaths | None = None

    @property
    def callsign(self) -> str:
        return self.spec.callsign

    @property
    def bundle(self) -> str:
        return self._bundle

    def deploy(self) -> None:
        """Check the target, remember the plugin's configuration, place rootfs and config.json."""
        self.original_configuration = self.thunder.configuration(self.callsign)
        self.original_state = self.thunder.state(self.callsign)
        self.search_paths = self.find_search_paths()
        if not self._bundle:
            if self.search_paths is None:
                raise DeployError(
                    f"can't tell where Thunder looks for {self.callsign}'s bundle: no plugin "
                    f"host with -C {self.callsign} runs and no Thunder config.json is readable "
                    "(fix: --thunder-bundle-dir=<datapath>/<classname>/Container)"
                )
            self._bundle = self.search_paths.default_bundle()
        self._refuse_shadowed_bundle()
        self._preflight()
        self._place_rootfs()
        self.write_config(self.config, label="deployed")

    def write_config(self, config: dict[str, Any], *, label: str) -> Path:
        """Replace the bundle's config.json (the rootfs stays) and keep a copy in the results."""
        text = dump_config(config)
        self.shell.put(text.encode(), f"{self.bundle}/config.json", mode=0o644)
        self.config = config
        self._written += 1
        kept = self.results / "deployed" / f"{self.callsign}-{self._written:02d}-{label}.json"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(text)
        return kept

    def use_container(self, timeout: float = ACTIVATION_TIMEOUT) -> None:
        """Deactivate, set root.mode Container, activate; DeployError says what Thunder said.

        The bundle must be the first on Thunder's search path holding a config.json (TC-CFG-005):
        R4.4 dies when none is found, and another one found first would run instead of ours.
        """
        if self.search_paths is not None:
            if self.search_paths.index_of(self.bundle) is None:
                raise DeployError(
                    f"the bundle {self.bundle} is not on Thunder's search path for "
                    f"{self.callsign}: {self.search_paths.describe()} "
                    "(fix: --thunder-bundle-dir=<one of those>)"
                )
            self._refuse_shadowed_bundle()
        self._switch("Container", timeout)

    def find_search_paths(self) -> SearchPaths | None:
        """Where Thunder looks: the running host's -v/-p/-d, else Thunder's config.json."""
        for host in find_plugin_hosts(self.shell, self.callsign):
            found = from_host_argv(self.callsign, host.argv, self.original_configuration)
            if found is not None:
                return found
        daemon = read_daemon_config(self.shell)
        if daemon is None:
            return None
        path, document = daemon
        try:
            entry = self.thunder.status(self.callsign)
        except ThunderContainerError:
            entry = {}
        classname = entry.get("classname")
        return from_daemon_config(
            self.callsign,
            classname if isinstance(classname, str) and classname else self.callsign,
            document,
            f"{path} on the target",
            {**entry, "configuration": self.original_configuration or {}},
        )

    def _refuse_shadowed_bundle(self) -> None:
        """DeployError when a config.json earlier on the search path would win over ours."""
        if self.search_paths is None:
            return
        index = self.search_paths.index_of(self.bundle)
        earlier = self.search_paths.bundles[:index] if index is not None else ()
        shadowing = bundles_with_config(self.shell, earlier)
        if shadowing:
            raise DeployError(
                f"{shadowing[0]}/config.json exists and Thunder looks there before "
                f"{self.bundle}, so that bundle would run instead of the deployed one "
                f"(search path: {self.search_paths.describe()}; fix: remove {shadowing[0]} "
                f"or deploy there with --thunder-bundle-dir={shadowing[0]})"
            )

    def use_local(self, timeout: float = ACTIVATION_TIMEOUT) -> None:
        self._switch("Local", timeout)

    def deactivate(self, timeout: float = SWITCH_TIMEOUT) -> None:
        if self.thunder.state(self.callsign) != "Deactivated":
            self.thunder.deactivate(self.callsign, timeout=timeout)
            self.thunder.wait_for_state(self.callsign, "Deactivated", timeout)

    def activate(self, timeout: float = ACTIVATION_TIMEOUT) -> None:
        asked = time.monotonic()
        try:
            self.thunder.activate(self.callsign, timeout=timeout)
            self.thunder.wait_for_state(self.callsign, "Activated", timeout)
        except ThunderContainerError as error:
            witness = self.runc_witness(time.monotonic() - asked)
            said = [self.held_in_activation(), witness.describe() if witness else None]
            raise DeployError(
                f"Thunder could not activate {self.callsign}: {error}"
                + "".join(f"; {line}" for line in said if line),
                leaked=witness is not None and witness.leaked,
            ) from error

    def runc_witness(self, seconds_ago: float) -> ActivationFailure | None:
        """After a failed activation: whether a container leaked, and the runc call past Thunder's
        limit (runc's log and state since the request); None when the target can't say."""
        # Imported here: the diagnosis itself reads runc through this module.
        from pytest_thunder_container.conformance.failed_activation import (
            diagnose_failed_activation,
        )
        from pytest_thunder_container.conformance.runc_log import target_now

        now = target_now(self.shell)
        # One second of margin for the request's way to the target.
        started = None if now is None else now - timedelta(seconds=seconds_ago + 1.0)
        try:
            return diagnose_failed_activation(
                self.shell, self.thunder, self.callsign, started=started
            )
        except ThunderContainerError:
            return None

    def held_in_activation(self) -> str | None:
        """Why nothing can be restored when the plugin is stuck in Activation, else None: Thunder
        refuses a deactivate then (ERROR_ILLEGAL_STATE) and OCDM waits for its host forever."""
        try:
            state = self.thunder.state(self.callsign)
        except ThunderContainerError:
            return None
        if state != "Activation":
            return None
        return (
            f"Thunder holds {self.callsign} in Activation until it restarts "
            "(it refuses to deactivate a plugin in Activation)"
        )

    def mode_configuration(self, mode: str) -> dict[str, Any]:
        """The plugin's configuration with root.mode set (and the runc backend for Container)."""
        base = copy.deepcopy(self.original_configuration or {})
        root = dict(base.get("root") or {})
        root["mode"] = mode
        if mode == "Container":
            root.setdefault("configuration", {"containertype": "runc"})
        base["root"] = root
        return base

    def _switch(self, mode: str, timeout: float) -> None:
        self.deactivate()
        try:
            self.thunder.set_configuration(self.callsign, self.mode_configuration(mode))
        except ThunderContainerError as error:
            raise DeployError(
                f"Thunder refused root.mode={mode} for {self.callsign}: {error}"
            ) from error
        self.activate(timeout)

    def restore(self) -> None:
        """Put back the original configuration and state and remove what was placed; safe to
        call after a deploy that failed half-way, and twice."""
        problems: list[str] = []
        held = self.held_in_activation() if self.original_configuration is not None else None
        if held is not None:
            problems.append(f"{held}: its configuration and state were not put back")
        elif self.original_configuration is not None:
            try:
                self.deactivate()
                self.thunder.set_configuration(self.callsign, self.original_configuration)
                if self.original_state == "Activated":
                    self.activate()
            except ThunderContainerError as error:
                problems.append(str(error))
        self.original_configuration = None
        if self._created is not None:
            removed = self.shell.run(f"rm -rf {shlex.quote(self._created)}", timeout=120)
            if removed.returncode != 0:
                problems.append(f"rm -rf {self._created}: {removed.stdout}")
            self._created = None
        if self._backup is not None:
            back = self.shell.run(f"mv {shlex.quote(self._backup)} {shlex.quote(self.bundle)}")
            if back.returncode != 0:
                problems.append(f"putting back {self.bundle} failed: {back.stdout}")
            self._backup = None
        if problems:
            raise DeployError(f"restoring {self.callsign} left problems: " + "; ".join(problems))

    def _preflight(self) -> None:
        q = shlex.quote
        if self.shell.run(f"[ -x {RUNC} ]").returncode != 0:
            raise DeployError(
                f"the target has no {RUNC}: Thunder starts containers with it "
                "(fix: add runc to the image)"
            )
        parent = self.bundle.rsplit("/", 1)[0] or "/"
        if self.shell.run(f"[ -e {q(self.bundle)} ]").returncode == 0:
            # The image's own bundle is kept aside and put back by restore().
            self._backup = f"{self.bundle}.thunder-container-backup"
            self.shell.check(f"rm -rf {q(self._backup)} && mv {q(self.bundle)} {q(self._backup)}")
        top = self.shell.run(
            f'd={q(self.bundle)}; t=$d; while [ ! -e "$d" ]; do t=$d; d=${{d%/*}}; done; echo "$t"'
        ).stdout.strip()
        self._created = top or self.bundle
        made = self.shell.run(f"mkdir -p {q(self.bundle)} && [ -w {q(parent)} ]")
        if made.returncode != 0:
            raise DeployError(
                f"can't create the bundle directory {self.bundle} on the target: "
                f"{made.stdout} (fix: --thunder-bundle-dir=<a writable path on "
                "Thunder's search path, e.g. /tmp/<callsign>/Container>)"
            )

    def _place_rootfs(self) -> None:
        q = shlex.quote
        rootfs = f"{self.bundle}/rootfs"
        if self.spec.rootfs_tar is not None:
            tar = f"{self.bundle}/rootfs.tar"
            self.shell.put(self.spec.rootfs_tar.read_bytes(), tar)
            command = (
                f"(mkdir -p {q(rootfs)} && tar -xf {q(tar)} -C {q(rootfs)}; r=$?; "
                f"rm -f {q(tar)}; exit $r)"
            )
        else:
            self._check_space(rootfs)
            command = f"{COPY_ROOT}\ntc_copy_root {q(rootfs)} {q(self.bundle)}"
        result = self.shell.run(command, timeout=600)
        if result.returncode != 0:
            raise DeployError(f"placing the rootfs in {rootfs} failed: {result.stdout[-500:]}")

    def _check_space(self, rootfs: str) -> None:
        q = shlex.quote
        probe = self.shell.run(
            f"df -k {q(self.bundle)} | awk 'NR==2 {{print $4}}'; "
            "du -skx / 2>/dev/null | awk '{print $1}'"
        )
        numbers = [int(x) for x in probe.stdout.split() if x.isdigit()]
        if len(numbers) == 2 and numbers[0] < numbers[1]:
            raise DeployError(
                f"not enough space for {rootfs}: {numbers[0]} KiB free, the root "
                f"needs about {numbers[1]} KiB (fix: --thunder-rootfs=<smaller "
                "rootfs.tar> or --thunder-bundle-dir on a bigger file system)"
            )


def runc_containers(shell: Shell) -> list[str]:
    """Container ids runc knows on the target."""
    result = shell.run(f"{RUNC} list -q")
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def describe(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=True)
