"""The static rules: each fires on a config broken for it, none on a good one; and the lint CLI."""

from __future__ import annotations

import argparse
import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_thunder_container.cli import main as cli
from pytest_thunder_container.cli.lint import add_arguments
from pytest_thunder_container.conformance.catalogue import load_catalogue
from pytest_thunder_container.conformance.static_rules import (
    LintContext,
    check_config,
    lint_config,
    run_rule,
    static_rules,
)
from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.oci.config import (
    adjust_for_thunder,
    load_config,
    tutorial_config,
    with_seccomp,
)
from pytest_thunder_container.oci.schema import DEBIAN_SCHEMA_DIR, SchemaUnavailable

DATA = Path(__file__).parent / "data"
RUNC_SPEC_V1 = DATA / "runc-1.1.5-spec-cgroupv1-host.json"
RUNC_SPEC_V2 = DATA / "runc-1.1.5-spec-cgroupv2-host.json"
HAS_SCHEMA = (DEBIAN_SCHEMA_DIR / "config-schema.json").is_file()
CATALOGUE = load_catalogue()
STATIC_IDS = tuple(static_rules(CATALOGUE))
TUTORIAL_SHOULDS = {"TC-ENV-002", "TC-ENV-003", "TC-NS-006", "TC-CAP-003", "TC-PROC-005"}
RUNC_SPEC_FINDINGS = {
    "TC-COM-001",
    "TC-ENV-001",
    "TC-ENV-002",
    "TC-PROC-001",
    "TC-MNT-001",
    "TC-CAP-003",  # runc 1.1.5 fills the ambient set, like the tutorial's example
    "TC-PROC-005",  # runc spec writes no seccomp profile
}


@pytest.fixture(scope="module")
def contexts() -> dict[str | None, LintContext]:
    return {
        dialect: LintContext.create(CATALOGUE, dialect=dialect) for dialect in (None, "R4.4", "R5")
    }


def clean_config() -> dict[str, Any]:
    """The tutorial's config with its SHOULD findings fixed: no rule fires on it (R5 or unknown)."""
    config = with_seccomp(adjust_for_thunder(tutorial_config(), dialect="R5"))
    config["linux"]["namespaces"].append({"type": "cgroup"})
    del config["process"]["capabilities"]["ambient"]
    return config


def ids(findings: list) -> set[str]:
    return {finding.id for finding in findings}


# ------------------------------------------------------------------ the reference configurations


@pytest.mark.parametrize("dialect", [None, "R4.4", "R5"])
def test_tutorial_config_has_no_must_and_the_expected_shoulds(contexts, dialect) -> None:
    findings = check_config(tutorial_config(), contexts[dialect])
    assert ids(findings) == TUTORIAL_SHOULDS
    assert {finding.level for finding in findings} == {"SHOULD"}


@pytest.mark.parametrize("dialect", [None, "R4.4", "R5"])
def test_runc_spec_on_a_cgroup_v2_target_gives_the_tutorial_adjustments(contexts, dialect) -> None:
    assert ids(check_config(load_config(RUNC_SPEC_V2), contexts[dialect])) == RUNC_SPEC_FINDINGS


def test_runc_spec_on_a_cgroup_v1_host_also_lacks_the_cgroup_namespace(contexts) -> None:
    findings = check_config(load_config(RUNC_SPEC_V1), contexts[None])
    assert ids(findings) == RUNC_SPEC_FINDINGS | {"TC-NS-006"}


@pytest.mark.parametrize("dialect", ["R4.4", "R5"])
def test_adjusting_runc_spec_leaves_no_must(contexts, dialect) -> None:
    adjusted = adjust_for_thunder(load_config(RUNC_SPEC_V2), dialect=dialect)
    findings = check_config(adjusted, contexts[dialect])
    assert [f for f in findings if f.level == "MUST"] == []


@pytest.mark.parametrize("dialect", [None, "R5"])
def test_no_rule_fires_on_the_clean_config(contexts, dialect) -> None:
    assert check_config(clean_config(), contexts[dialect]) == []


