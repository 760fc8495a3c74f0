"""Files to and from a target: over HTTP when the target can reach the host, else the console."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import logging
import math
import re
import secrets
import shlex
import time
from dataclasses import dataclass

from pytest_thunder_container.errors import TargetError
from pytest_thunder_container.shell.http_drop import OneShotServer
from pytest_thunder_container.shell.protocol import Shell

_log = logging.getLogger(__name__)

PROBE_WAIT = 10.0  # seconds for the target to fetch a few bytes: no route or a dropped SYN
DATA_WAIT = 10.0  # seconds on top of the size-based allowance for the data itself
MIN_HTTP_RATE = 25_000  # bytes per second the slowest link (QEMU's usb-net: 200 KB/s) surely does
CONSOLE_MARGIN = 30.0  # the console command outlives the target-side watchdogs by this much
NETWORK_GRACE = 20.0  # seconds after the transfer is made in which failed probes are retried
RETRY_AFTER = 60.0  # after a failed probe, the console is used this long before HTTP is retried
_PROBE = b"thunder-container probe\n"
_SHA256 = re.compile(r"\b[0-9a-f]{64}\b")
# Exit codes of the target-side scripts.
_NO_ROUTE, _CHECKSUM, _TRANSFER_FAILED = 3, 4, 5

# `tc_bounded SECONDS CMD...`: CMD, killed after SECONDS (busybox wget is often built without
# -T, Debian's among them). A cancelled watchdog kills its own sleep: nothing is left behind.
_BOUNDED = (
    'tc_bounded() { tc_s=$1; shift; "$@" & tc_p=$!; '
    "( sleep \"$tc_s\" & tc_z=$!; trap 'kill $tc_z 2>/dev/null; exit 0' TERM; wait $tc_z; "
    "kill $tc_p 2>/dev/null ) & tc_w=$!; "
    "wait $tc_p; tc_r=$?; kill $tc_w 2>/dev/null; wait $tc_w 2>/dev/null; return $tc_r; }"
)


@dataclass(frozen=True)
class HostRoute:
    """Where the host's HTTP server listens, and the address the target reaches it at."""

    listen: str
    seen_from_target: str
    port: int = 0  # 0: any free port

    @classmethod
    def direct(cls, address: str, port: int = 0) -> HostRoute:
        """A board on the host's network: it reaches the host at the address the host listens on."""
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise TargetError(
                f"--thunder-host-address={address}: not an IP address (fix: this host's address "
                "on the board's network, e.g. 192.168.1.10)"
            ) from None
        return cls(address, address, port)


# QEMU's user network: the guest reaches the host's loopback at 10.0.2.2.
QEMU_USER_NETWORK = HostRoute("127.0.0.1", "10.0.2.2")


@dataclass(frozen=True)
class TransferRecord:
    """One file moved: which way, how (http or console), how long, and why not HTTP."""

    direction: str  # "put" or "get"
    path: str
    size: int
    method: str  # "http" or "console"
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        """Bytes per second."""
        return self.size / self.seconds if self.seconds > 0 else math.inf


def _sh_path(path: str) -> str:
    # "./" keeps a name starting with "-" from being read as an option (or as wget's stdout).
    return shlex.quote(f"./{path}" if path.startswith("-") else path)


def _base64_size(size: int) -> int:
    """The most bytes `base64` prints for `size` bytes (76-character lines)."""
    encoded = (size + 2) // 3 * 4
    return encoded + encoded // 76 + 1


@dataclass(frozen=True)
class _Limits:
    """Whole seconds the target-side steps may take, and the whole console command's limit.

    The target-side watchdogs (and the host server's socket timeout) wait by themselves: they are
    real seconds, the factor applied here. The console command's limit is nominal: the Console
    applies the factor to it, once.
    """

    probe: int  # one fetch of the probe
    grace: int  # how long failed probes are retried (the network may be coming up)
    data: int
    console: float  # nominal


