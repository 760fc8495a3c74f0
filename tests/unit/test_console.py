"""Console against real shells (dash, bash, busybox ash) on ptys, a real login program and a
serial-line stand-in that interleaves kernel messages or delivers one byte at a time."""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.console_targets import (
    DEVICE,
    FACTOR,
    FAKE_LOGIN,
    SHELLS,
    busybox_applets,
    make_console,
    shell_env,
    spawn,
)

from pytest_thunder_container.errors import CommandFailed, ConsoleError, TargetCrashed
from pytest_thunder_container.shell.console import Console, Login

SEQ_20000 = "\n".join(str(n) for n in range(1, 20001))


@pytest.fixture(scope="session")
def applets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_applets(tmp_path_factory.mktemp("busybox") / "bin")


@pytest.fixture(params=SHELLS)
def console(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Console]:
    # busybox ash with busybox's applets is what the target has.
    with_applets = request.getfixturevalue("applets") if request.param[0] == "busybox" else None
    env = shell_env(tmp_path, applets=with_applets)
    session = make_console(spawn(request.param, env, tmp_path), tmp_path)
    session.attach(timeout=10)
    yield session
    session.close()


def session_token(console: Console) -> str:
    """The prompt token, read the way a person would: from the transcript."""
    match = re.search(r"PS1='tc''-(\w+)# '", console.transcript_path.read_text(errors="replace"))
    assert match
    return match.group(1)


# --- commands -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_run_returns_the_exit_code(console: Console, code: int) -> None:
    assert console.run(f"(exit {code})").returncode == code


def test_run_returns_multi_line_output_without_the_final_newline(console: Console) -> None:
    assert console.run("printf 'one\\ntwo\\n\\nfour\\n'").stdout == "one\ntwo\n\nfour"
    assert console.run("printf 'no newline'").stdout == "no newline"
    assert console.run("echo next").stdout == "next"


def test_output_that_looks_like_markers_or_prompts_is_output(console: Console) -> None:
    token = session_token(console)
    lines = [
        f"tc-S{token}.1",
        f"tc-E{token}.1:0",
        f"tc-R{token}.1",
        f"echo 'tc''-S{token}.9'",
        f"tc-{token}# ",
        "# ",
        "$ ",
        "login: ",
        "Password: ",
        "Login incorrect",
    ]
    args = " ".join(
        f"'{line.replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}'" for line in lines
    )
    result = console.run(f"printf '%s\\n' {args}")
    assert (result.returncode, result.stdout) == (0, "\n".join(lines))


def test_an_echoed_command_line_never_matches(console: Console) -> None:
    console.check("stty echo </dev/tty")
    assert console.run("echo hello").stdout == "hello"
    assert console.run("(exit 3)").returncode == 3
    console.check("stty -echo </dev/tty")


def test_carriage_returns_and_escape_sequences_are_removed(console: Console) -> None:
    result = console.run("printf 'a\\r\\r\\nb\\033[1mbold\\033[0m\\033[6n\\n'")
    assert result.stdout == "a\nbbold"


def test_only_lines_starting_like_the_kernel_are_dropped(console: Console) -> None:
    result = console.run(
        "printf '%s\\n' 'before' '[   12.345678] usb 1-1: new device' "
        "'<6>[    1.000000] from dmesg -r' 'see [    2.000000] mid-line' 'after'"
    )
    assert (
        result.stdout
        == "before\n<6>[    1.000000] from dmesg -r\nsee [    2.000000] mid-line\nafter"
    )


def test_large_output_arrives_whole(console: Console) -> None:
    assert console.run("seq 1 20000").stdout == SEQ_20000


@pytest.mark.parametrize(
    ("cmd", "stdout", "code"),
    [
        ("echo hi # a comment", "hi", 0),
        ("false # a comment", "", 1),
        ("echo a;", "a", 0),
        ("", "", 0),
        ("# only a comment", "", 0),
    ],
)
def test_a_command_cannot_break_the_wrapper(
    console: Console, cmd: str, stdout: str, code: int
) -> None:
    result = console.run(cmd)
    assert (result.stdout, result.returncode) == (stdout, code)


