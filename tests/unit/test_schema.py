"""The OCI runtime-spec schema, read from Debian's package: present, absent, and what it reports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_thunder_container.oci.config import load_config, tutorial_config
from pytest_thunder_container.oci.schema import (
    DEBIAN_PACKAGE,
    DEBIAN_SCHEMA_DIR,
    SKIPPED_MESSAGE,
    SchemaUnavailable,
    json_path,
    load_oci_schema,
)

DATA = Path(__file__).parent / "data"
needs_schema = pytest.mark.skipif(
    not (DEBIAN_SCHEMA_DIR / "config-schema.json").is_file(),
    reason=f"{DEBIAN_PACKAGE} is not installed",
)


@pytest.fixture(scope="module")
def schema():
    return load_oci_schema()


@needs_schema
def test_the_debian_schema_reports_its_versions(schema) -> None:
    dpkg = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", DEBIAN_PACKAGE],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    assert schema.source.package_version == dpkg.stdout.strip()
    assert schema.source.spec_version == "1.0.2-dev"
    assert schema.source.describe() == (
        f"runtime-spec 1.0.2-dev (Debian {DEBIAN_PACKAGE} {dpkg.stdout.strip()})"
    )


@needs_schema
@pytest.mark.parametrize(
    "name",
    [
        "tutorial-config.json",
        "runc-1.1.5-spec-cgroupv1-host.json",
        "runc-1.1.5-spec-cgroupv2-host.json",
    ],
)
def test_the_reference_configs_are_valid(schema, name: str) -> None:
    assert schema.violations(load_config(DATA / name)) == []


@needs_schema
def test_violations_carry_the_json_path_and_the_schema_message(schema) -> None:
    config = tutorial_config()
    del config["ociVersion"]
    config["process"]["env"] = "PATH=/bin"
    config["mounts"][1]["destination"] = 3
    config["linux"]["namespaces"].append({"type": "bogus"})
    found = {violation.path: violation.message for violation in schema.violations(config)}
    assert found == {
        "ociVersion": "'ociVersion' is a required property",
        "process.env": "'PATH=/bin' is not of type 'array'",
        "mounts[1].destination": "3 is not of type 'string'",
        "linux.namespaces[5].type": found["linux.namespaces[5].type"],
    }
    assert "'bogus' is not one of" in found["linux.namespaces[5].type"]


@needs_schema
def test_refs_into_sibling_files_are_followed(schema) -> None:
    config = tutorial_config()
    config["linux"]["resources"]["devices"][0]["access"] = 7
    paths = [violation.path for violation in schema.violations(config)]
    assert paths == ["linux.resources.devices[0].access"]


def test_an_empty_folder_means_the_schema_is_absent(tmp_path: Path) -> None:
    with pytest.raises(SchemaUnavailable) as raised:
        load_oci_schema(tmp_path)
    assert str(raised.value).startswith(SKIPPED_MESSAGE)
    assert f"OCI schema check skipped: install {DEBIAN_PACKAGE}" == SKIPPED_MESSAGE


def test_an_unreadable_schema_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "config-schema.json").write_text("{not json")
    with pytest.raises(SchemaUnavailable, match=r"can't read .*config-schema\.json"):
        load_oci_schema(tmp_path)


@needs_schema
def test_a_schema_outside_the_package_says_where_it_came_from(tmp_path: Path) -> None:
    # A temporary copy, made at test time only: the repository never holds the schema.
    folder = tmp_path / "runtime-spec" / "schema"
    shutil.copytree(DEBIAN_SCHEMA_DIR, folder)
    schema = load_oci_schema(folder)
    assert schema.source.package_version is None
    assert schema.source.spec_version is None
    assert schema.source.describe() == f"runtime-spec (schema from {folder})"
    assert schema.violations({"ociVersion": 1})[0].path == "ociVersion"


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        ([], "(top level)"),
        (["process", "env", 3], "process.env[3]"),
        (["linux", "namespaces"], "linux.namespaces"),
        (["mounts", 0, "options", 1], "mounts[0].options[1]"),
    ],
)
def test_json_path(parts: list, text: str) -> None:
    assert json_path(parts) == text
