"""Runtime checks of the container as Thunder runs it: bundle, communicator, environment, life."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from typing import Any

from pytest_thunder_container.conformance import procfs
from pytest_thunder_container.conformance.observe import Observation
from pytest_thunder_container.conformance.runtime.verdict import (
    NotEvaluated,
    ProbeExcerpt,
    RuntimeContext,
    Verdict,
    evidence,
    host_argv,
    host_of,
    inapplicable,
    lines_with,
    section,
    verdict,
    who,
)
from pytest_thunder_container.conformance.static_rules import _same_connector
from pytest_thunder_container.oci.config import (
    COMMUNICATOR_VARIABLE,
    MESSAGE_DISPATCHER_VARIABLE,
    communicator_path,
    config_at,
    is_within,
    normalise_path,
)

Check = Callable[[Observation, RuntimeContext], Verdict]
# What `runc state` says of a live plugin container: R5 and R4.4.3+ create and exec (created);
# only R4.4.0-R4.4.2 ran it with RDK's patched `runc run --args` (running).
RUNC_STATUS = {"R5": ("created",), "R4.4": ("created", "running")}
EXCERPT = 400


def _excerpt(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= EXCERPT else text[:EXCERPT] + " ..."


def _runc_state(observation: Observation) -> tuple[dict[str, Any] | None, ProbeExcerpt]:
    text = section(observation, "runc-state")
    state = procfs.runc_json(text)
    state = state if isinstance(state, dict) else None
    lines = lines_with(text, '"status"', '"bundle"', '"rootfs"') if state else [text.strip()]
    return state, evidence(observation, "runc-state", "runc state of the container", lines)


def _rootfs(observation: Observation) -> tuple[str, ProbeExcerpt]:
    state, proof = _runc_state(observation)
    rootfs = state.get("rootfs") if state else None
    if not isinstance(rootfs, str) or not rootfs:
        raise NotEvaluated(f"runc state shows no rootfs: {proof.output}")
    return normalise_path(rootfs), proof


def _expected_rootfs(context: RuntimeContext) -> str | None:
    root = config_at(context.config, "root", "path")
    if not isinstance(root, str) or not root.strip():
        return None
    return normalise_path(posixpath.join(context.bundle, root))


def _runs_deployed_bundle(rootfs: str, context: RuntimeContext) -> bool:
    return is_within(rootfs, normalise_path(context.bundle)) or rootfs == _expected_rootfs(context)


def check_rootfs(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-CFG-003: runc's rootfs is <bundle>/<root.path>."""
    rootfs, proof = _rootfs(observation)
    expected = _expected_rootfs(context)
    if expected is None:
        message = f"config.json sets no root.path; runc uses {rootfs}"
        return verdict("TC-CFG-003", False, message, proof)
    if not _runs_deployed_bundle(rootfs, context):
        raise NotEvaluated(f"the container runs {rootfs}, from another bundle (see TC-CFG-005)")
    message = f"runc's rootfs is {rootfs}" + (
        ", the deployed root.path" if rootfs == expected else f", expected {expected}"
    )
    return verdict("TC-CFG-003", rootfs == expected, message, proof)