def test_a_background_command_returns_at_once(console: Console) -> None:
    result = console.run("sleep 2 >/dev/null &")
    assert result.returncode == 0
    assert result.duration < 1
    assert console.run("echo after").stdout == "after"


def test_a_command_cannot_eat_the_console_input(console: Console) -> None:
    assert console.run("cat", timeout=5).stdout == ""
    assert console.run('read line; echo "got:$line"', timeout=5).stdout == "got:"
    assert console.run("echo next").stdout == "next"


def test_the_shell_state_persists_between_commands(console: Console) -> None:
    console.check("cd / && export TC_PROBE=kept")
    assert console.run('pwd; echo "$TC_PROBE"').stdout == "/\nkept"


def test_the_session_is_set_up(console: Console, tmp_path: Path) -> None:
    assert console.run('echo "$TERM"').stdout == "dumb"
    assert console.run('echo "$PS1"').stdout == f"tc-{session_token(console)}# "
    assert re.search(r"(^|\s)-echo(\s|$)", console.check("stty -a </dev/tty").stdout)
    assert (tmp_path / "dmesg.args").read_text().split("\n")[0] == "-n 1"


def test_check_raises_with_the_evidence(console: Console) -> None:
    with pytest.raises(CommandFailed) as failure:
        console.check("echo 'it broke' >&2; (exit 3)")
    message = str(failure.value)
    assert "exit code 3" in message
    assert "it broke" in message
    assert str(console.transcript_path) in message
    assert console.check("true").ok


def test_a_command_longer_than_a_tty_line_is_refused(console: Console) -> None:
    with pytest.raises(ConsoleError, match="put"):
        console.run("echo " + "x" * 5000)
    assert console.run("echo fine").stdout == "fine"


def test_the_transcript_holds_both_directions(console: Console) -> None:
    console.run("echo transcript-probe")
    raw = console.transcript_path.read_bytes()
    assert b"{ :; echo transcript-probe\n" in raw
    assert re.search(rb"\ntranscript-probe\r*\n", raw)
    assert "transcript-probe" in console.tail(5).split("\n")
    assert "\r" not in console.tail(5)


# --- timeouts and a lost stream -------------------------------------------------------------


def test_a_command_that_times_out_is_reported_and_the_session_recovers(console: Console) -> None:
    started = time.monotonic()
    with pytest.raises(ConsoleError) as failure:
        console.run("echo started; sleep 100", timeout=1)
    assert time.monotonic() - started < 6
    message = str(failure.value)
    assert "sleep 100" in message
    assert f"within {FACTOR:.1f} s" in message  # the timeout after the factor
    assert "started" in message
    assert str(console.transcript_path) in message
    assert console.run("echo ok").stdout == "ok"


def test_timeouts_are_scaled_by_the_factor(tmp_path: Path) -> None:
    session = make_console(
        spawn(["/bin/sh", "-i"], shell_env(tmp_path), tmp_path), tmp_path, timeout_factor=0.5
    )
    session.attach(timeout=10)
    started = time.monotonic()
    with pytest.raises(ConsoleError, match=r"within 1\.0 s"):
        session.run("sleep 100", timeout=2)
    assert time.monotonic() - started < 1.9
    session.close()


def test_the_end_of_the_stream_is_reported_at_once(console: Console) -> None:
    started = time.monotonic()
    with pytest.raises(ConsoleError) as failure:
        console.run("exit 0")
    assert time.monotonic() - started < 3
    assert "test-target" in str(failure.value)
    assert "stream ended" in str(failure.value)
    assert str(console.transcript_path) in str(failure.value)