def test_a_platform_for_the_host_is_caught(contexts) -> None:
    config = tutorial_config()
    config["platform"] = {"os": "linux", "arch": "amd64"}
    findings = [f for f in check_config(config, contexts[None]) if f.id == "TC-CFG-002"]
    assert len(findings) == 1
    assert findings[0].path == "platform.arch" and findings[0].level == "MUST"
    config["platform"]["arch"] = "aarch64"
    assert run_rule("TC-CFG-002", config, contexts[None]) == []


# --------------------------------------------------------------- one broken variant per rule

Breaker = Callable[[dict[str, Any]], object]


def _walk(config: dict[str, Any], keys: tuple[Any, ...]) -> Any:
    for key in keys:
        config = (
            _mount(config, key) if isinstance(key, str) and key.startswith("/") else config[key]
        )
    return config


def _put(*keys: Any, value: Any) -> Breaker:
    """Set a value; a key starting with / picks the mount at that destination."""
    return lambda c: _walk(c, keys[:-1]).__setitem__(keys[-1], copy.deepcopy(value))


def _pop(*keys: Any) -> Breaker:
    return lambda c: _walk(c, keys[:-1]).pop(keys[-1])


def _add(*keys: Any, item: Any) -> Breaker:
    return lambda c: _walk(c, keys).append(item)


def _remove(*keys: Any, item: Any) -> Breaker:
    return lambda c: _walk(c, keys).remove(item)


def _mount(c: dict[str, Any], destination: str) -> dict[str, Any]:
    return next(m for m in c["mounts"] if m["destination"] == destination)


def _drop_mount(destination: str) -> Breaker:
    return _put(
        "mounts", value=[m for m in clean_config()["mounts"] if m["destination"] != destination]
    )


def _set_env(name: str, value: str) -> Breaker:
    def breaker(c: dict[str, Any]) -> None:
        env = [e for e in c["process"]["env"] if not e.startswith(f"{name}=")]
        c["process"]["env"] = [*env, f"{name}={value}"]

    return breaker


def _drop_env(name: str) -> Breaker:
    env = [e for e in clean_config()["process"]["env"] if not e.startswith(f"{name}=")]
    return _put("process", "env", value=env)


def _drop_namespace(kind: str) -> Breaker:
    kept = [n for n in clean_config()["linux"]["namespaces"] if n["type"] != kind]
    return _put("linux", "namespaces", value=kept)


def _join_namespace(kind: str) -> Breaker:
    index = [n["type"] for n in clean_config()["linux"]["namespaces"]].index(kind)
    return _put("linux", "namespaces", index, "path", value="/proc/1/ns/x")


