"""config.json loading, the tutorial's example, and the Thunder adjustments."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path

import pytest

from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.oci.config import (
    EnvEntry,
    adjust_for_thunder,
    communicator_path,
    dump_config,
    env_entries,
    load_config,
    mount_at,
    normalise_arch,
    tutorial_config,
)

DATA = Path(__file__).parent / "data"
SEED = Path("/work/shared/seeds/thunder-runc-container-tutorial.txt")
RUNC_SPEC = DATA / "runc-1.1.5-spec-cgroupv2-host.json"


def _env(config: dict) -> dict[str, str]:
    return {entry.name: entry.value for entry in env_entries(config)}


# ------------------------------------------------------------------------------------ load_config


def test_load_config_reads_an_object(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"ociVersion": "1.0.2-dev"}')
    assert load_config(path) == {"ociVersion": "1.0.2-dev"}


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ThunderContainerError, match=r"absent\.json: no such file"):
        load_config(tmp_path / "absent.json")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ThunderContainerError, match="is a directory"):
        load_config(tmp_path)


def test_broken_json_gives_its_position(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "ociVersion": "1.0.2"\n  "root": {}\n}')
    with pytest.raises(ThunderContainerError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: not JSON: Expecting ',' delimiter")
    assert "line 3 column 3" in message


@pytest.mark.parametrize(
    ("text", "kind"), [("[1, 2]", "an array"), ('"x"', "a string"), ("3", "a number")]
)
def test_json_that_is_not_an_object_is_refused(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ThunderContainerError, match=f"is {kind}, but a config.json must be"):
        load_config(path)


def test_binary_garbage_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(ThunderContainerError, match="not JSON: not UTF-8"):
        load_config(path)


def test_dump_config_round_trips() -> None:
    config = tutorial_config()
    text = dump_config(config)
    assert text.endswith("}\n") and "\t" in text
    assert json.loads(text) == config


# ---------------------------------------------------------------------------------- tutorial data


def test_tutorial_config_is_the_package_data_verbatim() -> None:
    packaged = resources.files("pytest_thunder_container.oci").joinpath(
        "data", "tutorial-config.json"
    )
    assert packaged.read_text() == (DATA / "tutorial-config.json").read_text()
    assert tutorial_config() == json.loads(packaged.read_text())


@pytest.mark.skipif(not SEED.is_file(), reason="the tutorial seed is not on this machine")
def test_tutorial_config_is_the_example_of_the_tutorial() -> None:
    text = SEED.read_text()
    example = text[text.index('{\n    "ociVersion"') :]
    assert json.loads(example) == tutorial_config()


def test_tutorial_config_is_a_fresh_copy_each_time() -> None:
    first = tutorial_config()
    first["process"]["env"].clear()
    assert tutorial_config()["process"]["env"]


def test_tutorial_config_has_what_the_tutorial_says() -> None:
    config = tutorial_config()
    assert config["process"]["terminal"] is False
    assert config["mounts"][0] == {
        "source": "/tmp",
        "destination": "/tmp",
        "options": ["rw", "bind"],
    }
    assert _env(config)["COMMUNICATOR_CONNECTOR"] == "/tmp/communicator"
    assert "platform" not in config


# ---------------------------------------------------------------------------- adjust_for_thunder


@pytest.fixture
def runc_spec() -> dict:
    return load_config(RUNC_SPEC)


def test_r5_adjustment_applies_the_tutorial_steps(runc_spec: dict) -> None:
    adjusted = adjust_for_thunder(runc_spec, dialect="R5")
    assert adjusted["mounts"][0] == {
        "source": "/tmp",
        "destination": "/tmp",
        "options": ["rw", "bind"],
    }
    assert adjusted["mounts"][1:] == runc_spec["mounts"]
    assert adjusted["process"]["terminal"] is False
    env = _env(adjusted)
    assert env["COMMUNICATOR_CONNECTOR"] == "$COMMUNICATOR_CONNECTOR"
    assert env["MESSAGE_DISPATCHER_CONFIG"] == "$MESSAGE_DISPATCHER_CONFIG"
    assert env["PATH"] == _env(runc_spec)["PATH"]


def test_adjustment_leaves_its_input_untouched(runc_spec: dict) -> None:
    before = copy.deepcopy(runc_spec)
    adjusted = adjust_for_thunder(runc_spec, dialect="R5")
    assert runc_spec == before
    adjusted["mounts"][2]["options"].append("x")
    assert runc_spec == before


def test_r44_adjustment_writes_literal_values() -> None:
    host_env = {"MESSAGE_DISPATCHER_CONFIG": "/tmp/MessageDispatcher|0|8192"}
    adjusted = adjust_for_thunder(tutorial_config(), dialect="R4.4", host_env=host_env)
    env = _env(adjusted)
    assert env["COMMUNICATOR_CONNECTOR"] == "/tmp/communicator"
    assert env["MESSAGE_DISPATCHER_CONFIG"] == "/tmp/MessageDispatcher|0|8192"


def test_r44_without_a_dispatcher_value_leaves_it_out_rather_than_a_dead_reference(
    runc_spec: dict,
) -> None:
    r5 = adjust_for_thunder(runc_spec, dialect="R5")
    r44 = adjust_for_thunder(r5, dialect="R4.4", communicator="/run/thunder/communicator")
    env = _env(r44)
    assert env["COMMUNICATOR_CONNECTOR"] == "/run/thunder/communicator"
    assert "MESSAGE_DISPATCHER_CONFIG" not in env


def test_r44_takes_the_communicator_from_host_env(runc_spec: dict) -> None:
    host_env = {"COMMUNICATOR_CONNECTOR": "/tmp/other"}
    adjusted = adjust_for_thunder(runc_spec, dialect="R4.4", host_env=host_env)
    assert _env(adjusted)["COMMUNICATOR_CONNECTOR"] == "/tmp/other"


def test_obsolete_trace_variables_go_and_nothing_is_duplicated() -> None:
    adjusted = adjust_for_thunder(tutorial_config(), dialect="R5")
    names = [entry.name for entry in env_entries(adjusted)]
    assert "TRACE_FILENAME" not in names and "TRACE_DOORBELL" not in names
    assert names.count("COMMUNICATOR_CONNECTOR") == 1
    assert names == ["PATH", "TERM", "COMMUNICATOR_CONNECTOR", "MESSAGE_DISPATCHER_CONFIG"]
    assert [m["destination"] for m in adjusted["mounts"]].count("/tmp") == 1


def test_an_existing_tmp_mount_is_replaced_in_place(runc_spec: dict) -> None:
    runc_spec["mounts"].append({"destination": "/tmp/", "type": "tmpfs", "source": "tmpfs"})
    adjusted = adjust_for_thunder(runc_spec, dialect="R5")
    assert len(adjusted["mounts"]) == len(runc_spec["mounts"])
    assert adjusted["mounts"][-1] == {
        "source": "/tmp",
        "destination": "/tmp",
        "options": ["rw", "bind"],
    }


def test_a_communicator_outside_tmp_gets_its_folder_bound(runc_spec: dict) -> None:
    adjusted = adjust_for_thunder(runc_spec, dialect="R5", communicator="/run/thunder/comm|0777")
    found = mount_at(adjusted, "/run/thunder")
    assert found is not None
    assert found[1] == {
        "source": "/run/thunder",
        "destination": "/run/thunder",
        "options": ["rw", "bind"],
    }
    assert mount_at(adjusted, "/tmp") is not None


def test_platform_is_fixed_only_when_present(runc_spec: dict) -> None:
    assert "platform" not in adjust_for_thunder(runc_spec, dialect="R5")
    runc_spec["platform"] = {"os": "linux", "arch": "amd64"}
    adjusted = adjust_for_thunder(runc_spec, dialect="R5", arch="aarch64")
    assert adjusted["platform"] == {"os": "linux", "arch": "arm64"}


def test_terminal_is_set_false_even_when_absent() -> None:
    assert adjust_for_thunder({}, dialect="R5")["process"]["terminal"] is False


def test_an_unknown_dialect_is_refused(runc_spec: dict) -> None:
    with pytest.raises(ThunderContainerError, match="unknown Thunder dialect 'R6'"):
        adjust_for_thunder(runc_spec, dialect="R6")


def test_a_config_without_a_usable_env_is_refused() -> None:
    with pytest.raises(ThunderContainerError, match=r"process\.env an array"):
        adjust_for_thunder({"process": {"env": "PATH=/bin"}}, dialect="R5")


# ------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("connector", "path"),
    [
        ("/tmp/communicator", "/tmp/communicator"),
        ("/tmp/communicator|0777", "/tmp/communicator"),
        ("/tmp//x/../communicator", "/tmp/communicator"),
        ("127.0.0.1:62000", None),
    ],
)
def test_communicator_path(connector: str, path: str | None) -> None:
    assert communicator_path(connector) == path


@pytest.mark.parametrize(
    ("arch", "oci"), [("aarch64", "arm64"), ("ARM64", "arm64"), ("x86_64", "amd64"), ("arm", "arm")]
)
def test_normalise_arch(arch: str, oci: str) -> None:
    assert normalise_arch(arch) == oci


def test_env_entries_skip_malformed_ones_and_know_references() -> None:
    config = {"process": {"env": ["A=1", 5, "NOEQUALS", "B=$C", "D=$", "E=${F}"]}}
    entries = env_entries(config)
    assert [(e.index, e.name) for e in entries] == [(0, "A"), (3, "B"), (4, "D"), (5, "E")]
    assert [e.referenced_variable for e in entries] == [None, "C", None, "F"]
    assert EnvEntry(0, "X", "plain").referenced_variable is None
