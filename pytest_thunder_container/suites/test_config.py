"""CFG: the deployed config.json is a valid OCI config for this target, where Thunder finds it."""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify


@pytest.mark.requirement("TC-CFG-001")
def test_config_is_valid_against_the_oci_schema(thunder_static: Verify) -> None:
    thunder_static("TC-CFG-001")


@pytest.mark.requirement("TC-CFG-002")
def test_platform_matches_the_target(thunder_static: Verify) -> None:
    thunder_static("TC-CFG-002")


@pytest.mark.requirement("TC-CFG-003")
def test_root_path_is_set(thunder_static: Verify) -> None:
    thunder_static("TC-CFG-003")


@pytest.mark.requirement("TC-CFG-003")
def test_rootfs_exists_in_the_bundle(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-CFG-003")


@pytest.mark.requirement("TC-CFG-004")
def test_oci_version_is_one_runc_implements(thunder_static: Verify) -> None:
    thunder_static("TC-CFG-004")


@pytest.mark.requirement("TC-CFG-005")
def test_thunder_started_the_deployed_bundle(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-CFG-005")