# The lists as the catalogue holds them, and only there.
MASKED = CATALOGUE.subjects("MASK")
READONLY = CATALOGUE.subjects("RO")
NAMESPACES = CATALOGUE.subjects("NS")
CAPS = ("process", "capabilities")
TMPFS_ON_TMP = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}
TMPFS_ON_SOCKET = {"destination": "/tmp/communicator", "type": "tmpfs", "source": "tmpfs"}
HOST_DEV = {"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}
DEV_MEM = {"path": "/dev/mem", "type": "c", "major": 1, "minor": 1}
MEM_RULE = {"allow": True, "type": "c", "major": 1, "minor": 1, "access": "r"}
HOST_VAR_RW = {"destination": "/mnt/var", "type": "bind", "source": "/var", "options": ["rbind"]}
HOST_ROOT_RW = {"destination": "/host", "source": "/", "options": ["rbind", "rw"]}
HOST_ETC_RO = {"destination": "/mnt/etc", "type": "bind", "source": "/etc/", "options": ["ro"]}

# (rule ID, variant, dialect to lint for, how to break the clean config)
BROKEN: list[tuple[str, str, str | None, Breaker]] = [
    ("TC-CFG-001", "ociVersion a number", None, _put("ociVersion", value=1)),
    ("TC-CFG-001", "no ociVersion", None, _pop("ociVersion")),
    ("TC-CFG-002", "amd64", None, _put("platform", value={"os": "linux", "arch": "amd64"})),
    ("TC-CFG-002", "windows", None, _put("platform", value={"os": "windows", "arch": "arm64"})),
    ("TC-CFG-003", "no root.path", None, _pop("root", "path")),
    ("TC-CFG-003", "empty root.path", None, _put("root", "path", value=" ")),
    ("TC-CFG-004", "1.1.0", None, _put("ociVersion", value="1.1.0")),
    ("TC-COM-001", "no /tmp mount", None, _drop_mount("/tmp")),
    ("TC-COM-001", "tmpfs on /tmp", None, _add("mounts", item=TMPFS_ON_TMP)),
    ("TC-COM-001", "another host folder", None, _put("/tmp", "source", value="/var/tmp")),
    ("TC-COM-001", "tmpfs over the socket", None, _add("mounts", item=TMPFS_ON_SOCKET)),
    ("TC-ENV-001", "missing", None, _drop_env("COMMUNICATOR_CONNECTOR")),
    ("TC-ENV-001", "$VAR on R4.4", "R4.4", lambda c: None),
    ("TC-ENV-001", "other variable", "R5", _set_env("COMMUNICATOR_CONNECTOR", "$SOMETHING")),
    ("TC-ENV-001", "wrong literal", "R5", _set_env("COMMUNICATOR_CONNECTOR", "/tmp/elsewhere")),
    ("TC-ENV-001", "empty", None, _set_env("COMMUNICATOR_CONNECTOR", "")),
    ("TC-ENV-002", "missing", None, _drop_env("MESSAGE_DISPATCHER_CONFIG")),
    ("TC-ENV-002", "$VAR on R4.4", "R4.4", _set_env("COMMUNICATOR_CONNECTOR", "/tmp/communicator")),
    ("TC-ENV-003", "TRACE_FILENAME", None, _set_env("TRACE_FILENAME", "/tmp/tracebuffer")),
    ("TC-ENV-003", "TRACE_DOORBELL", None, _set_env("TRACE_DOORBELL", "/tmp/x.doorbell")),
    ("TC-ENV-004", "no PATH", None, _drop_env("PATH")),
    *[(f"TC-NS-{n:03d}", f"no {k}", None, _drop_namespace(k)) for n, k in enumerate(NAMESPACES, 1)],
    *[
        (f"TC-NS-{n:03d}", f"joins {k}", None, _join_namespace(k))
        for n, k in enumerate(NAMESPACES, 1)
    ],
    *[
        (f"TC-MASK-{n:03d}", p, None, _remove("linux", "maskedPaths", item=p))
        for n, p in enumerate(MASKED, 1)
    ],
    *[
        (f"TC-RO-{n:03d}", p, None, _remove("linux", "readonlyPaths", item=p))
        for n, p in enumerate(READONLY, 1)
    ],
    ("TC-CAP-001", "bounding", None, _add(*CAPS, "bounding", item="CAP_SYS_ADMIN")),
    ("TC-CAP-001", "ambient, short name", None, _put(*CAPS, "ambient", value=["sys_admin"])),
    ("TC-CAP-002", "effective", None, _add(*CAPS, "effective", item="CAP_NET_ADMIN")),
    ("TC-CAP-002", "inheritable", None, _put(*CAPS, "inheritable", value=["CAP_CHOWN"])),
    ("TC-CAP-002", "no capabilities", None, _pop(*CAPS)),
    ("TC-CAP-003", "ambient", None, _put(*CAPS, "ambient", value=["CAP_KILL"])),
    ("TC-PROC-001", "terminal", None, _put("process", "terminal", value=True)),
    ("TC-PROC-002", "false", None, _put("process", "noNewPrivileges", value=False)),
    ("TC-PROC-002", "absent", None, _pop("process", "noNewPrivileges")),
    ("TC-PROC-003", "no rlimits", None, _pop("process", "rlimits")),
    ("TC-PROC-004", "no user", None, _pop("process", "user")),
    ("TC-ROOT-001", "writable", None, _put("root", "readonly", value=False)),
    ("TC-MNT-001", "no /tmp", None, _drop_mount("/tmp")),
    ("TC-MNT-001", "read-only", None, _put("/tmp", "options", value=["ro", "bind"])),
    ("TC-MNT-001", "not a bind", None, _put("/tmp", "options", value=["rw"])),
    ("TC-MNT-002", "no /proc", None, _drop_mount("/proc")),
    ("TC-MNT-002", "/proc a tmpfs", None, _put("/proc", "type", value="tmpfs")),
    ("TC-MNT-003", "host /dev", None, _add("mounts", item=HOST_DEV)),
    ("TC-MNT-004", "/sys rw", None, _put("/sys", "options", value=["nosuid"])),
    ("TC-MNT-005", "cgroup rw", None, _put("/sys/fs/cgroup", "options", value=["rw"])),
    ("TC-MNT-006", "/dev/shm exec", None, _remove("/dev/shm", "options", item="noexec")),
    ("TC-MNT-007", "host /var writable", None, _add("mounts", item=HOST_VAR_RW)),
    ("TC-MNT-007", "host / writable", None, _add("mounts", item=HOST_ROOT_RW)),
    ("TC-MNT-008", "host /etc read-only", None, _add("mounts", item=HOST_ETC_RO)),
    ("TC-PROC-005", "no seccomp", None, _pop("linux", "seccomp")),
    ("TC-DEV-002", "/dev/mem created", None, _put("linux", "devices", value=[DEV_MEM])),
    ("TC-DEV-002", "/dev/mem allowed", None, _add("linux", "resources", "devices", item=MEM_RULE)),
    ("TC-PROC-005", "seccomp without defaultAction", None, _put("linux", "seccomp", value={})),
    ("TC-DEV-001", "no rules", None, _pop("linux", "resources")),
    (
        "TC-DEV-001",
        "allow first",
        None,
        _put("linux", "resources", "devices", 0, "allow", value=True),
    ),
    (
        "TC-DEV-001",
        "deny only reads",
        None,
        _put("linux", "resources", "devices", 0, "access", value="r"),
    ),
    (
        "TC-DEV-001",
        "later allow-all",
        None,
        _add("linux", "resources", "devices", item={"allow": True}),
    ),
    ("TC-HOST-001", "no hostname", None, _pop("hostname")),
]


@pytest.mark.parametrize(
    ("rule_id", "dialect", "breaker"),
    [
        pytest.param(rule_id, dialect, breaker, id=f"{rule_id} {name}")
        for rule_id, name, dialect, breaker in BROKEN
    ],
)
def test_each_rule_fires_on_a_config_broken_for_it(contexts, rule_id, dialect, breaker) -> None:
    if rule_id == "TC-CFG-001" and not HAS_SCHEMA:
        pytest.skip("the OCI schema is not installed")
    config = clean_config()
    breaker(config)
    ctx = contexts[dialect]
    alone = run_rule(rule_id, config, ctx)
    assert alone, f"{rule_id} did not fire"
    assert all(f.id == rule_id for f in alone)
    assert {f.level for f in alone} == {CATALOGUE.get(rule_id).level}
    assert set(alone) <= set(check_config(config, ctx))


def test_every_static_rule_has_a_broken_variant() -> None:
    assert {rule_id for rule_id, *_ in BROKEN} == set(STATIC_IDS)


@pytest.mark.parametrize("rule_id", list(STATIC_IDS))
def test_no_rule_fires_on_the_tutorial_beyond_its_known_shoulds(contexts, rule_id) -> None:
    fired = run_rule(rule_id, tutorial_config(), contexts["R4.4"])
    assert bool(fired) == (rule_id in TUTORIAL_SHOULDS)


@pytest.mark.parametrize("rule_id", [r for r in STATIC_IDS if r != "TC-CFG-001"])
def test_a_rule_gives_at_most_one_finding(contexts, rule_id) -> None:
    twice = ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
    wrecked = {
        "process": {
            "capabilities": {"bounding": twice, "effective": twice, "ambient": twice},
            "env": ["TRACE_FILENAME=a", "TRACE_DOORBELL=b", "PATH=", "PATH="],
            "terminal": True,
        },
        "mounts": [{"destination": d, "options": []} for d in ("/dev/pts", "/dev/shm", "/tmp")],
        "linux": {"namespaces": [{"type": "pid", "path": "/a"}, {"type": "pid", "path": "/b"}]},
    }
    assert len(run_rule(rule_id, wrecked, contexts[None])) <= 1


def test_r44_accepts_the_tutorials_literal_communicator(contexts) -> None:
    assert run_rule("TC-ENV-001", tutorial_config(), contexts["R4.4"]) == []
    [finding] = run_rule("TC-ENV-001", clean_config(), contexts["R4.4"])
    assert finding.path == "process.env[2]" and "R4.4 does not expand" in finding.message


def test_findings_point_at_the_offending_entry(contexts) -> None:
    config = tutorial_config()
    [finding] = run_rule("TC-ENV-003", config, contexts[None])
    assert finding.path == "process.env[2]"
    assert "TRACE_FILENAME" in finding.message and "TRACE_DOORBELL" in finding.message
    config["process"]["capabilities"]["permitted"].append("CAP_SYS_ADMIN")
    [finding] = run_rule("TC-CAP-001", config, contexts[None])
    assert finding.path == "process.capabilities.permitted[3]"


def test_a_tcp_communicator_needs_no_mount() -> None:
    config = clean_config()
    _drop_mount("/tmp")(config)
    ctx = LintContext.create(CATALOGUE, communicator="127.0.0.1:62000")
    assert run_rule("TC-COM-001", config, ctx) == []


def test_garbage_in_every_place_gives_findings_not_exceptions(contexts) -> None:
    garbage = {"process": "x", "mounts": {"a": 1}, "linux": [], "root": 3, "platform": "x"}
    findings = check_config(garbage, contexts["R4.4"])
    assert {"TC-PROC-002", "TC-MNT-001", "TC-NS-001", "TC-CFG-002"} <= ids(findings)
    if HAS_SCHEMA:
        assert "TC-CFG-001" in ids(findings)


def test_without_the_schema_the_other_rules_still_run(tmp_path: Path) -> None:
    ctx = LintContext.create(CATALOGUE, schema_dir=tmp_path)
    assert ctx.schema is None
    assert ctx.schema_note.startswith("OCI schema check skipped: install")
    with pytest.raises(SchemaUnavailable):
        run_rule("TC-CFG-001", {"ociVersion": 1}, ctx)
    found = ids(lint_config({"ociVersion": 1}, schema_dir=tmp_path))
    assert "TC-CFG-001" not in found and "TC-CFG-004" in found


def test_run_rule_refuses_runtime_only_ids(contexts) -> None:
    with pytest.raises(ThunderContainerError, match="TC-LIFE-001"):
        run_rule("TC-LIFE-001", clean_config(), contexts[None])


def test_lint_config_refuses_an_unknown_dialect() -> None:
    with pytest.raises(ThunderContainerError, match="unknown Thunder dialect"):
        lint_config(clean_config(), dialect="R3")


# ---------------------------------------------------------------------------------------- CLI


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="thunder-container lint")
    add_arguments(parser)
    args = parser.parse_args(list(argv))
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "clean": tmp_path / "clean.json",
        "tutorial": DATA / "tutorial-config.json",
        "spec": RUNC_SPEC_V2,
        "array": tmp_path / "array.json",
        "broken": tmp_path / "broken.json",
    }
    paths["clean"].write_text(json.dumps(clean_config()))
    paths["array"].write_text("[]")
    paths["broken"].write_text('{"ociVersion": ')
    return paths


