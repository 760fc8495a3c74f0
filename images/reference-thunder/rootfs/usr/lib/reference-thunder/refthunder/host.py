"""The reference plugin host (ThunderPlugin for R5, WPEProcess for R4.4): NOT real Thunder.

Started by the daemon with real Thunder's argv shape (-l -c -C -r -i -x ... with paths in
double quotes), it connects to the communicator given by -r, announces itself, receives the
plugin configuration (Setup), initialises the implementation named by -c when asked, and serves
it until told to stop, until the daemon goes away, or until SIGTERM.
Imports only os, sys, socket, json, struct, signal, errno and time: imports are slow under
emulation. That rules out select and threads, so the serve loop polls the communicator between
accept() calls that time out after `pollinterval` ms (sent by the daemon in Setup).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

from refthunder import frames
from refthunder.ocdm_impl import IMPLEMENTATION_CLASS, OcdmImplementation

# getopt string of real ThunderPlugin (Source/ThunderPlugin/Process.cpp): every option has a value.
OPTION_LETTERS = "hlcCrpsdamiugteExVvPSf"
PATH_OPTIONS = "psdamvPSf"
EXIT_OK = 0
EXIT_FAILURE = 1


class HostStopped(Exception):
    """SIGTERM or SIGINT arrived: leave the serve loop and clean up."""


def strip_quotes(value: str) -> str:
    """Real Thunder wraps path arguments in literal double quotes; take them off."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value[1:] if value.startswith('"') else value


def parse_options(arguments: list[str]) -> dict:
    """Parse the host's argv into {letter: value}; -e, -E and -f collect lists."""
    options: dict = {"e": [], "E": [], "f": []}
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        if len(argument) < 2 or argument[0] != "-" or argument[1] not in OPTION_LETTERS:
            raise ValueError(f"unexpected argument {argument!r}")
        letter = argument[1]
        if len(argument) > 2:
            value = argument[2:]
        elif index + 1 < len(arguments):
            index += 1
            value = arguments[index]
        else:
            raise ValueError(f"option -{letter} needs a value")
        if letter in PATH_OPTIONS or letter in "eE":
            value = strip_quotes(value)
        if letter in "eEf":
            options[letter].append(value)
        else:
            options[letter] = value
        index += 1
    for required in "lcCrix":
        if required not in options:
            raise ValueError(f"option -{required} is missing")
    return options


def say(callsign: str, message: str) -> None:
    """One line on stderr: the daemon's log when started by the daemon or by runc."""
    name = os.path.basename(sys.argv[0]) if sys.argv else "host"
    sys.stderr.write(f"{name}[{callsign}] pid {os.getpid()}: {message}\n")
    sys.stderr.flush()


class MessageFiles:
    """md.<exchange>.data and md.<exchange>.metadata under MESSAGE_DISPATCHER_CONFIG's path."""

    def __init__(self, exchange: str) -> None:
        self.paths: list[str] = []
        self._socket: socket.socket | None = None
        base = os.environ.get("MESSAGE_DISPATCHER_CONFIG", "").split("|")[0]
        if not base.startswith("/") or not os.path.isdir(base):
            return
        data_path = os.path.join(base, f"md.{exchange}.data")
        metadata_path = os.path.join(base, f"md.{exchange}.metadata")
        try:
            with open(data_path, "wb") as data:
                data.truncate(4096)
            self.paths.append(data_path)
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._socket.bind(metadata_path)
            self.paths.append(metadata_path)
        except OSError:
            pass

    def remove(self) -> None:
        if self._socket is not None:
            self._socket.close()
        for path in self.paths:
            try:  # noqa: SIM105 (contextlib would cost the plugin host an import)
                os.unlink(path)
            except OSError:
                pass


def apply_environment(options: dict) -> None:
    """COM_PARENT_INFO as real ThunderPlugin sets it, then -e/-E KEY=VALUE entries."""
    os.environ["COM_PARENT_INFO"] = f"{options['x']},{options['C']}"
    for entry in options["e"] + options["E"]:
        key, _, value = entry.partition("=")
        if key:
            os.environ[key] = value


