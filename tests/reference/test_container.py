"""The reference Thunder's Container mode against a fake runc that logs its calls."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from reference_daemon import FAKE_RUNC, ReferenceFactory, ReferenceThunder

BUNDLE_ENV = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "TERM=xterm",
    "COMMUNICATOR_CONNECTOR=$COMMUNICATOR_CONNECTOR",
    "MESSAGE_DISPATCHER_CONFIG=$MESSAGE_DISPATCHER_CONFIG",
    "EMPTY=$REFTEST_EMPTY",
    "UNSET=$REFTEST_NOT_SET",
    "CHOSEN=$REFTEST_CHOSEN",
    "LONE=$",
]


def write_bundle(folder: Path, marker: str = "") -> Path:
    """<folder>/Container/config.json like the tutorial's, with a marker in its hostname."""
    bundle = folder / "Container"
    (bundle / "rootfs").mkdir(parents=True)
    config = {
        "ociVersion": "1.0.2-dev",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
                    "env": BUNDLE_ENV, "cwd": "/"},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": f"runc{marker}",
        "mounts": [{"source": "/tmp", "destination": "/tmp", "options": ["rw", "bind"]}],
    }  # fmt: skip
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def calls(thunder: ReferenceThunder) -> list[dict]:
    path = thunder.root / "fake-runc" / "calls.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def argvs(thunder: ReferenceThunder) -> list[list[str]]:
    return [call["argv"] for call in calls(thunder)]


def container_thunder(
    reference: ReferenceFactory,
    api: str,
    reference_settings: dict | None = None,
    bundle_in: tuple[str, ...] = ("data",),
    start: bool = True,
) -> ReferenceThunder:
    thunder = reference.tree(api)
    thunder.extra_env.update(REFTEST_EMPTY="", REFTEST_CHOSEN="chosen-value")
    reference.write_config(thunder, reference_settings)
    reference.write_plugins(thunder, mode="Container", startmode="Deactivated")
    places = {
        "volatile": thunder.root / "volatile" / "OCDM",
        "persistent": thunder.root / "persistent" / "OCDM",
        "data": thunder.root / "data" / "OCDM",
    }
    for place in bundle_in:
        write_bundle(places[place], place)
    if start:
        reference.start(thunder)
    return thunder


def test_r5_creates_then_execs_the_host_with_inherited_environment(
    reference: ReferenceFactory,
) -> None:
    thunder = container_thunder(reference, "R5")
    assert thunder.result("Controller.1.activate", {"callsign": "OCDM"}) is None
    bundle = f"{thunder.root}/data/OCDM/Container/"
    log = f"{thunder.root}/volatile/OCDM/OCDM/runc.container.log"
    create, execute = argvs(thunder)[1:3]
    assert argvs(thunder)[0] == ["list", "--quiet"]
    assert create == ["--log", log, "create", "--no-new-keyring", "--bundle", bundle, "OCDM"]
    folder = thunder.root / "volatile" / "MessageDispatcher"
    assert execute[:11] == [
        "--log", log, "exec", "--detach",
        "--env", f"COMMUNICATOR_CONNECTOR={thunder.communicator}",
        "--env", f"MESSAGE_DISPATCHER_CONFIG={folder}|md|0|1|20480",
        "--env", "CHOSEN=chosen-value",
        "OCDM",
    ]  # fmt: skip
    host_command = execute[11:]
    assert host_command[0].endswith("/usr/bin/ThunderPlugin")
    assert host_command[1:7] == [
        "-l",
        "libThunderOCDM.so",
        "-c",
        "OCDMImplementation",
        "-C",
        "OCDM",
    ]
    assert thunder.result("OCDM.1.drms")[0]["keysystems"] == ["com.microsoft.playready"]
    assert thunder.result("Containers.1.containers") == ["OCDM"]
    assert "runc: " in thunder.log() and " create --no-new-keyring --bundle " in thunder.log()


def test_r5_deactivation_deletes_the_container(reference: ReferenceFactory) -> None:
    thunder = container_thunder(reference, "R5")
    thunder.result("Controller.1.activate", {"callsign": "OCDM"})
    assert len(thunder.hosts()) == 1
    before = len(calls(thunder))
    assert thunder.result("Controller.1.deactivate", {"callsign": "OCDM"}) is None
    log = f"{thunder.root}/volatile/OCDM/OCDM/runc.container.log"
    assert argvs(thunder)[before:] == [
        ["list", "--quiet"], ["state", "OCDM"], ["--log", log, "delete", "--force", "OCDM"],
    ]  # fmt: skip
    assert thunder.hosts() == []
    assert not (thunder.root / "fake-runc" / "OCDM.json").exists()
    assert thunder.result("Containers.1.containers") == []
    assert not Path(thunder.connector).exists()


def test_bundle_search_order_is_volatile_persistent_data(reference: ReferenceFactory) -> None:
    thunder = container_thunder(reference, "R5", bundle_in=("persistent", "data"))
    thunder.result("Controller.1.activate", {"callsign": "OCDM"})
    assert ["--bundle", f"{thunder.root}/persistent/OCDM/Container/"] == argvs(thunder)[1][4:6]
    thunder.result("Controller.1.deactivate", {"callsign": "OCDM"})
    write_bundle(thunder.root / "volatile" / "OCDM", "volatile")
    thunder.result("Controller.1.activate", {"callsign": "OCDM"})
    creates = [argv for argv in argvs(thunder) if "create" in argv]
    assert creates[-1][5] == f"{thunder.root}/volatile/OCDM/Container/"


