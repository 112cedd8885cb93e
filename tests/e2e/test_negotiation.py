"""What mxguard asks of the MTA at negotiation (issue 16): a step no check needs is not
asked for, and a step no check judges is not answered: every step is a packet, every answer a
round trip, in every session.

Straight over the milter protocol (the MTA's side in harness/milterclient.py), and through
Postfix for the log line that names the HELO when a check reads it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import smtp
from harness.milter import checks_off_except
from harness.milterclient import NO_REPLY, MilterClient, postfix_connect_macros


def negotiated(daemon) -> MilterClient:
    m = MilterClient(daemon.socket).open()
    m.negotiate()
    return m


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    (tmp_path / "client.cidr").write_text("192.0.2.0/24 REJECT blocked network\n")
    (tmp_path / "helo.regexp").write_text("/^bad-helo\\./ REJECT bad HELO\n")
    (tmp_path / "rcpt.regexp").write_text("/^victim@/ REJECT go away\n")
    return tmp_path


def test_without_a_helo_table_helo_is_not_asked_for(mxguard, tables):
    d = mxguard(checks_off_except("access") +
                f"client-access = cidr:{tables}/client.cidr\n"
                f"recipient-access = regexp:{tables}/rcpt.regexp\n")
    m = negotiated(d)
    try:
        assert not m.wants("helo")
        assert m.answers("rcpt")
        # A client or a sender refused is refused at each RCPT (delay-reject, the default).
        assert not m.answers("connect") and not m.answers("mail")
    finally:
        m.close()


def test_a_helo_table_makes_helo_answered(mxguard, tables):
    d = mxguard(checks_off_except("access") +
                f"helo-access = regexp:{tables}/helo.regexp\n")
    m = negotiated(d)
    try:
        assert m.wants("helo") and m.answers("helo")
        # No client or recipient table, and no other check: nothing to answer there.
        assert not m.answers("connect") and not m.answers("rcpt")
        m.macros(b"C", {"j": "mx.example.com", "{daemon_addr}": "127.0.0.1"})
        assert m.connect("client.example", "198.51.100.7") is not None
        refused = m.helo("bad-helo.example")
        assert refused.code == 554 and "Helo command rejected: bad HELO" in refused.text, \
            str(refused)
    finally:
        m.close()


def test_with_a_helo_table_the_helo_name_is_in_decision_lines(mxguard, postfix, tables, sink):
    d = mxguard(checks_off_except("access") +
                f"helo-access = regexp:{tables}/helo.regexp\n"
                f"recipient-access = regexp:{tables}/rcpt.regexp\n")
    server = postfix(milter=d.socket)
    r = smtp.send(server, sender="someone@example.org",
                  recipients=["victim@example.com", "friend@example.com"],
                  helo="named-client.example", subject="helo kept")
    assert [x.code for x in r.rcpts] == [554, 250], str(r.rcpts)
    assert r.accepted, str(r.last())
    d.wait_log(r"reject: RCPT from \S+: 554 5\.7\.1 <victim@example\.com>.*"
               r"helo=<named-client\.example>")
    assert sink.wait_find(recipient="friend@example.com", subject="helo kept")


def test_a_client_refused_at_connect_is_refused_at_each_rcpt(mxguard, tables):
    """delay-reject (the default): connect has no reply; the client's refusal is the answer to
    every RCPT of the connection, in every transaction, and nothing else of it is judged."""
    d = mxguard(checks_off_except("access") +
                f"client-access = cidr:{tables}/client.cidr\n"
                f"recipient-access = regexp:{tables}/rcpt.regexp\n")
    m = negotiated(d)
    try:
        m.macros(b"C", postfix_connect_macros(client="192.0.2.9"))
        assert m.connect("blocked.example", "192.0.2.9") is NO_REPLY
        assert m.mail("<someone@example.org>") is NO_REPLY
        for rcpt in ("<friend@example.com>", "<victim@example.com>"):
            r = m.rcpt(rcpt)
            assert r.code == 554 and "Client host rejected: blocked network" in r.text, str(r)
        m.abort()
        assert m.mail("<other@example.org>") is NO_REPLY
        assert m.rcpt("<friend@example.com>").code == 554
    finally:
        m.close()
    # Logged once, where it was decided.
    d.wait_log(r"reject: CONNECT from blocked\.example\[192\.0\.2\.9\]: 554 5\.7\.1 .*"
               r"check=access")
    lines = [x for x in d.log_text().splitlines() if "192.0.2.9" in x]
    assert len(lines) == 1, lines
    # A client not refused is judged as before: its recipients one by one.
    m = negotiated(d)
    try:
        m.macros(b"C", postfix_connect_macros(client="198.51.100.7"))
        assert m.connect("ok.example", "198.51.100.7") is NO_REPLY
        assert m.mail("<someone@example.org>") is NO_REPLY
        assert m.rcpt("<friend@example.com>").passes
        assert m.rcpt("<victim@example.com>").code == 554
    finally:
        m.close()


def test_delay_reject_no_refuses_at_connect(mxguard, tables):
    d = mxguard(checks_off_except("access") + "delay-reject = no\n" +
                f"client-access = cidr:{tables}/client.cidr\n")
    m = negotiated(d)
    try:
        assert m.answers("connect")
        m.macros(b"C", postfix_connect_macros(client="192.0.2.9"))
        r = m.connect("blocked.example", "192.0.2.9")
        assert r.code == 554 and "blocked network" in r.text, str(r)
    finally:
        m.close()
