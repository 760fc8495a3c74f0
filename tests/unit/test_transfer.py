"""FileTransfer against a real shell with the host's busybox wget, and the one-shot HTTP server."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.console_targets import busybox_applets, make_console, shell_env, spawn

from pytest_thunder_container.errors import TargetError
from pytest_thunder_container.shell.console import Console
from pytest_thunder_container.shell.http_drop import OneShotServer
from pytest_thunder_container.shell.transfer import FileTransfer, HostRoute, transfer_limits
from pytest_thunder_container.targets.base import Target

pytestmark = pytest.mark.skipif(
    shutil.which("busybox") is None, reason="busybox is not installed (apt-get install busybox)"
)

LOCAL = HostRoute("127.0.0.1", "127.0.0.1")
DATA = os.urandom(200_000)
# A wget that damages what it fetches, or what it posts, the way a bad link would.
DAMAGING_WGET = """
out=; post=; prev=
for a in "$@"; do
  [ "$prev" = -O ] && out=$a
  [ "$prev" = --post-file ] && post=$a
  prev=$a
done
case "$*" in *probe*) exec busybox wget "$@" ;; esac
if [ -n "$post" ]; then
  tr A-Z a-z < "$post" > "$post.damaged"  # the same size: still within the upload's limit
  set -- -q -O /dev/null --post-file "$post.damaged" "$prev"
fi
busybox wget "$@" || exit $?
[ "$out" = /dev/null ] || echo damage >> "$out"
"""
HANGING_WGET = 'echo $$ >> "$HOME/wget.pids"; exec sleep 1000'


@pytest.fixture(scope="module")
def applets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_applets(tmp_path_factory.mktemp("busybox") / "bin")


def busybox_console(
    tmp_path: Path, applets: Path, shell: tuple[str, ...] = ("busybox", "sh"), **stubs: str
) -> Console:
    """A shell with busybox's applets first in PATH, as on the target."""
    env = shell_env(tmp_path, applets=applets, **stubs)
    session = make_console(spawn([*shell, "-i"], env, tmp_path), tmp_path)
    session.attach(timeout=10)
    return session


@pytest.fixture
def console(tmp_path: Path, applets: Path) -> Iterator[Console]:
    session = busybox_console(tmp_path, applets)
    yield session
    session.close()


# The target's shell is busybox ash; dash shows the scripts need nothing beyond POSIX sh.
@pytest.mark.parametrize("shell", [("busybox", "sh"), ("dash",)], ids=["busybox", "dash"])
def test_put_and_get_go_over_http(shell: tuple[str, ...], tmp_path: Path, applets: Path) -> None:
    console = busybox_console(tmp_path, applets, shell)
    files = FileTransfer(console, LOCAL, name="local", timeout_factor=0.5)
    path = tmp_path / "dir with space" / "blob.bin"
    path.parent.mkdir()
    files.put(DATA, str(path), mode=0o640)
    assert path.read_bytes() == DATA
    assert path.stat().st_mode & 0o7777 == 0o640
    assert files.get(str(path)) == DATA
    assert [(r.direction, r.method, r.size) for r in files.history] == [
        ("put", "http", len(DATA)),
        ("get", "http", len(DATA)),
    ]
    assert sorted(p.name for p in path.parent.iterdir()) == ["blob.bin"]
    # The watchdogs of the finished wgets went away with their sleeps.
    time.sleep(0.2)
    assert sleeping_in_session(int(console.run("echo $$").stdout)) == []
    console.close()
    # The bytes went over HTTP: the console carried only the commands.
    assert console.transcript_path.stat().st_size < len(DATA) / 10


def test_an_existing_file_keeps_its_mode_unless_one_is_given(
    console: Console, tmp_path: Path
) -> None:
    files = FileTransfer(console, LOCAL)
    path = tmp_path / "script"
    path.write_text("old")
    path.chmod(0o751)
    files.put(b"new", str(path))
    assert (path.read_bytes(), path.stat().st_mode & 0o777) == (b"new", 0o751)
    files.put(b"newer", str(path), mode=0o600)
    assert (path.read_bytes(), path.stat().st_mode & 0o777) == (b"newer", 0o600)
    assert [r.method for r in files.history] == ["http", "http"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("script")) == ["script"]


def test_without_a_route_the_console_is_used_and_says_why(console: Console, tmp_path: Path) -> None:
    files = FileTransfer(console, None, name="local")
    files.put(b"over the console", str(tmp_path / "f"))
    assert files.get(str(tmp_path / "f")) == b"over the console"
    assert [r.method for r in files.history] == ["console", "console"]
    assert "--thunder-host-address" in files.history[0].note


