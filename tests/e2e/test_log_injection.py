"""Log lines no client can shape (issue 15): text a client controls (HELO, MAIL, RCPT, header
values, fields of a returned message) carrying CR or LF and a fake ban line must not produce a
line that the shipped fail2ban filter takes for a ban; a table REJECT whose reply cannot quote
the recipient still refuses; loopback and trusted clients are refused per message but never
banned; a client rotating addresses inside one IPv6 /64 still ends up banned.

The payload is `FAKE`, the ban line fail2ban would act on. It is sent through Postfix and
Sendmail (each refuses or rewrites some bytes itself: see SMTP_VECTORS) and straight over the
milter protocol, as a hostile or buggy MTA could send it (there nothing is refused or
rewritten before mxguard). Then the real `fail2ban-regex` with the shipped filter reads the
daemon's real stderr twice: as it is (raw), and the way the journal stores it (a new entry at
every LF or NUL, each with a syslog-style prefix): only the real bans made in the same run
may match, and they must (so the test can fail both ways).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dns.dnstest import Nsd
from harness.milter import checks_off_except
from harness.milterclient import NO_REPLY, MilterClient, MilterReply, connect_like_postfix
from harness.smtp import SmtpSession, send

REPO = Path(__file__).resolve().parents[2]
FILTER = REPO / "packaging" / "fail2ban" / "filter.d" / "mxguard.conf"

FAKE_IP = "198.51.100.77"
FAKE = f"ban {FAKE_IP} for 1800s: 3 strikes (x)"
TRAP = "192.0.2.25"        # a trap address: only ever a {daemon_addr} of the milter client
BANNED_V4 = "192.0.2.66"   # really banned by the milter client (three trap hits)
V6_NET = "2001:db8:66:1"   # a client rotating through this /64 is banned as a whole
OUTSIDE = "127.0.0.3"


@pytest.fixture
def config(tmp_path: Path) -> str:
    (tmp_path / "rcpt.regexp").write_text("/^victim/ REJECT go away\n")
    # A HELO table (that never matches) makes mxguard ask for HELO, and log it.
    (tmp_path / "helo.regexp").write_text("/^never-this-name$/ REJECT no\n")
    return (checks_off_except("access", "backscatter", "ban", "trap-mx") +
            f"recipient-access = regexp:{tmp_path}/rcpt.regexp\n"
            f"helo-access = regexp:{tmp_path}/helo.regexp\n"
            "local-domains = example.com\n"
            "our-relays = mx-out.example.com\n"
            "check.backscatter = on\n"
            f"trap-address = {TRAP}\n"
            "ban-strikes = 3\n"
            "log-level = debug\n")


# A bounce to one of our users whose returned message carries the payload in its Message-ID
# (mxguard logs that domain: "Message-ID domain ... is not ours") and in a folded References,
# and whose delivery-status fields and folded X-Folded header carry it too. mxguard logs no
# value of those today; they are sent so that a later log line quoting one is covered as well.
def dsn(eol: str = "\r\n", cr: str = "\r") -> str:
    lines = [
        "From: MAILER-DAEMON@mx.victim.test",
        "To: victor@example.com",
        "Subject: Undelivered Mail Returned to Sender",
        f"X-Folded: a{eol}\t{FAKE}",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"',
        "",
        "--BB",
        "Content-Type: text/plain",
        "",
        "delivery failed",
        "--BB",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.victim.test",
        "",
        f"Final-Recipient: rfc822; walter@victim.test{cr}{FAKE}",
        "Action: failed",
        "Status: 5.1.1",
        f"Diagnostic-Code: smtp; 550 unknown{cr}{FAKE}",
        "--BB",
        "Content-Type: message/rfc822",
        "",
        "Received: from a.botnet.test by mx.victim.test",
        f"Message-ID: <1@evil.example{cr}{FAKE}{cr}>",
        f"References: <2@evil.example{eol}\t{FAKE}>",
        "Subject: spam",
        "",
        "buy now",
        "--BB--",
        "",
    ]
    return eol.join(lines)


# -- fail2ban over the daemon's real output ---------------------------------------------------

def fail2ban_conf(tmp_path: Path) -> Path:
    conf = tmp_path / "fail2ban"
    if not conf.exists():
        shutil.copytree("/etc/fail2ban", conf)
        shutil.copy(FILTER, conf / "filter.d" / "mxguard.conf")
    return conf


def fail2ban_ips(tmp_path: Path, log: Path, *extra: str) -> list[str]:
    regex = shutil.which("fail2ban-regex")
    assert regex, "fail2ban-regex not found: run scripts/install-deps (package fail2ban)"
    out = subprocess.run([regex, "-c", str(fail2ban_conf(tmp_path)), "-o", "ip", *extra,
                          str(log), "mxguard"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def banned_by_fail2ban(daemon, tmp_path: Path) -> dict[str, list[str]]:
    """What fail2ban would ban reading the daemon's stderr raw, and journal-style."""
    stderr = daemon.log_file.read_bytes()
    raw = tmp_path / "stderr.log"
    raw.write_bytes(stderr)
    # The journal starts an entry at every LF (and NUL) of a stream and gives each its own
    # prefix; the daemon's "mxguard: " is dropped, as in the syslog copy of the line.
    journal = tmp_path / "journal.log"
    entries = [e for e in re.split(rb"[\n\0]", stderr) if e]
    journal.write_bytes(b"".join(
        b"Dec  4 08:%02d:%02d mx mxguard[812]: " % (i // 60 % 60, i % 60)
        + e.removeprefix(b"mxguard: ") + b"\n" for i, e in enumerate(entries)))
    return {"raw": fail2ban_ips(tmp_path, raw, "--datepattern", "{NONE}"),
            "journal": fail2ban_ips(tmp_path, journal)}


def assert_no_forged_line(daemon) -> None:
    """No physical line of the daemon's stderr is anything but an "mxguard: " line, and none
    carries a control character: the payload stayed inside the line that quoted it."""
    stderr = daemon.log_file.read_bytes()
    for line in stderr.split(b"\n")[:-1]:
        assert line.startswith(b"mxguard: "), line
        assert not re.search(rb"[\x00-\x1f\x7f]", line), line


# -- a real ban, over the milter protocol -----------------------------------------------------

def milter_connect(daemon, client: str, daemon_addr: str = "127.0.0.1",
                   name: str = "client.test.example") -> tuple[MilterClient, MilterReply]:
    return connect_like_postfix(daemon.socket, client, daemon_addr, name)


def first_answer(daemon, client: str, daemon_addr: str = "127.0.0.1") -> MilterReply:
    """What a client is first told: at its first RCPT, where a refusal decided at connect is
    given (delay-reject), or at connect when connect has a reply."""
    m, r = milter_connect(daemon, client, daemon_addr)
    try:
        if r is NO_REPLY:
            assert m.mail("<someone@example.org>") is NO_REPLY
            r = m.rcpt("<someone@example.com>")
        assert isinstance(r, MilterReply), str(r)
        return r
    finally:
        m.close()


def hit_trap(daemon, client: str) -> None:
    r = first_answer(daemon, client, daemon_addr=TRAP)
    assert r.code == 421, str(r)


def ban_for_real(daemon) -> None:
    for _ in range(3):
        hit_trap(daemon, BANNED_V4)
    daemon.wait_log(rf"^mxguard: ban {re.escape(BANNED_V4)} for 1800s: 3 strikes \(trap ")


# -- through the MTAs --------------------------------------------------------------------------

# What each MTA does with a bare CR inside a command or the message, as observed (Postfix
# 3.7, Sendmail 8.17); an LF cannot travel inside an SMTP command at all (it ends the line).
#   Postfix:  EHLO name: passed on with the CR made a space; MAIL/RCPT address: refused,
#             "501 5.1.7 Bad sender/recipient address syntax"; message: bare CR passed on.
#   Sendmail: EHLO name: refused, "501 5.0.0 Invalid domain name"; MAIL/RCPT address: passed
#             on with the CR; message: refused, "421 4.5.0 Bare carriage return (CR) not allowed".
SMTP_VECTORS = {
    "postfix": {"ehlo": 250, "mail": 501, "rcpt": 501, "eom": 550},
    "sendmail": {"ehlo": 501, "mail": 250, "rcpt": 554, "eom": 421},
}


def test_client_text_through_the_mta_cannot_forge_a_ban_line(mta, mxguard, config, tmp_path,
                                                             sink):
    d = mxguard(config)
    server = mta(milter=d.socket)
    expect = SMTP_VECTORS[mta.kind]
    s = SmtpSession(server, source=OUTSIDE)
    assert s.banner.code == 220
    ehlo = s.command(f"EHLO evil.example\r{FAKE}\r")
    assert ehlo.code == expect["ehlo"], str(ehlo)
    if ehlo.code != 250:
        assert s.ehlo("client.test.example").code == 250
    mail = s.command(f"MAIL FROM:<a\r{FAKE}\r@example.org>")
    assert mail.code == expect["mail"], str(mail)
    if mail.code != 250:
        assert s.mail("a@example.org").code == 250
    # A table REJECT for a recipient with a CR in it: refused by the MTA itself or, where it
    # reaches mxguard, by the table with a fixed text (it used to be accepted).
    rcpt = s.command(f"RCPT TO:<victim\r{FAKE}\r@example.com>")
    assert rcpt.code == expect["rcpt"], str(rcpt)
    if rcpt.code == 554:
        assert rcpt.text == "5.7.1 Recipient address rejected: go away"
        d.wait_log(r"result 'REJECT' gives a bad reply .*; refused with a fixed text")
    plain = s.rcpt("victim@example.com")
    assert plain.code == 554 and "<victim@example.com>: Recipient address rejected: go away" \
        in plain.text, str(plain)
    assert s.rset().code == 250
    # The bounce: refused by mxguard after DATA (Postfix), or by Sendmail for its bare CRs.
    assert s.mail("").code == 250
    assert s.rcpt("victor@example.com").code == 250
    go, eom = s.data(dsn())
    assert go.code == 354 and eom is not None and eom.code == expect["eom"], str(eom)
    s.quit()
    d.wait_log(r"reject: RCPT from \S+: 554 5\.7\.1 <victim@example\.com>")
    ban_for_real(d)
    assert banned_by_fail2ban(d, tmp_path) == {"raw": [BANNED_V4], "journal": [BANNED_V4]}
    assert_no_forged_line(d)
    # What reached mxguard was logged on its decision lines, escaped.
    if mta.kind == "postfix":
        assert re.search(rf"helo=<evil\.example {re.escape(FAKE)} ?>", d.log_text())
        d.wait_log(r"reject: END-OF-MESSAGE from .*check=backscatter")
        d.wait_log(r"Message-ID domain evil\.example.*198\.51\.100\.77.* is not ours")
    else:
        assert (f"from=<a\\r{FAKE}\\r@example.org> to=<victim\\r{FAKE}\\r@example.com>"
                in d.log_text())
    assert sink.count() == 0


# -- straight over the milter protocol ---------------------------------------------------------

def test_client_text_over_the_milter_protocol_cannot_forge_a_ban_line(mxguard, config,
                                                                      tmp_path):
    d = mxguard(config)
    forged = f"\n{FAKE}\n"
    m, r = milter_connect(d, "203.0.113.5", name=f"evil{forged}host")
    try:
        assert r is NO_REPLY, str(r)  # connect is not answered (delay-reject)
        m.helo(f"evil.example{forged}x")
        m.macros(b"M", {"i": "INJECT1"})
        assert m.mail(f"<a{forged}@example.org>", f"ENVID=x{forged}").passes
        # Not quotable in a reply: refused with the table's text, without the address.
        bad = m.rcpt(f"<victim\r{forged}@example.com>")
        assert bad.code == 554 and bad.text == "554 5.7.1 Recipient address rejected: go away", \
            str(bad)
        ok = m.rcpt("<victim@example.com>")
        assert ok.code == 554 and "<victim@example.com>" in ok.text
        m.abort()
        m.macros(b"M", {"i": "INJECT2"})
        assert m.mail("<>").passes
        assert m.rcpt("<victor@example.com>", f"ORCPT=rfc822;w{forged}").passes
        assert m.data().passes
        for name, value in (("From", "MAILER-DAEMON@mx.victim.test"),
                            ("Subject", f"Undelivered{forged}"),
                            ("X-Folded", f"a\n\t{FAKE}"),
                            ("MIME-Version", "1.0"),
                            ("Content-Type", "multipart/report; report-type=delivery-status; "
                                             'boundary="BB"')):
            r = m.header(name, value)
            assert not isinstance(r, MilterReply) or r.passes, str(r)
        r = m.eoh()
        assert not isinstance(r, MilterReply) or r.passes, str(r)
        body = dsn().split("\r\n\r\n", 1)[1].encode()
        r = m.body(body)
        assert not isinstance(r, MilterReply) or r.passes, str(r)
        final = m.eom()
        assert final.code == 550, str(final)
    finally:
        m.close()
    d.wait_log(r"check=backscatter reason=dsn")  # the end of the INJECT2 reject line
    ban_for_real(d)
    assert banned_by_fail2ban(d, tmp_path) == {"raw": [BANNED_V4], "journal": [BANNED_V4]}
    assert_no_forged_line(d)
    text = d.log_text()
    # The payload reached the log, escaped, in HELO, MAIL and RCPT ...
    assert f"helo=<evil.example\\n{FAKE}\\nx>" in text
    assert f"from=<a\\n{FAKE}\\n@example.org>" in text
    assert f"to=<victim\\r\\n{FAKE}\\n@example.com>" in text
    # ... and in a field of the returned message (whose Message-ID parsing itself drops the
    # CRs and the blanks).
    assert f"Message-ID domain evil.example{FAKE.replace(' ', '')} is not ours" in text


def test_a_client_rotating_inside_an_ipv6_64_is_banned(mxguard, config, tmp_path):
    d = mxguard(config)  # ban-aggregate-v6-prefix: the default, 64
    for host in ("::1", "::2", ":ffff:ffff:ffff:fff3"):
        hit_trap(d, V6_NET + host)
    d.wait_log(rf"^mxguard: ban {V6_NET}::/64 for 1800s: 3 strikes \(trap {TRAP}\)")
    # A fresh address of the same /64 is refused (421, never 5xx); the next /64 and an IPv4
    # client are not.
    for client, banned in ((V6_NET + "::beef", True), ("2001:db8:66:2::1", False),
                           ("203.0.113.9", False)):
        r = first_answer(d, client)
        assert (r.code == 421) == banned, f"{client}: {r}"
    d.wait_log(rf"reject: CONNECT from \S+\[{V6_NET}::beef\]: 421 4\.7\.0 .*check=ban")
    assert banned_by_fail2ban(d, tmp_path) == {"raw": [f"{V6_NET}::/64"],
                                               "journal": [f"{V6_NET}::/64"]}


# -- loopback and trusted clients ---------------------------------------------------------------

@pytest.fixture(scope="module")
def nsd():
    with Nsd() as server:
        yield server


@pytest.mark.mtas("postfix")
def test_loopback_and_trusted_clients_are_refused_but_never_banned(mta, mxguard, nsd, sink):
    # product.web.test publishes a null MX: every message to it is a strike, except from
    # loopback (127.0.0.1: webmail, local submission) and trusted-networks clients.
    base = (checks_off_except("unhandled-domain", "ban") +
            f"dns-server = {nsd.server}\n"
            "unhandled-domains = product.web.test\n"
            "ban-strikes = 3\n"
            "log-level = debug\n")
    d = mxguard(base)
    server = mta(milter=d.socket)
    for i in range(4):
        r = send(server, recipients=["info@product.web.test"], source="127.0.0.1",
                 sender="webmail@good.mail.test", subject=f"local {i}")
        assert r.rcpts[0].code == 556, str(r.rcpts[0])  # still refused, per message
    d.wait_log(r"no strike for 127\.0\.0\.1: loopback clients are never banned")
    ok = send(server, recipients=["x@good.mail.test"], source="127.0.0.1",
              sender="webmail@good.mail.test", subject="local after")
    assert ok.accepted, str(ok.last())
    assert sink.wait_find(subject="local after")
    assert not re.search(r"\bban 127\.", d.log_text())
    d.stop()

    # With loopback clients playing remote hosts (ban-loopback = yes): a trusted one is still
    # never struck, an untrusted one is banned (the rule is what spares them, not the setup).
    d2 = mxguard(base + "ban-loopback = yes\ntrusted-networks = 127.0.0.4/32\n")
    server = mta(milter=d2.socket)
    for client in ("127.0.0.4", "127.0.0.5"):
        for i in range(3):
            r = send(server, recipients=["info@product.web.test"], source=client,
                     sender="x@good.mail.test")
            assert r.rcpts[0].code == 556, str(r.rcpts[0])
    d2.wait_log(r"no strike for \S+\[127\.0\.0\.4\]: trusted-networks clients are never banned")
    d2.wait_log(r"^mxguard: ban 127\.0\.0\.5 for 1800s: 3 strikes")
    trusted = send(server, recipients=["x@good.mail.test"], source="127.0.0.4",
                   sender="x@good.mail.test", subject="trusted after")
    assert trusted.accepted, str(trusted.last())
    assert sink.wait_find(subject="trusted after")
    assert not send(server, recipients=["x@good.mail.test"], source="127.0.0.5").accepted
    assert "ban 127.0.0.4" not in d2.log_text()
