"""The shipped fail2ban filter matches mxguard's ban lines and nothing else.

Runs the real fail2ban-regex with packaging/fail2ban/filter.d/mxguard.conf (next to the system's
common.conf, as it is installed) over a log of ban lines, ordinary reject lines, unban lines and
decoys, and checks that exactly the ban lines matched, with the banned address or network of
each. The ban line format is asserted on the C++ side by tests/unit/test_bans.cpp.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILTER = REPO / "packaging" / "fail2ban" / "filter.d" / "mxguard.conf"
JAIL = REPO / "packaging" / "fail2ban" / "jail.d" / "mxguard.conf"

# (line, address that fail2ban must ban, or None when the line must not match)
LINES = [
    ("mx mxguard[812]: ban 203.0.113.7 for 1800s: 3 strikes (unhandled domain product.com)",
     "203.0.113.7"),
    ("mx mxguard[812]: NOQUEUE: reject: RCPT from unknown[198.51.100.4]: 550 5.1.2 "
     "<a@product.com>: Recipient address rejected: this domain does not accept mail; "
     "from=<x@example.net> to=<a@product.com> helo=<bot> check=unhandled-domain "
     "reason=website-only", None),
    ("mx mxguard[812]: NOQUEUE: reject: CONNECT from unknown[203.0.113.7]: 421 4.7.0 "
     "Client temporarily banned; check=ban reason=strikes", None),
    ("mx mxguard[812]: NOQUEUE: would reject: RCPT from a[198.51.100.5]: 550 5.1.2 text", None),
    ("mx postfix/smtpd[900]: NOQUEUE: reject: RCPT from unknown[198.51.100.6]: 554 5.7.1 "
     "<a@product.com>: Relay access denied; from=<x@example.net> to=<a@product.com>", None),
    # Another program writing a look-alike line.
    ("mx postfix/smtpd[900]: ban 192.0.2.99 for 1800s: 3 strikes (spoof)", None),
    ("mx mxguard[812]: unban 203.0.113.7", None),
    ("mx mxguard[812]: not banning 198.51.100.25: 3 strikes, but fcrdns mail-yw1.google.com",
     None),
    # Ban wording inside another line, and an address that only appears in a reason.
    ("mx mxguard[812]: NOQUEUE: reject: RCPT from x[198.51.100.7]: 550 5.1.2 "
     "<ban 198.51.100.7 for 1800s: 3 strikes (x)@product.com>: no", None),
    ("mx mxguard[812]: state: restored 12 entries from /var/lib/mxguard/state", None),
    ("mx mxguard[812]: ban 192.0.2.10 for 86400s: 3 strikes (trap 198.51.100.1)",
     "192.0.2.10"),
    ("mx mxguard[812]: ban 2001:db8:1:2::/64 for 1800s: 4 strikes (unhandled domain product.com)",
     "2001:db8:1:2::/64"),
    ("mx mxguard[812]: ban 203.0.113.0/24 for 1800s: 1 strike (trap 192.0.2.25)",
     "203.0.113.0/24"),
    ("mx mxguard[812]: ban 2001:db8::25 for 1800s: 3 strikes (unhandled domain a.example)",
     "2001:db8::25"),
    ("mx mxguard[812]: ban nonsense for 1800s: 3 strikes (x)", None),
]


def test_filter_matches_exactly_the_ban_lines(tmp_path):
    regex = shutil.which("fail2ban-regex")
    assert regex, "fail2ban-regex not found: run scripts/install-deps (package fail2ban)"
    # The filter includes common.conf: give it the system's, as an installed filter has.
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    shutil.copy(FILTER, conf / "filter.d" / "mxguard.conf")
    log = tmp_path / "mail.log"
    log.write_text("".join(f"Nov 23 19:{i // 60:02d}:{i % 60:02d} {line}\n"
                           for i, (line, _) in enumerate(LINES)))

    out = subprocess.run([regex, "-c", str(conf), "-o", "ip", str(log), "mxguard"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    matched = out.stdout.split()
    expected = [addr for _, addr in LINES if addr]
    assert matched == expected

    # The summary agrees: as many matched lines as ban lines, every other line missed.
    summary = subprocess.run([regex, "-c", str(conf), str(log), "mxguard"],
                             capture_output=True, text=True, timeout=120).stdout
    assert f"{len(expected)} matched, {len(LINES) - len(expected)} missed" in summary


def test_jail_reads_the_journal_of_the_mxguard_unit():
    jail = JAIL.read_text()
    assert "backend   = systemd" in jail
    assert "filter    = mxguard" in jail
    assert "journalmatch = _SYSTEMD_UNIT=mxguard.service" in FILTER.read_text()
