"""A minimal milter speaking the raw protocol, to test the harness's MTA wiring.

Not a model of mxguard: it records what the MTA sends (connect data, macros per stage,
envelope) and can reject chosen recipients, so the harness tests can prove that each MTA
reaches the milter and passes the macros mxguard relies on. Protocol version 6, no steps
negotiated away, a reply to every command.
"""

from __future__ import annotations

import os
import socket
import socketserver
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

SMFI_VERSION = 6


@dataclass
class MilterSession:
    """What one MTA connection told the milter."""

    hostname: str = ""
    family: str = ""
    port: int = 0
    address: str = ""
    helo: str = ""
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    macros: dict[str, dict[str, str]] = field(default_factory=dict)  # stage letter -> macros
    headers: list[tuple[str, str]] = field(default_factory=list)

    def macro(self, name: str) -> str | None:
        """The latest value of macro `name` (braces optional) over all stages."""
        for key in (name, "{" + name.strip("{}") + "}", name.strip("{}")):
            for stage in "CHMRTNLE":
                if key in self.macros.get(stage, {}):
                    return self.macros[stage][key]
        return None


def _cstrings(data: bytes) -> list[str]:
    return [s.decode("utf-8", "replace") for s in data.split(b"\0")[:-1]]


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        milter: FakeMilter = self.server.milter  # type: ignore[attr-defined]
        session = MilterSession()
        with milter.lock:
            milter.sessions.append(session)
        sock = self.request
        while True:
            packet = _read_packet(sock)
            if packet is None:
                return
            cmd, data = packet[:1], packet[1:]
            reply = milter.dispatch(session, cmd, data)
            if reply == b"quit":
                return
            if reply is not None:
                sock.sendall(struct.pack("!I", len(reply)) + reply)


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _read_packet(sock: socket.socket) -> bytes | None:
    head = _read_exact(sock, 4)
    if head is None:
        return None
    (length,) = struct.unpack("!I", head)
    return _read_exact(sock, length)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _TcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeMilter:
    """Recording milter on a unix socket path (default) or a loopback TCP port.

    `reject_rcpt`: recipients (lower-case) answered with "550 5.7.1 fake milter rejects".
    `socket` is in libmilter syntax, as Mxguard.socket is, so MTAs accept either.
    """

    def __init__(self, path: Path | None = None, tcp: bool = False,
                 reject_rcpt: tuple[str, ...] = ()):
        self.sessions: list[MilterSession] = []
        self.lock = threading.Lock()
        self.reject_rcpt = {r.lower() for r in reject_rcpt}
        if tcp:
            self.server = _TcpServer(("127.0.0.1", 0), _Handler)
            self.socket = f"inet:{self.server.server_address[1]}@127.0.0.1"
        else:
            assert path is not None, "unix socket path needed"
            Path(path).unlink(missing_ok=True)
            self.server = _UnixServer(str(path), _Handler)
            os.chmod(path, 0o666)
            self.socket = f"unix:{path}"
        self.server.milter = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def dispatch(self, s: MilterSession, cmd: bytes, data: bytes) -> bytes | None:
        """The reply packet (command byte + data) to one MTA command; None for no reply."""
        if cmd == b"O":  # option negotiation: version, actions, protocol steps
            version, _actions, _protocol = struct.unpack("!III", data[:12])
            return b"O" + struct.pack("!III", min(version, SMFI_VERSION), 0, 0)
        if cmd == b"D":  # macros for the stage named by the first byte
            stage = data[:1].decode()
            values = _cstrings(data[1:])
            s.macros.setdefault(stage, {}).update(dict(zip(values[::2], values[1::2])))
            return None
        if cmd == b"C":
            host, _, rest = data.partition(b"\0")
            s.hostname = host.decode()
            s.family = rest[:1].decode()
            if s.family in ("4", "6"):
                (s.port,) = struct.unpack("!H", rest[1:3])
                s.address = rest[3:].rstrip(b"\0").decode()
            return b"c"
        if cmd == b"H":
            s.helo = data.rstrip(b"\0").decode()
            return b"c"
        if cmd == b"M":
            s.sender = _cstrings(data)[0]
            return b"c"
        if cmd == b"R":
            rcpt = _cstrings(data)[0]
            s.recipients.append(rcpt)
            if rcpt.strip("<>").lower() in self.reject_rcpt:
                return b"y" + b"550 5.7.1 fake milter rejects\0"
            return b"c"
        if cmd == b"L":
            name, value = (_cstrings(data) + ["", ""])[:2]
            s.headers.append((name, value))
            return b"c"
        if cmd in (b"T", b"N", b"B", b"E", b"U"):  # data, eoh, body chunk, eom, unknown
            return b"c"
        if cmd == b"A":  # abort: no reply, session goes on
            return None
        if cmd == b"Q":
            return b"quit"
        return b"c"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.socket.startswith("unix:"):
            Path(self.socket[5:]).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Stand-in daemon with mxguard's command line, to self-test the Mxguard runner.

    `fakemilter.py -f -p SOCKET -c CONFIG [--reject-rcpt ADDR]...`: logs one stderr line per
    recipient decision, "reloaded" on SIGUSR1, exits 0 on SIGTERM.
    """
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("-f", action="store_true")
    parser.add_argument("-p", required=True)
    parser.add_argument("-c")
    parser.add_argument("--reject-rcpt", action="append", default=[])
    args = parser.parse_args(argv)
    scheme, _, rest = args.p.partition(":")
    if scheme in ("unix", "local"):
        milter = FakeMilter(path=Path(rest), reject_rcpt=tuple(args.reject_rcpt))
    else:
        raise SystemExit("fakemilter: only unix sockets")

    original = milter.dispatch

    def logging_dispatch(s, cmd, data):
        reply = original(s, cmd, data)
        if cmd == b"R":
            verdict = "reject" if reply and reply[:1] == b"y" else "continue"
            print(f"rcpt={s.recipients[-1]} client={s.address} action={verdict}",
                  file=sys.stderr, flush=True)
        return reply
    milter.dispatch = logging_dispatch  # type: ignore[method-assign]

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGUSR1, lambda *_: print("reloaded", file=sys.stderr, flush=True))
    print(f"listening on {args.p}", file=sys.stderr, flush=True)
    done.wait()
    milter.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
