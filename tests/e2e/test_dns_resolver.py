"""The ldns resolver and the mail route analysis against a real DNS server (nsd serving
tests/data/zones) and against servers that misbehave, through `mxguard audit`.

Each case of issue 3's Tests section is one row: the domain, the route class mxguard must
find, and for bogus routes the range the reply would name.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))

from dnstest import Nsd, Responder  # noqa: E402
from harness.milter import mxguard_binary  # noqa: E402
from harness.util import BOGUS_NETWORKS  # noqa: E402


@pytest.fixture(scope="module")
def nsd():
    with Nsd() as ns:
        yield ns


def audit(server: str, *domains: str, extra=()) -> subprocess.CompletedProcess:
    binary = mxguard_binary()
    if not binary.exists():
        pytest.skip(f"mxguard not built ({binary}); set MXGUARD_BIN")
    return subprocess.run([str(binary), "audit", f"--dns-server={server}",
                           f"--bogus-networks={BOGUS_NETWORKS}", *extra, *domains],
                          capture_output=True, text=True, timeout=60)


CASES = [
    ("good.mail.test", "deliverable", None),
    ("loopback.mail.test", "bogus", "loopback network 127.0.0.0/8"),
    ("zero.mail.test", "bogus", "this-network 0.0.0.0/8"),
    ("rfc1918-10.mail.test", "bogus", "private network 10.0.0.0/8"),
    ("rfc1918-172.mail.test", "bogus", "private network 172.16.0.0/12"),
    ("rfc1918-192.mail.test", "bogus", "private network 192.168.0.0/16"),
    ("cgnat.mail.test", "bogus", "carrier-grade NAT shared network 100.64.0.0/10"),
    ("bench.mail.test", "bogus", "benchmarking network 198.18.0.0/15"),
    ("testnet1.mail.test", "bogus", "documentation network TEST-NET-1 192.0.2.0/24"),
    ("testnet2.mail.test", "bogus", "documentation network TEST-NET-2 198.51.100.0/24"),
    ("testnet3.mail.test", "bogus", "documentation network TEST-NET-3 203.0.113.0/24"),
    ("v6loop.mail.test", "bogus", "loopback address ::1/128"),
    ("ula.mail.test", "bogus", "unique local network fc00::/7"),
    ("linklocal.mail.test", "bogus", "link-local network fe80::/10"),
    ("doc6.mail.test", "bogus", "documentation network 2001:db8::/32"),
    ("mapped.mail.test", "bogus", "loopback network 127.0.0.0/8 (embedded in ::ffff:127.0.0.1)"),
    ("nat64.mail.test", "bogus", "private network 10.0.0.0/8 (embedded in 64:ff9b::a01:203)"),
    ("sixto4.mail.test", "bogus",
     "private network 192.168.0.0/16 (embedded in 2002:c0a8:119::1)"),
    ("nullmx.mail.test", "null-mx", None),
    ("NullMX-SPF.Mail.Test.", "null-mx", None),
    # "MX 0 ." with another MX is not a valid null MX (RFC 7505 §3): the "." record is ignored
    # and the other exchangers decide.
    ("nullmx-plus.mail.test", "deliverable", None),
    ("nullmx-plus-bad.mail.test", "bogus", "loopback network 127.0.0.0/8"),
    ("implicit.mail.test", "bogus", "loopback network 127.0.0.0/8"),
    ("implicit-good.mail.test", "deliverable", None),
    ("noaddr.mail.test", "no-exchanger", None),
    ("nx.mail.test", "no-such-domain", None),
    ("dangling.mail.test", "no-exchanger", None),
    ("viacname.mail.test", "deliverable", None),
    ("mixed.mail.test", "deliverable", None),
    ("nolisting.mail.test", "deliverable", None),
    ("dualstack.mail.test", "deliverable", None),
    ("big.mail.test", "bogus", "loopback network 127.0.0.0/8"),  # over 512 bytes: TCP
]


@pytest.mark.parametrize("domain,kind,range_text", CASES, ids=[c[0] for c in CASES])
def test_route_class(nsd, domain, kind, range_text):
    r = audit(nsd.server, domain)
    first = r.stdout.splitlines()[0] if r.stdout else ""
    assert first == f"{domain.lower().rstrip('.')}: {kind}", r.stdout + r.stderr
    assert r.returncode == (0 if kind == "deliverable" else 1), r.stdout + r.stderr
    if range_text:
        assert f"NOT routable: {range_text}" in r.stdout, r.stdout


def test_idn_domain_is_looked_up_as_a_label(nsd):
    r = audit(nsd.server, "bücher.mail.test")
    assert r.stdout.startswith("xn--bcher-kva.mail.test: no-such-domain"), r.stdout + r.stderr


def test_audit_reads_options_as_the_daemon_does(nsd, tmp_path):
    """audit's options go through the daemon's own parser: -c FILE with a space, value-less
    flags such as --report-header, --self from the config file, and --help (issue 13)."""
    conf = tmp_path / "mxguard.conf"
    conf.write_text(f"dns-server = {nsd.server}\nself = 93.184.216.34\n"
                    f"bogus-networks = {BOGUS_NETWORKS}\n")
    r = subprocess.run([str(mxguard_binary()), "audit", "-c", str(conf), "--report-header",
                        "implicit-good.mail.test"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[this host]" in r.stdout, r.stdout
    h = subprocess.run([str(mxguard_binary()), "audit", "--help"], capture_output=True,
                       text=True, timeout=30)
    assert h.returncode == 0 and "usage: mxguard audit" in h.stdout and "--dns-server" in h.stdout
    bad = audit(nsd.server, "good.mail.test", extra=["--self", "not-an-address"])
    assert bad.returncode == 78 and "self: 'not-an-address' is not an address" in bad.stderr


def test_audit_advice(nsd):
    r = audit(nsd.server, "nullmx.mail.test", "nullmx-spf.mail.test", "implicit-good.mail.test",
              extra=["--self", "93.184.216.34"])
    out = r.stdout
    assert 'publish "v=spf1 -all" too' in out
    assert "SPF: v=spf1 -all" in out
    assert "[this host]" in out and "providers will deliver" in out
    assert r.returncode == 1  # some domain takes no mail


@pytest.mark.parametrize("mode", ["servfail", "garbage", "mismatch", "truncated", "silent"])
def test_misbehaving_server_is_a_temporary_failure(mode):
    with Responder(mode) as bad:
        r = audit(bad.server, "good.mail.test",
                  extra=["--dns-timeout=300ms", "--dns-retries=1"])
    assert r.stdout.startswith("good.mail.test: tempfail"), r.stdout + r.stderr
    assert r.returncode == 2
    # The MX question is asked on each of its 1 + 1 tries, then given up: no more than twice
    # per try (a truncated answer sends ldns to TCP, where nobody listens, and back to UDP).
    assert 1 <= bad.queries <= 2 * 2, bad.queries


def test_nobody_listening_is_a_temporary_failure():
    with Responder("silent") as s:
        port = s.port
    r = audit(f"127.0.0.1:{port}", "good.mail.test", extra=["--dns-timeout=200ms"])
    assert r.stdout.startswith("good.mail.test: tempfail"), r.stdout + r.stderr
    assert r.returncode == 2


def test_second_server_answers_when_the_first_fails(nsd):
    with Responder("servfail") as bad:
        r = audit(bad.server, "loopback.mail.test",
                  extra=[f"--dns-server={nsd.server}", "--dns-timeout=300ms"])
    assert r.stdout.startswith("loopback.mail.test: bogus"), r.stdout + r.stderr


def test_deadline_bounds_the_whole_decision():
    with Responder("silent") as s:
        r = audit(s.server, "good.mail.test",
                  extra=["--dns-timeout=2s", "--dns-retries=3", "--dns-deadline=500ms"])
    assert r.stdout.startswith("good.mail.test: tempfail"), r.stdout + r.stderr
    assert "MX: route deadline passed" in r.stdout, r.stdout
    # The decision ended inside the first 2 s try: the server saw one query, where the four
    # tries the options allow would each have asked again.
    assert s.queries == 1, s.queries


def test_malformed_domains_are_reported_not_crashed(nsd):
    r = audit(nsd.server, "a" * 64 + ".mail.test", "bad..mail.test")
    assert r.stdout.count(": invalid") == 2, r.stdout + r.stderr
    assert r.returncode == 1
