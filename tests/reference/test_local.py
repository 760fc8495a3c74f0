"""The reference Thunder in Local mode, in both API generations: real processes and sockets."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from reference_daemon import ReferenceFactory, ReferenceThunder, process_alive, wait_for

ACTIVATED = {"R5": "Activated", "R4.4": "activated"}
DEACTIVATED = {"R5": "Deactivated", "R4.4": "deactivated"}


def error_code(api: str, core_code: int) -> int:
    """Thunder core error code as each generation sends it (no special JSON-RPC mapping)."""
    return -31000 - core_code if api == "R5" else core_code


def test_startup_activates_ocdm_in_a_plugin_host_with_real_thunders_argv(
    reference: ReferenceFactory, api: str
) -> None:
    thunder = reference.launch(api)
    assert thunder.state("OCDM") == ACTIVATED[api]
    hosts = thunder.hosts()
    assert len(hosts) == 1
    host_name = "ThunderPlugin" if api == "R5" else "WPEProcess"
    assert Path(f"/proc/{hosts[0]}/comm").read_text().strip() == host_name
    argv = Path(f"/proc/{hosts[0]}/cmdline").read_bytes().decode().split("\0")
    options = argv[argv.index("-l") : -1]
    assert options[:12] == [
        "-l", "libThunderOCDM.so", "-c", "OCDMImplementation", "-C", "OCDM",
        "-r", thunder.communicator, "-i", "288" if api == "R5" else "224", "-x", "1",
    ]  # fmt: skip
    assert options[options.index("-p") + 1] == f'"{thunder.root}/persistent/OCDM/"'
    assert options[options.index("-v") + 1] == f'"{thunder.root}/volatile/OCDM/"'
    assert options[options.index("-d") + 1] == f'"{thunder.root}/data/OCDM/"'
    environ = Path(f"/proc/{hosts[0]}/environ").read_bytes().decode().split("\0")
    assert f"COMMUNICATOR_CONNECTOR={thunder.communicator}" in environ
    assert Path(thunder.connector).is_socket()


def test_message_dispatcher_files_and_environment(reference: ReferenceFactory, api: str) -> None:
    thunder = reference.launch(api)
    folder = thunder.root / "volatile" / "MessageDispatcher"
    names = sorted(path.name for path in folder.iterdir())
    assert names == ["md.0.data", "md.0.metadata", "md.1.data", "md.1.metadata", "md.doorbell"]
    assert (folder / "md.doorbell").is_socket()
    hosts = thunder.hosts()
    environ = Path(f"/proc/{hosts[0]}/environ").read_bytes().decode().split("\0")
    expected = f"{folder}|md|0|1|20480" if api == "R5" else f"{folder}|md|0|1"
    assert f"MESSAGE_DISPATCHER_CONFIG={expected}" in environ


def test_ocdm_queries_are_answered_through_the_connector(
    reference: ReferenceFactory, api: str
) -> None:
    thunder = reference.launch(api)
    assert thunder.result("OCDM.1.drms") == [
        {"name": "PlayReady", "keysystems": ["com.microsoft.playready"]}
    ]
    assert thunder.result("OCDM.1.keysystems@PlayReady") == ["com.microsoft.playready"]
    # Real OCDM answers an unknown DRM with [] in both generations.
    assert thunder.result("OCDM.1.keysystems@Nagra") == []
    if api == "R5":
        assert thunder.result("OCDM.1.systems") == ["PlayReady"]
        assert thunder.result("OCDM.1.designators@PlayReady") == ["com.microsoft.playready"]
    else:
        assert thunder.call("OCDM.1.systems")["error"]["code"] == -32601


def test_ocdm_breaks_when_the_connector_is_unreachable(reference: ReferenceFactory) -> None:
    thunder = reference.launch("R5")
    os.unlink(thunder.connector)  # as if the host listened in a /tmp the daemon can't see
    error = thunder.call("OCDM.1.drms")["error"]
    assert error["message"] == f"OCDM implementation unreachable at {thunder.connector}"


def test_state_names_and_status_shapes(reference: ReferenceFactory, api: str) -> None:
    thunder = reference.launch(api)
    if api == "R5":
        one = thunder.result("Controller.1.services@OCDM")
        assert isinstance(one, dict) and one["state"] == "Activated" and one["callsign"] == "OCDM"
        assert thunder.result("Controller.1.status@OCDM") == one  # deprecated alias
        everything = thunder.result("Controller.1.services")
        assert {entry["callsign"] for entry in everything} == {"Controller", "Containers", "OCDM"}
        assert thunder.call("Controller.1.processinfo")["error"]["code"] == -32601
    else:
        one = thunder.result("Controller.1.status@OCDM")
        assert isinstance(one, list) and len(one) == 1 and one[0]["state"] == "activated"
        assert {entry["callsign"] for entry in thunder.result("Controller.1.status")} == {
            "Controller", "Containers", "OCDM"}  # fmt: skip
        assert "threads" in thunder.result("Controller.1.processinfo")
        assert thunder.call("Controller.1.services@OCDM")["error"]["code"] == -32601
    thunder.result("Controller.1.deactivate", {"callsign": "OCDM"})
    assert thunder.state("OCDM") == DEACTIVATED[api]


def test_configuration_is_read_and_set_only_while_deactivated(
    reference: ReferenceFactory, api: str
) -> None:
    thunder = reference.launch(api)
    configuration = thunder.result("Controller.1.configuration@OCDM")
    assert configuration["root"] == {"mode": "Local"}
    refused = thunder.call("Controller.1.configuration@OCDM", dict(configuration, sharesize=1))
    assert refused["error"]["code"] == error_code(api, 1)
    assert refused["error"]["message"] == "ERROR_GENERAL"
    thunder.result("Controller.1.deactivate", {"callsign": "OCDM"})
    changed = dict(configuration, sharesize=1)
    assert thunder.result("Controller.1.configuration@OCDM", changed) is None
    assert thunder.result("Controller.1.configuration@OCDM") == changed
    unknown = thunder.call("Controller.1.configuration@Nope")["error"]
    assert unknown["code"] == error_code(api, 22)


def test_subsystems_report_decryption_while_ocdm_is_activated(
    reference: ReferenceFactory, api: str
) -> None:
    thunder = reference.launch(api)

    def active(name: str) -> bool:
        report = thunder.result("Controller.1.subsystems")
        return next(entry["active"] for entry in report if entry["subsystem"] == name)

    assert active("Platform") and active("Decryption")
    names = [entry["subsystem"] for entry in thunder.result("Controller.1.subsystems")]
    assert names[0] == "Platform" and ("Cryptography" in names) == (api == "R5")
    thunder.result("Controller.1.deactivate", {"callsign": "OCDM"})
    assert not active("Decryption")


def test_links_list_the_plugin_host_only_while_activated(
    reference: ReferenceFactory, api: str
) -> None:
    thunder = reference.launch(api)
    links = thunder.result("Controller.1.links")
    comrpc = [link for link in links if link["state"] == "COMRPC"]
    assert [(link["name"], link["remote"]) for link in comrpc] == [("OCDM", thunder.communicator)]
    assert any(link["state"] == "WebServer" for link in links)
    thunder.result("Controller.1.deactivate", {"callsign": "OCDM"})
    assert not [link for link in thunder.result("Controller.1.links") if link["state"] == "COMRPC"]


def test_deactivation_leaves_no_host_and_no_socket(reference: ReferenceFactory, api: str) -> None:
    thunder = reference.launch(api)
    (host,) = thunder.hosts()
    folder = thunder.root / "volatile" / "MessageDispatcher"
    assert thunder.result("Controller.1.deactivate", {"callsign": "OCDM"}) is None
    assert not process_alive(host)
    assert not Path(thunder.connector).exists()
    assert not (folder / "md.1.data").exists() and not (folder / "md.1.metadata").exists()
    assert thunder.call("OCDM.1.drms")["error"] == (
        {"code": -31002, "message": "The service is not active."} if api == "R5"
        else {"code": 2, "message": "Service is not active"}
    )  # fmt: skip
    thunder.stop()
    assert not Path(thunder.communicator).exists() and not folder.exists()


def test_activating_an_active_plugin_changes_nothing(reference: ReferenceFactory, api: str) -> None:
    thunder = reference.launch(api)
    hosts = thunder.hosts()
    assert thunder.result("Controller.1.activate", {"callsign": "OCDM"}) is None
    assert thunder.hosts() == hosts


def test_a_crashed_host_deactivates_the_plugin(reference: ReferenceFactory, api: str) -> None:
    thunder = reference.launch(api)
    (host,) = thunder.hosts()
    os.kill(host, signal.SIGKILL)
    thunder.wait_state("OCDM", DEACTIVATED[api])
    assert "deactivating with reason Failure" in thunder.log()
    assert not [link for link in thunder.result("Controller.1.links") if link["state"] == "COMRPC"]
    thunder.result("Controller.1.activate", {"callsign": "OCDM"})
    assert thunder.result("OCDM.1.drms")[0]["name"] == "PlayReady"


def test_a_host_that_never_announces_fails_activation_after_the_timeout(
    reference: ReferenceFactory, api: str
) -> None:
    thunder = reference.tree(api)
    sleeper = thunder.root / "SleepingHost"
    sleeper.write_text("#!/bin/sh\nexec sleep 60\n")
    sleeper.chmod(0o755)
    reference.write_config(thunder, {"hostapplication": str(sleeper), "announcetimeout": 1500})
    reference.write_plugins(thunder, startmode="Deactivated")
    reference.start(thunder)
    error = thunder.call("Controller.1.activate", {"callsign": "OCDM"})["error"]
    assert (error["code"], error["message"]) == (error_code(api, 6), "ERROR_OPENING_FAILED")
    expected = (
        f"plugin host for 'OCDM' did not announce itself on {thunder.communicator} within 1500 ms"
    )
    assert error["data"] == expected
    assert expected in thunder.log()
    assert thunder.state("OCDM") == DEACTIVATED[api]
    assert thunder.hosts() == []


def test_distributed_mode_is_refused_clearly(reference: ReferenceFactory, api: str) -> None:
    thunder = reference.launch(api, mode="Distributed", startmode="Deactivated")
    error = thunder.call("Controller.1.activate", {"callsign": "OCDM"})["error"]
    assert error["code"] == error_code(api, 6)
    assert "'Distributed'" in error["data"] and "not supported by the reference" in error["data"]


def test_a_host_that_cannot_listen_fails_activation_with_the_reason(
    reference: ReferenceFactory,
) -> None:
    thunder = reference.tree("R5")
    reference.write_config(thunder)
    connector = str(thunder.root / "missing-folder" / "ocdm")
    reference.write_plugins(
        thunder,
        startmode="Deactivated",
        configuration={"connector": connector, "root": {"mode": "Local"}},
    )
    reference.start(thunder)
    error = thunder.call("Controller.1.activate", {"callsign": "OCDM"})["error"]
    assert error["code"] == -31006
    assert f"cannot listen on {connector}: No such file or directory" in error["data"]
    wait_for(lambda: thunder.hosts() == [], "the failed host to exit")


def test_mode_off_runs_the_implementation_inside_the_daemon(
    reference: ReferenceFactory, api: str
) -> None:
    thunder = reference.launch(api, mode="Off")
    assert thunder.hosts() == []
    assert thunder.result("OCDM.1.keysystems@PlayReady") == ["com.microsoft.playready"]
    thunder.result("Controller.1.deactivate", {"callsign": "OCDM"})
    assert not Path(thunder.connector).exists()


def test_outofprocess_without_mode_means_local_and_neither_means_in_process(
    reference: ReferenceFactory,
) -> None:
    thunder = reference.launch("R4.4", configuration=None, mode=None)
    assert thunder.hosts() == []
    thunder.result("Controller.1.deactivate", {"callsign": "OCDM"})
    configuration = thunder.result("Controller.1.configuration@OCDM")
    configuration["root"] = {"outofprocess": True}
    thunder.result("Controller.1.configuration@OCDM", configuration)
    thunder.result("Controller.1.activate", {"callsign": "OCDM"})
    assert len(thunder.hosts()) == 1


def test_unknown_callsign_method_and_malformed_requests(
    reference: ReferenceFactory, api: str
) -> None:
    thunder = reference.launch(api)
    unknown = thunder.call("Controller.1.activate", {"callsign": "Nope"})["error"]
    assert (unknown["code"], unknown["message"]) == (error_code(api, 22), "ERROR_UNKNOWN_KEY")
    no_plugin = thunder.call("Nope.1.anything")["error"]
    assert no_plugin == (
        {"code": -31043, "message": "The service is not available."}
        if api == "R5"
        else {"code": -32603, "message": "Could not access requested service"}
    )
    assert thunder.call("Controller.1.nope")["error"] == {
        "code": -32601,
        "message": "Unknown method.",
    }
    assert thunder.call("OCDM.1.nope")["error"]["code"] == -32601
    controller = thunder.call("Controller.1.deactivate", {"callsign": "Controller"})["error"]
    assert controller["code"] == -32604
    status, body = thunder.post(b"{not json")
    if api == "R5":
        assert status == 400 and b'"code": -31050' in body
    else:
        assert (status, body) == (202, b"")


def test_kernel_command_line_overrides_the_configured_generation(
    reference: ReferenceFactory,
) -> None:
    thunder = reference.tree("R5")
    reference.write_config(thunder, cmdline="console=ttyAMA0 thunder.api=R4.4 quiet\n")
    reference.write_plugins(thunder)
    reference.start(thunder)
    thunder.api = "R4.4"
    thunder.wait_state("OCDM", "activated")
    assert "API R4.4 (from" in thunder.log()
    assert isinstance(thunder.result("Controller.1.status@OCDM"), list)


def test_a_slow_activation_does_not_block_other_requests(reference: ReferenceFactory) -> None:
    thunder = reference.tree("R5")
    sleeper = thunder.root / "SleepingHost"
    sleeper.write_text("#!/bin/sh\nexec sleep 60\n")
    sleeper.chmod(0o755)
    reference.write_config(thunder, {"hostapplication": str(sleeper), "announcetimeout": 3000})
    reference.write_plugins(thunder, startmode="Deactivated")
    reference.start(thunder)
    other = ReferenceThunder(root=thunder.root, api="R5", port=thunder.port)
    activation = threading.Thread(
        target=lambda: other.call("Controller.1.activate", {"callsign": "OCDM"})
    )
    activation.start()
    try:
        thunder.wait_state("OCDM", "Activation")
        started = time.monotonic()
        assert thunder.result("Controller.1.subsystems")[0]["subsystem"] == "Platform"
        assert time.monotonic() - started < 1.0
        error = thunder.call("Controller.1.activate", {"callsign": "OCDM"})["error"]
        assert (error["code"], error["message"]) == (-31012, "ERROR_INPROGRESS")
        error = thunder.call("Controller.1.deactivate", {"callsign": "OCDM"})["error"]
        assert error["code"] == -31005
    finally:
        activation.join()
        if other.connection is not None:
            other.connection.close()
    assert thunder.state("OCDM") == "Deactivated"
