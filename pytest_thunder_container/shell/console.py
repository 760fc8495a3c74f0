"""One shell session on a target over any byte stream: login, run() -> exit code + output, files."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
import secrets
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import pexpect
from pexpect.expect import searcher_re
from pexpect.spawnbase import SpawnBase

from pytest_thunder_container.errors import CommandFailed, ConsoleError, TargetCrashed
from pytest_thunder_container.shell.protocol import CommandResult
from pytest_thunder_container.shell.transcript import Transcript, strip_terminal_codes

_ESCAPES = rb"(?:\x1b\[[0-9;?]*[A-Za-z])*"
# A prompt is what the target said last before it fell silent: "Last login: ..." is not one.
_LOGIN_PROMPT = re.compile(rb"(?i)(?<!last )login: *" + _ESCAPES + rb"\Z")
_PASSWORD_PROMPT = re.compile(rb"(?i)password: *" + _ESCAPES + rb"\Z")
_LOGIN_INCORRECT = re.compile(rb"(?i)login incorrect")
# Printed at emergency level, so it shows even after `dmesg -n 1`: no prompt will come.
_KERNEL_PANIC = re.compile(rb"Kernel panic - not syncing[^\r\n]*")
_SHELL_PROMPT = re.compile(rb"[#$>%] ?" + _ESCAPES + rb"\Z")
# A line starting with printk's "[%5lu.%06lu] " (and the optional caller id). Only at the start
# of a line, so that `dmesg -r` ("<6>[ ...") or a log quoting the kernel comes through whole.
_KERNEL_LINE = re.compile(rb"(?m)^\[ *\d+\.\d{6}\](?:\[ *[CT]\d+\])? [^\n]*\n")
# The kernel's console driver ends each message with "\r\n" itself, while the session's tty sends
# a bare "\n" (stty -onlcr): so a message written into the middle of a command's line (an
# emergency message from another process, on any board) is found by its "\r\n" and cut out.
_KERNEL_MESSAGE = re.compile(rb"\[ *\d+\.\d{6}\](?:\[ *[CT]\d+\])? [^\r\n]*\r+\n")
_END_OF_DATA = re.compile(rb"\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}")

_LOOKBACK = 512  # longer than any marker or prompt: a match split across two reads is still seen
_MAX_COMMAND_BYTES = 4000  # a tty in canonical mode holds at most 4095 bytes of pending input
_UPLOAD_COMMAND_BYTES = 3072  # well under that, with room for the wrapper and the path
_WRAPPER_BYTES = 128
_QUIET = 1.5  # seconds of silence before poking the target with a newline
_BOOT_QUIET = 15.0  # the same while a target boots: its own prompt is expected
_SETTLE = 0.2  # seconds of silence after which the last text received is taken as a prompt
_RECOVERY_TIMEOUT = 10.0
# Interrupted by the caller mid-command, the shell may still be busy a while: be patient.
_PENDING_RECOVERY_TIMEOUT = 30.0
_TRANSFER_RATE = 10_000  # bytes per second a slow serial line surely carries, for time budgets
_CTRL_C = b"\x03"


@dataclass(frozen=True)
class Login:
    """How to log in on the console; `user=None` when only a password (or nothing) is asked."""

    user: str | None = "root"
    password: str | None = field(default=None, repr=False)


class _TailSearcher(searcher_re):
    """Regex search over the fresh data plus a short look-back: linear in the output size."""

    def __init__(self, patterns: list[re.Pattern[bytes]]) -> None:
        super().__init__(patterns)
        self._patterns = patterns
        self.longest_string = _LOOKBACK  # pexpect keeps only this much old data in the window

    def search(self, buffer: bytes, freshlen: int, searchwindowsize: int | None = None) -> int:
        start = max(0, len(buffer) - freshlen - _LOOKBACK)
        first: re.Match[bytes] | None = None
        first_index = -1
        for index, pattern in enumerate(self._patterns):
            match = pattern.search(buffer, start)
            if match and (first is None or match.start() < first.start()):
                first, first_index = match, index
        if first is None:
            return -1
        self.start, self.end, self.match = first.start(), first.end(), first
        return first_index


class _ReceivedToTranscript:
    """The file-like pexpect writes received bytes to (logfile_read); counts them too."""

    def __init__(self, transcript: Transcript) -> None:
        self._transcript = transcript
        self.count = 0

    def write(self, data: bytes) -> None:
        self._transcript.received(data)
        self.count += len(data)

    def flush(self) -> None:
        """Nothing to flush: the transcript is unbuffered."""


def _shell_path(path: str) -> str:
    # "./" keeps a name starting with "-" from being read as an option by chmod or base64.
    return shlex.quote(f"./{path}" if path.startswith("-") else path)


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.split("\n")) if text else "  (nothing)"


class Console:
    """A shell session on a target's console (implements shell.Shell)."""

    def __init__(
        self,
        spawn: SpawnBase,
        transcript: Transcript,
        *,
        name: str,
        login: Login | None = None,
        timeout_factor: float = 1.0,
        command_timeout: float = 30.0,
    ) -> None:
        if spawn.encoding is not None:
            raise ValueError("Console needs a bytes-mode spawn (encoding=None)")
        self._spawn = spawn
        self._transcript = transcript
        self._name = name
        self._login = login
        self._factor = timeout_factor
        self._command_timeout = command_timeout
        # Every marker carries a per-session token and a sequence number, so that neither
        # another session's output nor a late answer to an earlier command can match.
        self._token = secrets.token_hex(3)
        self._seq = 0
        # Set while a command's end marker is still owed: an exception (Ctrl-C, a crash in the
        # caller) between send and marker leaves the shell busy, so the next run() resyncs first.
        self._pending = False
        self._closed = False
        # Set once the kernel panicked: nothing will answer on this console again.
        self.crashed = False
        # One write and one read per command: no pexpect delays, large reads, our own logging
        # (pexpect's send log would record passwords).
        spawn.delaybeforesend = None
        spawn.delayafterread = None
        spawn.maxread = max(spawn.maxread, 256 * 1024)
        spawn.searchwindowsize = None
        spawn.logfile = None
        spawn.logfile_send = None
        self._received = _ReceivedToTranscript(transcript)
        spawn.logfile_read = self._received

    @property
    def transcript_path(self) -> Path:
        return self._transcript.path

    def attach(self, timeout: float = 60.0, *, booting: bool = False) -> None:
        """From whatever state the console is in: log in if asked, then set the session up.

        `booting`: the target was just started and will print a prompt by itself, so nothing is
        sent until it has spoken and then been silent for long (bytes that reach a UART before
        its driver starts can leave the line dead: seen on QEMU's raspi3b PL011).
        """
        self._establish(timeout, interrupt=False, booting=booting)

    def resync(self, timeout: float = 10.0) -> None:
        """Interrupt whatever runs and set the session up again (after a restore or a timeout)."""
        self._establish(timeout, interrupt=True)
        self._pending = False

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        """Run `cmd` in the shell; its exit code and its output (no markers, prompts or noise)."""
        limit = (self._command_timeout if timeout is None else timeout) * self._factor
        tag = self._next_tag()
        # The markers are split by quotes, so the echoed command line never matches them; the
        # group gets its own line so a trailing comment, "&" or ";" in cmd can't swallow the end
        # marker, and /dev/null as stdin so cmd can't eat the console's input. The end marker
        # has a line of its own, so a syntax error in cmd (which makes the shell drop the lines
        # it was parsing) still ends with the marker and the shell's exit code 2.
        line = (
            f"echo 'tc''-S{tag}'; {{ :; {cmd}\n}} </dev/null\necho \"tc\"\"-E{tag}:$?\"\n"
        ).encode()
        if len(line) > _MAX_COMMAND_BYTES:
            raise ConsoleError(
                f"console {self._name}: the command is {len(line)} bytes with its wrapper, more "
                f"than a serial console line takes ({_MAX_COMMAND_BYTES}); split it or send the "
                f"data with put(): {_shorten(cmd)!r}"
            )
        end = re.compile(rb"tc-E" + re.escape(tag.encode()) + rb":(\d+)\r*\n")
        if self._pending:
            self.resync(_PENDING_RECOVERY_TIMEOUT)
        started = time.monotonic()
        self._pending = True
        self._send(line)
        if self._expect([end], limit, f"the end of {_shorten(cmd)!r}") is None:
            raise self._timed_out(cmd, limit, tag)
        self._pending = False
        duration = time.monotonic() - started
        returncode = int(self._spawn.match.group(1))
        return CommandResult(cmd, returncode, self._output(self._spawn.before, tag), duration)

    def check(self, cmd: str, timeout: float | None = None) -> CommandResult:
        """run(), raising CommandFailed unless the exit code is 0."""
        result = self.run(cmd, timeout)
        if not result.ok:
            raise CommandFailed(
                f"console {self._name}: {_shorten(cmd)!r} failed with exit code "
                f"{result.returncode}\noutput:\n{_indent(result.stdout[-4000:])}\n"
                f"last console lines:\n{_indent(self.tail(10))}\n"
                f"transcript: {self.transcript_path}"
            )
        return result

    def put(self, data: bytes, path: str, mode: int | None = None) -> None:
        """Write `data` to `path` on the target (base64 in short lines), verified by sha256."""
        if mode is not None and not 0 <= mode <= 0o7777:
            raise ValueError(f"file mode {mode:#o} for {path!r} is not a permission mode")
        target = _shell_path(path)
        staging = _shell_path(f"{path}.tc-upload")
        chunk = (_UPLOAD_COMMAND_BYTES - _WRAPPER_BYTES - len(staging)) // 4 * 4
        if chunk < 512:
            raise ConsoleError(f"console {self._name}: the path is too long to upload to: {path!r}")
        encoded = base64.b64encode(data).decode("ascii")
        for offset in range(0, len(encoded), chunk):
            redirect = ">" if offset == 0 else ">>"
            piece = encoded[offset : offset + chunk]
            self._transfer_step(f"echo {piece} {redirect} {staging}", path)
        if not encoded:
            self._transfer_step(f": > {staging}", path)
        chmod = "" if mode is None else f" && chmod {mode:o} {target}"
        # The staging file is unlinked while open, so that it is gone whatever happens next.
        digest = self._transfer_step(
            f"{{ rm -f {staging}; base64 -d > {target}; }} < {staging}{chmod}"
            f" && sha256sum < {target}",
            path,
        )
        self._verify(digest, data, f"upload of {len(data)} bytes to {path!r}")

    def get(self, path: str) -> bytes:
        """The content of `path` on the target (base64), verified by sha256."""
        source = _shell_path(path)
        what = f"download of {path!r}"
        size = re.fullmatch(r"\s*(\d+)\s*", self._transfer_step(f"wc -c < {source}", path))
        if size is None:
            raise self._garbled(what, "wc -c did not answer with a size")
        timeout = self._command_timeout + int(size.group(1)) * 4 / 3 / _TRANSFER_RATE
        *lines, digest = self._transfer_step(
            f"base64 {source} && sha256sum < {source}", path, timeout
        ).split("\n")
        try:
            data = base64.b64decode("".join(line.strip() for line in lines), validate=True)
        except binascii.Error as exc:
            raise self._garbled(what, f"the base64 text does not decode: {exc}") from None
        self._verify(digest, data, what)
        return data

    def tail(self, lines: int = 20) -> str:
        """The last lines received, without terminal codes: evidence for error messages."""
        return self._transcript.tail(lines)

    def close(self) -> None:
        """Close the stream and the transcript."""
        if self._closed:
            return
        self._closed = True
        # The stream is going away either way; the transcript must still be closed.
        with contextlib.suppress(OSError, pexpect.ExceptionPexpect):
            self._spawn.close()
        self._transcript.close()

    def _next_tag(self) -> str:
        self._seq += 1
        return f"{self._token}.{self._seq}"

    def _establish(self, timeout: float, *, interrupt: bool, booting: bool = False) -> None:
        limit = timeout * self._factor
        deadline = time.monotonic() + limit
        quiet = (_BOOT_QUIET if booting else _QUIET) * self._factor
        heard_at_start = self._received.count
        tag = self._next_tag()
        # One round trip: no echo (so busybox drops line editing and its escapes too), bare "\n"
        # line ends (see _KERNEL_MESSAGE), a prompt no output can fake, no continuation prompt,
        # no colours, and the kernel kept quiet.
        # The marker is built from a variable set first, so it only appears if the whole line
        # ran: a shell interrupted while reading may drop the start of a line.
        ready = f"tc_ready_{self._token}"
        probe_line = (
            f"{ready}=R{tag}; stty -echo -onlcr; PS1='tc''-{self._token}# '; PS2=''; "
            f'export TERM=dumb; dmesg -n 1 2>/dev/null; echo "tc-${ready}"; unset {ready}\n'
        ).encode()
        marker = re.compile(rb"tc-R" + re.escape(tag.encode()) + rb"\r*\n")
        login = self._login or Login(user=None)
        # Whatever was read before (an old prompt) must not pass for an answer to what follows.
        self._discard_received()
        if interrupt:
            # Ctrl-C alone: the setup line follows the prompt the shell prints in answer, as a
            # shell handling SIGINT may throw away whatever input came with it.
            self._send(_CTRL_C)
        # Prompts are judged only once the target is silent: on a slow line (or amid boot
        # messages) "... # " may be the middle of a line, and bytes sent too early are lost.
        settle = _SETTLE * self._factor
        step = settle / 4
        sent_user = sent_password = False
        login_prompts = pokes = 0
        silent = 0.0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConsoleError(
                    f"console {self._name}: no shell prompt within {limit:.1f} s (waited for a "
                    "login prompt, a password prompt or a shell prompt)\n"
                    f"last console lines:\n{_indent(self.tail(20))}\n"
                    f"transcript: {self.transcript_path}"
                )
            count = self._received.count
            index = self._expect([marker, _LOGIN_INCORRECT], min(step, remaining), "a prompt")
            if index == 0:
                return
            if index == 1 and (sent_user or sent_password):
                raise self._login_error(f"login incorrect for user {login.user!r}")
            if index is not None or self._received.count != count:
                silent = 0.0
                continue
            silent += step
            if silent < settle:
                continue
            last_said = self._spawn.buffer
            if _LOGIN_PROMPT.search(last_said):
                if login.user is None:
                    raise self._login_error("the target asks for a login but no user is given")
                login_prompts += 1
                if sent_password or login_prompts > 3:
                    raise self._login_error(f"login incorrect for user {login.user!r}")
                self._send(f"{login.user}\n".encode())
                sent_user = True
            elif _PASSWORD_PROMPT.search(last_said):
                if login.user is not None and not sent_user:
                    # A password prompt we did not cause: an empty answer brings a fresh login.
                    self._send(b"\n")
                elif login.password is None:
                    whose = "" if login.user is None else f" for user {login.user!r}"
                    raise self._login_error(f"the target asks for a password{whose}, none is given")
                else:
                    self._transcript.sent_secret()
                    self._transcript.sent(b"\n")
                    self._write(f"{login.password}\n".encode())
                    sent_password = True
            elif _SHELL_PROMPT.search(last_said):
                self._send(probe_line)
            elif silent >= quiet and not (booting and self._received.count == heard_at_start):
                # Long silence: poke with a newline; if that brought no prompt we know, the
                # prompt is unusual: try the setup line itself. A booting target that has said
                # nothing yet is never poked.
                pokes += 1
                if pokes % 2 == 0:
                    self._send(probe_line)
                else:
                    # Interrupting: a Ctrl-C that came while the shell was still starting the
                    # command can be lost, so it is sent again.
                    self._send(_CTRL_C if interrupt else b"\n")
            else:
                continue
            self._discard_received()  # answered: the same prompt must not be answered twice
            silent = 0.0

    def _discard_received(self) -> None:
        self._expect([_END_OF_DATA], 0, "buffered output")

    def _login_error(self, what: str) -> ConsoleError:
        return ConsoleError(
            f"console {self._name}: {what}; check the login configured for this target\n"
            f"last console lines:\n{_indent(self.tail(10))}\ntranscript: {self.transcript_path}"
        )

    def _expect(self, patterns: list[re.Pattern[bytes]], timeout: float, what: str) -> int | None:
        """Index of the first pattern seen, None on timeout; ConsoleError if the stream ends."""
        if self._closed:
            raise ConsoleError(f"console {self._name} is closed")
        try:
            index = self._spawn.expect_loop(
                _TailSearcher([*patterns, _KERNEL_PANIC]), timeout, None
            )
        except pexpect.TIMEOUT:
            return None
        except pexpect.EOF:
            raise self._stream_ended(what) from None
        if index == len(patterns):
            raise self._panicked(what)
        return index

    def _panicked(self, what: str) -> TargetCrashed:
        self.crashed = True
        # The lines after the panic message say why (the call trace, "end Kernel panic").
        with contextlib.suppress(pexpect.TIMEOUT, pexpect.EOF):
            self._spawn.expect_loop(
                _TailSearcher([re.compile(rb"end Kernel panic[^\n]*\n")]), 2.0 * self._factor, None
            )
        return TargetCrashed(
            f"console {self._name}: the target's kernel panicked while waiting for {what}\n"
            f"last console lines:\n{_indent(self.tail(30))}\ntranscript: {self.transcript_path}"
        )

    def _send(self, data: bytes) -> None:
        self._transcript.sent(data)
        self._write(data)

    def _write(self, data: bytes) -> None:
        if self._closed:
            raise ConsoleError(f"console {self._name} is closed")
        try:
            while data:
                written = self._spawn.send(data)
                data = data[written:] if written else b""
        except OSError:
            raise self._stream_ended("a write to the target") from None

    def _stream_ended(self, what: str) -> ConsoleError:
        return ConsoleError(
            f"console {self._name}: the stream ended while waiting for {what} (the target's "
            "serial line closed: the emulator exited, the board reset or the cable came out)\n"
            f"last console lines:\n{_indent(self.tail(20))}\ntranscript: {self.transcript_path}"
        )

    def _timed_out(self, cmd: str, limit: float, tag: str) -> ConsoleError:
        partial = "\n".join(self._output(self._spawn.before or b"", tag).split("\n")[-20:])
        try:
            self.resync(_RECOVERY_TIMEOUT)
            recovery = "it was interrupted with Ctrl-C and the session set up again"
        except ConsoleError as exc:
            recovery = f"the session could not be recovered: {exc}"
        return ConsoleError(
            f"console {self._name}: {_shorten(cmd)!r} did not finish within {limit:.1f} s; "
            f"{recovery}\noutput so far (last lines):\n{_indent(partial)}\n"
            f"transcript: {self.transcript_path}"
        )

    def _output(self, raw: bytes, tag: str) -> str:
        """What the command printed: after the start marker, cleaned of escapes and the kernel."""
        text = _KERNEL_LINE.sub(b"", strip_terminal_codes(_KERNEL_MESSAGE.sub(b"", raw)))
        start = text.find(f"tc-S{tag}".encode())
        if start >= 0:
            newline = text.find(b"\n", start)
            text = b"" if newline < 0 else text[newline + 1 :]
        # The shell prints its prompt (and a line-editing shell echoes the line) before it reads
        # the end marker's line: cut from the last prompt, a random token no output carries.
        prompt = text.rfind(f"tc-{self._token}# ".encode())
        if prompt >= 0:
            text = text[:prompt]
        if text.endswith(b"\n"):
            text = text[:-1]
        return text.decode("utf-8", "replace")

    def _transfer_step(self, cmd: str, path: str, timeout: float | None = None) -> str:
        result = self.run(cmd, timeout)
        if not result.ok:
            raise ConsoleError(
                f"console {self._name}: can't transfer {path!r} (exit code {result.returncode}): "
                f"{result.stdout.strip() or 'no message'}\ntranscript: {self.transcript_path}"
            )
        return result.stdout

    def _verify(self, digest_line: str, data: bytes, what: str) -> None:
        digest = _SHA256.search(digest_line)
        expected = hashlib.sha256(data).hexdigest()
        if digest is None or digest.group(0) != expected:
            target = digest.group(0) if digest else f"no digest in {digest_line!r}"
            raise self._garbled(what, f"sha256 on the target: {target}, here: {expected}")

    def _garbled(self, what: str, detail: str) -> ConsoleError:
        return ConsoleError(
            f"console {self._name}: {what} was garbled on the way ({detail})\n"
            f"transcript: {self.transcript_path}"
        )