def test_an_unreachable_host_falls_back_to_the_console(console: Console, tmp_path: Path) -> None:
    # The server listens on 127.0.0.1 only: the target's 127.0.0.2 finds nobody there.
    route = HostRoute("127.0.0.1", "127.0.0.2")
    files = FileTransfer(console, route, timeout_factor=0.5, network_grace=0)
    files.put(b"first", str(tmp_path / "a"))
    started = time.monotonic()
    files.put(b"second", str(tmp_path / "b"))
    assert (tmp_path / "a").read_bytes() == b"first"
    assert (tmp_path / "b").read_bytes() == b"second"
    first, second = files.history
    assert (first.method, second.method) == ("console", "console")
    assert "127.0.0.2" in first.note
    assert "can't connect" in first.note or "refused" in first.note
    # The failure is remembered: the second file does not try HTTP again.
    assert second.note == first.note
    assert time.monotonic() - started < 1.0


# A network that is not there until a file says so, like DHCP on a target that just booted.
LATE_NETWORK_WGET = """
[ -e "$HOME/network-up" ] || { echo "wget: can't connect: Network is unreachable" >&2; exit 1; }
exec busybox wget "$@"
"""


def test_a_network_coming_up_just_after_the_start_is_waited_for(
    tmp_path: Path, applets: Path
) -> None:
    session = busybox_console(tmp_path, applets, wget=LATE_NETWORK_WGET)
    files = FileTransfer(session, LOCAL, network_grace=10)
    threading.Timer(1.5, (tmp_path / "network-up").touch).start()
    started = time.monotonic()
    files.put(b"late but over HTTP", str(tmp_path / "f"))
    assert 1.5 <= time.monotonic() - started < 5
    assert [r.method for r in files.history] == ["http"]
    session.close()


def test_a_network_that_never_comes_is_given_up_after_the_grace(
    tmp_path: Path, applets: Path
) -> None:
    session = busybox_console(tmp_path, applets, wget=LATE_NETWORK_WGET)
    files = FileTransfer(session, LOCAL, network_grace=2)
    started = time.monotonic()
    files.put(b"over the console", str(tmp_path / "f"))
    assert 1.5 <= time.monotonic() - started < 6
    assert files.history[0].method == "console"
    assert "Network is unreachable" in files.history[0].note
    session.close()


def test_a_target_that_never_gets_an_answer_is_given_up_on(tmp_path: Path, applets: Path) -> None:
    session = busybox_console(tmp_path, applets, wget=HANGING_WGET)
    files = FileTransfer(session, LOCAL, timeout_factor=0.2, network_grace=0)
    started = time.monotonic()
    files.put(b"after the watchdog", str(tmp_path / "late"))
    assert 2 <= time.monotonic() - started < 8
    assert (tmp_path / "late").read_bytes() == b"after the watchdog"
    assert files.history[0].method == "console"
    # The hanging wget was killed, and so was the watchdog's own sleep: nothing is left behind.
    shell = int(session.run("echo $$").stdout)
    time.sleep(0.2)
    assert (tmp_path / "wget.pids").read_text().split()
    assert sleeping_in_session(shell) == []
    session.close()


