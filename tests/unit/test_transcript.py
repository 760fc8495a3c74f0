"""Transcript: the file holds every byte in order, at once; the tail is clean text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytest_thunder_container.shell.transcript import Transcript, strip_terminal_codes


def test_both_directions_are_kept_verbatim_and_in_order(tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "t.log")
    transcript.received(b"login: ")
    transcript.sent(b"root\n")
    transcript.received(b"\x00\xff\x1b[6n# \r\r\n")
    transcript.close()
    assert (tmp_path / "t.log").read_bytes() == b"login: root\n\x00\xff\x1b[6n# \r\r\n"


def test_a_secret_is_recorded_as_its_label(tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "t.log")
    transcript.received(b"Password: ")
    transcript.sent_secret()
    transcript.sent_secret("<token>")
    transcript.close()
    assert (tmp_path / "t.log").read_bytes() == b"Password: <password><token>"


def test_bytes_are_on_disk_at_once_and_survive_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    transcript = Transcript(path)
    transcript.received(b"first")
    assert path.read_bytes() == b"first"  # no close, no flush
    # A process that dies without any cleanup loses nothing it recorded.
    script = (
        "import os, signal, sys; from pathlib import Path;"
        "from pytest_thunder_container.shell.transcript import Transcript;"
        "t = Transcript(Path(sys.argv[1])); t.received(b'-second'); t.sent(b'-third');"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=False)
    assert path.read_bytes() == b"first-second-third"


def test_a_new_transcript_appends_to_the_file(tmp_path: Path) -> None:
    for chunk in (b"boot\r\n", b"restored\r\n"):
        transcript = Transcript(tmp_path / "sub" / "t.log")
        transcript.received(chunk)
        transcript.close()
    assert (tmp_path / "sub" / "t.log").read_bytes() == b"boot\r\nrestored\r\n"


def test_tail_is_the_last_lines_received_without_escapes(tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "t.log")
    transcript.received(b"one\r\r\ntwo\r\n\x1b[1mthree\x1b[0m\r\n")
    transcript.sent(b"not-received\n")
    transcript.received(b"tc-1# \x1b[6n")
    assert transcript.tail(2) == "three\ntc-1# "
    assert transcript.tail(0) == ""
    assert transcript.tail(100) == "one\ntwo\nthree\ntc-1# "
    transcript.close()


def test_tail_memory_is_bounded(tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "t.log", ring_bytes=1024)
    for n in range(10_000):
        transcript.received(f"line {n}\r\n".encode())
    assert len(transcript._ring) <= 2 * 1024
    assert transcript.tail(2) == "line 9999\n"
    assert transcript.tail(3) == "line 9998\nline 9999\n"
    transcript.close()
    assert (tmp_path / "t.log").stat().st_size == sum(len(f"line {n}\r\n") for n in range(10_000))


def test_strip_terminal_codes() -> None:
    raw = b"a\x1b[6n\x1b[?2004hb\x1b]0;title\x07c\x1b(Bd\x1b7e\r\r\n"
    assert strip_terminal_codes(raw) == b"abcde\n"