def test_resync_sets_the_session_up_again(console: Console) -> None:
    console.check("stty echo </dev/tty; PS1='other> '")
    console.resync()
    assert console.run('echo "$PS1"').stdout.startswith("tc-")
    assert re.search(r"(^|\s)-echo(\s|$)", console.check("stty -a </dev/tty").stdout)


# --- files ----------------------------------------------------------------------------------

ALL_BYTES = bytes(range(256)) * 16


@pytest.mark.parametrize("data", [ALL_BYTES, b"", b"\n", b"no newline at the end"], ids=len)
def test_put_and_get_are_binary_safe(console: Console, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "file.bin"
    console.put(data, str(path))
    assert path.read_bytes() == data
    assert console.get(str(path)) == data


# bash's readline needs seconds for a megabyte of 3 KB lines; the line-reading shells cover it.
@pytest.mark.parametrize("console", [p for p in SHELLS if p.id != "bash"], indirect=True)
def test_put_and_get_a_megabyte(console: Console, tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    path = tmp_path / "big.bin"
    console.put(data, str(path))
    assert path.read_bytes() == data
    assert console.get(str(path)) == data
    assert not list(tmp_path.glob("*.tc-upload"))


def test_put_applies_the_mode(console: Console, tmp_path: Path) -> None:
    path = tmp_path / "tool"
    console.put(b"#!/bin/sh\necho tool ran\n", str(path), mode=0o750)
    assert path.stat().st_mode & 0o7777 == 0o750
    assert console.run(str(path)).stdout == "tool ran"


@pytest.mark.parametrize(
    "name",
    [
        "with space",
        "quote'single",
        'quote"double',
        "$(touch PWNED)",
        "`touch PWNED`",
        "a;touch PWNED",
        "-dash",
    ],
)
def test_hostile_paths_never_run_anything(console: Console, tmp_path: Path, name: str) -> None:
    console.put(b"content", name)
    assert (tmp_path / name).read_bytes() == b"content"
    assert console.get(name) == b"content"
    assert not (tmp_path / "PWNED").exists()


def test_get_of_a_missing_file_names_it(console: Console, tmp_path: Path) -> None:
    with pytest.raises(ConsoleError, match="no-such-file"):
        console.get(str(tmp_path / "no-such-file"))


def test_put_into_a_missing_directory_names_it(console: Console, tmp_path: Path) -> None:
    with pytest.raises(ConsoleError, match="no-such-dir"):
        console.put(b"x", str(tmp_path / "no-such-dir" / "file"))


def test_a_transfer_garbled_on_the_way_is_detected(tmp_path: Path) -> None:
    # A target whose sha256sum disagrees with what arrived: the check must catch it.
    env = shell_env(
        tmp_path,
        sha256sum="echo 0000000000000000000000000000000000000000000000000000000000000000  -",
    )
    session = make_console(spawn(["/bin/sh", "-i"], env, tmp_path), tmp_path)
    session.attach(timeout=10)
    with pytest.raises(ConsoleError, match="garbled"):
        session.put(b"data", str(tmp_path / "f"))
    with pytest.raises(ConsoleError, match="garbled"):
        session.get(str(tmp_path / "f"))
    session.close()


# --- login ----------------------------------------------------------------------------------

PASSWORD = "s3cret-Pa55"


def login_console(
    tmp_path: Path, login: Login | None, *options: str, factor: float = FACTOR
) -> Console:
    argv = [*FAKE_LOGIN, "--user", "root", "--password", PASSWORD, *options]
    return make_console(
        spawn(argv, shell_env(tmp_path), tmp_path), tmp_path, login=login, timeout_factor=factor
    )


@pytest.mark.parametrize("options", [(), ("--garbage",)], ids=["clean", "garbage-first"])
def test_login_with_the_right_password(tmp_path: Path, options: tuple[str, ...]) -> None:
    session = login_console(tmp_path, Login("root", PASSWORD), *options)
    session.attach(timeout=10)
    assert session.run('echo "$LOGNAME"').stdout == "root"
    session.close()
    transcript = session.transcript_path.read_bytes()
    assert PASSWORD.encode() not in transcript
    assert b"Password: <password>" in transcript


def test_a_wrong_password_is_reported_without_the_password(tmp_path: Path) -> None:
    session = login_console(tmp_path, Login("root", "wrong-Pa55"))
    with pytest.raises(ConsoleError, match="login incorrect for user 'root'") as failure:
        session.attach(timeout=10)
    session.close()
    assert "wrong-Pa55" not in str(failure.value)
    assert b"wrong-Pa55" not in session.transcript_path.read_bytes()


def test_a_password_prompt_without_a_password_is_reported(tmp_path: Path) -> None:
    session = login_console(tmp_path, Login("root", None))
    with pytest.raises(ConsoleError, match="asks for a password for user 'root', none is given"):
        session.attach(timeout=10)
    session.close()


def test_a_login_prompt_without_a_login_is_reported(tmp_path: Path) -> None:
    session = login_console(tmp_path, None)
    with pytest.raises(ConsoleError, match="asks for a login"):
        session.attach(timeout=10)
    session.close()


def test_login_without_a_password_prompt(tmp_path: Path) -> None:
    session = login_console(tmp_path, Login("root"), "--no-password")
    session.attach(timeout=10)
    assert session.run("echo in").stdout == "in"
    session.close()


def test_a_silent_console_gets_a_newline_after_a_pause(tmp_path: Path) -> None:
    session = login_console(tmp_path, Login("root", PASSWORD), "--wait-for-enter", factor=0.3)
    started = time.monotonic()
    session.attach(timeout=10)
    assert time.monotonic() - started >= 0.4  # it waited for silence before poking
    assert session.run("echo awake").stdout == "awake"
    session.close()


def test_attach_from_an_established_session_and_with_a_login_at_a_shell(tmp_path: Path) -> None:
    env = shell_env(tmp_path)
    session = make_console(
        spawn(["/bin/sh", "-i"], env, tmp_path),
        tmp_path,
        login=Login("root", "unused"),
        timeout_factor=0.3,
    )
    session.attach(timeout=10)
    session.attach(timeout=10)
    assert session.run("echo again").stdout == "again"
    session.close()


def test_no_prompt_at_all_is_reported_with_the_last_lines(tmp_path: Path) -> None:
    argv = ["/bin/sh", "-c", "echo 'booting forever'; exec sleep 100"]
    session = make_console(spawn(argv, shell_env(tmp_path), tmp_path), tmp_path, timeout_factor=0.2)
    with pytest.raises(ConsoleError, match=r"no shell prompt within 1\.0 s") as failure:
        session.attach(timeout=5)
    assert "booting forever" in str(failure.value)
    session.close()


# --- a damaged line -------------------------------------------------------------------------


def test_kernel_messages_are_removed_from_the_output(tmp_path: Path) -> None:
    argv = [
        *DEVICE,
        "--endpoint",
        "stdio",
        "--kmsg",
        "--crcrlf",
        "--",
        *FAKE_LOGIN,
        "--password",
        PASSWORD,
    ]
    session = make_console(
        spawn(argv, shell_env(tmp_path), tmp_path), tmp_path, login=Login("root", PASSWORD)
    )
    session.attach(timeout=10)
    assert session.run("printf 'one\\ntwo\\nthree\\n'").stdout == "one\ntwo\nthree"
    assert session.run("seq 1 2000").stdout == "\n".join(str(n) for n in range(1, 2001))
    data = bytes(range(256)) * 8
    session.put(data, str(tmp_path / "through-noise"))
    assert session.get(str(tmp_path / "through-noise")) == data
    assert "usb 1-1: new device" in session.tail(50)
    session.close()
    assert b"] usb 1-1: new device\r\n" in session.transcript_path.read_bytes()


def test_prompt_like_text_in_a_slow_boot_log_is_not_answered(tmp_path: Path) -> None:
    argv = [*DEVICE, "--endpoint", "stdio", "--slow", "0.0003", "--"]
    argv += [*FAKE_LOGIN, "--password", PASSWORD, "--boot-log"]
    login = Login("root", PASSWORD)
    session = make_console(spawn(argv, shell_env(tmp_path), tmp_path), tmp_path, login=login)
    session.attach(timeout=20)
    session.close()
    transcript = session.transcript_path.read_bytes()
    # Nothing was sent before the real login prompt: no early setup line, no early user name.
    first_prompt = transcript.index(b"rpi3 login: ")
    assert transcript.index(b"root\n") > first_prompt
    assert transcript.index(b"tc_ready_") > first_prompt


def test_a_slow_line_delivering_single_bytes(tmp_path: Path) -> None:
    argv = [
        *DEVICE,
        "--endpoint",
        "stdio",
        "--slow",
        "0.0003",
        "--",
        *FAKE_LOGIN,
        "--password",
        PASSWORD,
    ]
    session = make_console(
        spawn(argv, shell_env(tmp_path), tmp_path), tmp_path, login=Login("root", PASSWORD)
    )
    session.attach(timeout=20)
    assert session.run("seq 1 50").stdout == "\n".join(str(n) for n in range(1, 51))
    session.put(b"slow\x00line", str(tmp_path / "slow"))
    assert session.get(str(tmp_path / "slow")) == b"slow\x00line"
    session.close()


# --- speed ----------------------------------------------------------------------------------


def test_round_trips_are_fast(console: Console) -> None:
    durations = [console.run("true").duration for _ in range(50)]
    assert statistics.median(durations) < 0.005
    started = time.monotonic()
    console.run("seq 1 20000")
    assert time.monotonic() - started < 2


def test_a_syntax_error_returns_at_once_with_the_shells_code(console: Console) -> None:
    started = time.monotonic()
    result = console.run("echo ( broken", timeout=20)
    assert result.returncode == 2
    assert "syntax error" in result.stdout or "unexpected" in result.stdout
    assert time.monotonic() - started < 5
    assert console.run("echo still-here").stdout == "still-here"


def test_an_interrupted_command_is_cleaned_up_before_the_next(console: Console) -> None:
    # A caller interrupted between send and end marker (Ctrl-C in pytest) leaves the shell busy.
    original = console._expect

    def interrupted(*args: object, **kwargs: object) -> None:
        # The user's Ctrl-C comes while the command runs: once its start marker is out.
        original([re.compile(rb"tc-S[\w.]+\r*\n")], 10, "the start marker")
        time.sleep(0.3)
        raise KeyboardInterrupt

    console._expect = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        console.run("sleep 30")
    console._expect = original  # type: ignore[method-assign]
    started = time.monotonic()
    assert console.run("echo after").stdout == "after"
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("booting", [True, False], ids=["booting", "attaching"])
def test_a_booting_target_gets_no_bytes_before_it_speaks(tmp_path: Path, booting: bool) -> None:
    # Bytes that reach a UART before its driver is up can kill the line (QEMU raspi3b PL011).
    session = login_console(tmp_path, Login("root", PASSWORD), "--silent-first", "3", factor=1.0)
    session.attach(timeout=20, booting=booting)
    session.close()
    early = b"EARLY-INPUT" in session.transcript_path.read_bytes()
    assert early is not booting


def test_a_kernel_panic_is_reported_at_once(console: Console) -> None:
    started = time.monotonic()
    with pytest.raises(TargetCrashed, match="kernel panicked") as failure:
        console.run(
            "printf '[ 12.5] Kernel panic - not syncing: Attempted to kill init!\\n'; sleep 30",
            timeout=20,
        )
    assert time.monotonic() - started < 10
    assert "Attempted to kill init" in str(failure.value)
