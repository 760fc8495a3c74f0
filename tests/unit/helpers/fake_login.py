"""A small login program for the console tests: banner, login, password without echo, a shell."""

from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import time

# What a UART picks up before the board prints anything sensible.
GARBAGE = b"\x00\xff\xfe\xf0\x8a\x1b[2J\x1b[H\x03\x13 noise ~.. \xc3\x28\r\n"
# Boot messages with prompt-like text in mid-line: on a slow line a read may end right there.
BOOT_LOG = (
    "[    4.171866] printk: console [ttyAMA0] enabled # \n"
    "[    4.239980] random: crng init done -> $ 100% > next\n"
    "[    4.588876] systemd-getty: tty login: Password: starting\n"
    "[    4.630000] Run /init as init process\n"
)


def write(text: str | bytes) -> None:
    os.write(1, text.encode() if isinstance(text, str) else text)


def read_line() -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 1024)
        if not chunk:
            sys.exit(0)
        data += chunk
    return data.decode(errors="replace").strip()


def set_echo(on: bool) -> None:
    attrs = termios.tcgetattr(0)
    attrs[3] = attrs[3] | termios.ECHO if on else attrs[3] & ~termios.ECHO
    termios.tcsetattr(0, termios.TCSANOW, attrs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--user", default="root")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--garbage", action="store_true", help="noise before the banner")
    parser.add_argument("--boot-log", action="store_true", help="kernel messages first")
    parser.add_argument("--wait-for-enter", action="store_true", help="silent until a newline")
    parser.add_argument("--no-password", action="store_true", help="never ask for a password")
    parser.add_argument("--shell", default="/bin/sh")
    parser.add_argument(
        "--silent-first",
        type=float,
        default=0.0,
        help="say nothing for SECONDS (a booting board), then tell about input",
    )
    args = parser.parse_args()
    if args.silent_first:
        time.sleep(args.silent_first)
        if select.select([0], [], [], 0)[0]:
            write("EARLY-INPUT: bytes arrived before the board said anything\n")
    if args.garbage:
        write(GARBAGE)
    if args.boot_log:
        write(BOOT_LOG)
    if args.wait_for_enter:
        read_line()
    write("\nThunder reference image 1.0 (ttyAMA0)\n\n")
    for _ in range(3):
        write("rpi3 login: ")
        user = read_line()
        password = ""
        if not args.no_password:
            set_echo(False)  # before the prompt, like login(1): an answer must never echo
            write("Password: ")
            password = read_line()
            set_echo(True)
            write("\n")
        if user == args.user and (args.no_password or password == args.password):
            write("Last login: Thu Jan  1 00:00:00 UTC 1970 on ttyAMA0\nHave a lot of fun...\n")
            os.environ["LOGNAME"] = user
            os.execv(args.shell, [args.shell, "-i"])
        write("\nLogin incorrect\n")
    sys.exit(1)


if __name__ == "__main__":
    main()