def transfer_limits(size: int, factor: float, grace_left: float) -> _Limits:
    """The limits of one transfer of `size` bytes; `grace_left`: real seconds of network grace."""
    data_nominal = DATA_WAIT + size / MIN_HTTP_RATE
    probe, data = math.ceil(PROBE_WAIT * factor), math.ceil(data_nominal * factor)
    grace = max(0, math.ceil(grace_left))
    console = PROBE_WAIT + data_nominal + grace / factor + CONSOLE_MARGIN
    return _Limits(probe, grace, data, console)


def _after_probe(limits: _Limits, probe_url: str, script: str) -> str:
    """`script` in a subshell, once the target has fetched the probe (else exit 3)."""
    return (
        f"( unset http_proxy HTTP_PROXY; {_BOUNDED}\n"
        f"tc_end=$(( $(date +%s) + {limits.grace} ))\n"
        f"until tc_bounded {limits.probe} wget -q -O /dev/null {shlex.quote(probe_url)} 2>&1; "
        f"do [ $(date +%s) -ge $tc_end ] && exit {_NO_ROUTE}; sleep 1; done\n{script} )"
    )


class FileTransfer:
    """put()/get() like Console's, over HTTP pulled by the target's wget, else over the console."""

    def __init__(
        self,
        shell: Shell,
        route: HostRoute | None = None,
        *,
        name: str = "target",
        timeout_factor: float = 1.0,
        network_grace: float = NETWORK_GRACE,
    ) -> None:
        self._shell = shell
        # A target that was just started may not have its network yet (DHCP, a hot-added NIC).
        self._grace_until = time.monotonic() + network_grace * timeout_factor
        self._route = route
        self._name = name
        self._factor = timeout_factor
        self._http_down_until = 0.0
        self._http_down_reason = ""
        self._history: list[TransferRecord] = []

    @property
    def history(self) -> tuple[TransferRecord, ...]:
        return tuple(self._history)

    def put(self, data: bytes, path: str, mode: int | None = None) -> None:
        """Write `data` to `path` on the target, checked by sha256 there before it is moved in."""
        if mode is not None and not 0 <= mode <= 0o7777:
            raise ValueError(f"file mode {mode:#o} for {path!r} is not a permission mode")
        started = time.monotonic()
        note = self._why_not_http()
        if not note:
            note = self._put_over_http(data, path, mode)
            if not note:
                self._record("put", path, len(data), "http", started)
                return
        self._shell.put(data, path, mode)
        self._record("put", path, len(data), "console", started, note)

    def get(self, path: str) -> bytes:
        """The content of `path` on the target, checked against the target's sha256."""
        started = time.monotonic()
        note = self._why_not_http()
        if not note:
            data, note = self._get_over_http(path)
            if data is not None:
                self._record("get", path, len(data), "http", started)
                return data
        data = self._shell.get(path)
        self._record("get", path, len(data), "console", started, note)
        return data

    def _why_not_http(self) -> str:
        if self._route is None:
            return "no address of the host for the target (--thunder-host-address)"
        if time.monotonic() < self._http_down_until:
            return self._http_down_reason
        return ""

    def _limits(self, size: int) -> _Limits:
        return transfer_limits(size, self._factor, self._grace_until - time.monotonic())

    def _put_over_http(self, data: bytes, path: str, mode: int | None) -> str:
        """'' when the file is in place; else why HTTP did not work (the console is used)."""
        assert self._route is not None
        limits = self._limits(len(data))
        q = shlex.quote
        staging = _sh_path(f"{path}.tc-http")
        dest = _sh_path(path)
        if mode is None:
            # As Console.put: an existing file keeps its mode and owner (and a link its target).
            place = f'if [ -e {dest} ]; then cat "$t" > {dest}; r=$?; rm -f "$t"; exit $r; fi\n'
            place += f'mv -f "$t" {dest}'
        else:
            place = f'chmod {mode:o} "$t" && mv -f "$t" {dest}'
        digest = hashlib.sha256(data).hexdigest()
        with OneShotServer(self._route.listen, self._route.port, io_timeout=limits.data) as server:
            probe = server.url(server.offer(_PROBE), self._route.seen_from_target)
            url = server.url(server.offer(data), self._route.seen_from_target)
            result = self._shell.run(
                _after_probe(
                    limits,
                    probe,
                    f"t={staging}\n"
                    f'tc_bounded {limits.data} wget -q -O "$t" {q(url)} 2>&1 '
                    f'|| {{ rm -f "$t"; exit {_TRANSFER_FAILED}; }}\n'
                    f's=$(sha256sum < "$t"); s=${{s%% *}}\n'
                    f'[ "$s" = {digest} ] || {{ rm -f "$t"; echo "sha256 on the target: $s"; '
                    f"exit {_CHECKSUM}; }}\n{place}",
                ),
                limits.console,
            )
        if result.returncode == _CHECKSUM:
            raise TargetError(
                f"{self._name}: upload of {len(data)} bytes to {path!r} over HTTP arrived "
                f"garbled ({result.stdout.strip() or 'no digest'}, here: {digest}); the file was "
                "not put in place"
            )
        return self._failure(result.returncode, result.stdout, f"put {path!r}")

    def _get_over_http(self, path: str) -> tuple[bytes | None, str]:
        assert self._route is not None
        source = _sh_path(path)
        facts = self._shell.run(f"wc -c < {source} && sha256sum < {source}")
        size = re.match(r"\s*(\d+)\s", facts.stdout)
        digest = _SHA256.search(facts.stdout)
        if facts.returncode != 0 or size is None or digest is None:
            return None, f"can't read {path!r} for HTTP: {facts.stdout.strip()[-200:]}"
        limits = self._limits(_base64_size(int(size.group(1))))
        q = shlex.quote
        with OneShotServer(self._route.listen, self._route.port, io_timeout=limits.data) as server:
            probe = server.url(server.offer(_PROBE), self._route.seen_from_target)
            upload = server.expect_upload(_base64_size(int(size.group(1))))
            url = server.url(upload, self._route.seen_from_target)
            # busybox wget posts a file as a C string (up to the first NUL): base64 it first.
            staging = shlex.quote(f"/tmp/tc-get-{secrets.token_hex(4)}")
            result = self._shell.run(
                _after_probe(
                    limits,
                    probe,
                    f"base64 {source} > {staging} || exit {_TRANSFER_FAILED}\n"
                    f"tc_bounded {limits.data} wget -q -O /dev/null --post-file {staging} {q(url)} "
                    f"2>&1; r=$?; rm -f {staging}; [ $r = 0 ] || exit {_TRANSFER_FAILED}",
                ),
                limits.console,
            )
            encoded = server.uploaded(upload)
        note = self._failure(result.returncode, result.stdout, f"get {path!r}")
        if note:
            return None, note
        if encoded is None:
            return None, f"get {path!r}: wget succeeded but nothing arrived"
        garbled = f"{self._name}: download of {path!r} over HTTP arrived garbled"
        try:
            data = base64.b64decode(b"".join(encoded.split()), validate=True)
        except binascii.Error as error:
            raise TargetError(f"{garbled} (not base64: {error})") from None
        here = hashlib.sha256(data).hexdigest()
        if here != digest.group(0):
            raise TargetError(f"{garbled} (sha256 on the target: {digest.group(0)}, here: {here})")
        return data, ""

    def _failure(self, code: int, said: str, what: str) -> str:
        """'' for success, else the reason HTTP was not used (remembered when there's no route)."""
        if code == 0:
            return ""
        detail = said.strip()[-300:] or "no message"
        if code == _NO_ROUTE:
            where = self._route.seen_from_target if self._route else "?"
            reason = f"the target can't fetch from the host at {where}: {detail}"
            self._http_down_until = time.monotonic() + RETRY_AFTER
            self._http_down_reason = reason
            return reason
        return f"{what} over HTTP failed (exit code {code}): {detail}"

    def _record(
        self, direction: str, path: str, size: int, method: str, started: float, note: str = ""
    ) -> None:
        record = TransferRecord(direction, path, size, method, time.monotonic() - started, note)
        self._history.append(record)
        _log.info(
            "%s: %s %s, %d bytes over %s in %.2f s%s",
            self._name,
            direction,
            path,
            size,
            method,
            record.seconds,
            f" ({note})" if note else "",
        )
