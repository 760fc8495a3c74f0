"""End to end: real Thunder in the reference rpi3 image answers, with OCDM and ClearKey."""

from __future__ import annotations

import json

import pytest

from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.deploy import ContainerDeployment

pytestmark = pytest.mark.e2e


def test_thunder_answers_and_its_dialect_is_detected(thunder_jsonrpc: ThunderClient) -> None:
    assert thunder_jsonrpc.dialect in ("R5", "R4.4")
    # The worker's session-wide deployment may have left OCDM deactivated (the e2e tests share
    # one target per worker), and Thunder answers before its start-up activations are done.
    if thunder_jsonrpc.state("OCDM") == "Deactivated":
        thunder_jsonrpc.activate("OCDM", timeout=60)
    thunder_jsonrpc.wait_for_state("OCDM", "Activated", timeout=60)
    drms = thunder_jsonrpc.call("OCDM.1.drms")
    clearkey = next(drm for drm in drms if drm["name"] == "ClearKey")
    assert "org.w3.clearkey" in clearkey["keysystems"]
    # Real Thunder's own version, not a stand-in's: 5.3.x on R5, 4.4.x on R4.4.
    version = thunder_jsonrpc.version()
    assert version and version.split(".")[:2] in (["5", "3"], ["4", "4"]), version


def test_thunders_runc_runs_from_the_images_one_sealed_copy(
    thunder_deployment: ContainerDeployment, thunder_shell: Shell
) -> None:
    """/usr/bin/runc of the reference image runs runc from the sealed copy S05runc made at boot:
    the container's `runc init` is that very file, not a clone runc made for it (a clone reads
    /memfd:runc_cloned:/proc/self/exe, and cost about 0.6 s of each create under emulation)."""
    copy = thunder_shell.check("cat /run/runc.sealed").stdout.strip()
    thunder_deployment.use_container()
    try:
        state = json.loads(thunder_shell.check("runc state OCDM").stdout)
        init = f"/proc/{state['pid']}/exe"
        assert thunder_shell.check(f"readlink {init}").stdout.strip() == "/memfd:runc (deleted)"
        inodes = thunder_shell.check(f"stat -L -c %i {init} {copy}").stdout.split()
        assert len(inodes) == 2 and inodes[0] == inodes[1], inodes
    finally:
        thunder_deployment.use_local()
