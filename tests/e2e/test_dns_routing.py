"""Recipient and sender routing through DNS, end to end: a private Postfix relaying from
127.0.0.1 (as a web form on the host would) calls mxguard, which asks a real nsd serving
tests/data/zones. Each route class gives its reply at RCPT; deliverable recipients reach the
sink (issue 3).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))

from dnstest import Nsd, Responder  # noqa: E402
from harness.milter import checks_off_except  # noqa: E402
from harness.smtp import send  # noqa: E402
from harness.util import BOGUS_NETWORKS  # noqa: E402

DNS_CHECKS = {"null-mx", "bogus-mx", "no-mail-domain", "null-mx-sender"}


@pytest.fixture(scope="module")
def nsd():
    with Nsd() as ns:
        yield ns


def config(server: str, extra: str = "") -> str:
    off = checks_off_except(*DNS_CHECKS)
    return (off + f"dns-server = {server}\ndns-timeout = 300ms\ndns-retries = 0\n"
            f"bogus-networks = {BOGUS_NETWORKS}\n"
            "local-domains = ours.test\ntrusted-networks = 127.0.0.1/32\n" + extra)


ROWS = [
    ("a@good.mail.test", 250, ""),
    ("a@mixed.mail.test", 250, ""),
    ("a@nolisting.mail.test", 250, ""),
    ("a@viacname.mail.test", 250, ""),
    ("a@nullmx-plus.mail.test", 250, ""),
    ("a@implicit-good.mail.test", 250, ""),
    ("a@nullmx.mail.test", 556, "5.1.10 <a@nullmx.mail.test>: Recipient address has null MX"),
    ("a@loopback.mail.test", 550,
     "5.1.2 <a@loopback.mail.test>: Recipient address rejected: Domain MX in loopback network "
     "127.0.0.0/8"),
    ("a@zero.mail.test", 550, "Domain MX in this-network 0.0.0.0/8"),
    ("a@rfc1918-10.mail.test", 550, "Domain MX in private network 10.0.0.0/8"),
    ("a@cgnat.mail.test", 550, "carrier-grade NAT shared network 100.64.0.0/10"),
    ("a@bench.mail.test", 550, "benchmarking network 198.18.0.0/15"),
    ("a@testnet2.mail.test", 550, "TEST-NET-2 198.51.100.0/24"),
    ("a@v6loop.mail.test", 550, "loopback address ::1/128"),
    ("a@ula.mail.test", 550, "unique local network fc00::/7"),
    ("a@mapped.mail.test", 550, "(embedded in ::ffff:127.0.0.1)"),
    ("a@sixto4.mail.test", 550, "private network 192.168.0.0/16 (embedded in"),
    ("a@implicit.mail.test", 550, "Domain address in loopback network 127.0.0.0/8"),
    ("a@nx.mail.test", 550, "5.1.2 <a@nx.mail.test>: Recipient address rejected: Domain not found"),
    ("a@noaddr.mail.test", 550, "Domain has no mail exchanger with an address"),
    ("a@dangling.mail.test", 550, "Domain has no mail exchanger with an address"),
    ("postmaster@loopback.mail.test", 250, ""),  # never rejected
]


@pytest.mark.mtas("postfix")
def test_each_route_class_gets_its_reply_at_rcpt(nsd, mta, mxguard, sink):
    d = mxguard(config(nsd.server))
    server = mta(milter=d.socket)
    rcpts = [r[0] for r in ROWS]
    result = send(server, recipients=rcpts, source="127.0.0.1", sender="web@ours.test")
    for (rcpt, code, text), reply in zip(ROWS, result.rcpts):
        assert reply.code == code, (rcpt, str(reply))
        assert text in reply.text, (rcpt, str(reply))
    assert result.accepted
    for rcpt, code, _ in ROWS:
        if code == 250:
            assert sink.wait_find(recipient=rcpt), rcpt


@pytest.mark.mtas("postfix")
def test_null_mx_sender_is_refused_at_rcpt(nsd, mta, mxguard, sink):
    # MAIL has no reply of its own (one round trip less a message): the sender is refused at
    # each RCPT, as Postfix's smtpd_delay_reject does with its own restrictions.
    d = mxguard(config(nsd.server))
    server = mta(milter=d.socket)
    result = send(server, recipients=["a@good.mail.test"], source="127.0.0.1",
                  sender="news@nullmx.mail.test")
    assert result.mail.code == 250, str(result.mail)
    refused = result.rcpts[0]
    assert refused.code == 550 and "5.7.27" in refused.text, str(refused)
    d.wait_log(r"reject: MAIL from .*check=null-mx-sender")
    ok = send(server, recipients=["b@good.mail.test"], source="127.0.0.1", sender="")
    assert ok.accepted
    assert sink.wait_find(recipient="b@good.mail.test")


@pytest.mark.mtas("postfix")
@pytest.mark.parametrize("on_error,code", [("tempfail", 451), ("accept", 250)])
def test_dns_failure_is_never_a_5xx(mta, mxguard, sink, on_error, code):
    with Responder("servfail") as bad:
        d = mxguard(config(bad.server, f"on-dns-error = {on_error}\n"))
        server = mta(milter=d.socket)
        result = send(server, recipients=["a@good.mail.test"], source="127.0.0.1",
                      sender="web@ours.test")
    assert result.rcpts[0].code == code, str(result.rcpts[0])
    if code == 451:
        assert "4.4.3" in result.rcpts[0].text
        assert not result.accepted
    else:
        assert sink.wait_find(recipient="a@good.mail.test")