def sleeping_in_session(session_id: int) -> list[int]:
    """Live `sleep` processes in the session the shell leads (pexpect made it a leader)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()
        if name.endswith("(sleep") and fields[0] != "Z" and int(fields[3]) == session_id:
            found.append(int(stat.parent.name))
    return found


def test_a_damaged_upload_is_refused_and_not_put_in_place(tmp_path: Path, applets: Path) -> None:
    session = busybox_console(tmp_path, applets, wget=DAMAGING_WGET)
    files = FileTransfer(session, LOCAL, name="board", timeout_factor=0.5)
    (tmp_path / "old").write_bytes(b"previous content")
    with pytest.raises(TargetError, match=r"board: upload of 5 bytes to .* garbled") as failure:
        files.put(b"fresh", str(tmp_path / "old"))
    assert (tmp_path / "old").read_bytes() == b"previous content"
    assert not list(tmp_path.glob("old.*"))
    assert "sha256 on the target: " in str(failure.value)
    session.close()


def test_a_damaged_download_is_detected(tmp_path: Path, applets: Path) -> None:
    session = busybox_console(tmp_path, applets, wget=DAMAGING_WGET)
    (tmp_path / "src").write_bytes(b"the original")
    files = FileTransfer(session, LOCAL, timeout_factor=0.5)
    with pytest.raises(TargetError, match=r"download of .*src.* garbled"):
        files.get(str(tmp_path / "src"))
    session.close()


@pytest.mark.parametrize("name", ["-n", "a'b", "$(touch pwned)", "x;touch pwned", "sp ace"])
def test_hostile_paths_never_run_anything(console: Console, tmp_path: Path, name: str) -> None:
    os.chdir(tmp_path)
    files = FileTransfer(console, LOCAL, timeout_factor=0.5)
    files.put(b"quoted", name)
    assert (tmp_path / name).read_bytes() == b"quoted"
    assert files.get(name) == b"quoted"
    assert [r.method for r in files.history] == ["http", "http"]
    assert not (tmp_path / "pwned").exists()


def test_a_missing_file_is_reported_by_the_console(console: Console, tmp_path: Path) -> None:
    files = FileTransfer(console, LOCAL)
    with pytest.raises(TargetError, match="missing"):
        files.get(str(tmp_path / "missing"))


class BenchBoard(Target):
    """A target that offers only its console, like one written before Target.files existed."""

    emulated = False
    image = None
    name = "bench"

    def __init__(self, console: Console) -> None:
        self._console = console

    @property
    def console(self) -> Console:
        return self._console

    def start(self) -> None:
        """Nothing to start: the console is already there."""

    def stop(self) -> None:
        """Nothing to stop."""


def test_a_target_moves_files_over_its_console_by_default(console: Console, tmp_path: Path) -> None:
    files = BenchBoard(console).files
    files.put(b"by default", str(tmp_path / "f"), mode=0o600)
    assert (tmp_path / "f").read_bytes() == b"by default"
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o600
    assert [(r.method, r.size) for r in files.history] == [("console", 10)]


# --- the server -----------------------------------------------------------------------------


def request(address: tuple[str, int], method: str, path: str, body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection(*address, timeout=5)
    conn.request(method, path, body=body)
    status = conn.getresponse().status
    conn.close()
    return status


def test_a_blob_is_served_once_at_its_token_only() -> None:
    with OneShotServer("127.0.0.1") as server:
        path = server.offer(b"once")
        assert len(path) > 30
        conn = http.client.HTTPConnection(*server.address, timeout=5)
        conn.request("GET", path)
        answer = conn.getresponse()
        assert (answer.status, answer.read()) == (200, b"once")
        conn.close()
        assert request(server.address, "GET", path) == 404
        assert request(server.address, "GET", "/") == 404
        assert request(server.address, "GET", "/etc/passwd") == 404
        assert request(server.address, "GET", "/../" + path) == 404


def test_an_upload_is_taken_once_and_within_its_limit() -> None:
    with OneShotServer("127.0.0.1") as server:
        offered = server.offer(b"x")
        assert request(server.address, "POST", offered, b"data") == 404
        path = server.expect_upload(limit=4)
        assert request(server.address, "POST", path, b"data") == 200
        assert server.uploaded(path) == b"data"
        assert request(server.address, "POST", path, b"more") == 404
        big = server.expect_upload(limit=3)
        assert request(server.address, "POST", big, b"data") == 413
        assert server.uploaded(big) is None


def test_the_server_listens_on_the_one_address_given() -> None:
    with OneShotServer("127.0.0.2") as server:
        host, port = server.address
        assert host == "127.0.0.2"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        assert request(server.address, "GET", "/nothing") == 404
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=2)


def test_an_address_that_is_not_this_hosts_is_a_clear_error() -> None:
    with pytest.raises(TargetError, match=r"can't serve files on 192\.0\.2\.1.*--thunder-host"):
        OneShotServer("192.0.2.1")


def test_a_host_address_must_be_an_ip_address() -> None:
    assert HostRoute.direct("192.168.1.10") == HostRoute("192.168.1.10", "192.168.1.10")
    with pytest.raises(TargetError, match=r"--thunder-host-address=board\.local: not an IP"):
        HostRoute.direct("board.local")


def test_the_timeout_factor_is_applied_once_to_a_transfers_waits() -> None:
    # 250 kB: 10 s for the data on top of its 10 s. Target-side watchdogs wait by themselves, so
    # they are scaled here; the console command's limit stays nominal: the Console scales it.
    once, thrice = transfer_limits(250_000, 1, 0), transfer_limits(250_000, 3, 0)
    assert (once.probe, once.data, once.console) == (10, 20, 10 + 20 + 30)
    assert (thrice.probe, thrice.data, thrice.console) == (30, 60, 10 + 20 + 30)
    # Network grace left (real seconds) counts as the same nominal span in the console's limit.
    assert transfer_limits(250_000, 3, 30).console == 10 + 20 + 30 + 10
