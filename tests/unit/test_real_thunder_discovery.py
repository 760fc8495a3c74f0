"""Plugin hosts found as real Thunder runs them: renamed to the callsign, versioned binaries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.console_targets import busybox_applets

from pytest_thunder_container.shell.protocol import CommandResult
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.hosts import find_plugin_hosts, is_host_binary

R5_ARGV = [
    "/usr/bin/ThunderPlugin", "-l", "libThunderOCDM.so", "-c", "OCDM", "-C", "OCDM",
    "-r", "/tmp/communicator", "-i", "4256", "-x", "3",
    "-p", '"/root/OCDM/"', "-d", '"/usr/share/Thunder/OCDM/"', "-v", '"/tmp/OCDM/"',
]  # fmt: skip


class LocalShell:
    """The Shell protocol on a local sh: PATH first holds busybox's applets when asked."""

    def __init__(self, argv: list[str], path: str) -> None:
        self.argv, self.env = argv, {**os.environ, "PATH": path}

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        done = subprocess.run(
            [*self.argv, cmd], capture_output=True, text=True, env=self.env, timeout=30
        )
        return CommandResult(cmd, done.returncode, done.stdout.rstrip("\n"))


def fake_process(proc: Path, pid: int, comm: str, argv: list[str], exe: str | None) -> None:
    folder = proc / str(pid)
    folder.mkdir(parents=True)
    (folder / "comm").write_text(comm + "\n")
    (folder / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
    if exe is not None:
        (folder / "exe").symlink_to(exe)


@pytest.fixture(params=["sh", "busybox"])
def shell(request: pytest.FixtureRequest, tmp_path: Path) -> LocalShell:
    if request.param == "sh":
        return LocalShell(["/bin/sh", "-c"], os.environ["PATH"])
    if shutil.which("busybox") is None:
        pytest.skip("busybox not installed")
    applets = busybox_applets(tmp_path / "applets")
    return LocalShell([str(applets / "sh"), "-c"], f"{applets}:{os.environ['PATH']}")


def test_a_host_renamed_to_its_callsign_is_found_by_argv0(
    shell: LocalShell, tmp_path: Path
) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 235, "OCDM", R5_ARGV, "/usr/bin/ThunderPlugin-5.3.0")
    fake_process(proc, 236, "Containers", [*R5_ARGV[:5], "-C", "Containers"], None)
    fake_process(proc, 1, "init", ["/sbin/init"], "/bin/busybox")
    hosts = find_plugin_hosts(shell, "OCDM", proc=str(proc))
    assert [(h.pid, h.name, h.binary) for h in hosts] == [
        (235, "OCDM", "/usr/bin/ThunderPlugin-5.3.0")
    ]
    assert hosts[0].option("-d") == "/usr/share/Thunder/OCDM/"


def test_a_host_is_found_by_its_versioned_exe_whatever_argv0_says(
    shell: LocalShell, tmp_path: Path
) -> None:
    proc = tmp_path / "proc"
    argv = ["host", *R5_ARGV[1:]]  # a launcher may set any argv[0]
    fake_process(proc, 300, "OCDM", argv, "/usr/bin/WPEProcess-4.4.7")
    hosts = find_plugin_hosts(shell, "OCDM", proc=str(proc))
    assert [(h.pid, h.name, h.binary) for h in hosts] == [
        (300, "OCDM", "/usr/bin/WPEProcess-4.4.7")
    ]


def test_a_process_that_only_mentions_the_host_is_not_one(
    shell: LocalShell, tmp_path: Path
) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 400, "grep", ["grep", "ThunderPlugin", "-C", "OCDM"], "/bin/grep")
    fake_process(proc, 401, "sh", ["sh", "-c", "ThunderPlugin -C OCDM"], "/bin/busybox")
    assert find_plugin_hosts(shell, "OCDM", proc=str(proc)) == []


def test_a_host_that_keeps_its_name_is_still_found_by_comm(
    shell: LocalShell, tmp_path: Path
) -> None:
    proc = tmp_path / "proc"  # a script host: argv[0] and exe are the interpreter
    fake_process(
        proc, 500, "ThunderPlugin", ["/usr/bin/python3", "-S", *R5_ARGV], "/usr/bin/python3.11"
    )
    assert [h.pid for h in find_plugin_hosts(shell, "OCDM", proc=str(proc))] == [500]


@pytest.mark.parametrize(
    ("path", "host"),
    [
        ("/usr/bin/ThunderPlugin", True),
        ("ThunderPlugin-5.3.0", True),
        ("/usr/bin/WPEProcess-4.4.7", True),
        ("WPEProcess", True),
        ("/usr/bin/Thunder", False),
        ("/usr/bin/ThunderPluginX", False),
        ("OCDM", False),
    ],
)
def test_host_binaries_by_basename(path: str, host: bool) -> None:
    assert is_host_binary(path) is host


class VersionOnly:
    """A transport that answers the dialect probe as R4.4 and `version` as an opaque string."""

    endpoint = "fake"

    def post(self, body: bytes, seconds: float) -> bytes:
        request = json.loads(body)
        method = request["method"]
        if method == "Controller.1.version":
            result: object = '{"hash":"abc","major":4,"minor":4,"patch":7}'
        elif method == "Controller.1.processinfo":
            result = {}
        else:
            error = {"code": -32601, "message": "Unknown method."}
            return json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}).encode()
        return json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()


def test_r44_opaque_version_is_read_as_major_minor_patch() -> None:
    client = ThunderClient(VersionOnly())  # type: ignore[arg-type]
    assert client.dialect == "R4.4"
    assert client.version() == "4.4.7"
