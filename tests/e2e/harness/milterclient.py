"""The MTA side of the milter protocol (version 6), to drive mxguard directly.

Postfix and Sendmail never misbehave on cue; this client can. It speaks to a milter socket
the way an MTA does (option negotiation, macros, connect, HELO, MAIL, RCPT, DATA, headers,
end of headers, body, end of message, abort, quit) and, between any two steps, can stop:
close the socket, send half a packet, send a packet whose length lies, or send a command
out of order. Tests use it to check that mxguard survives every such drop and frees what the
session held.

    with MilterClient(daemon.socket) as m:
        m.negotiate()
        m.connect("client.example", "127.0.0.3")
        m.mail("<a@example.org>")
        reply = m.rcpt("<b@example.com>")   # MilterReply: reply.code == 550, say

Wire format: every packet is a 4-byte big-endian length (counting the command byte), one
command byte, then the data; strings are NUL-terminated. Stages the milter negotiated away
(SMFIP_NO*) are not sent unless forced; stages it asked not to answer (SMFIP_NR_*) return
NO_REPLY without reading. Standard library only.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

from .milteraddr import MilterAddress

PROTOCOL_VERSION = 6

# Actions the MTA allows (SMFIF_*): add/change headers, recipients, body, quarantine, sender...
ALL_ACTIONS = 0x1FF

# Protocol step flags (SMFIP_*), as in libmilter's mfdef.h.
NOCONNECT = 0x1
NOHELO = 0x2
NOMAIL = 0x4
NORCPT = 0x8
NOBODY = 0x10
NOHDRS = 0x20
NOEOH = 0x40
NR_HDR = 0x80
NOUNKNOWN = 0x100
NODATA = 0x200
SKIP = 0x400
RCPT_REJ = 0x800
NR_CONN = 0x1000
NR_HELO = 0x2000
NR_MAIL = 0x4000
NR_RCPT = 0x8000
NR_DATA = 0x10000
NR_UNKN = 0x20000
NR_EOH = 0x40000
NR_BODY = 0x80000
HDR_LEADSPC = 0x100000

#: What a current MTA offers: every "do not send" and "no reply" step, SKIP and RCPT_REJ.
ALL_PROTOCOL = 0x1FFFFF

#: stage -> (command byte, "do not send" flag, "no reply" flag)
STAGES = {
    "connect": (b"C", NOCONNECT, NR_CONN),
    "helo": (b"H", NOHELO, NR_HELO),
    "mail": (b"M", NOMAIL, NR_MAIL),
    "rcpt": (b"R", NORCPT, NR_RCPT),
    "data": (b"T", NODATA, NR_DATA),
    "header": (b"L", NOHDRS, NR_HDR),
    "eoh": (b"N", NOEOH, NR_EOH),
    "body": (b"B", NOBODY, NR_BODY),
    "eom": (b"E", 0, 0),
    "unknown": (b"U", NOUNKNOWN, NR_UNKN),
}

#: Replies that end a step (the others, e.g. add header or progress, come before one).
FINAL_REPLIES = {b"c", b"a", b"r", b"t", b"d", b"y", b"s", b"f", b"4"}


@dataclass
class MilterReply:
    """The milter's answer to one step: the final reply and the actions sent before it."""

    cmd: bytes
    data: bytes = b""
    actions: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return {b"c": "continue", b"a": "accept", b"r": "reject", b"t": "tempfail",
                b"d": "discard", b"y": "replycode", b"s": "skip", b"f": "connfail",
                b"4": "shutdown"}.get(self.cmd, repr(self.cmd))

    @property
    def code(self) -> int:
        """The SMTP code: from a reply code packet ("550 5.7.1 ..."), else 0 for continue and
        accept, 250 for discard, the generic 550/451 for a plain reject/tempfail."""
        if self.cmd == b"y":
            return int(self.data[:3])
        return {b"r": 550, b"t": 451}.get(self.cmd, 0)

    @property
    def text(self) -> str:
        return self.data.rstrip(b"\0").decode("utf-8", "replace")

    @property
    def passes(self) -> bool:
        """The step goes on (continue, accept, skip)."""
        return self.cmd in (b"c", b"a", b"s")

    def __str__(self) -> str:
        return f"{self.name} {self.text}".strip()


class _Marker:
    def __init__(self, name: str):
        self.name = name

    @property
    def passes(self) -> bool:
        """A step not sent, or sent without a reply, never stops the transaction."""
        return True

    def __repr__(self) -> str:
        return self.name


