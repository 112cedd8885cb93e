"""The delivery sink: where the MTAs under test put every message they accept.

Each MTA runs `sink_deliver.py` (a copy of it, see `Sink.install_agent`) for each recipient; it
writes one file per message and recipient. The `Sink` here reads those files back for
assertions. Tests use it to prove that accepted mail really arrived ("nothing lost").
"""

from __future__ import annotations

import email
import email.policy
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .util import make_instance_dir

AGENT_SOURCE = Path(__file__).with_name("sink_deliver.py")


@dataclass
class SinkMessage:
    """One delivered copy: envelope sender and recipient plus the message as delivered."""

    path: Path
    sender: str
    recipient: str
    raw: bytes = field(repr=False)
    _parsed: email.message.EmailMessage | None = field(default=None, repr=False)

    @property
    def message(self) -> email.message.EmailMessage:
        """The message parsed with the stdlib email package (parsed once, on demand)."""
        if self._parsed is None:
            self._parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        return self._parsed

    @property
    def subject(self) -> str | None:
        return self.header("Subject")

    def header(self, name: str) -> str | None:
        """First header `name` (str), None when absent."""
        value = self.message.get(name)
        return None if value is None else str(value)

    def headers(self, name: str) -> list[str]:
        """Every header `name`, in order (e.g. Received)."""
        return [str(v) for v in self.message.get_all(name) or []]

    @property
    def body(self) -> str:
        """The message body (after the header block) as text."""
        raw = self.raw.replace(b"\r\n", b"\n")
        _, _, body = raw.partition(b"\n\n")
        return body.decode("utf-8", "replace")


def parse_sink_file(path: Path) -> SinkMessage:
    """Read one sink file: two X-Sink-* envelope lines, then the message."""
    data = path.read_bytes()
    sender = recipient = None
    for _ in range(2):
        line, _, data = data.partition(b"\n")
        key, _, value = line.decode("utf-8", "surrogateescape").partition(": ")
        address = value.strip()
        if address.startswith("<") and address.endswith(">"):
            address = address[1:-1]
        if key == "X-Sink-From":
            sender = address
        elif key == "X-Sink-To":
            recipient = address
    if sender is None or recipient is None:
        raise ValueError(f"{path}: not a sink file")
    return SinkMessage(path=path, sender=sender, recipient=recipient, raw=data)


class Sink:
    """A directory of delivered messages, one file per message per recipient."""

    def __init__(self, directory: Path | None = None):
        self.dir = Path(directory) if directory else make_instance_dir("sink")
        self._mtas: list = []  # the MTAs delivering here (their use_sink() calls fed_by())
        for sub in ("tmp", "new"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        # The MTAs deliver as unprivileged users (Postfix's pipe refuses root).
        for d in (self.dir, self.dir / "tmp", self.dir / "new"):
            d.chmod(0o1777 if d != self.dir else 0o755)

    @staticmethod
    def install_agent(directory: Path) -> Path:
        """Copy the delivery agent next to an MTA instance and return its path.

        A copy, not the source file, because the unprivileged delivery user must be able to
        read it and the source tree's permissions are not ours to rely on.
        """
        target = Path(directory) / "sink_deliver.py"
        shutil.copyfile(AGENT_SOURCE, target)
        target.chmod(0o755)
        return target

    def _files(self) -> list[Path]:
        return sorted((self.dir / "new").iterdir())

    def messages(self) -> list[SinkMessage]:
        """Every delivered copy so far, oldest first."""
        return [parse_sink_file(p) for p in self._files()]

    def count(self) -> int:
        return len(self._files())

    def wait_for(self, count: int, timeout: float = 30.0) -> list[SinkMessage]:
        """Wait until at least `count` copies arrived; return all of them.

        Raises AssertionError listing what did arrive, so a failing test shows what was lost.
        """
        deadline = time.monotonic() + timeout
        while True:
            n = self.count()
            if n >= count:
                return self.messages()
            if time.monotonic() >= deadline:
                got = [(m.sender, m.recipient, m.subject) for m in self.messages()]
                raise AssertionError(f"sink {self.dir}: expected {count} message(s) within "
                                     f"{timeout:g}s, got {n}: {got}")
            time.sleep(0.05)

    def fed_by(self, mta) -> None:
        """Note an MTA (Postfix, Sendmail) that delivers into this sink."""
        if all(m is not mta for m in self._mtas):
            self._mtas.append(mta)

    def wait_settled(self, timeout: float = 30.0) -> None:
        """Wait until every MTA still delivering here has an empty queue: from then on, no
        copy of the mail they accepted so far can still arrive (what they refused never
        entered their queue). The event a "nothing (more) arrived" check waits for."""
        for mta in self._mtas:
            if mta.sink is self:
                mta.wait_queue_empty(timeout)

    def expect_exactly(self, count: int, timeout: float = 30.0) -> list[SinkMessage]:
        """Wait for `count` copies and for the MTAs' queues to empty; then there must be no
        extra copy."""
        self.wait_for(count, timeout)
        self.wait_settled(timeout)
        found = self.messages()
        assert len(found) == count, (
            f"sink {self.dir}: expected exactly {count}, got {len(found)}: "
            f"{[(m.sender, m.recipient, m.subject) for m in found]}")
        return found

    def find(self, recipient: str | None = None, subject: str | None = None,
             sender: str | None = None) -> list[SinkMessage]:
        """Delivered copies matching every given criterion (exact, case-insensitive address)."""
        found = []
        for m in self.messages():
            if recipient is not None and m.recipient.lower() != recipient.lower():
                continue
            if sender is not None and m.sender.lower() != sender.lower():
                continue
            if subject is not None and m.subject != subject:
                continue
            found.append(m)
        return found

    def wait_find(self, recipient: str | None = None, subject: str | None = None,
                  sender: str | None = None, count: int = 1,
                  timeout: float = 30.0) -> list[SinkMessage]:
        """Like find(), but waits until at least `count` copies match (delivery is async).

        find() answers at once, which suits "nothing arrived" checks; right after an SMTP
        transaction the MTA may still be delivering, so positive checks should use this.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(recipient=recipient, subject=subject, sender=sender)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                got = [(m.sender, m.recipient, m.subject) for m in self.messages()]
                raise AssertionError(
                    f"sink {self.dir}: no {count} message(s) with recipient={recipient!r} "
                    f"subject={subject!r} sender={sender!r} within {timeout:g}s; got {got}")
            time.sleep(0.05)

    def clear(self) -> None:
        """Forget everything delivered so far (used when an MTA instance is reused)."""
        for p in self._files():
            p.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
