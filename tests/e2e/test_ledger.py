"""Backscatter by proof through a real Postfix (issue 14): the ledger of the mail our users send.

alice@example.com sends through the trusted path (127.0.0.1); mxguard records a keyed hash of
each recipient and of the Message-ID. A bounce that reports one of those recipients, or an
autoreply that answers that Message-ID, proves itself with nothing else (no returned message,
no BATV, no relays); one about anything else is refused after DATA. The ledger survives a
restart (memory) and is shared by two mxguards through Redis; Redis down during a proof
lookup gives 451, never 5xx; check.backscatter = auto reports until the ledger is warm.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

from dns.dnstest import free_port
from harness.milter import checks_off_except, mxguard_binary
from harness.redis import start_redis, stop_redis
from harness.smtp import SmtpSession, send
from harness.util import wait_until

OUTSIDE = "127.0.0.3"
TRUSTED = "127.0.0.1"
ALICE = "alice@example.com"
RULES = Path(__file__).resolve().parents[2] / "rules"
DAVE = "dave@remote.example"

pytestmark = pytest.mark.mtas("postfix")


def config(tmp_path: Path, mode: str = "on", lifetime: str = "14d", extra: str = "") -> str:
    """No proof but the ledger: no BATV key, no our-relays, no allow tables."""
    key = tmp_path / "ledger.key"
    return (checks_off_except("backscatter") +
            "local-domains = example.com\n"
            f"trusted-networks = {TRUSTED}/32\n"
            f"check.backscatter = {mode}\n"
            f"ledger-lifetime = {lifetime}\n"
            f"ledger-key-file = {key}\n"
            f"ledger-file = {tmp_path / 'ledger'}\n" + extra)


def send_out(server, sink, rcpt: str = DAVE) -> str:
    """alice writes to rcpt through the trusted path; returns the Message-ID, once delivered."""
    msg_id = f"<out-{uuid.uuid4().hex[:10]}@example.com>"
    subject = f"outgoing {msg_id}"
    r = send(server, sender=ALICE, recipients=[rcpt], source=TRUSTED, subject=subject,
             message_id=msg_id)
    assert r.accepted, str(r.last())
    sink.wait_find(recipient=rcpt, subject=subject)
    return msg_id


def dsn(final_recipient: str, subject: str) -> bytes:
    """A DSN without the returned message: only the recipient it reports can prove it."""
    return (f"From: Mail Delivery System <MAILER-DAEMON@mx.remote.example>\r\n"
            f"To: <{ALICE}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@mx.remote.example>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.remote.example\r\n\r\n"
            f"Final-Recipient: rfc822; {final_recipient}\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n"
            "--b--\r\n").encode()


def autoreply(in_reply_to: str, subject: str, sender: str = "bob@remote.example") -> bytes:
    """An RFC 3834 autoreply from `sender`; without In-Reply-To/References when in_reply_to
    is empty (as many vacation responders send them)."""
    refs = f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n" if in_reply_to else ""
    return (f"From: Away <{sender}>\r\nTo: <{ALICE}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@remote.example>\r\n{refs}"
            "Auto-Submitted: auto-replied\r\n\r\n"
            "I am away until Monday.\r\n").encode()


def bounce_in(server, message: bytes, sender: str = ""):
    return send(server, sender=sender, recipients=[ALICE], message=message, source=OUTSIDE)


def warm_up(d, server, sink) -> None:
    """Waits until mxguard says the ledger is warm. MAIL asks, so keep sending; and send as
    alice, as a site with users does: a ledger that records nothing for a whole lifetime
    starts its count again."""
    def warm():
        send(server, sender=ALICE, recipients=[DAVE], source=TRUSTED,
             subject=f"keep-alive {uuid.uuid4().hex[:6]}")
        return "now enforces" in d.log_text()
    wait_until(warm, 30, interval=0.2, what="the ledger to be warm")


def test_a_bounce_proves_itself_by_the_recipient_it_reports(postfix, mxguard, sink, tmp_path):
    port = free_port()
    d = mxguard(config(tmp_path, extra=f"metrics-listen = 127.0.0.1:{port}\n"))
    server = postfix(milter=d.socket)
    send_out(server, sink)
    # One key for the recipient and one for the Message-ID, counted.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert re.search(r"^mxguard_ledger_recorded_total 2$", text, re.M), text
    assert re.search(r"^mxguard_ledger_evictions_total 0$", text, re.M), text
    ok = bounce_in(server, dsn(DAVE, "about dave"))
    assert ok.rcpts[0].code == 250 and ok.accepted, str(ok.last())
    sink.wait_find(recipient=ALICE, subject="about dave")
    d.wait_log(r"answers our mail: proof=ledger")
    forged = bounce_in(server, dsn("stranger@remote.example", "about a stranger"))
    assert forged.rcpts[0].code == 250  # never refused at RCPT for being null-sender
    assert forged.eom is not None and forged.eom.code == 550, str(forged.last())
    assert "we did not send the message this bounce answers" in forged.eom.text
    assert not sink.find(subject="about a stranger")


def test_sender_verification_probe_still_gets_250_at_rcpt(postfix, mxguard, tmp_path):
    d = mxguard(config(tmp_path))
    with SmtpSession(postfix(milter=d.socket), source=OUTSIDE) as s:
        assert s.ehlo().code == 250
        assert s.mail("").code == 250
        assert s.rcpt(ALICE).code == 250
        assert s.quit().code == 221


def test_real_sender_autoreplies_once_the_ledger_is_warm(postfix, mxguard, sink, tmp_path):
    # A short lifetime, so that the ledger is warm within the test; the message the autoreply
    # answers is sent after that, so it is in the ledger for a whole lifetime again.
    d = mxguard(config(tmp_path, lifetime="6s"))
    server = postfix(milter=d.socket)
    send_out(server, sink)
    warm_up(d, server, sink)
    msg_id = send_out(server, sink)
    ok = bounce_in(server, autoreply(msg_id, "away, about yours"), sender="bob@remote.example")
    assert ok.accepted, str(ok.last())
    sink.wait_find(recipient=ALICE, subject="away, about yours")
    foreign = bounce_in(server, autoreply("<spam-123@elsewhere.example>", "away, about spam"),
                        sender="bob@remote.example")
    assert foreign.eom is not None and foreign.eom.code == 550, str(foreign.last())
    assert "automatic reply" in foreign.eom.text
    # No In-Reply-To at all: an autoreply from someone alice wrote to answers her mail; one
    # from anybody else does not.
    dave = bounce_in(server, autoreply("", "away, from dave"), sender=DAVE)
    assert dave.accepted, str(dave.last())
    sink.wait_find(recipient=ALICE, subject="away, from dave")
    carol = bounce_in(server, autoreply("", "away, from carol", sender="carol@remote.example"),
                      sender="carol@remote.example")
    assert carol.eom is not None and carol.eom.code == 550, str(carol.last())
    assert not sink.find(subject="away, from carol")
    # Mail that is not an automatic reply is never judged, from any sender.
    plain = send(server, sender="bob@remote.example", recipients=[ALICE], source=OUTSIDE,
                 subject="lunch?")
    assert plain.accepted
    sink.wait_find(recipient=ALICE, subject="lunch?")


def test_auto_reports_until_the_ledger_is_warm_then_refuses(postfix, mxguard, sink, tmp_path):
    d = mxguard(config(tmp_path, mode="auto", lifetime="6s"))
    server = postfix(milter=d.socket)
    early = bounce_in(server, dsn("stranger@remote.example", "early forged bounce"))
    assert early.accepted, str(early.last())  # reported, not refused
    d.wait_log(r"would reject: END-OF-MESSAGE .* check=backscatter")
    sink.wait_find(recipient=ALICE, subject="early forged bounce")
    assert re.search(r"auto reports only: the ledger has recorded no outgoing mail", d.log_text())
    send_out(server, sink)
    warm_up(d, server, sink)
    late = bounce_in(server, dsn("stranger@remote.example", "late forged bounce"))
    assert late.eom is not None and late.eom.code == 550, str(late.last())
    assert not sink.find(subject="late forged bounce")


def test_the_ledger_survives_a_restart(postfix, mxguard, sink, tmp_path):
    conf = config(tmp_path)
    first = mxguard(conf)
    send_out(postfix(milter=first.socket), sink)
    assert first.stop() == 0
    # mxguard -n says what auto does and how long until it enforces (here: 14 days to go).
    conf_file = tmp_path / "auto.conf"
    conf_file.write_text(conf.replace("check.backscatter = on", "check.backscatter = auto") +
                         f"message-rules = {RULES}\n")
    saved_mtime = (tmp_path / "ledger").stat().st_mtime_ns
    n = subprocess.run([str(mxguard_binary()), "-n", "-c", str(conf_file)], capture_output=True,
                       text=True, timeout=30)
    assert n.returncode == 0, n.stdout + n.stderr
    assert re.search(r"backscatter: auto, reports only: the ledger has recorded our outgoing "
                     r"mail for \d+s of the 1209600s of ledger-lifetime; \d+s to go", n.stdout), \
        n.stdout
    # -n only reads: the ledger file the daemon saved is left as it was.
    assert (tmp_path / "ledger").stat().st_mtime_ns == saved_mtime, "mxguard -n wrote the ledger"
    second = mxguard(conf)
    ok = bounce_in(postfix(milter=second.socket), dsn(DAVE, "after the restart"))
    assert ok.accepted, str(ok.last())
    sink.wait_find(recipient=ALICE, subject="after the restart")


def test_check_config_creates_no_key_file(tmp_path):
    """mxguard -n before the daemon ever ran: it says nothing is recorded yet and creates no
    key file (run as root, it would make a file the daemon's own user could not read)."""
    conf_file = tmp_path / "auto.conf"
    conf_file.write_text(config(tmp_path, mode="auto") + f"message-rules = {RULES}\n")
    n = subprocess.run([str(mxguard_binary()), "-n", "-c", str(conf_file)], capture_output=True,
                       text=True, timeout=30)
    assert n.returncode == 0, n.stdout + n.stderr
    assert "backscatter: auto, reports only: nothing recorded yet" in n.stdout, n.stdout
    assert not (tmp_path / "ledger.key").exists()
    assert not (tmp_path / "ledger").exists()


def test_two_mxguards_share_the_ledger_through_redis(postfix, mxguard, sink, tmp_path):
    port = free_port()
    redis = start_redis(port, tmp_path)
    try:
        conf = config(tmp_path, extra=f"state = redis://127.0.0.1:{port}/0\n")
        out_host = mxguard(conf)
        in_host = mxguard(conf)
        send_out(postfix(milter=out_host.socket), sink)
        inbound = postfix(milter=in_host.socket)
        ok = bounce_in(inbound, dsn(DAVE, "proven at the other host"))
        assert ok.accepted, str(ok.last())
        sink.wait_find(recipient=ALICE, subject="proven at the other host")
        forged = bounce_in(inbound, dsn("stranger@remote.example", "forged at the other host"))
        assert forged.eom is not None and forged.eom.code == 550, str(forged.last())
        # Redis away during the proof lookup: the ledger cannot say "not ours", so 4xx.
        stop_redis(redis)
        redis = None
        down = bounce_in(inbound, dsn("stranger@remote.example", "while redis is down"))
        assert down.eom is not None and down.eom.code == 451, str(down.last())
        assert down.eom.text.startswith("4.7.1 ")
        for r in down.rcpts + [down.eom]:
            assert r.code < 500 or r is None, str(r)
    finally:
        if redis:
            stop_redis(redis)


def test_the_key_file_is_made_with_mode_600(mxguard, tmp_path):
    mxguard(config(tmp_path))
    key = tmp_path / "ledger.key"
    wait_until(key.exists, 10, what="the ledger key file")
    assert os.stat(key).st_mode & 0o777 == 0o600


def test_the_ledger_records_with_the_backscatter_check_off(postfix, mxguard, sink, tmp_path):
    """The ledger does not depend on the check: the headers it needs are asked for anyway."""
    port = free_port()
    d = mxguard(config(tmp_path, mode="off", extra=f"metrics-listen = 127.0.0.1:{port}\n"))
    send_out(postfix(milter=d.socket), sink)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert re.search(r"^mxguard_ledger_recorded_total 2$", text, re.M), text
