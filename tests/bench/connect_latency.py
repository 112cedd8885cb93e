#!/usr/bin/python3
"""Benchmark (prints figures, asserts nothing): the latency the connect-stage checks (ban,
trap-mx) add through Postfix, as a ratio against the same run with them switched off.

Two mxguard daemons behind two private Postfix instances, identical but for
`check.ban`/`check.trap-mx`; rounds of connect -> banner -> EHLO -> QUIT alternate between
them so the machine's noise falls on both. The memory state is empty: this measures the
price of asking, which is what every connection pays.

    tests/bench/connect_latency.py [--rounds 20] [--per-round 50]
Needs a built mxguard (MXGUARD_BIN, default build/milter/mxguard) and scripts/install-deps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))

from harness.milter import Mxguard  # noqa: E402
from harness.postfix import Postfix  # noqa: E402
from harness.smtp import SmtpSession  # noqa: E402


def off_checks(names: list[str]) -> str:
    return "".join(f"check.{n} = off\n" for n in names)


ALL_BUT_CONNECT = ["access", "forged-local-sender", "null-mx-sender", "unroutable-sender",
                   "null-mx", "no-mail-domain", "bogus-mx", "batv", "backscatter",
                   "unhandled-domain"]


def one_connection(server) -> float:
    t0 = time.perf_counter()
    with SmtpSession(server, source="127.0.0.3") as s:
        assert s.banner.code == 220, s.banner
        s.ehlo()
        s.quit()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=50)
    args = ap.parse_args()
    base = "syslog = no\nban-strikes = 100000\ntrap-address = 127.0.0.250\n"
    variants = {
        "checks on": Mxguard(base + off_checks(ALL_BUT_CONNECT)),
        "checks off": Mxguard(base + off_checks(ALL_BUT_CONNECT + ["ban", "trap-mx"])),
    }
    servers = {}
    try:
        for name, d in variants.items():
            d.start()
            servers[name] = Postfix(milter=d.socket).start()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(3):  # warm up
            for name in variants:
                one_connection(servers[name])
        for _ in range(args.rounds):
            for name in variants:
                times[name] += [one_connection(servers[name]) for _ in range(args.per_round)]
        print(f"connect latency through Postfix, {args.rounds} x {args.per_round} "
              "connections per variant, interleaved")
        med = {}
        for name, t in times.items():
            t.sort()
            med[name] = statistics.median(t)
            p99 = t[int(len(t) * 0.99) - 1]
            print(f"  {name:10s}  median {med[name] * 1e3:7.3f} ms   p99 {p99 * 1e3:7.3f} ms")
        print(f"  ratio on/off (median): {med['checks on'] / med['checks off']:.3f}")
    finally:
        for s in servers.values():
            s.stop()
            s.cleanup()
        for d in variants.values():
            d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