LINE = re.compile(r"^TC-[A-Z]+-\d{3} (MUST|SHOULD) \S+: .+ \(fix: .+\)$")


def test_exit_0_and_no_output_for_a_clean_config(capsys, files) -> None:
    code, out, err = run_cli(capsys, str(files["clean"]))
    assert (code, out) == (0, "")
    assert err.startswith("0 MUST, 0 SHOULD findings; OCI schema")


def test_exit_0_for_the_tutorial_with_its_shoulds(capsys, files) -> None:
    code, out, err = run_cli(capsys, str(files["tutorial"]))
    assert code == 0
    lines = out.splitlines()
    assert all(LINE.match(line) for line in lines), lines
    assert {line.split()[0] for line in lines} == TUTORIAL_SHOULDS
    assert err.startswith("0 MUST, 5 SHOULD findings; ")


def test_exit_1_when_a_must_fails(capsys, files) -> None:
    code, out, err = run_cli(capsys, str(files["spec"]))
    assert code == 1
    assert "TC-PROC-001 MUST process.terminal: is true" in out
    assert err.startswith("4 MUST, 3 SHOULD findings; ")


def test_dialect_r44_turns_a_reference_into_a_must(capsys, files) -> None:
    assert run_cli(capsys, "--dialect", "R5", str(files["clean"]))[0] == 0
    code, out, _ = run_cli(capsys, "--dialect", "R4.4", str(files["clean"]))
    assert code == 1 and out.startswith("TC-ENV-001 MUST process.env[2]: R4.4 does not expand")


