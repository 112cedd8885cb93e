#!/usr/bin/python3
"""Benchmark (prints figures, asserts nothing): mxguard's DNS route checks under concurrency,
through a private Postfix, with a DNS server that answers every query after 50 ms (issue 3,
"Figures").

A real nsd serves tests/data/zones; a delaying UDP proxy of the test suite's own
(tests/bench/dns_delay, one C++ thread) sits in front of it, and mxguard asks the proxy. Two
mxguard daemons, each behind its own Postfix, identical but for the four DNS checks
(null-mx, no-mail-domain, bogus-mx, null-mx-sender): "dns on" and "dns off".

1. Cold: every message goes to a new recipient domain (dN.wild.test, a wildcard MX zone), so
   every RCPT costs a 50 ms lookup. messages/s at 50 concurrent SMTP sessions divided by
   messages/s at 1 session (target >= 25: lookups proceed in parallel). "dns on" daemon.
2. Warm: at 50 sessions, a few domains already looked up (cache hits only): throughput of
   "dns on" divided by "dns off" (target >= 0.95).

All four variants are interleaved in rounds so the machine's noise falls on each; one SMTP
session per message (connect, EHLO, MAIL, RCPT, DATA, QUIT), or --per-connection messages
per session as an MTA that reuses its connections sends them, by smtp_load
(tests/bench/smtp_load.cpp), timed from the first connect of a batch to the last reply;
Postfix delivers to discard. Rejected or tempfailed messages are counted and printed.

    MXGUARD_BIN=$PWD/build-perf/milter/mxguard MXGUARD_BENCH_BIN=$PWD/build-perf/tests/bench \
    tests/bench/dns_concurrency.py \
        [--rounds 3] [--serial 60] [--parallel 500] [--sessions 50] [--delay-ms 50] \
        [--per-connection 1]
Needs a built mxguard, smtp_load and dns_delay (MXGUARD_BENCH_BIN, default build/tests/bench), nsd and
Postfix (scripts/install-deps).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "e2e"))
sys.path.insert(0, str(HERE.parent / "e2e" / "dns"))

from dnstest import Nsd  # noqa: E402
from harness.milter import Mxguard  # noqa: E402
from harness.postfix import Postfix  # noqa: E402

from benchlib import DISCARD, DelayProxy, smtp_load, stop_all  # noqa: E402

SENDER = "sender@good.mail.test"  # a domain the zones know; looked up once, then cached
DNS_CHECKS = ["null-mx", "no-mail-domain", "bogus-mx", "null-mx-sender"]
BOGUS = REPO / "rules" / "bogus-networks.cidr"

_blocks = itertools.count(0)
PER_CONNECTION = 1  # --per-connection


def batch(server, rcpt_pattern: str, first: int, n: int, sessions: int) -> tuple[float, Counter]:
    """Send n messages, one per SMTP session, `sessions` at a time, with smtp_load (C++: the
    client must not be what limits); return (wall seconds, Counter of final reply codes)."""
    res = smtp_load(server, sessions, n, SENDER, rcpt_pattern, first, size=1024,
                    per_connection=PER_CONNECTION)
    return res["seconds"], Counter({int(k): v for k, v in res["codes"].items()})


def cold(server, n: int, sessions: int) -> tuple[float, Counter]:
    """Every message to a new recipient domain dN.wild.test (wildcard MX zone)."""
    return batch(server, "r@d{n}.wild.test", 1 + next(_blocks) * 1000000, n, sessions)


def warm(server, n: int, sessions: int) -> tuple[float, Counter]:
    """Every message to a domain looked up before."""
    return batch(server, "r{n}@good.mail.test", 1, n, sessions)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--serial", type=int, default=60, help="cold messages at 1 session, total")
    ap.add_argument("--parallel", type=int, default=500,
                    help="messages at N sessions, total per variant")
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--delay-ms", type=int, default=50)
    ap.add_argument("--per-connection", type=int, default=1,
                    help="messages per SMTP session (as an MTA reusing its connections)")
    args = ap.parse_args()
    global PER_CONNECTION
    PER_CONNECTION = args.per_connection

    nsd = Nsd().start()
    proxy = DelayProxy(nsd.server, args.delay_ms).start()
    base = (f"dns-server = {proxy.server}\n"
            f"bogus-networks = {BOGUS}\n"
            "syslog = no\n"
            "log-level = warning\n")
    daemons = {
        "dns on": Mxguard(base),
        "dns off": Mxguard(base + "".join(f"check.{c} = off\n" for c in DNS_CHECKS)),
    }
    servers: dict[str, Postfix] = {}
    try:
        for name, d in daemons.items():
            d.start()
            servers[name] = Postfix(milter=d.socket, config=DISCARD).start()
        on, off = servers["dns on"], servers["dns off"]

        # warm up: Postfix processes, the sender's and the warm domains' routes
        for name, srv in servers.items():
            warm(srv, 10, 1)
            warm(srv, args.sessions * 2, args.sessions)
        cold(on, args.sessions, args.sessions)

        per_serial = max(1, args.serial // args.rounds)
        per_parallel = max(1, args.parallel // args.rounds)
        q0 = proxy.queries
        res = {k: [0.0, 0, Counter()] for k in ("cold x1", f"cold x{args.sessions}",
                                                 "warm dns on", "warm dns off")}

        def run(key: str, srv, kind, n: int, sessions: int) -> None:
            secs, codes = kind(srv, n, sessions)
            res[key][0] += secs
            res[key][1] += n
            res[key][2].update(codes)

        for r in range(args.rounds):
            # alternate the order of the warm pair between rounds
            pair = [("warm dns on", on), ("warm dns off", off)]
            if r % 2:
                pair.reverse()
            run("cold x1", on, cold, per_serial, 1)
            run(f"cold x{args.sessions}", on, cold, per_parallel, args.sessions)
            for key, srv in pair:
                run(key, srv, warm, per_parallel, args.sessions)
        queries = proxy.queries - q0

        rate = {k: v[1] / v[0] for k, v in res.items()}
        print(f"DNS route checks through Postfix, DNS answering after {args.delay_ms} ms, "
              f"{args.rounds} interleaved rounds, {args.per_connection} message(s) per SMTP session")
        for k, (secs, n, codes) in res.items():
            replies = ", ".join(f"{c} x {m}" for c, m in sorted(codes.items()))
            print(f"  {k:14s} {n:5d} msgs in {secs:7.2f} s = {rate[k]:8.1f} msgs/s   "
                  f"replies: {replies}")
        print(f"  DNS queries through the proxy during the measured rounds: {queries}")
        print(f"  cold ratio x{args.sessions}/x1:       "
              f"{rate[f'cold x{args.sessions}'] / rate['cold x1']:.2f}   (target >= 25)")
        print(f"  ceiling for the cold ratio here (warm dns off x{args.sessions} / cold x1): "
              f"{rate['warm dns off'] / rate['cold x1']:.2f}   (what Postfix on this machine allows)")
        print(f"  warm ratio dns on/off at x{args.sessions}: "
              f"{rate['warm dns on'] / rate['warm dns off']:.3f}  (target >= 0.95)")
    finally:
        stop_all(servers.values(), daemons.values(), proxy, nsd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