#: Returned by a step the milter negotiated away (not sent).
SKIPPED = _Marker("SKIPPED")
#: Returned by a step the milter asked not to answer (sent, no reply read).
NO_REPLY = _Marker("NO_REPLY")


class MilterClosed(ConnectionError):
    """The milter closed the connection (or it broke) where a reply was due."""


def cstr(*parts: str | bytes) -> bytes:
    """NUL-terminated strings, concatenated."""
    out = b""
    for p in parts:
        out += (p if isinstance(p, bytes) else p.encode("utf-8", "surrogateescape")) + b"\0"
    return out


def packet(cmd: bytes, data: bytes = b"") -> bytes:
    return struct.pack("!I", len(data) + 1) + cmd + data


class MilterClient:
    """One MTA-to-milter connection. `address`: libmilter syntax, a MilterAddress or a
    running Mxguard. `timeout`: how long to wait for each reply."""

    def __init__(self, address, timeout: float = 10.0):
        self.address = MilterAddress.parse(address)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.protocol = 0      # the milter's protocol flags after negotiate()
        self.actions = 0
        self.version = 0
        self.macro_lists = b""  # anything after the three words of the milter's OPTNEG
        self._buf = b""

    # -- connection ------------------------------------------------------------------------
    def open(self) -> "MilterClient":
        a = self.address
        if a.kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = a.path
        else:
            s = socket.socket(socket.AF_INET6 if a.kind == "inet6" else socket.AF_INET,
                              socket.SOCK_STREAM)
            target = (a.host, a.port)
        s.settimeout(self.timeout)
        s.connect(target)
        self.sock = s
        return self

    def close(self) -> None:
        """Drop the connection as a crashing MTA would: no QUIT."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def reset(self) -> None:
        """Close with a TCP reset instead of an orderly shutdown (SO_LINGER 0); unix
        sockets just close."""
        if self.sock is not None and self.address.kind != "unix":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def __enter__(self) -> "MilterClient":
        return self.open() if self.sock is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- raw I/O ---------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        assert self.sock is not None, "not connected"
        self.sock.sendall(data)

    def send(self, cmd: bytes, data: bytes = b"") -> None:
        self.send_raw(packet(cmd, data))

    def _recv_exact(self, n: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply from the milter within {timeout:g}s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError(f"no reply from the milter within {timeout:g}s") from None
            except OSError as e:
                raise MilterClosed(f"connection broke: {e}") from None
            if not chunk:
                raise MilterClosed("the milter closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def read_packet(self, timeout: float | None = None) -> tuple[bytes, bytes]:
        """One packet from the milter: (command byte, data)."""
        t = self.timeout if timeout is None else timeout
        (length,) = struct.unpack("!I", self._recv_exact(4, t))
        body = self._recv_exact(length, t)
        return body[:1], body[1:]

    def read_reply(self, timeout: float | None = None) -> MilterReply:
        """Packets up to the final reply of a step; actions before it are collected."""
        actions = []
        while True:
            cmd, data = self.read_packet(timeout)
            if cmd in FINAL_REPLIES:
                return MilterReply(cmd, data, actions)
            if cmd != b"p":  # progress: the milter is still working
                actions.append((cmd, data))

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the milter closes the connection within `timeout` (nothing else read)."""
        try:
            cmd, data = self.read_packet(timeout)
        except MilterClosed:
            return True
        except TimeoutError:
            return False
        raise AssertionError(f"unexpected packet {cmd!r} {data[:80]!r} from the milter")

    # -- protocol steps --------------------------------------------------------------------
    def negotiate(self, protocol: int = ALL_PROTOCOL, actions: int = ALL_ACTIONS,
                  version: int = PROTOCOL_VERSION) -> MilterReply:
        """SMFIC_OPTNEG: offer `protocol` and `actions`; remember what the milter chose."""
        self.send(b"O", struct.pack("!III", version, actions, protocol))
        cmd, data = self.read_packet()
        if cmd != b"O" or len(data) < 12:
            raise AssertionError(f"bad negotiation reply {cmd!r} {data!r}")
        self.version, self.actions, self.protocol = struct.unpack("!III", data[:12])
        self.macro_lists = data[12:]
        return MilterReply(cmd, data)

    def wants(self, stage: str) -> bool:
        """Whether the milter asked for `stage` (a real MTA would send it)."""
        return not self.protocol & STAGES[stage][1]

    def answers(self, stage: str) -> bool:
        return not self.protocol & STAGES[stage][2]

    def macros(self, stage: bytes, values: dict[str, str]) -> None:
        """SMFIC_MACRO for the step with command byte `stage` (no reply)."""
        self.send(b"D", stage + b"".join(cstr(k, v) for k, v in values.items()))

    def step(self, stage: str, data: bytes = b"", force: bool = False):
        """Send one step; its reply, NO_REPLY (negotiated so) or SKIPPED (negotiated away)."""
        cmd, _, _ = STAGES[stage]
        if not force and not self.wants(stage):
            return SKIPPED
        self.send(cmd, data)
        if not self.answers(stage):
            return NO_REPLY
        return self.read_reply()

    def connect(self, hostname: str = "client.test.example", address: str = "127.0.0.3",
                port: int = 25000, **kw):
        family = b"6" if ":" in address else b"4"
        return self.step("connect", cstr(hostname) + family + struct.pack("!H", port)
                         + cstr(address), **kw)

    def helo(self, name: str = "client.test.example", **kw):
        return self.step("helo", cstr(name), **kw)

    def mail(self, sender: str = "<sender@client.test.example>", *args: str, **kw):
        return self.step("mail", cstr(sender, *args), **kw)

    def rcpt(self, recipient: str, *args: str, **kw):
        return self.step("rcpt", cstr(recipient, *args), **kw)

    def data(self, **kw):
        return self.step("data", **kw)

    def header(self, name: str | bytes, value: str | bytes, **kw):
        return self.step("header", cstr(name, value), **kw)

    def eoh(self, **kw):
        return self.step("eoh", **kw)

    def body(self, chunk: bytes, **kw):
        return self.step("body", chunk, **kw)

    def eom(self, **kw):
        return self.step("eom", **kw)

    def abort(self) -> None:
        """SMFIC_ABORT: the transaction ends, the connection stays (no reply)."""
        self.send(b"A")

    def quit(self) -> None:
        """SMFIC_QUIT: the orderly end of the connection (no reply)."""
        self.send(b"Q")
        self.close()