def test_arch_is_checked_against_platform(capsys, tmp_path: Path) -> None:
    path = tmp_path / "amd64.json"
    path.write_text(json.dumps({**clean_config(), "platform": {"os": "linux", "arch": "arm64"}}))
    assert run_cli(capsys, str(path))[0] == 0
    code, out, _ = run_cli(capsys, "--arch", "x86_64", str(path))
    assert code == 1 and out.startswith("TC-CFG-002 MUST platform.arch: is 'arm64'")


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("broken", "not JSON: Expecting value at line 1 column 16"),
        ("array", "the JSON is an array, but a config.json must be an object"),
    ],
)
def test_exit_2_for_unusable_input(capsys, files, tmp_path, name, complaint) -> None:
    path = {"missing": tmp_path / "nope.json", "directory": tmp_path}.get(name) or files[name]
    code, out, err = run_cli(capsys, str(path))
    assert code == 2 and out == ""
    assert f"thunder-container lint: {path}: {complaint}" in err
    assert "Traceback" not in err


def test_several_files_are_all_reported_and_unusable_input_wins(capsys, files) -> None:
    code, out, err = run_cli(
        capsys, str(files["spec"]), str(files["array"]), str(files["tutorial"])
    )
    assert code == 2
    assert f"{files['spec']}: TC-MNT-001 MUST mounts: no /tmp mount" in out
    assert f"{files['tutorial']}: TC-ENV-003 SHOULD" in out
    assert f"{files['array']}: the JSON is an array" in err
    assert "4 MUST, 8 SHOULD findings, 1 of 3 files unusable; " in err