def test_missing_bundle_fails_activation_with_thunders_message(
    reference: ReferenceFactory, api: str
) -> None:
    thunder = container_thunder(reference, api, bundle_in=())
    error = thunder.call("Controller.1.activate", {"callsign": "OCDM"})["error"]
    assert error["code"] == (-31006 if api == "R5" else 6)
    assert "Runc container configuration for 'OCDM' not found!" in error["data"]
    assert "Runc container configuration for 'OCDM' not found!" in thunder.log()
    assert calls(thunder) == []


def test_a_leftover_container_is_force_deleted_first(reference: ReferenceFactory, api: str) -> None:
    thunder = container_thunder(reference, api, start=False)
    leftover = subprocess.run(
        [sys.executable, str(FAKE_RUNC), "create", "--no-new-keyring", "--bundle",
         f"{thunder.root}/data/OCDM/Container/", "OCDM"],
        env={"FAKE_RUNC_ROOT": str(thunder.root / "fake-runc"), "PATH": "/usr/bin:/bin"},
        check=True,
    )  # fmt: skip
    assert leftover.returncode == 0
    (thunder.root / "fake-runc" / "calls.jsonl").unlink()
    reference.start(thunder)
    thunder.result("Controller.1.activate", {"callsign": "OCDM"})
    log = f"{thunder.root}/volatile/OCDM/OCDM/runc.container.log"
    if api == "R5":
        assert argvs(thunder)[:4] == [
            ["list", "--quiet"], ["state", "OCDM"], ["--log", log, "delete", "--force", "OCDM"],
            ["--log", log, "create", "--no-new-keyring", "--bundle",
             f"{thunder.root}/data/OCDM/Container/", "OCDM"],
        ]  # fmt: skip
    else:
        assert argvs(thunder)[:2] == [["list", "-q"], ["delete", "-f", "OCDM"]]
        assert argvs(thunder)[2][2] == "run"


def test_r44_runs_a_runtime_copy_of_the_bundle_without_env_inheritance(
    reference: ReferenceFactory,
) -> None:
    thunder = container_thunder(reference, "R4.4")
    assert thunder.result("Controller.1.activate", {"callsign": "OCDM"}) is None
    runtime = f"{thunder.root}/run/OCDM"
    log = f"{thunder.root}/volatile/OCDM/OCDM/container.log"
    run = argvs(thunder)[1]
    assert run == ["-log", log, "run", "-d", "-b", runtime, "--no-new-keyring", "OCDM"]
    assert not any("--env" in argv or "--args" in argv for argv in argvs(thunder))
    original = json.loads((thunder.root / "data/OCDM/Container/config.json").read_text())
    copy = json.loads(Path(runtime, "config.json").read_text())
    assert copy["process"]["args"][0].endswith("/usr/bin/WPEProcess")
    assert copy["process"]["args"][1:7] == [
        "-l",
        "libThunderOCDM.so",
        "-c",
        "OCDMImplementation",
        "-C",
        "OCDM",
    ]
    assert copy["root"] == {"path": f"{thunder.root}/data/OCDM/Container/rootfs", "readonly": True}
    assert copy["process"]["env"] == BUNDLE_ENV  # R4.4 leaves "$VAR" entries as they are
    for key in original:
        if key not in ("process", "root"):
            assert copy[key] == original[key]
    assert {k: v for k, v in copy["process"].items() if k != "args"} == {
        k: v for k, v in original["process"].items() if k != "args"}  # fmt: skip
    assert thunder.result("OCDM.1.keysystems@PlayReady") == ["com.microsoft.playready"]
    thunder.result("Controller.1.deactivate", {"callsign": "OCDM"})
    assert argvs(thunder)[-2:] == [["list", "-q"], ["delete", "-f", "OCDM"]]
    assert not Path(runtime).exists()
    assert thunder.hosts() == []


def test_a_runc_call_that_times_out_fails_activation(reference: ReferenceFactory, api: str) -> None:
    thunder = container_thunder(
        reference, api, reference_settings={"runctimeout": 1000}, start=False
    )
    verb = "CREATE" if api == "R5" else "RUN"
    thunder.extra_env[f"FAKE_RUNC_SLEEP_{verb}"] = "5"
    reference.start(thunder)
    started = time.monotonic()
    error = thunder.call("Controller.1.activate", {"callsign": "OCDM"})["error"]
    assert time.monotonic() - started < 4.5
    assert error["code"] == (-31006 if api == "R5" else 6)
    assert "timed out after 1000 ms" in error["data"]
    assert "TIMED OUT after" in thunder.log()
    assert thunder.result("Containers.1.containers") == []


def test_containers_plugin_reads_cgroup_v2_figures(reference: ReferenceFactory) -> None:
    thunder = container_thunder(reference, "R5")
    cgroup = thunder.root / "cgroup"
    (cgroup / "cgroup.controllers").write_text("cpu memory\n")
    (cgroup / "OCDM").mkdir()
    (cgroup / "OCDM" / "memory.current").write_text("4096000\n")
    (cgroup / "OCDM" / "memory.stat").write_text("anon 1000\nfile 2000\nfile_mapped 300\n")
    (cgroup / "OCDM" / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\n")
    thunder.result("Controller.1.activate", {"callsign": "OCDM"})
    assert thunder.result("Containers.1.memory@OCDM") == {
        "allocated": 4096000, "resident": 1000, "shared": 300}  # fmt: skip
    assert thunder.result("Containers.1.cpu@OCDM") == {"total": 1500000, "cores": []}
    assert thunder.result("Containers.1.networks@OCDM") == []
    unknown = thunder.call("Containers.1.memory@Nope")["error"]
    assert unknown == {"code": -31002, "message": "The service is not active."}
