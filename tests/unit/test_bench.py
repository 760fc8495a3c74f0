"""Start latency: the target-side clock and timing, the runc wrapper, and a whole benchmark.

Shells are real (busybox sh with busybox's applets first in PATH, as on the target); the wrapper
is bind-mounted for real inside a private mount namespace (unshare -m), over a stand-in runc.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.console_targets import busybox_applets, make_console, shell_env, spawn

from pytest_thunder_container.conformance.failed_activation import RUNC_AT_WORK
from pytest_thunder_container.perf.runc_wrapper import (
    RuncCall,
    RuncWrapper,
    container_phases,
    headline_phases,
    parse_runc_log,
    runc_subcommand,
)
from pytest_thunder_container.perf.start_latency import (
    CLOCKS,
    BenchError,
    busybox_time,
    floor_bundle,
    host_command,
    pick_clock,
    stats_of,
    timed,
)
from pytest_thunder_container.shell.console import Console

needs_busybox = pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox")


@pytest.fixture(scope="module")
def applets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("busybox") is None:
        pytest.skip("needs busybox")
    return busybox_applets(tmp_path_factory.mktemp("busybox") / "bin")


def busybox_shell(
    tmp_path: Path, applets: Path, *, private_mounts: bool = False, path: Path | None = None
) -> Console:
    env = shell_env(tmp_path, applets=applets)
    if path is not None:
        env["PATH"] = str(path)
    argv = [shutil.which("busybox") or "busybox", "sh", "-i"]
    if private_mounts:
        argv = ["unshare", "-m", "--propagation", "private", *argv]
    shell = make_console(spawn(argv, env, tmp_path), tmp_path)
    shell.attach(timeout=10)
    return shell


@pytest.fixture
def shell(tmp_path: Path, applets: Path) -> Iterator[Console]:
    session = busybox_shell(tmp_path, applets)
    yield session
    session.close()


@pytest.fixture
def private_shell(tmp_path: Path, applets: Path) -> Iterator[Console]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("bind mounts in a private mount namespace need root and unshare")
    session = busybox_shell(tmp_path, applets, private_mounts=True)
    yield session
    session.close()


def test_statistics_are_median_nearest_rank_p90_min_max() -> None:
    stats = stats_of([float(v) for v in (7, 1, 10, 3, 5, 2, 9, 4, 8, 6)])
    assert (stats.n, stats.median, stats.p90, stats.min, stats.max) == (10, 5.5, 9.0, 1.0, 10.0)
    assert stats_of([4.0]).p90 == 4.0
    with pytest.raises(BenchError):
        stats_of([])


def test_busybox_picks_ts_because_its_date_has_no_nanoseconds(shell: Console) -> None:
    assert pick_clock(shell).name == "ts"


@needs_busybox
@pytest.mark.parametrize(("missing", "expected"), [("ts", "adjtimex"), ("ts adjtimex", "uptime")])
def test_the_clock_falls_back_when_an_applet_is_missing(
    tmp_path: Path, applets: Path, missing: str, expected: str
) -> None:
    reduced = tmp_path / "reduced"
    reduced.mkdir()
    for applet in applets.iterdir():
        if applet.name not in missing.split():
            (reduced / applet.name).symlink_to(applet.resolve())
    session = busybox_shell(tmp_path, applets, path=reduced)
    try:
        assert pick_clock(session).name == expected
    finally:
        session.close()


def test_gnu_date_with_nanoseconds_is_preferred(tmp_path: Path) -> None:
    if shutil.which("date") is None or "%N" in os.popen("date +%N").read():
        pytest.skip("needs a date that knows %N")
    session = make_console(spawn(["/bin/sh", "-i"], shell_env(tmp_path), tmp_path), tmp_path)
    session.attach(timeout=10)
    try:
        assert pick_clock(session).name == "date"
    finally:
        session.close()


@pytest.mark.parametrize("name", ["ts", "adjtimex", "uptime"])
def test_every_busybox_clock_times_a_sleep(shell: Console, name: str) -> None:
    clock = CLOCKS[name]
    run = timed(shell, clock, "sleep 0.3; echo said")
    assert 300 - 2 * clock.resolution_ms <= run.ms < 3000
    assert run.returncode == 0 and run.output == "said"
    assert timed(shell, clock, "false").returncode == 1


def test_busybox_time_reads_the_real_line(shell: Console, tmp_path: Path) -> None:
    assert 290 <= busybox_time(shell, "sleep 0.3", str(tmp_path)) < 3000


def test_the_host_command_is_the_part_before_thunders_options() -> None:
    reference = (
        "/usr/bin/python3",
        "-S",
        "/usr/bin/ThunderPlugin",
        "-l",
        "libThunderOCDM.so",
        "-c",
        "OCDMImplementation",
        "-C",
        "OCDM",
        "-r",
        "/tmp/communicator",
    )
    assert host_command(reference) == ["/usr/bin/python3", "-S", "/usr/bin/ThunderPlugin", "-h"]
    assert host_command(("WPEProcess", "-C", "OCDM")) == ["WPEProcess", "-h"]
    assert host_command(("ThunderPlugin",)) == ["ThunderPlugin", "-h"]


def test_the_floor_bundle_is_busybox_alone_and_goes_away(shell: Console) -> None:
    with floor_bundle(shell) as folder:
        assert folder.startswith("/tmp/tc-floor.")
        assert sorted(os.listdir(f"{folder}/rootfs/bin")) == ["busybox", "true"]
        config = Path(folder, "config.json").read_text()
        assert '"args": ["/bin/true"]' in config and '"readonly": true' in config
        assert os.system(f"{folder}/rootfs/bin/true") == 0
    assert not os.path.exists(folder)


def test_the_floor_bundle_finds_busybox_when_the_shell_names_only_the_applet(
    shell: Console,
) -> None:
    shell.check("busybox() { :; }")  # `command -v busybox` now says "busybox", as on the target
    assert shell.run("command -v busybox").stdout == "busybox"
    with floor_bundle(shell) as folder:
        assert Path(folder, "rootfs/bin/busybox").stat().st_size > 100_000


# ---------------------------------------------------------------------------------- runc wrapper

R5_LOG = """\
100.000100  start 11 list --quiet
100.900000  end 11 rc=0 list --quiet
101.000000  start 12 --log /l create --no-new-keyring --bundle /b OCDM
103.000000  end 12 rc=0 --log /l create --no-new-keyring --bundle /b OCDM
103.100000  start 13 --log /l exec --detach --env A=b|c OCDM ThunderPlugin -l x -C OCDM
105.100000  end 13 rc=0 --log /l exec --detach --env A=b|c OCDM ThunderPlugin -l x -C OCDM
"""


def test_subcommands_are_found_after_global_flags() -> None:
    assert runc_subcommand(["--log", "/l", "create", "--bundle", "b", "x"]) == "create"
    assert runc_subcommand(["-log", "/l", "run", "-d", "-b", "b", "x"]) == "run"
    assert runc_subcommand(["--root=/r", "--debug", "exec", "x"]) == "exec"
    assert runc_subcommand(["--version"]) == "?"


def test_phases_of_an_r5_activation_add_up_to_it() -> None:
    calls = parse_runc_log(R5_LOG + "106.0 start 99 list --quiet\n")
    assert [c.subcommand for c in calls] == ["list", "create", "exec", "list"]
    assert calls[-1].end is None  # started, never ended: left out of the phases
    phases = container_phases(100.0, 106.0, calls)
    assert phases == pytest.approx(
        {
            "container.to_first_runc": 0.1,
            "container.preparation": 1000.0,
            "container.runc_list": 899.9,
            "container.runc_create": 2000.0,
            "container.runc_exec": 2000.0,
            "container.between_runc_calls": 100.0,
            "container.after_last_runc": 900.0,
        }
    )
    headline = headline_phases(calls[:3], [])
    assert headline == [
        "container.preparation",
        "container.runc_create",
        "container.runc_exec",
        "container.between_runc_calls",
        "container.after_last_runc",
    ]
    assert sum(phases[name] for name in headline) == pytest.approx(6000.0)


def test_phases_of_an_r44_run_and_no_call_at_all() -> None:
    calls = [RuncCall("list", 1.0, 1.5, 0, "list -q"), RuncCall("run", 1.6, 3.0, 0, "run -d")]
    phases = container_phases(0.5, 4.0, calls)
    assert phases["container.preparation"] == pytest.approx(1100.0)
    assert phases["container.runc_run"] == pytest.approx(1400.0)
    with pytest.raises(Exception, match="no runc call was logged"):
        container_phases(10.0, 11.0, calls)


def stand_in(tmp_path: Path) -> Path:
    runc = tmp_path / "sbin" / "runc"
    runc.parent.mkdir()
    runc.write_text('#!/bin/sh\necho stand-in runc "$@"\n')
    runc.chmod(0o755)
    return runc


def mounts_of(shell: Console) -> str:
    return shell.run("cat /proc/self/mountinfo").stdout


def test_the_wrapper_logs_calls_and_leaves_nothing(private_shell: Console, tmp_path: Path) -> None:
    runc = stand_in(tmp_path)
    original = runc.read_text()
    link = tmp_path / "runc-link"
    link.symlink_to(runc)  # Thunder's path may be a symlink: the mount lands on its target
    clock = pick_clock(private_shell)
    with RuncWrapper(private_shell, clock.library, runc=str(link), dirs=(str(tmp_path),)) as w:
        assert "tc-runc." in mounts_of(private_shell)
        said = private_shell.run(f"{link} --log /x create --bundle /b OCDM; echo rc=$?").stdout
        assert said == "stand-in runc --log /x create --bundle /b OCDM\nrc=0"
        calls = w.calls(0.0, 1e12)
        assert [c.subcommand for c in calls] == ["?", "create"]  # --version checks the install
        assert calls[1].returncode == 0 and calls[1].end >= calls[1].start  # type: ignore
        private_shell.run(w.clear_command())
        assert w.calls(0.0, 1e12) == []
    assert "tc-runc." not in mounts_of(private_shell)
    assert runc.read_text() == original
    assert not list(tmp_path.glob("tc-runc.*"))


def test_an_interrupt_still_removes_the_wrapper(private_shell: Console, tmp_path: Path) -> None:
    runc = stand_in(tmp_path)
    clock = CLOCKS["ts"]
    with (
        pytest.raises(KeyboardInterrupt),
        RuncWrapper(private_shell, clock.library, runc=str(runc), dirs=(str(tmp_path),)),
    ):
        raise KeyboardInterrupt
    assert "tc-runc." not in mounts_of(private_shell)
    assert private_shell.run(str(runc)).stdout == "stand-in runc"


def test_a_stale_wrapper_is_removed_but_a_foreign_mount_is_not(
    private_shell: Console, tmp_path: Path
) -> None:
    runc = stand_in(tmp_path)
    clock = CLOCKS["ts"]
    stale = RuncWrapper(private_shell, clock.library, runc=str(runc), dirs=(str(tmp_path),))
    stale.__enter__()  # as a killed session would leave it: never exited
    RuncWrapper(private_shell, clock.library, runc=str(runc)).remove_stale()
    assert "tc-runc." not in mounts_of(private_shell)
    assert not list(tmp_path.glob("tc-runc.*"))
    foreign = tmp_path / "vendor-runc"
    foreign.write_text("#!/bin/sh\necho vendor\n")
    private_shell.check(f"mount --bind {foreign} {runc}")
    RuncWrapper(private_shell, clock.library, runc=str(runc)).remove_stale()
    assert private_shell.run(f"sh {runc}").stdout == "vendor"


def test_a_folder_without_exec_is_skipped_for_the_next(
    private_shell: Console, tmp_path: Path
) -> None:
    runc = stand_in(tmp_path)
    noexec, good = tmp_path / "noexec", tmp_path / "good"
    noexec.mkdir()
    good.mkdir()
    private_shell.check(f"mount -t tmpfs -o noexec tc-noexec {noexec}")
    with RuncWrapper(
        private_shell,
        CLOCKS["ts"].library,
        runc=str(runc),
        dirs=(str(tmp_path / "absent"), str(noexec), str(good)),
    ) as wrapper:
        assert wrapper.log.startswith(f"{good}/tc-runc.")
    assert "tc-runc." not in mounts_of(private_shell)


def test_runc_at_work_ignores_a_containers_init_but_not_a_call(
    shell: Console, tmp_path: Path
) -> None:
    # Named runc as on the target: a container's init (`runc init`) and a call (`runc create`).
    fake = tmp_path / "runc"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    assert not shell.run(RUNC_AT_WORK).ok  # no runc at all
    shell.check(f"{fake} init >/dev/null 2>&1 & echo $! > {tmp_path}/init.pid")
    _until_runc_count(shell, 1)
    assert not shell.run(RUNC_AT_WORK).ok, "a created container's init is not a runc call"
    shell.check(f"{fake} create OCDM >/dev/null 2>&1 & echo $! > {tmp_path}/call.pid")
    _until_runc_count(shell, 2)
    assert shell.run(RUNC_AT_WORK).ok
    shell.run(f"kill $(cat {tmp_path}/init.pid) $(cat {tmp_path}/call.pid)")


def _until_runc_count(shell: Console, count: int) -> None:
    """Wait (5 s at most) until `pidof runc` lists `count` processes: started, not yet seen."""
    shell.check(
        f'i=0; while [ "$(pidof runc | wc -w)" -lt {count} ] && [ $i -lt 50 ]; '
        "do sleep 0.1; i=$((i + 1)); done"
    )