def test_the_thunder_container_command_runs_lint(capsys, files) -> None:
    assert cli.main(["lint", str(files["clean"])]) == 0
    assert cli.main(["lint", "--dialect", "R4.4", str(files["clean"])]) == 1
    assert cli.main(["lint", str(files["broken"])]) == 2
    assert "not JSON" in capsys.readouterr().err


def test_json_format(capsys, files) -> None:
    code, out, _ = run_cli(capsys, "--format", "json", str(files["spec"]), str(files["array"]))
    report = json.loads(out)
    assert code == report["exit_code"] == 2
    spec, array = report["files"]
    assert (spec["usable"], spec["must"], spec["should"]) == (True, 4, 3)
    assert {f["id"] for f in spec["findings"]} == RUNC_SPEC_FINDINGS
    assert array["usable"] is False and "an array" in array["error"]
    assert report["findings"][0].keys() == {"file", "id", "level", "path", "message", "fix"}
    assert report["schema"]["checked"] is HAS_SCHEMA
    if HAS_SCHEMA:
        assert report["schema"]["package_version"] and report["schema"]["spec_version"]


def test_schema_absent_is_said_plainly(capsys, files, tmp_path) -> None:
    code, _, err = run_cli(capsys, "--schema-dir", str(tmp_path), str(files["clean"]))
    assert code == 0
    assert err.strip().endswith(
        "OCI schema check skipped: install golang-github-opencontainers-specs-dev "
        f"(no {tmp_path}/config-schema.json)"
    )
    argv = ["--format", "json", "--schema-dir", str(tmp_path), str(files["clean"])]
    code, out, _ = run_cli(capsys, *argv)
    assert json.loads(out)["schema"]["checked"] is False


@pytest.mark.skipif(not HAS_SCHEMA, reason="the OCI schema is not installed")
def test_schema_violations_are_cfg_001_findings(capsys, tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**clean_config(), "hostname": 42}))
    code, out, err = run_cli(capsys, str(path))
    assert code == 1
    assert out.splitlines() == [
        "TC-CFG-001 MUST hostname: 42 is not of type 'string'"
        " (fix: correct the value as the OCI runtime spec (config.md) describes)",
        "TC-HOST-001 MUST hostname: no hostname: the container would report the target's"
        ' (fix: set "hostname": "runc")',
    ]
    assert (
        "OCI schema: runtime-spec 1.0.2-dev (Debian golang-github-opencontainers-specs-dev" in err
    )