def check_bundle_used(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-CFG-005: the running container's rootfs lies in the deployed bundle."""
    rootfs, proof = _rootfs(observation)
    holds = _runs_deployed_bundle(rootfs, context)
    message = (
        f"runc's rootfs {rootfs} is in the deployed bundle {context.bundle}"
        if holds
        else f"runc's rootfs {rootfs} is not in the deployed bundle {context.bundle}: "
        "Thunder found another bundle first on its search path"
    )
    return verdict("TC-CFG-005", holds, message, proof)


def check_communicator_inside(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-COM-001: the communicator exists inside and is a socket."""
    path = communicator_path(context.connector)
    if path is None:
        message = f"the communicator {context.connector!r} is a TCP address: no socket to mount"
        return inapplicable("TC-COM-001", message)
    text = section(observation, "communicator", inside=True)
    proof = evidence(observation, "communicator", f"{path} inside", text.splitlines(), inside=True)
    kind = (text.splitlines() or ["(nothing)"])[0].strip()
    message = f"{path} inside the container is " + (
        "a socket" if kind == "socket" else f"{kind}: Thunder's communicator is not reachable"
    )
    return verdict("TC-COM-001", kind == "socket", message, proof)


def check_comrpc_link(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-COM-002: a COMRPC link in Controller.1.links and a connected socket in the host."""
    comrpc = [link for link in context.links if str(link.get("state", "")).upper() == "COMRPC"]
    # Real Thunder never names a link for its plugin: the name is the communicator's
    # (WPEFramework::Communicator in R4.4, Thunder::Communicator, /Thunder/Communicator, then "/"
    # in R5) and remote is a socket, not a pid. A link named for the callsign is preferred.
    ours = [link for link in comrpc if link.get("name") == context.callsign] or comrpc
    links_proof = ProbeExcerpt("COMRPC links in Controller.1.links", "", _excerpt(comrpc))
    fds, unix = section(observation, "fds"), section(observation, "net-unix")
    held = procfs.socket_inodes(fds)
    connected = [
        s
        for s in procfs.unix_sockets(unix)
        if s.inode in held and s.kind == procfs.SOCK_STREAM and s.state == procfs.SS_CONNECTED
    ]
    socket_proofs = (
        evidence(observation, "fds", "sockets the host holds", lines_with(fds, "socket:")),
        evidence(
            observation,
            "net-unix",
            "unix sockets of the host (Type 0001 stream, St 03 connected)",
            [s.line for s in procfs.unix_sockets(unix) if s.inode in held],
        ),
    )
    problems = []
    if not ours:
        names = ", ".join(f"{link.get('name')!r} {link.get('state')}" for link in context.links)
        names = names or "none"
        problems.append(f"Controller.1.links has no COMRPC link (links: {names})")
    if not connected:
        problems.append(f"{who(observation)} holds no connected unix stream socket")
    if problems:
        return verdict("TC-COM-002", False, "; ".join(problems), links_proof, *socket_proofs)
    message = (
        f"Controller.1.links has COMRPC link {ours[0].get('id')} for {context.callsign}, and "
        f"{who(observation)} holds connected stream socket {connected[0].inode}"
    )
    return verdict("TC-COM-002", True, message, links_proof, *socket_proofs)


def check_host_arguments(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-COM-003: -r <connector> and -C <callsign> in the host's argv."""
    host = host_argv(observation)
    connector, callsign = host.option("-r"), host.option("-C")
    shown = [f"{flag} {value}" for flag, value in (("-r", connector), ("-C", callsign)) if value]
    proof = evidence(observation, "cmdline", "-r and -C in the host's argv", shown)
    problems = []
    if connector is None or not _same_connector(connector, context.connector):
        problems.append(f"-r is {connector!r}, expected {context.connector!r}")
    if callsign != context.callsign:
        problems.append(f"-C is {callsign!r}, expected {context.callsign!r}")
    message = "; ".join(problems) or f"{who(observation)} has {' '.join(shown)}"
    return verdict("TC-COM-003", not problems, message, proof)


def check_plugin_call(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-COM-004: the plugin's JSON-RPC call answered, served by the host in the container."""
    call = context.plugin_call
    if call is None:
        raise NotEvaluated("no JSON-RPC call to the plugin was made")
    answer = call.error if call.error is not None else _excerpt(call.result)
    proof = ProbeExcerpt(f"{call.method} through Thunder", "", answer)
    if call.error is not None:
        return verdict("TC-COM-004", False, f"{call.method} failed: {call.error}", proof)
    if call.result is None:
        return verdict("TC-COM-004", False, f"{call.method} answered with no result", proof)
    message = f"{call.method} answered {_excerpt(call.result)[:120]}"
    return verdict("TC-COM-004", True, message, proof)


def _message_files(observation: Observation) -> tuple[list[str], ProbeExcerpt]:
    text = section(observation, "dispatcher", inside=True)
    files = [name for name in text.split() if name.startswith("md.")]
    title = "/tmp/MessageDispatcher inside the container"
    return files, evidence(observation, "dispatcher", title, text.splitlines(), inside=True)


def _environment(observation: Observation, name: str) -> tuple[str | None, ProbeExcerpt]:
    value = procfs.environ_values(section(observation, "environ")).get(name)
    line = f"{name}={value}" if value is not None else f"(no {name})"
    return value, evidence(observation, "environ", f"{name} in the host's environment", [line])


def check_message_files(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-COM-005: md.* message files are visible inside."""
    files, proof = _message_files(observation)
    if files:
        return verdict("TC-COM-005", True, f"{len(files)} md.* files are visible inside", proof)
    configured, env_proof = _environment(observation, MESSAGE_DISPATCHER_VARIABLE)
    if configured and not configured.startswith("$"):
        message = f"the host has {MESSAGE_DISPATCHER_VARIABLE} but sees no md.* files inside"
        return verdict("TC-COM-005", False, message, proof, env_proof)
    if observation.tmp_probe_seen_outside:
        message = (
            "the container shares the target's /tmp and it has no md.* files: "
            "Thunder runs no message dispatcher"
        )
        return inapplicable("TC-COM-005", message, proof)
    message = "no md.* files inside, and /tmp is not the target's (see TC-MNT-001)"
    return verdict("TC-COM-005", False, message, proof)


def check_communicator_env(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-ENV-001: the host's COMMUNICATOR_CONNECTOR is the connector Thunder gave it with -r."""
    value, proof = _environment(observation, COMMUNICATOR_VARIABLE)
    thunders = host_argv(observation).option("-r") or context.connector
    if value is None:
        message = f"{who(observation)} has no {COMMUNICATOR_VARIABLE}; Thunder's is {thunders!r}"
        return verdict("TC-ENV-001", False, message, proof)
    holds = _same_connector(value, thunders)
    message = f"{COMMUNICATOR_VARIABLE} of {who(observation)} is {value!r}, " + (
        "Thunder's communicator" if holds else f"but Thunder's (-r) is {thunders!r}"
    )
    return verdict("TC-ENV-001", holds, message, proof)


def check_message_dispatcher_env(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-ENV-002: the host has Thunder's MESSAGE_DISPATCHER_CONFIG (where Thunder sets one)."""
    name = MESSAGE_DISPATCHER_VARIABLE
    value, proof = _environment(observation, name)
    if value and not value.startswith("$"):
        return verdict("TC-ENV-002", True, f"{who(observation)} has {name}={value}", proof)
    if value and context.dialect == "R5":
        # R5 passes --env only for a variable it has itself; the literal survives otherwise.
        message = f"{name} reached the host unexpanded ({value!r}): Thunder sets none"
        return inapplicable("TC-ENV-002", message, proof)
    if value:
        message = f"{name} reached the host as {value!r}: R4.4 does not expand $VAR"
        return verdict("TC-ENV-002", False, message, proof)
    files, files_proof = _message_files(observation)
    if not files:
        message = f"Thunder runs no message dispatcher (no md.* files) and the host has no {name}"
        return inapplicable("TC-ENV-002", message, proof, files_proof)
    message = (
        f"{who(observation)} has no {name} though Thunder's dispatcher runs "
        f"({', '.join(files[:3])}...): the host's messages are lost"
    )
    return verdict("TC-ENV-002", False, message, proof, files_proof)


def check_activated(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-LIFE-001: Activated, and runc has the container (created; R4.4.0-4.4.2 running)."""
    if context.activation_error is not None:
        proofs = [ProbeExcerpt("Thunder's answer to the activation", "", context.activation_error)]
        proofs += [ProbeExcerpt("probe note", "", note) for note in observation.notes]
        message = f"activating {context.callsign} in Container mode failed: "
        return verdict("TC-LIFE-001", False, message + context.activation_error, *proofs)
    if observation.host is None:
        notes = "; ".join(observation.notes) or "no probe notes"
        message = f"{context.callsign} has no plugin host running: {notes}"
        return verdict("TC-LIFE-001", False, message, ProbeExcerpt("probe notes", "", notes))
    state_proof = ProbeExcerpt(f"state of {context.callsign}", "", str(context.state))
    if context.state != "Activated":
        message = f"{context.callsign} is {context.state!r} after activation, not 'Activated'"
        return verdict("TC-LIFE-001", False, message, state_proof)
    state, runc_proof = _runc_state(observation)
    if state is None:
        message = f"{context.callsign} is Activated but runc has no such container"
        return verdict("TC-LIFE-001", False, message, state_proof, runc_proof)
    expected = RUNC_STATUS.get(context.dialect, ("created", "running"))
    status = state.get("status")
    holds = status in expected
    message = f"{context.callsign} is Activated and runc says {status!r}" + (
        "" if holds else f", expected {' or '.join(map(repr, expected))} for {context.dialect}"
    )
    return verdict("TC-LIFE-001", holds, message, state_proof, runc_proof)


def check_host_in_container(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-LIFE-002: the host's pid namespace is not init's, and runc ps lists the host."""
    host = host_of(observation)
    init_link, host_link = procfs.namespace_links(section(observation, "ns")).get("pid", ("", ""))
    ps_text = section(observation, "runc-ps")
    pids = procfs.runc_json(ps_text)
    pids = pids if isinstance(pids, list) else []
    proofs = (
        evidence(
            observation, "ns", "pid namespace of the host vs init", [f"pid {init_link} {host_link}"]
        ),
        evidence(
            observation, "runc-ps", "processes runc lists in the container", [ps_text.strip()]
        ),
    )
    problems = []
    if not host_link or host_link == init_link:
        problems.append(f"{who(observation)} is in init's pid namespace {init_link}")
    if host.pid not in pids:
        problems.append(f"runc ps lists {pids or ps_text.strip()!r}, not pid {host.pid}")
    message = "; ".join(problems) or (
        f"{who(observation)} is in pid namespace {host_link} and runc ps lists it"
    )
    return verdict("TC-LIFE-002", not problems, message, *proofs)


THUNDER_CHECKS: dict[str, Check] = {
    "TC-CFG-003": check_rootfs,
    "TC-CFG-005": check_bundle_used,
    "TC-COM-001": check_communicator_inside,
    "TC-COM-002": check_comrpc_link,
    "TC-COM-003": check_host_arguments,
    "TC-COM-004": check_plugin_call,
    "TC-COM-005": check_message_files,
    "TC-ENV-001": check_communicator_env,
    "TC-ENV-002": check_message_dispatcher_env,
    "TC-LIFE-001": check_activated,
    "TC-LIFE-002": check_host_in_container,
}
