"""A small SMTP client for tests: every reply is data, never an exception.

smtplib raises on a 421 banner, a dropped connection or a rejected recipient in sendmail();
tests of a mail filter need exactly those replies as values. `SmtpSession` speaks one command at
a time and returns a `Reply` for each; `send()` runs a whole transaction and returns every
stage's reply; `send_many()` runs many transactions concurrently.
"""

from __future__ import annotations

import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate

CRLF = b"\r\n"


@dataclass(frozen=True)
class Reply:
    """One SMTP reply. code 0 means the connection was closed (or never opened)."""

    code: int
    text: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def closed(self) -> bool:
        return self.code == 0

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


CLOSED = Reply(0, "connection closed")


def _address(host_port) -> tuple[str, int]:
    """Accept (host, port) or any object with .address (an MTA instance)."""
    return tuple(getattr(host_port, "address", host_port))  # type: ignore[return-value]


class SmtpSession:
    """One SMTP connection, driven step by step.

    `source` binds the client side (e.g. "127.0.0.2") so the server sees that address.
    Connection errors and a server hanging up become CLOSED replies.
    """

    def __init__(self, server, source: str | None = None, timeout: float = 60.0):
        self.server = _address(server)
        self.source = source
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._buf = b""
        self.banner = self._connect()

    def _connect(self) -> Reply:
        host, port = self.server
        try:
            self.sock = socket.create_connection(
                (host, port), timeout=self.timeout,
                source_address=(self.source, 0) if self.source else None)
        except OSError as e:
            self.sock = None
            return Reply(0, f"connect failed: {e}")
        return self.read_reply()

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def _readline(self) -> bytes | None:
        while b"\n" not in self._buf:
            try:
                chunk = self.sock.recv(65536) if self.sock else b""
            except OSError:
                chunk = b""
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.rstrip(b"\r")

    def read_reply(self) -> Reply:
        """Read one (possibly multi-line) reply; CLOSED if the server hung up."""
        lines = []
        while True:
            line = self._readline()
            if line is None:
                self.close()
                return CLOSED if not lines else Reply(int(lines[0][:3]), "\n".join(lines))
            text = line.decode("utf-8", "replace")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                break
        try:
            code = int(lines[0][:3])
        except ValueError:
            return Reply(0, "bad reply: " + "\n".join(lines))
        return Reply(code, "\n".join(line[4:] for line in lines))

    def command(self, line: str) -> Reply:
        """Send one command line and return the reply."""
        if not self.sock:
            return CLOSED
        try:
            self.sock.sendall(line.encode("utf-8", "surrogateescape") + CRLF)
        except OSError:
            self.close()
            return CLOSED
        return self.read_reply()

    def ehlo(self, name: str = "client.test.example") -> Reply:
        return self.command(f"EHLO {name}")

    def helo(self, name: str = "client.test.example") -> Reply:
        return self.command(f"HELO {name}")

    def mail(self, sender: str, params: str = "") -> Reply:
        return self.command(f"MAIL FROM:<{sender}>" + (f" {params}" if params else ""))

    def rcpt(self, recipient: str, params: str = "") -> Reply:
        return self.command(f"RCPT TO:<{recipient}>" + (f" {params}" if params else ""))

    def data(self, message: bytes | str) -> tuple[Reply, Reply | None]:
        """DATA, then the dot-stuffed message: returns (reply to DATA, reply to end of data).

        The second reply is None when DATA itself was refused.
        """
        go = self.command("DATA")
        if go.code != 354:
            return go, None
        payload = _dot_stuff(message)
        try:
            self.sock.sendall(payload + b"." + CRLF)
        except OSError:
            self.close()
            return go, CLOSED
        return go, self.read_reply()

    def rset(self) -> Reply:
        return self.command("RSET")

    def quit(self) -> Reply:
        reply = self.command("QUIT")
        self.close()
        return reply

    def close(self) -> None:
        if self.sock:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self) -> "SmtpSession":
        return self

    def __exit__(self, *exc) -> None:
        if self.sock:
            self.quit()


