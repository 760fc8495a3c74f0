"""ThunderClient over HttpTransport against a local server replaying Thunder R4.4 and R5."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest
from thunder_payloads import (
    COMRPC_LINK,
    OCDM_CONFIGURATION,
    OCDM_DRMS,
    PROCESSINFO_R4_4,
    R4_4,
    R5,
    ReplayThunder,
)

from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.thunder.client import (
    HttpTransport,
    ThunderClient,
    ThunderError,
    ThunderStateTimeout,
    ThunderUnreachable,
    core_code_of,
    normalise_state,
)


@pytest.fixture(params=[R4_4, R5])
def thunder(request: pytest.FixtureRequest) -> Iterator[ReplayThunder]:
    replay = ReplayThunder(request.param)
    yield replay
    replay.close()


@pytest.fixture
def client(thunder: ReplayThunder) -> ThunderClient:
    return ThunderClient(HttpTransport(thunder.url), timeout=5.0)


def replay_of(dialect: str) -> ReplayThunder:
    return ReplayThunder(dialect)


def test_dialect_is_detected_once_and_cached(thunder: ReplayThunder, client: ThunderClient) -> None:
    assert client.dialect == thunder.dialect
    probes = list(thunder.methods())
    assert client.dialect == thunder.dialect
    assert thunder.methods() == probes
    expected = ["Controller.1.services@Controller"]
    if thunder.dialect == R4_4:
        expected.append("Controller.1.processinfo")
    assert probes == expected


@pytest.mark.parametrize("dialect", [R4_4, R5])
def test_dialect_falls_back_to_the_state_spelling(dialect: str) -> None:
    replay = replay_of(dialect)
    replay.hidden = {"Controller.1.services", "Controller.1.processinfo"}
    try:
        assert ThunderClient(HttpTransport(replay.url)).dialect == dialect
        assert replay.methods()[-1] == "Controller.1.status@Controller"
    finally:
        replay.close()


def test_dialect_detection_failure_names_every_probe() -> None:
    replay = replay_of(R5)
    replay.hidden = {"Controller.1.services", "Controller.1.processinfo", "Controller.1.status"}
    try:
        with pytest.raises(ThunderError) as caught:
            _ = ThunderClient(HttpTransport(replay.url)).dialect
    finally:
        replay.close()
    assert "R4.4 or R5" in str(caught.value)
    for probe in ("services@Controller", "processinfo", "status@Controller"):
        assert probe in str(caught.value)


def test_activate_and_deactivate_return_none_and_change_the_state(
    thunder: ReplayThunder, client: ThunderClient
) -> None:
    assert client.activate("OCDM") is None
    assert client.state("OCDM") == "Activated"
    assert client.deactivate("OCDM") is None
    assert client.state("OCDM") == "Deactivated"
    sent = [r for r in thunder.requests if r["method"] == "Controller.1.activate"]
    assert sent[0]["params"] == {"callsign": "OCDM"}


def test_status_is_one_normalised_object(thunder: ReplayThunder, client: ThunderClient) -> None:
    entry = client.status("OCDM")
    assert entry["callsign"] == "OCDM"
    assert entry["state"] == "Deactivated"
    assert entry["configuration"] == OCDM_CONFIGURATION
    method = "services" if thunder.dialect == R5 else "status"
    assert thunder.methods()[-1] == f"Controller.1.{method}@OCDM"
    assert "params" not in thunder.requests[-1]


def test_resumed_counts_as_activated(client: ThunderClient) -> None:
    assert client.state("WebKitBrowser") == "Resumed"
    client.wait_for_state("WebKitBrowser", "Activated", timeout=1.0)


def test_plugins_lists_every_entry_normalised(client: ThunderClient) -> None:
    entries = {entry["callsign"]: entry["state"] for entry in client.plugins()}
    assert entries == {
        "Controller": "Activated",
        "OCDM": "Deactivated",
        "WebKitBrowser": "Resumed",
    }


def test_plugins_accepts_r5s_single_object(thunder: ReplayThunder, client: ThunderClient) -> None:
    thunder.states = {"Controller": "Activated"}
    assert [entry["callsign"] for entry in client.plugins()] == ["Controller"]


@pytest.mark.parametrize(
    ("dialect", "code", "message"),
    [(R5, -31002, "The service is not active."), (R4_4, 2, "Service is not active")],
)
def test_inactive_plugin_error_carries_code_and_core_code(
    dialect: str, code: int, message: str
) -> None:
    replay = replay_of(dialect)
    try:
        with pytest.raises(ThunderError) as caught:
            ThunderClient(HttpTransport(replay.url)).call("OCDM.1.drms")
    finally:
        replay.close()
    error = caught.value
    assert (error.code, error.core_code, error.message) == (code, 2, message)
    assert error.method == "OCDM.1.drms"
    assert "ERROR_UNAVAILABLE" in str(error)


def test_plugin_call_works_once_activated(client: ThunderClient) -> None:
    client.activate("OCDM")
    assert client.call("OCDM.1.drms") == OCDM_DRMS


def test_unknown_callsign_is_error_unknown_key(
    thunder: ReplayThunder, client: ThunderClient
) -> None:
    with pytest.raises(ThunderError) as caught:
        client.status("NoSuchPlugin")
    expected = -31022 if thunder.dialect == R5 else 22
    assert (caught.value.code, caught.value.core_code) == (expected, 22)


def test_unknown_method_has_no_core_code(client: ThunderClient) -> None:
    with pytest.raises(ThunderError) as caught:
        client.call("Controller.1.nosuchmethod")
    assert (caught.value.code, caught.value.core_code) == (-32601, None)
    assert caught.value.message == "Unknown method."


def test_processinfo_exists_in_r4_4_only(thunder: ReplayThunder, client: ThunderClient) -> None:
    if thunder.dialect == R4_4:
        assert client.call("Controller.1.processinfo") == PROCESSINFO_R4_4
    else:
        with pytest.raises(ThunderError, match="-32601"):
            client.call("Controller.1.processinfo")


def test_configuration_get_and_set(thunder: ReplayThunder, client: ThunderClient) -> None:
    assert client.configuration("OCDM") == OCDM_CONFIGURATION
    changed = {**OCDM_CONFIGURATION, "sharepath": "/tmp"}
    assert client.set_configuration("OCDM", changed) is None
    assert thunder.requests[-1]["params"] == changed
    assert client.configuration("OCDM") == changed
    assert client.configuration("WebKitBrowser") == {}


def test_configuration_set_while_active_is_a_general_error(client: ThunderClient) -> None:
    client.activate("OCDM")
    with pytest.raises(ThunderError) as caught:
        client.set_configuration("OCDM", {"connector": "/tmp/other"})
    assert caught.value.core_code == 1


def test_subsystems_become_a_dict(client: ThunderClient) -> None:
    assert client.subsystems() == {
        "Platform": True,
        "Network": True,
        "Security": False,
        "Decryption": False,
    }


def test_links_show_the_comrpc_host_once_activated(client: ThunderClient) -> None:
    assert all(link["state"] != "COMRPC" for link in client.links())
    client.activate("OCDM")
    assert COMRPC_LINK in client.links()


def test_version_of_each_generation(thunder: ReplayThunder, client: ThunderClient) -> None:
    assert client.version() == ("5.3.0" if thunder.dialect == R5 else "4.4.3")


def test_version_falls_back_to_the_older_name_and_then_none() -> None:
    replay = replay_of(R5)
    try:
        replay.hidden = {"Controller.1.framework"}
        assert ThunderClient(HttpTransport(replay.url)).version() == "5.3.0"
        replay.hidden = {"Controller.1.framework", "Controller.1.version"}
        assert ThunderClient(HttpTransport(replay.url)).version() is None
    finally:
        replay.close()


def test_the_version_read_once_is_kept_for_when_thunder_no_longer_answers() -> None:
    replay = replay_of(R5)
    try:
        client = ThunderClient(HttpTransport(replay.url))
        assert client.version() == "5.3.0"
        replay.hidden = {"Controller.1.framework", "Controller.1.version"}
        assert client.version() == "5.3.0"
    finally:
        replay.close()


def test_requests_have_increasing_ids_and_no_params_for_getters(
    thunder: ReplayThunder, client: ThunderClient
) -> None:
    client.subsystems()
    client.links()
    ids = [request["id"] for request in thunder.requests]
    assert ids == sorted(set(ids)) and all(isinstance(i, int) for i in ids)
    assert all(request["jsonrpc"] == "2.0" for request in thunder.requests)
    assert all("params" not in request for request in thunder.requests)


def test_wait_for_state_polls_until_reached(thunder: ReplayThunder, client: ThunderClient) -> None:
    thunder.states["OCDM"] = "Activation"
    thunder.pending["OCDM"] = deque(["Activation", "Activation", "Activated"])
    client.wait_for_state("OCDM", "activated", timeout=5.0)
    assert client.state("OCDM") == "Activated"


def test_wait_for_state_times_out_saying_expected_and_last_seen(client: ThunderClient) -> None:
    started = time.monotonic()
    with pytest.raises(ThunderStateTimeout) as caught:
        client.wait_for_state("OCDM", "Activated", timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 2.0
    assert isinstance(caught.value, TimeoutError)
    assert "Activated" in str(caught.value) and "'Deactivated'" in str(caught.value)
    assert (caught.value.expected, caught.value.last_seen) == ("Activated", "Deactivated")


def test_wait_for_state_rejects_an_unknown_state(client: ThunderClient) -> None:
    with pytest.raises(ThunderContainerError, match="Running"):
        client.wait_for_state("OCDM", "Running", timeout=0.1)


def test_keep_alive_reuses_one_connection(thunder: ReplayThunder, client: ThunderClient) -> None:
    for _ in range(5):
        client.state("OCDM")
    assert len(thunder.requests) > 5
    assert thunder.connections == 1


def test_server_closing_each_connection_still_works(
    thunder: ReplayThunder, client: ThunderClient
) -> None:
    thunder.close_each = True
    for _ in range(3):
        assert client.state("OCDM") == "Deactivated"
    assert thunder.connections == len(thunder.requests)


def test_a_stale_kept_alive_connection_is_replaced(thunder: ReplayThunder) -> None:
    transport = HttpTransport(thunder.url)
    client = ThunderClient(transport)
    client.call("Controller.1.subsystems")
    assert transport._connection is not None and transport._connection.sock is not None
    # What Thunder does to an idle connection: close it from its side.
    transport._connection.sock.shutdown(socket.SHUT_RDWR)
    assert client.call("Controller.1.subsystems")
    assert thunder.connections == 2


def test_http_status_of_json_rpc_errors_does_not_matter() -> None:
    for status in (200, 202, 400, 500):
        replay = ReplayThunder(R5, error_status=status)
        try:
            with pytest.raises(ThunderError) as caught:
                ThunderClient(HttpTransport(replay.url)).call("OCDM.1.drms")
            assert caught.value.code == -31002
        finally:
            replay.close()


@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [
        (200, b"<html>hello</html>", "<html>hello"),
        (200, b"", "''"),
        (200, b'{"jsonrpc":"2.0"}', "not a JSON-RPC response"),
        (200, b"[1, 2]", "not a JSON-RPC response"),
        (500, b"<h1>Internal</h1>", "HTTP 500"),
        (404, b"Not Found", "HTTP 404"),
    ],
)
def test_what_is_not_thunder_is_unreachable(
    thunder: ReplayThunder, status: int, body: bytes, shown: str
) -> None:
    thunder.override = lambda request: (status, body)
    with pytest.raises(ThunderUnreachable) as caught:
        ThunderClient(HttpTransport(thunder.url)).call("Controller.1.subsystems")
    assert shown in str(caught.value)
    assert thunder.url in str(caught.value)


def test_a_long_garbage_body_is_cut_to_200_bytes(thunder: ReplayThunder) -> None:
    thunder.override = lambda request: (200, b"x" * 5000)
    with pytest.raises(ThunderUnreachable) as caught:
        ThunderClient(HttpTransport(thunder.url)).call("Controller.1.subsystems")
    assert "x" * 200 in str(caught.value) and "x" * 201 not in str(caught.value)
    assert "5000 bytes" in str(caught.value)


def test_a_reply_to_another_id_is_refused(thunder: ReplayThunder) -> None:
    def other_id(request: dict[str, Any]) -> tuple[int, bytes]:
        return 200, json.dumps({"jsonrpc": "2.0", "id": request["id"] + 7, "result": 1}).encode()

    thunder.override = other_id
    with pytest.raises(ThunderUnreachable, match=r"request id 1 .* with id 8"):
        ThunderClient(HttpTransport(thunder.url)).call("Controller.1.subsystems")


def test_connection_refused_names_url_and_fix() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/jsonrpc"
    with pytest.raises(ThunderUnreachable) as caught:
        ThunderClient(HttpTransport(url)).call("Controller.1.subsystems")
    assert "connection refused" in str(caught.value)
    assert url in str(caught.value) and "--thunder-jsonrpc" in str(caught.value)


def test_a_silent_server_times_out_within_the_scaled_timeout(thunder: ReplayThunder) -> None:
    thunder.hang = True
    client = ThunderClient(HttpTransport(thunder.url, timeout_factor=2.0), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ThunderUnreachable, match=r"no answer within 0\.6 s"):
        client.call("Controller.1.subsystems")
    assert 0.6 <= time.monotonic() - started < 1.5


def test_a_listener_that_never_accepts_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/jsonrpc"
        started = time.monotonic()
        with pytest.raises(ThunderUnreachable):
            ThunderClient(HttpTransport(url), timeout=0.3).call("Controller.1.links")
        assert time.monotonic() - started < 1.5


def test_calls_from_two_threads_share_the_transport_safely(
    thunder: ReplayThunder, client: ThunderClient
) -> None:
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            for _ in range(10):
                assert client.state("OCDM") == "Deactivated"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.parametrize(
    ("code", "core"),
    [(-31002, 2), (-31022, 22), (2, 2), (22, 22), (-32601, None), (-32000, None), (-31501, None)],
)
def test_core_code_of(code: int, core: int | None) -> None:
    assert core_code_of(code) == core


@pytest.mark.parametrize(
    ("seen", "normal"),
    [("activated", "Activated"), ("deactivation", "Deactivation"), ("Resumed", "Resumed")],
)
def test_normalise_state(seen: str, normal: str) -> None:
    assert normalise_state(seen) == normal


@pytest.mark.parametrize("url", ["https://1.2.3.4/jsonrpc", "127.0.0.1:80", "http://:80/x"])
def test_a_bad_url_says_what_is_expected(url: str) -> None:
    with pytest.raises(ThunderContainerError, match="http://HOST"):
        HttpTransport(url)


def test_a_bad_callsign_is_refused_before_sending(thunder: ReplayThunder) -> None:
    client = ThunderClient(HttpTransport(thunder.url))
    with pytest.raises(ThunderContainerError, match="callsign"):
        client.activate("")
    assert thunder.requests == []


def test_a_url_without_a_path_means_jsonrpc(thunder: ReplayThunder) -> None:
    client = ThunderClient(HttpTransport(f"http://127.0.0.1:{thunder.port}"))
    assert client.dialect == thunder.dialect


def test_params_that_are_not_json_are_refused_before_sending(thunder: ReplayThunder) -> None:
    client = ThunderClient(HttpTransport(thunder.url))
    with pytest.raises(ThunderContainerError, match="can't be sent as JSON"):
        client.call("Controller.1.activate", {"callsign": object()})
    assert thunder.requests == []


def test_a_url_string_is_enough_for_a_client(thunder: ReplayThunder) -> None:
    client = ThunderClient(thunder.url, timeout=5.0)
    assert client.endpoint == thunder.url
    assert client.dialect == thunder.dialect
    assert client.state("OCDM") in {"Activated", "Deactivated"}


def test_the_package_root_gives_what_a_test_author_needs() -> None:
    import pytest_thunder_container as package

    for name in ("ThunderClient", "ThunderError", "Verify", "ContainerDeployment", "Settings"):
        assert hasattr(package, name), name
    with pytest.raises(ThunderContainerError, match="not of the form http://HOST"):
        package.ThunderClient("ftp://nowhere/jsonrpc")
