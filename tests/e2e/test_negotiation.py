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
from harness.milterclient import MilterClient


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
        assert m.answers("connect") and m.answers("rcpt")
        assert not m.answers("mail")  # refused at each RCPT, as before
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