def postfix_connect_macros(client: str = "127.0.0.3", daemon: str = "127.0.0.1") -> dict:
    """Macros Postfix sends before connect, as the harness configures them."""
    return {"j": "mx.test.example", "{daemon_name}": "mx.test.example",
            "{daemon_addr}": daemon, "v": "Postfix 3.7.11", "{client_addr}": client,
            "{client_name}": "unknown"}


def connect_like_postfix(address, client: str, daemon_addr: str = "127.0.0.1",
                         name: str = "client.test.example"):
    """A negotiated connection with Postfix's connect macros and the connect step sent:
    (the client, the milter's reply to connect)."""
    m = MilterClient(address).open()
    m.negotiate()
    m.macros(b"C", postfix_connect_macros(client=client, daemon=daemon_addr))
    return m, m.connect(name, client)


def simple_transaction(m: MilterClient, recipients=("<bob@dest.test.example>",),
                       sender: str = "<sender@client.test.example>",
                       headers=(("Subject", "milter client"),), body: bytes = b"hello\r\n",
                       queue_id: str = "ABC123") -> dict:
    """MAIL .. end of message on an open, connected session, as an MTA would run it: every
    reply by stage ("rcpt": a list), and "final", the reply that decided the message: the
    first reject, tempfail, discard or accept (after which an MTA sends the milter nothing
    more of this message), or the reply to end of message."""
    out: dict = {}

    def decided(stage, r) -> bool:
        out[stage] = r
        if isinstance(r, MilterReply) and r.cmd != b"c" and r.cmd != b"s":
            out["final"] = r
            return True
        return False

    m.macros(b"M", {"i": queue_id})
    if decided("mail", m.mail(sender)):
        return out
    out["rcpt"] = [m.rcpt(x) for x in recipients]
    if all(isinstance(r, MilterReply) and not r.passes for r in out["rcpt"]):
        out["final"] = out["rcpt"][-1]
        return out
    if decided("data", m.data()):
        return out
    for name, value in headers:
        if decided("header", m.header(name, value)):
            return out
    if decided("eoh", m.eoh()):
        return out
    if body:
        r = m.body(body)
        if decided("body", r):
            return out
    out["final"] = out["eom"] = m.eom()
    return out