def announce(channel: socket.socket, options: dict) -> None:
    frames.send_frame(
        channel,
        frames.ANNOUNCE,
        {
            "id": os.getpid(),
            "interface": int(options["i"]),
            "exchange": int(options["x"]),
            "version": int(options.get("V", "4294967295")),
            "kind": "plugin-host",
            "classname": options["c"],
            "callsign": options["C"],
        },
    )


def initialise(classname: str, configuration: dict) -> OcdmImplementation:
    """Create and open the implementation named by -c; raise OSError/ValueError with the reason."""
    if classname != IMPLEMENTATION_CLASS:
        raise ValueError(f"class {classname!r} is not provided by the reference plugin host")
    implementation = OcdmImplementation(configuration)
    implementation.open()
    return implementation


def serve(channel: socket.socket, buffer: frames.FrameBuffer, implementation, setup: dict) -> str:
    """Serve OCDM clients until Deinitialize, channel close or a stop signal; return why."""
    poll = max(int(setup.get("pollinterval", 200)), 10) / 1000.0
    request_timeout = max(int(setup.get("requesttimeout", 10000)), 100) / 1000.0
    listener = implementation.listener
    listener.settimeout(poll)
    while True:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            connection = None
        if connection is not None:
            implementation.serve(connection, request_timeout)
        try:
            data = channel.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError:
            return "the communicator channel failed"
        if not data:
            return "the daemon closed the communicator channel"
        buffer.feed(data)
        frame = buffer.pop()
        while frame is not None:
            if frame[0] == frames.DEINITIALIZE:
                return "Deinitialize requested"
            frame = buffer.pop()


def run(options: dict) -> int:
    callsign = options["C"]
    apply_environment(options)
    messages = MessageFiles(options["x"])
    implementation = None
    channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        channel.connect(options["r"])
        announce(channel, options)
        buffer = frames.FrameBuffer()
        setup: dict = {}
        # No timeout of our own before Setup (we have no configuration yet): the daemon's
        # announce/initialize timeouts kill us, and its going away ends the wait (EOF).
        while True:
            command, payload = frames.receive_frame(channel, buffer, None)
            if command == frames.SETUP:
                setup = payload
            elif command == frames.DEINITIALIZE:
                return EXIT_OK
            elif command == frames.INITIALIZE:
                break
        configuration = setup.get("configuration")
        try:
            implementation = initialise(
                options["c"], configuration if isinstance(configuration, dict) else {}
            )
        except (OSError, ValueError) as error:
            say(callsign, f"initialisation failed: {error}")
            frames.send_frame(channel, frames.INITIALIZED, {"error": str(error)})
            return EXIT_FAILURE
        frames.send_frame(channel, frames.INITIALIZED, {"error": None})
        say(callsign, f"{options['c']} initialised, serving {implementation.path}")
        reason = serve(channel, buffer, implementation, setup)
        say(callsign, f"stopping: {reason}")
        return EXIT_OK
    except HostStopped:
        say(callsign, "stopping: signal received")
        return EXIT_OK
    except (OSError, EOFError, frames.FrameError) as error:
        say(callsign, f"communicator {options['r']}: {error}")
        return EXIT_FAILURE
    finally:
        if implementation is not None:
            implementation.close()
        messages.remove()
        channel.close()


def _stop(signum: int, frame: object) -> None:
    # One stop is enough: a second signal must not interrupt the clean-up of the first.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise HostStopped()


def main(argv: list[str]) -> int:
    try:
        options = parse_options(argv[1:])
    except ValueError as error:
        sys.stderr.write(f"{os.path.basename(argv[0])}: {error}\n")
        return EXIT_FAILURE
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    started = time.monotonic()
    say(options["C"], f"started: -c {options['c']} -x {options['x']} -r {options['r']}")
    result = run(options)
    say(options["C"], f"exit {result} after {time.monotonic() - started:.1f} s")
    return result
