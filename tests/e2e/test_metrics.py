"""Metrics through a real Postfix (issue 6): the /metrics listener and the textfile are
scraped around a run of rejects, and the verdict counters move by exactly what was sent.
A metrics port in use stops mxguard with 78.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from harness.milter import checks_off_except, mxguard_binary
from harness.milterclient import NO_REPLY, MilterClient, postfix_connect_macros
from harness.smtp import send
from harness.util import BOGUS_NETWORKS, wait_until

OUTSIDE = "127.0.0.3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def other_checks_off() -> str:
    return checks_off_except("access")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def value(text: str, name: str, labels: str = "") -> float:
    """The sample `name{labels}`; 0 when absent (a counter not yet used)."""
    pattern = "^" + re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)$"
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else 0.0


REJECT = 'check="access",action="reject"'
WOULD = 'check="access",action="would-reject"'


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    (tmp_path / "rcpt.regexp").write_text("/^blocked-/   550 5.7.1 Blocked by the test table\n")
    return tmp_path


def test_counters_move_by_the_rejects_sent(postfix, mxguard, tables, sink, tmp_path):
    port = free_port()
    prom = tmp_path / "mxguard.prom"
    d = mxguard(other_checks_off() + f"recipient-access = regexp:{tables}/rcpt.regexp\n"
                f"metrics-listen = 127.0.0.1:{port}\nmetrics-file = {prom}\n")
    server = postfix(milter=d.socket)

    before = scrape(port)
    rejects = 4
    for i in range(rejects):
        r = send(server, recipients=[f"blocked-{i}@dest.test.example"], source=OUTSIDE)
        assert r.rcpts[0].code == 550
    ok = send(server, recipients=["fine@dest.test.example"], source=OUTSIDE)
    assert ok.accepted
    assert sink.wait_find(recipient="fine@dest.test.example")

    after = scrape(port)
    assert value(after, "mxguard_verdicts_total", REJECT) - \
        value(before, "mxguard_verdicts_total", REJECT) == rejects
    assert value(after, "mxguard_verdicts_total", WOULD) == value(before, "mxguard_verdicts_total",
                                                                  WOULD)
    assert value(after, "mxguard_rejects_total") - value(before, "mxguard_rejects_total") == rejects
    assert value(after, "mxguard_connections_total") >= value(before,
                                                             "mxguard_connections_total") + 1
    assert "# TYPE mxguard_transactions_in_flight gauge" in after

    # The textfile catches up within its 5 s interval, and is always whole.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        text = prom.read_text() if prom.exists() else ""
        if value(text, "mxguard_verdicts_total", REJECT) == \
                value(after, "mxguard_verdicts_total", REJECT):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"{prom} never showed the rejects:\n{text}")
    assert text.endswith("\n")
    assert not Path(str(prom) + ".tmp").exists()


def test_report_only_counts_would_reject(postfix, mxguard, tables, sink):
    port = free_port()
    d = mxguard(other_checks_off() + f"recipient-access = regexp:{tables}/rcpt.regexp\n"
                f"metrics-listen = 127.0.0.1:{port}\ncheck.access = report\n")
    server = postfix(milter=d.socket)
    before = scrape(port)
    r = send(server, recipients=["blocked-x@dest.test.example"], source=OUTSIDE)
    assert r.accepted
    assert sink.wait_find(recipient="blocked-x@dest.test.example")
    after = scrape(port)
    assert value(after, "mxguard_verdicts_total", WOULD) - \
        value(before, "mxguard_verdicts_total", WOULD) == 1
    assert value(after, "mxguard_verdicts_total", REJECT) == \
        value(before, "mxguard_verdicts_total", REJECT)


def test_metrics_port_in_use_exits_78(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out = subprocess.run([str(mxguard_binary()), "-f", "--syslog=no",
                              f"--bogus-networks={BOGUS_NETWORKS}", "-p", f"unix:{tmp_path}/m.sock",
                              f"--metrics-listen=127.0.0.1:{port}"],
                             capture_output=True, text=True, timeout=30)
    assert out.returncode == 78, out.stderr
    assert f"metrics-listen 127.0.0.1:{port}" in out.stderr
    assert "in use" in out.stderr


def test_bad_metrics_listen_is_a_config_error(tmp_path):
    out = subprocess.run([str(mxguard_binary()), "-f", "--syslog=no",
                          f"--bogus-networks={BOGUS_NETWORKS}", "-p", f"unix:{tmp_path}/m.sock",
                          "--metrics-listen=localhost"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 78
    assert "metrics-listen" in out.stderr


def test_a_client_that_hangs_up_at_once_is_still_counted(mxguard, tmp_path):
    """Connect has no reply (delay-reject): an MTA whose client leaves at once sends connect and
    QUIT together, and libmilter may end the session without running connect. The connection
    is counted at negotiation, which always has a reply; none stays open."""
    (tmp_path / "client.cidr").write_text("192.0.2.0/24 REJECT blocked network\n")
    port = free_port()
    d = mxguard(other_checks_off() + f"client-access = cidr:{tmp_path}/client.cidr\n"
                f"metrics-listen = 127.0.0.1:{port}\n")
    before = value(scrape(port), "mxguard_connections_total")
    for i in range(1, 21):
        m = MilterClient(d.socket).open()
        m.negotiate()
        m.macros(b"C", postfix_connect_macros(client=f"192.0.2.{i}"))
        assert m.connect("gone.example", f"192.0.2.{i}") is NO_REPLY
        m.quit()

    def settled() -> bool:
        text = scrape(port)
        return value(text, "mxguard_connections_active") == 0 and \
            value(text, "mxguard_connections_total") >= before + 20
    wait_until(settled, 10, what="20 connections counted and closed")
    assert value(scrape(port), "mxguard_connections_total") == before + 20