def _dot_stuff(message: bytes | str) -> bytes:
    """Normalise line ends to CRLF, double leading dots, make sure it ends with CRLF."""
    if isinstance(message, str):
        message = message.encode("utf-8")
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + l if l.startswith(b".") else l) + CRLF for l in lines)


def make_message(sender: str = "sender@client.test.example",
                 recipients: list[str] | tuple[str, ...] = ("rcpt@dest.test.example",),
                 subject: str | None = None, body: str = "Test message.\n",
                 headers: dict[str, str] | list[tuple[str, str]] | None = None,
                 message_id: str | None = None) -> bytes:
    """A plain RFC 5322 message; headers in `headers` are added after the standard ones."""
    hdrs = [
        ("From", f"<{sender}>" if sender else "<>"),
        ("To", ", ".join(f"<{r}>" for r in recipients)),
        ("Subject", subject if subject is not None else f"test {uuid.uuid4().hex[:12]}"),
        ("Date", formatdate(localtime=False)),
        ("Message-ID", message_id or f"<{uuid.uuid4().hex}@client.test.example>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=us-ascii"),
    ]
    extra = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in extra}
    hdrs = [(k, v) for k, v in hdrs if k.lower() not in names] + extra
    text = "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n" + body.replace("\n", "\r\n")
    return text.replace("\r\r\n", "\r\n").encode("utf-8")


@dataclass
class SmtpResult:
    """Every reply of one transaction; stages not reached are None (rcpts: only those sent)."""

    banner: Reply
    ehlo: Reply | None = None
    mail: Reply | None = None
    rcpts: list[Reply] = field(default_factory=list)
    data: Reply | None = None
    eom: Reply | None = None
    quit: Reply | None = None

    @property
    def accepted(self) -> bool:
        """True when the message was accepted at end of data."""
        return self.eom is not None and self.eom.code == 250

    @property
    def accepted_rcpts(self) -> int:
        return sum(1 for r in self.rcpts if r.ok)

    def last(self) -> Reply:
        """The reply of the last stage reached (before QUIT): where the transaction ended."""
        for r in (self.eom, self.data):
            if r is not None:
                return r
        if self.rcpts:
            return self.rcpts[-1]
        for r in (self.mail, self.ehlo):
            if r is not None:
                return r
        return self.banner


def send(server, sender: str = "sender@client.test.example",
         recipients: list[str] | tuple[str, ...] | str = ("rcpt@dest.test.example",),
         message: bytes | str | None = None, subject: str | None = None,
         helo: str = "client.test.example", source: str | None = None,
         use_helo: bool = False, timeout: float = 60.0, **message_kw) -> SmtpResult:
    """Run one transaction and return every reply.

    Stops where the server stops it: a non-2xx banner, EHLO or MAIL reply ends the session;
    DATA is sent only when at least one recipient was accepted.
    """
    if isinstance(recipients, str):
        recipients = [recipients]
    if message is None:
        message = make_message(sender, recipients, subject=subject, **message_kw)
    s = SmtpSession(server, source=source, timeout=timeout)
    result = SmtpResult(banner=s.banner)
    try:
        if s.banner.code != 220:
            return result
        result.ehlo = s.helo(helo) if use_helo else s.ehlo(helo)
        if result.ehlo.code != 250:
            return result
        result.mail = s.mail(sender)
        if result.mail.code != 250:
            return result
        for rcpt in recipients:
            reply = s.rcpt(rcpt)
            result.rcpts.append(reply)
            if reply.closed:
                return result
        if result.accepted_rcpts:
            result.data, result.eom = s.data(message)
        return result
    finally:
        if s.connected:
            result.quit = s.quit()


def send_many(server, n: int, concurrency: int = 10, subject_prefix: str = "bulk",
              **kwargs) -> list[SmtpResult]:
    """Send `n` messages over up to `concurrency` parallel connections.

    Message i gets the subject "<subject_prefix> i"; results are in order of i. Other keyword
    arguments go to `send()`.
    """
    def one(i: int) -> SmtpResult:
        return send(server, subject=f"{subject_prefix} {i}", **kwargs)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, range(n)))
