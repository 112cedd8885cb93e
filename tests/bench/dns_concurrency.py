#!/usr/bin/python3
"""Benchmark (prints figures, asserts nothing): mxguard's DNS route checks under concurrency,
through a private Postfix, with a DNS server that answers every query after 50 ms (issue 3,
"Figures").

A real nsd serves tests/data/zones; a delaying UDP proxy of the test suite's own
(dnstest.Responder("delay:50:...")) sits in front of it, and mxguard asks the proxy. Two
mxguard daemons, each behind its own Postfix, identical but for the four DNS checks
(null-mx, no-mail-domain, bogus-mx, null-mx-sender): "dns on" and "dns off".

1. Cold: every message goes to a new recipient domain (dN.wild.test, a wildcard MX zone), so
   every RCPT costs a 50 ms lookup. messages/s at 50 concurrent SMTP sessions divided by
   messages/s at 1 session (target >= 25: lookups proceed in parallel). "dns on" daemon.
2. Warm: at 50 sessions, a few domains already looked up (cache hits only): throughput of
   "dns on" divided by "dns off" (target >= 0.95).

All four variants are interleaved in rounds so the machine's noise falls on each; one SMTP
session per message (connect, EHLO, MAIL, RCPT, DATA, QUIT), timed from the first connect of
a batch to the last reply. Rejected or tempfailed messages are counted and printed.

    MXGUARD_BIN=$PWD/build-dev/milter/mxguard tests/bench/dns_concurrency.py \
        [--rounds 3] [--serial 60] [--parallel 500] [--sessions 50] [--delay-ms 50]
Needs a built mxguard (MXGUARD_BIN, default build/milter/mxguard), nsd and Postfix
(scripts/install-deps).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "e2e"))
sys.path.insert(0, str(HERE.parent / "e2e" / "dns"))

from dnstest import Nsd, Responder  # noqa: E402
from harness.milter import Mxguard  # noqa: E402
from harness.postfix import Postfix  # noqa: E402
from harness.smtp import send  # noqa: E402

SENDER = "sender@good.mail.test"  # a domain the zones know; looked up once, then cached
DNS_CHECKS = ["null-mx", "no-mail-domain", "bogus-mx", "null-mx-sender"]
WARM_DOMAINS = ["good.mail.test", "w1.wild.test", "w2.wild.test", "w3.wild.test",
                "w4.wild.test"]
BOGUS = REPO / "rules" / "bogus-networks.cidr"

_fresh = itertools.count(1)


def batch(server, recipients: list[str], sessions: int) -> tuple[float, Counter]:
    """Send one message per recipient over `sessions` parallel SMTP sessions; return
    (wall seconds, Counter of final reply codes)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(rcpt: str) -> int:
        r = send(server, sender=SENDER, recipients=[rcpt], subject="bench")
        return r.last().code

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=sessions) as pool:
        codes = list(pool.map(one, recipients))
    return time.perf_counter() - t0, Counter(codes)


def new_domains(n: int) -> list[str]:
    return [f"r@d{next(_fresh)}.wild.test" for _ in range(n)]


def warm_rcpts(n: int) -> list[str]:
    return [f"r{i}@{WARM_DOMAINS[i % len(WARM_DOMAINS)]}" for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--serial", type=int, default=60, help="cold messages at 1 session, total")
    ap.add_argument("--parallel", type=int, default=500,
                    help="messages at N sessions, total per variant")
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--delay-ms", type=int, default=50)
    args = ap.parse_args()

    nsd = Nsd().start()
    proxy = Responder(f"delay:{args.delay_ms}:{nsd.server}").start()
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
            servers[name] = Postfix(milter=d.socket).start()
        on, off = servers["dns on"], servers["dns off"]

        # warm up: Postfix processes, the sender's and the warm domains' routes
        for name, srv in servers.items():
            batch(srv, warm_rcpts(len(WARM_DOMAINS) * 2), 1)
            batch(srv, warm_rcpts(args.sessions * 2), args.sessions)
        batch(on, new_domains(args.sessions), args.sessions)

        per_serial = max(1, args.serial // args.rounds)
        per_parallel = max(1, args.parallel // args.rounds)
        q0 = proxy.queries
        res = {k: [0.0, 0, Counter()] for k in ("cold x1", f"cold x{args.sessions}",
                                                 "warm dns on", "warm dns off")}

        def run(key: str, srv, rcpts: list[str], sessions: int) -> None:
            secs, codes = batch(srv, rcpts, sessions)
            res[key][0] += secs
            res[key][1] += len(rcpts)
            res[key][2].update(codes)

        for r in range(args.rounds):
            # alternate the order of the warm pair between rounds
            warm = [("warm dns on", on), ("warm dns off", off)]
            if r % 2:
                warm.reverse()
            run("cold x1", on, new_domains(per_serial), 1)
            run(f"cold x{args.sessions}", on, new_domains(per_parallel), args.sessions)
            for key, srv in warm:
                run(key, srv, warm_rcpts(per_parallel), args.sessions)
        queries = proxy.queries - q0

        rate = {k: v[1] / v[0] for k, v in res.items()}
        print(f"DNS route checks through Postfix, DNS answering after {args.delay_ms} ms, "
              f"{args.rounds} interleaved rounds, one SMTP session per message")
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
        for s in servers.values():
            s.stop()
            s.cleanup()
        for d in daemons.values():
            d.stop()
        proxy.stop()
        nsd.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
