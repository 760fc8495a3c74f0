"""What the harness must be right about on real Thunder (issue 10, item 3), each shown on the
reference image's real R5.3.0: the host named after its callsign, the search path read from the
host's own arguments, a shadowing bundle refused, create + exec, the kill times, a COMRPC link
without the callsign's name, OCDM's own answers and the version."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator

import pytest

from pytest_thunder_container.conformance.leftovers import read_kill_times, wait_for_no_leftovers
from pytest_thunder_container.errors import DeployError
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.deploy import ContainerDeployment
from pytest_thunder_container.thunder.hosts import find_plugin_hosts

pytestmark = pytest.mark.e2e
CALLSIGN = "OCDM"


@pytest.fixture
def in_container(thunder_deployment: ContainerDeployment) -> Iterator[ContainerDeployment]:
    """OCDM running in its container for one test, back in Local after it."""
    thunder_deployment.use_container()
    try:
        yield thunder_deployment
    finally:
        thunder_deployment.use_local()


def test_the_host_is_found_although_its_comm_is_the_callsign(
    in_container: ContainerDeployment, thunder_shell: Shell
) -> None:
    (host,) = find_plugin_hosts(thunder_shell, CALLSIGN)
    comm = thunder_shell.check(f"cat /proc/{host.pid}/comm").stdout.strip()
    exe = thunder_shell.check(f"readlink /proc/{host.pid}/exe").stdout.strip()
    assert comm == CALLSIGN  # real hosts rename themselves: a lookup by comm finds nothing
    assert "ThunderPlugin" in exe and host.option("-C") == CALLSIGN and host.name == CALLSIGN


def test_the_search_path_comes_from_the_hosts_own_arguments(
    in_container: ContainerDeployment,
) -> None:
    found = in_container.find_search_paths()
    assert found is not None
    assert found.bundles == (
        "/tmp/OCDM/Container",  # -v: the volatile path
        "/var/Thunder/OCDM/Container",  # -p: the persistent path
        "/usr/share/Thunder/OCDM/Container",  # -d: the data path, keyed by classname
    ), found.describe()
    assert found.source == "the -v/-p/-d arguments of OCDM's plugin host"
    assert in_container.bundle == found.default_bundle()


def test_a_config_json_earlier_on_the_search_path_is_refused(
    thunder_deployment: ContainerDeployment, thunder_shell: Shell
) -> None:
    earlier = "/tmp/OCDM/Container"
    thunder_shell.check(f"mkdir -p {earlier} && echo '{{}}' > {earlier}/config.json")
    try:
        with pytest.raises(DeployError, match="would run instead of the deployed one"):
            thunder_deployment.use_container()
    finally:
        thunder_shell.check(f"rm -rf {shlex.quote(earlier)}")
    assert thunder_deployment.thunder.state(CALLSIGN) != "Activation"


def test_the_container_is_created_and_the_host_execed_into_it(
    in_container: ContainerDeployment, thunder_shell: Shell
) -> None:
    state = json.loads(thunder_shell.check(f"runc state {CALLSIGN}").stdout)
    assert state["status"] == "created"  # create + exec: process.args never runs
    (host,) = find_plugin_hosts(thunder_shell, CALLSIGN)
    assert host.pid != state["pid"]


def test_leftovers_are_judged_after_the_kill_times_of_thunders_config(
    thunder_deployment: ContainerDeployment, thunder_shell: Shell
) -> None:
    config = json.loads(thunder_shell.check("cat /etc/Thunder/config.json").stdout)
    kill_times = read_kill_times(thunder_shell)
    assert kill_times.source == "/etc/Thunder/config.json"
    assert (kill_times.soft, kill_times.hard) == (
        config.get("softkillcheckwaittime", 10),
        config.get("hardkillcheckwaittime", 4),
    )
    thunder_deployment.use_container()
    thunder_deployment.deactivate()
    # R5 answers the deactivate at once and deletes the container seconds later.
    waited = wait_for_no_leftovers(thunder_shell, CALLSIGN, kill_times, 1.0)
    assert not waited.left, waited.describe()
    thunder_deployment.use_local()


def test_a_comrpc_link_is_recognised_without_the_callsigns_name(
    in_container: ContainerDeployment, thunder_jsonrpc: ThunderClient
) -> None:
    links = thunder_jsonrpc.call("Controller.1.links")
    comrpc = [link for link in links if str(link.get("state", "")).upper() == "COMRPC"]
    assert comrpc, links
    assert all(link.get("name") != CALLSIGN for link in comrpc)  # named for the communicator


def test_real_ocdm_answers_an_unknown_key_system_with_an_empty_list(
    thunder_jsonrpc: ThunderClient,
) -> None:
    thunder_jsonrpc.wait_for_state(CALLSIGN, "Activated", 60)
    assert thunder_jsonrpc.call("OCDM.1.keysystems@NoSuchDrm") == []
    assert "org.w3.clearkey" in thunder_jsonrpc.call("OCDM.1.keysystems@ClearKey")


def test_the_version_is_read_from_thunder(thunder_jsonrpc: ThunderClient) -> None:
    assert thunder_jsonrpc.version() == "5.3.0"
    assert thunder_jsonrpc.dialect == "R5"
