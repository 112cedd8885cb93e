#!/usr/bin/python3
"""What a refused client costs, told at RCPT (delay-reject, the default) or at the greeting
(delay-reject = no): prints figures, asserts nothing (issue 16).

Two mxguard daemons with every check on (e2e_bench.py's configuration) and a client table that
refuses 127.0.0.1, one with delay-reject = no, each behind its own private Postfix delivering
to discard; smtp_load's sessions from 127.0.0.1 (one message each) in interleaved rounds. The
client is refused either way: at the greeting it gets Postfix's 554 and sends nothing more; at
RCPT it gets mxguard's 554 after EHLO and MAIL. Prints sessions/s, the milter's CPU (its
process CPU clock) and Postfix's CPU (its processes) a session.

    MXGUARD_BIN=build-rel/milter/mxguard MXGUARD_BENCH_BIN=build-rel/tests/bench \\
        tests/bench/refused_bench.py [--rounds 5] [--sessions 10] [--messages 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from e2e_bench import SENDER, cpu_seconds, mxguard_config  # noqa: E402
from mix_bench import postfix_cpu  # noqa: E402

from benchlib import DISCARD, DelayProxy, smtp_load, stop_all  # noqa: E402
from dnstest import Nsd  # noqa: E402
from harness.milter import Mxguard  # noqa: E402
from harness.postfix import Postfix  # noqa: E402
from harness.util import make_instance_dir  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--messages", type=int, default=1000, help="sessions per variant and round")
    args = ap.parse_args()

    nsd = Nsd().start()
    proxy = DelayProxy(nsd.server, 0).start()
    tmp = make_instance_dir("refused-bench")
    base = mxguard_config(tmp, proxy.server)
    (tmp / "refused.cidr").write_text("127.0.0.1/32 REJECT bench: refused client\n")
    base = base.replace(f"client-access = cidr:{tmp}/clients.cidr\n",
                        f"client-access = cidr:{tmp}/refused.cidr, cidr:{tmp}/clients.cidr\n")
    daemons = {"rcpt": Mxguard(base), "greeting": Mxguard(base + "delay-reject = no\n")}
    servers: dict[str, Postfix] = {}
    results: dict[str, list[dict]] = {v: [] for v in daemons}
    try:
        for v, d in daemons.items():
            d.start()
            servers[v] = Postfix(milter=d.socket, config=DISCARD).start()
            smtp_load(servers[v], args.sessions, 100, SENDER, "r{n}@good.mail.test")  # warm-up
        for r in range(args.rounds):
            order = list(daemons) if r % 2 == 0 else list(reversed(daemons))
            for v in order:
                pid = daemons[v].proc.pid
                m0, p0 = cpu_seconds(pid), postfix_cpu(servers[v])
                res = smtp_load(servers[v], args.sessions, args.messages, SENDER,
                                "r{n}@good.mail.test")
                res["milter_s"] = cpu_seconds(pid) - m0
                res["postfix_s"] = postfix_cpu(servers[v]) - p0
                results[v].append(res)
                print(f"round {r + 1} refused at {v:8s} {res['messages'] / res['seconds']:8.1f} "
                      f"sessions/s  codes {res['codes']}", flush=True)
        print()
        print(f"A refused client, {args.sessions} sessions at once, {args.rounds} interleaved "
              f"rounds of {args.messages}; medians of the rates, CPU summed over the rounds")
        print(f"{'refused at':10s} {'per s':>8s} {'milter us':>10s} {'postfix us':>11s}")
        for v, rs in results.items():
            n = sum(x["messages"] for x in rs)
            rate = statistics.median(x["messages"] / x["seconds"] for x in rs)
            print(f"{v:10s} {rate:8.1f} {sum(x['milter_s'] for x in rs) / n * 1e6:10.0f} "
                  f"{sum(x['postfix_s'] for x in rs) / n * 1e6:11.0f}")
    finally:
        stop_all(servers.values(), daemons.values(), proxy, nsd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