@pytest.mark.parametrize(
    ("thunder", "literal", "fires"),
    [
        ("/tmp/communicator", "/tmp/communicator|0777", False),
        ("/tmp/communicator", "/tmp//communicator", False),
        ("127.0.0.1:62000", "127.0.0.1:62000", False),
        ("127.0.0.1:62000", "127.0.0.1:63000", True),
        ("127.0.0.1:62000", "/tmp/communicator", True),
    ],
)
def test_a_literal_communicator_must_be_thunders(thunder, literal, fires) -> None:
    config = clean_config()
    _set_env("COMMUNICATOR_CONNECTOR", literal)(config)
    ctx = LintContext.create(CATALOGUE, communicator=thunder)
    assert bool(run_rule("TC-ENV-001", config, ctx)) is fires


# ------------------------------------------------------------------ host binds (TC-MNT-007/008)


def test_a_writable_bind_of_thunders_tmp_or_below_it_is_allowed(contexts) -> None:
    config = clean_config()
    config["mounts"].append({"destination": "/x", "source": "/tmp/ocdm", "options": ["rbind"]})
    assert run_rule("TC-MNT-007", config, contexts[None]) == []


def test_a_path_the_user_allows_is_no_finding() -> None:
    config = clean_config()
    config["mounts"].append(HOST_VAR_RW)
    ctx = LintContext.create(CATALOGUE, allowed_binds=("/var/",))
    assert ctx.allowed_binds == ("/var",)
    assert run_rule("TC-MNT-007", config, ctx) == []
    [finding] = run_rule("TC-MNT-007", config, LintContext.create(CATALOGUE))
    assert finding.path == f"mounts[{len(config['mounts']) - 1}]"
    assert "/var at /mnt/var" in finding.message and "--allow-bind" in finding.fix


def test_a_sensitive_path_bound_writable_is_the_must_alone(contexts) -> None:
    config = clean_config()
    config["mounts"].append({**HOST_ETC_RO, "options": ["rbind"]})
    assert ids(check_config(config, contexts[None])) == {"TC-MNT-007"}
    config["mounts"][-1]["options"] = ["rbind", "ro"]
    assert ids(check_config(config, contexts[None])) == {"TC-MNT-008"}


def test_a_file_below_a_sensitive_path_bound_read_only_is_no_finding(contexts) -> None:
    config = clean_config()
    resolv = {
        "destination": "/etc/resolv.conf",
        "source": "/etc/resolv.conf",
        "options": ["bind", "ro"],
    }
    config["mounts"].append(resolv)
    assert check_config(config, contexts[None]) == []


def test_lint_allow_bind_clears_the_must_and_the_json_lists_the_path(capsys, tmp_path) -> None:
    config = clean_config()
    config["mounts"].append(HOST_VAR_RW)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code, out, _ = run_cli(capsys, str(path))
    assert code == 1 and out.startswith("TC-MNT-007 MUST mounts[")
    code, out, _ = run_cli(capsys, "--format", "json", "--allow-bind", "/var", str(path))
    report = json.loads(out)
    assert (code, report["allowed_binds"], report["findings"]) == (0, ["/var"], [])


@pytest.mark.parametrize(
    ("destination", "options", "expected"),
    [
        ("/proc", ["rbind", "ro"], {"TC-MNT-002", "TC-MNT-008"}),
        ("/dev", ["rbind", "ro"], {"TC-MNT-003", "TC-MNT-008"}),
        ("/sys", ["rbind", "ro"], {"TC-MNT-008"}),
        ("/sys", ["rbind"], {"TC-MNT-004", "TC-MNT-007"}),
    ],
)
def test_proc_dev_or_sys_bound_from_the_host_rather_than_mounted(
    contexts, destination, options, expected
) -> None:
    config = clean_config()
    bound = {"destination": destination, "type": "bind", "source": destination}
    kept = [m for m in config["mounts"] if m["destination"] != destination]
    config["mounts"] = [*kept, {**bound, "options": options}]
    assert ids(check_config(config, contexts[None])) == expected
