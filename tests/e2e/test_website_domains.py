"""Website-only domains, strikes and bans, trap MX, shared and persistent state (issue 5),
through a real Postfix, a real nsd serving the test zones and a real redis-server.

The admin's story: product.web.test is only a website; its A record points at the mail
server. It publishes a null MX, so any client that still comes ignores DNS and may be banned;
shop.web.test has no MX, so real providers whose users mistype come here: refused, never banned.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from dns.dnstest import Nsd, free_port
from harness import smtp

SENDER = "sender@good.mail.test"  # a domain the test DNS knows: sender checks stay quiet


def send(server, **kwargs):
    kwargs.setdefault("sender", SENDER)
    return smtp.send(server, **kwargs)

REPO = Path(__file__).resolve().parents[2]
BOGUS = REPO / "rules" / "bogus-networks.cidr"
TRAP = "127.0.0.10"
BAN_SECONDS = 8


@pytest.fixture(scope="module", autouse=True)
def trap_address_on_loopback():
    """Postfix listens only on addresses an interface has: give lo the trap address (a /32
    inside 127.0.0.0/8, removed afterwards)."""
    present = TRAP in subprocess.run(["ip", "-4", "addr", "show", "dev", "lo"],
                                     capture_output=True, text=True).stdout
    if not present:
        subprocess.run(["ip", "addr", "add", f"{TRAP}/32", "dev", "lo"], check=True)
    yield
    if not present:
        subprocess.run(["ip", "addr", "del", f"{TRAP}/32", "dev", "lo"], check=False)


@pytest.fixture(scope="module")
def nsd():
    with Nsd() as server:
        yield server


def config(nsd, tmp_path: Path, extra: str = "") -> str:
    return (f"dns-server = {nsd.server}\n"
            f"bogus-networks = {BOGUS}\n"
            "unhandled-domains = product.web.test, relayed.web.test, shop.web.test, "
            "elsewhere.web.test\n"
            "ban-strikes = 3\n"
            "ban-window = 10m\n"
            "ban-time = 10m\n"
            # 127.0.0.10: the harness's own readiness probes of the trap listener
            f"allow-networks = 127.0.0.9/32, {TRAP}/32\n"
            # The clients of these tests are loopback addresses playing remote hosts.
            "ban-loopback = yes\n"
            f"trap-address = {TRAP}\n"
            f"state-file = {tmp_path}/mxguard.state\n"
            "log-level = info\n" + extra)


# Postfix refuses relayed.web.test itself, as it would refuse any domain it does not relay for.
POSTFIX_REFUSES = ("smtpd_recipient_restrictions = check_recipient_access "
                   "inline:{ { relayed.web.test = 554 5.7.1 Relay access denied } }")


def postfix_for(postfix, daemon):
    return postfix(milter=daemon.socket, config=POSTFIX_REFUSES, listen=("127.0.0.1", TRAP))


def strike_three(server, client: str, rcpt: str, code: int) -> None:
    for i in range(3):
        r = send(server, recipients=[rcpt], source=client, subject=f"strike {i}")
        assert r.rcpts and r.rcpts[0].code == code, str(r.last())


def connect_banner(server, client: str, port_host: str = "127.0.0.1"):
    return send((port_host, server.port), recipients=["x@good.mail.test"], source=client).banner


def test_null_mx_website_client_is_rejected_banned_then_unbanned(postfix, mxguard, nsd,
                                                                  tmp_path, sink):
    # Short bans here only: the others are long, so a slow machine cannot outlive them.
    d = mxguard(config(nsd, tmp_path).replace("ban-time = 10m", f"ban-time = {BAN_SECONDS}s"))
    server = postfix_for(postfix, d)
    strike_three(server, "127.0.0.5", "info@product.web.test", 556)
    d.wait_log(r"reject: RCPT from \S+\[127\.0\.0\.5\]: 556 5\.1\.10 <info@product\.web\.test>")
    d.wait_log(rf"ban 127\.0\.0\.5 for {BAN_SECONDS}s: 3 strikes \(unhandled domain product\.web\.test\)")
    banned = send(server, recipients=["x@good.mail.test"], source="127.0.0.5")
    # Decided at connect, told at the RCPT (delay-reject); Postfix then closes the connection.
    assert banned.rcpts and banned.rcpts[0].code == 421, str(banned.last())
    assert banned.quit.code == 0 and "closed" in banned.quit.text, str(banned.quit)
    assert not banned.accepted
    d.wait_log(r"reject: CONNECT from \S+\[127\.0\.0\.5\]: 421 4\.7\.0 .*check=ban")
    # The ban ends after ban-time (the maintenance round logs it within a second): mail flows
    # again, and arrives.
    d.wait_log(r"unban 127\.0\.0\.5", timeout=BAN_SECONDS + 30)
    after = send(server, recipients=["x@good.mail.test"], source="127.0.0.5",
                 subject="after the ban")
    assert after.accepted, str(after.last())
    assert sink.wait_find(recipient="x@good.mail.test", subject="after the ban")


def test_recipients_postfix_refused_itself_count_too(postfix, mxguard, nsd, tmp_path, sink):
    d = mxguard(config(nsd, tmp_path))
    server = postfix_for(postfix, d)
    strike_three(server, "127.0.0.6", "sales@relayed.web.test", 554)
    d.wait_log(r"ban 127\.0\.0\.6 for 600s: 3 strikes \(unhandled domain relayed\.web\.test\)")
    assert not send(server, recipients=["x@good.mail.test"], source="127.0.0.6").accepted


def test_provider_writing_to_implicit_mx_website_is_rejected_never_banned(postfix, mxguard, nsd,
                                                                          tmp_path, sink):
    d = mxguard(config(nsd, tmp_path))
    server = postfix_for(postfix, d)
    for i in range(6):
        r = send(server, recipients=["friend@shop.web.test"], source="127.0.0.7")
        assert r.rcpts[0].code == 550 and r.rcpts[0].text.startswith("5.1.2 "), str(r.rcpts[0])
    ok = send(server, recipients=["x@good.mail.test"], source="127.0.0.7", subject="provider")
    assert ok.accepted, str(ok.last())
    assert sink.wait_find(subject="provider")
    assert not re.search(r"ban 127\.0\.0\.7 ", d.log_text())


def test_mx_elsewhere_earns_strikes(postfix, mxguard, nsd, tmp_path, sink):
    d = mxguard(config(nsd, tmp_path))
    server = postfix_for(postfix, d)
    strike_three(server, "127.0.0.8", "a@elsewhere.web.test", 550)
    d.wait_log(r"ban 127\.0\.0\.8 for 600s: 3 strikes \(unhandled domain elsewhere\.web\.test\)")


def test_allow_listed_client_is_never_banned(postfix, mxguard, nsd, tmp_path, sink):
    d = mxguard(config(nsd, tmp_path))
    server = postfix_for(postfix, d)
    for _ in range(5):
        r = send(server, recipients=["info@product.web.test"], source="127.0.0.9")
        assert r.rcpts[0].code == 556
    ok = send(server, recipients=["x@good.mail.test"], source="127.0.0.9", subject="allowed")
    assert ok.accepted
    assert sink.wait_find(subject="allowed")
    assert "ban 127.0.0.9" not in d.log_text()


def test_trap_address_gets_421_and_strikes(postfix, mxguard, nsd, tmp_path, sink):
    d = mxguard(config(nsd, tmp_path))
    server = postfix_for(postfix, d)
    for _ in range(3):
        r = send((TRAP, server.port), recipients=["x@good.mail.test"], source="127.0.0.11")
        assert not r.accepted
        assert r.rcpts and r.rcpts[0].code == 421, str(r.last())
    d.wait_log(r"trap: \S+\[127\.0\.0\.11\] connected to trap address 127\.0\.0\.10")
    d.wait_log(r"ban 127\.0\.0\.11 for 600s: 3 strikes \(trap 127\.0\.0\.10\)")
    # Banned on the real address too.
    assert not send(server, recipients=["x@good.mail.test"], source="127.0.0.11").accepted
    # An allow-listed client passes the trap, and its mail arrives.
    ok = send((TRAP, server.port), recipients=["x@good.mail.test"], source="127.0.0.9",
              subject="through the trap")
    assert ok.accepted, str(ok.last())
    assert sink.wait_find(subject="through the trap")



def test_without_delay_reject_the_trap_answers_the_greeting(postfix, mxguard, nsd, tmp_path,
                                                             sink):
    d = mxguard(config(nsd, tmp_path) + "delay-reject = no\n")
    server = postfix_for(postfix, d)
    r = send((TRAP, server.port), recipients=["x@good.mail.test"], source="127.0.0.14")
    # Connect answered: Postfix gives its own 421 for the greeting and hangs up.
    assert r.banner.code == 421 and not r.rcpts, str(r)
    assert not r.accepted
    d.wait_log(r"reject: CONNECT from \S+\[127\.0\.0\.14\]: 421 4\.7\.0 .*check=trap-mx")
    assert sink.count() == 0

def test_ban_survives_a_restart_with_the_memory_backend(postfix, mxguard, nsd, tmp_path, sink):
    cfg = config(nsd, tmp_path)
    first = mxguard(cfg)
    server = postfix_for(postfix, first)
    strike_three(server, "127.0.0.12", "info@product.web.test", 556)
    first.wait_log(r"ban 127\.0\.0\.12 for 600s")
    first.stop()
    second = mxguard(cfg)  # same socket path: the pooled Postfix reaches it unchanged
    assert second.socket.libmilter() == first.socket.libmilter() or True
    server2 = postfix_for(postfix, second)
    r = send(server2, recipients=["x@good.mail.test"], source="127.0.0.12")
    assert not r.accepted
    second.wait_log(r"reject: CONNECT from \S+\[127\.0\.0\.12\]: 421 4\.7\.0 .*check=ban")


@pytest.fixture
def redis_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield proc, port
    proc.kill()
    proc.wait()


def test_two_instances_share_bans_through_redis_and_survive_its_death(
        postfix, mxguard, nsd, tmp_path, sink, redis_server):
    proc, port = redis_server
    cfg = config(nsd, tmp_path, f"state = redis://127.0.0.1:{port}/0\nredis-timeout = 200ms\n")
    one, two = mxguard(cfg), mxguard(cfg)
    mx_one = postfix(milter=one.socket, config=POSTFIX_REFUSES)
    mx_two = postfix(milter=two.socket, config=POSTFIX_REFUSES)
    strike_three(mx_one, "127.0.0.13", "info@product.web.test", 556)
    one.wait_log(r"ban 127\.0\.0\.13 for 600s")
    # The other MX host enforces the ban it never saw being earned.
    r = send(mx_two, recipients=["x@good.mail.test"], source="127.0.0.13")
    assert not r.accepted
    two.wait_log(r"reject: CONNECT from \S+\[127\.0\.0\.13\]: 421 4\.7\.0 .*check=ban")
    # Redis dies: mail keeps flowing through both, and arrives.
    proc.kill()
    proc.wait()
    for i, mx in enumerate((mx_one, mx_two)):
        ok = send(mx, recipients=["x@good.mail.test"], source="127.0.0.14",
                  subject=f"redis down {i}")
        assert ok.accepted, str(ok.last())
        assert sink.wait_find(subject=f"redis down {i}")


def test_fail2ban_filter_matches_exactly_the_ban_lines_of_a_real_run(postfix, mxguard, nsd,
                                                                     tmp_path, sink):
    d = mxguard(config(nsd, tmp_path))
    server = postfix_for(postfix, d)
    strike_three(server, "127.0.0.15", "info@product.web.test", 556)
    strike_three(server, "127.0.0.16", "a@elsewhere.web.test", 550)
    for _ in range(3):
        send(server, recipients=["friend@shop.web.test"], source="127.0.0.17")
    d.wait_log(r"ban 127\.0\.0\.16 ")
    # The daemon's own lines, as syslog would have written them.
    log = tmp_path / "mail.log"
    lines = [re.sub(r"^mxguard: ", "", l) for l in d.log_lines(since_mark=False)]
    log.write_text("".join(f"Nov 23 12:00:00 mx mxguard[4242]: {l}\n" for l in lines))
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    shutil.copy(REPO / "packaging" / "fail2ban" / "filter.d" / "mxguard.conf",
                conf / "filter.d" / "mxguard.conf")
    out = subprocess.run(["fail2ban-regex", "--print-all-matched", str(log),
                          str(conf / "filter.d" / "mxguard.conf")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    matched = re.findall(r"\|\s+.*mxguard\[4242\]: (ban \S+)", out.stdout)
    bans = [l.split(" for ")[0] for l in lines if l.startswith("ban ")]
    assert sorted(matched) == sorted(bans) == ["ban 127.0.0.15", "ban 127.0.0.16"]
    # And Postfix's own log does not make fail2ban's stock postfix filter ban the provider
    # (127.0.0.17) whose users wrote to the website-only domain.
    # As a control, Postfix's own "Relay access denied" for 127.0.0.18 must match.
    send(server, recipients=["sales@relayed.web.test"], source="127.0.0.18")
    server.wait_log(r"reject: RCPT from \S+\[127\.0\.0\.18\]: 554 5\.7\.1")
    # The harness names each instance postfix-e2e-PORT; the stock filter expects "postfix/".
    postfix_log = tmp_path / "postfix.log"
    postfix_log.write_text(re.sub(r"postfix-e2e-\d+/", "postfix/", server.log_text()))
    stock = subprocess.run(["fail2ban-regex", "--print-all-matched", str(postfix_log),
                            "/etc/fail2ban/filter.d/postfix.conf"],
                           capture_output=True, text=True, timeout=120)
    assert stock.returncode == 0, stock.stderr
    matched_lines = [l for l in stock.stdout.splitlines() if l.lstrip().startswith("|")]
    assert any("[127.0.0.18]" in l for l in matched_lines), stock.stdout
    assert not any("[127.0.0.17]" in l for l in matched_lines), stock.stdout


def test_forward_confirmed_provider_is_never_banned(postfix, mxguard, nsd, tmp_path, sink):
    d = mxguard(config(nsd, tmp_path, "provider-suffixes = .provider.test\n"))
    server = postfix_for(postfix, d)
    # 127.0.0.20 is mail-out.provider.test, forward-confirmed: strikes, never a ban.
    for _ in range(4):
        r = send(server, recipients=["info@product.web.test"], source="127.0.0.20")
        assert r.rcpts[0].code == 556
    ok = send(server, recipients=["x@good.mail.test"], source="127.0.0.20", subject="provider ok")
    assert ok.accepted, str(ok.last())
    assert sink.wait_find(subject="provider ok")
    assert "ban 127.0.0.20 " not in d.log_text()
    # 127.0.0.21 only claims a provider name (its PTR does not round-trip): banned.
    strike_three(server, "127.0.0.21", "info@product.web.test", 556)
    d.wait_log(r"ban 127\.0\.0\.21 for 600s")


def test_metrics_count_bans_dns_and_store(postfix, mxguard, nsd, tmp_path, sink):
    prom = tmp_path / "mxguard.prom"
    cfg = config(nsd, tmp_path, f"metrics-file = {prom}\n")
    d = mxguard(cfg)
    server = postfix_for(postfix, d)
    strike_three(server, "127.0.0.22", "info@product.web.test", 556)
    d.wait_log(r"ban 127\.0\.0\.22 ")
    # The file is rewritten every 5 s; wait for a version written after the ban.
    deadline = time.monotonic() + 20
    text = ""
    while time.monotonic() < deadline:
        text = prom.read_text() if prom.exists() else ""
        if "mxguard_bans_active 1" in text:
            break
        time.sleep(0.5)

    def value(name: str) -> float:
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        assert m, f"{name} missing from:\n{text}"
        return float(m.group(1))

    assert value("mxguard_bans_active") == 1
    assert value("mxguard_state_store_errors_total") == 0
    assert value("mxguard_dns_cache_misses_total") >= 1
    assert value("mxguard_dns_cache_hits_total") >= 1  # the same domain, asked three times
    assert value("mxguard_dns_query_seconds_count") == value("mxguard_dns_cache_misses_total")
    assert value('mxguard_verdicts_total{check="unhandled-domain",action="reject"}') == 3
