"""The body is read no further than max-body-scan (issue 16): mxguard answers SKIP to the body
chunk that reaches it, so the MTA sends no more; outgoing mail, which needs no body, skips at
the first chunk. Through Postfix, messages of 2 MB are judged like small ones.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest

from harness import smtp
from harness.milter import checks_off_except
from harness.milterclient import MilterClient, connect_like_postfix

KEY = "body-scan-test-key-0001"
OUTSIDE = "127.0.0.3"


@pytest.fixture
def config(tmp_path: Path) -> str:
    keys = tmp_path / "batv.keys"
    keys.write_text(f"0 {KEY}\n")
    keys.chmod(0o600)
    return (checks_off_except("backscatter", "batv") +
            "check.backscatter = on\ncheck.batv = on\n"
            "local-domains = example.com\nour-relays = mx-out.example.com\n"
            f"batv-key-file = {keys}\nbatv-sign = yes\n"
            "trusted-networks = 127.0.0.1/32\n"
            "max-body-scan = 4k\n")


def open_session(d, client: str) -> MilterClient:
    m, _ = connect_like_postfix(d.socket, client)
    return m


DSN_HEADERS = [("From", "MAILER-DAEMON@mx.remote.example"), ("To", "alice@example.com"),
               ("Subject", "Undelivered Mail Returned to Sender"),
               ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="b"')]


def test_a_bounce_is_read_up_to_max_body_scan_then_skipped(mxguard, config):
    d = mxguard(config)
    m = open_session(d, OUTSIDE)
    try:
        assert m.protocol & 0x400, "mxguard asks for SKIP"  # SMFIP_SKIP
        assert m.mail("<>") is not None
        assert m.rcpt("<alice@example.com>").passes
        assert m.data().passes
        for name, value in DSN_HEADERS:
            m.header(name, value)
        assert m.eoh().name == "continue"
        chunk = b"x" * 3000 + b"\r\n"
        first = m.body(b"--b\r\nContent-Type: text/plain\r\n\r\n" + chunk)
        assert first.name == "continue", str(first)  # 3 KB of 4 KB read: more wanted
        second = m.body(chunk)
        assert second.name == "skip", str(second)  # 4 KB reached: the MTA sends no more
        # Nothing proves the bounce answers our mail: refused at end of message.
        assert m.eom().code == 550
    finally:
        m.close()


def test_outgoing_mail_skips_the_body_at_once(mxguard, config):
    d = mxguard(config)
    m = open_session(d, "127.0.0.1")  # trusted: our users' outgoing mail, signed
    try:
        assert m.mail("<alice@example.com>") is not None
        assert m.rcpt("<bob@remote.example>").passes
        assert m.data().passes
        m.header("From", "alice@example.com")
        m.header("Message-ID", "<out.1@example.com>")
        assert m.eoh().name == "continue"  # signing changes the sender at end of message
        assert m.body(b"y" * 60000 + b"\r\n").name == "skip"
        eom = m.eom()
        assert eom.passes, str(eom)
        # The envelope sender was signed (SMFIR_CHGFROM) before the accept.
        assert any(cmd == b"e" and b"prvs=" in data for cmd, data in eom.actions), eom.actions
    finally:
        m.close()


def big_dsn(n: int, proven: bool, size: int) -> str:
    """A bounce to alice with `size` bytes of returned attachment after its report; proven by
    the returned headers of a message that left through our relay."""
    returned = ("--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
                "Received: from mx-out.example.com (mx-out.example.com [192.0.2.25])\r\n"
                "\tby mx.remote.example with ESMTP id X1; Mon, 23 Nov 2026 11:00:00 +0000\r\n"
                "From: <alice@example.com>\r\nTo: <x@remote.example>\r\n"
                f"Message-ID: <sent.{n}@example.com>\r\nSubject: ours\r\n\r\n") if proven else ""
    blob = base64.encodebytes(random.Random(n).randbytes(size * 3 // 4)).decode()
    return ("From: Mail Delivery System <MAILER-DAEMON@mx.remote.example>\r\n"
            f"To: <alice@example.com>\r\nSubject: big bounce {n}\r\n"
            f"Message-ID: <dsn.{n}@mx.remote.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.remote.example\r\n\r\n"
            "Final-Recipient: rfc822; x@remote.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
            + returned +
            "--b\r\nContent-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + blob.replace("\n", "\r\n") + "--b--\r\n")


def test_two_megabyte_bounces_through_postfix(mxguard, postfix, config, sink):
    d = mxguard(config.replace("max-body-scan = 4k\n", ""))  # the default, 128k
    server = postfix(milter=d.socket)
    ok = smtp.send(server, sender="", recipients=["alice@example.com"],
                   message=big_dsn(1, proven=True, size=2_000_000), source=OUTSIDE)
    assert ok.accepted, str(ok.last())
    bad = smtp.send(server, sender="", recipients=["alice@example.com"],
                    message=big_dsn(2, proven=False, size=2_000_000), source=OUTSIDE)
    assert bad.eom is not None and bad.eom.code == 550, str(bad.last())
    assert sink.wait_find(recipient="alice@example.com", subject="big bounce 1")
    d.wait_log(r"reject: END-OF-MESSAGE from .*check=backscatter")
    assert not sink.find(subject="big bounce 2")
