#!/usr/bin/python3
"""End-to-end benchmark (prints figures, asserts nothing; issue 7, item 1).

A private Postfix on loopback delivering to `discard`, loaded by the project's smtp_load
(tests/bench/smtp_load.cpp: one thread per session, one message of ~4 KB per connection,
each transaction timed from connect to the reply to end of data). Variants, each behind its
own Postfix instance, run interleaved in rounds so the machine's noise falls on all of them:

  a    Postfix without any milter
  b    null_milter registering every callback (tests/bench/null_milter.cpp): the floor any
       milter pays
  b2   null_milter registering only connect and rcpt
  c    mxguard with every check on, warm DNS (recipient domains looked up before)
  d    mxguard with every check on, cold DNS: every message to a new domain, answered by nsd
       behind the suite's delaying proxy, tests/bench/dns_delay (50 ms a query)

at 1, 10 and 50 concurrent sessions. Reports messages/s, median and p99 transaction latency,
the milter's CPU time per message (utime+stime of its process, from /proc), and ratios
against a and b.

    MXGUARD_BIN=$PWD/build-perf/milter/mxguard \\
    MXGUARD_BENCH_BIN=$PWD/build-perf/tests/bench tests/bench/e2e_bench.py \\
        [--rounds 3] [--messages 400] [--cold-serial 60] [--sessions 1,10,50] [--delay-ms 50]

Needs a built mxguard, null_milter and smtp_load (use a Release build), and Postfix and nsd
(scripts/install-deps). Run as root (private Postfix).
"""

from __future__ import annotations

import argparse
import itertools
import socket as socketlib
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "e2e"))
sys.path.insert(0, str(HERE.parent / "e2e" / "dns"))

from dnstest import Nsd  # noqa: E402
from harness.milter import Mxguard  # noqa: E402
from harness.postfix import Postfix  # noqa: E402
from harness.util import make_instance_dir, socket_path, wait_until  # noqa: E402

from benchlib import DISCARD, DelayProxy, bench_bin, knows_own_files, smtp_load  # noqa: E402

SENDER = "sender@good.mail.test"
WARM_DOMAINS = ["good.mail.test", "w1.wild.test", "w2.wild.test", "w3.wild.test", "w4.wild.test"]
BOGUS = REPO / "rules" / "bogus-networks.cidr"
KEY = "bench-key-not-secret-0001"

class NullMilter:
    """tests/bench/null_milter on a unix socket."""

    def __init__(self, only: str = ""):
        self.dir = make_instance_dir("null-milter")
        self.path = socket_path(self.dir, "null.sock")
        self.socket = f"unix:{self.path}"
        self.only = only
        self.proc: subprocess.Popen | None = None

    def start(self) -> "NullMilter":
        args = [str(bench_bin("null_milter")), "-p", self.socket]
        if self.only:
            args += ["-o", self.only]
        self.proc = subprocess.Popen(args)

        def ready() -> bool:
            with socketlib.socket(socketlib.AF_UNIX) as s:
                try:
                    s.connect(str(self.path))
                    return True
                except OSError:
                    return False
        wait_until(ready, 10, what="null_milter socket")
        return self

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """CPU time of a process, all its threads (ended ones too), in seconds, to the nanosecond.

    Read from the process's CPU-time clock (clock_getcpuclockid(3): the clock id Linux makes
    of the pid), not from /proc/PID/stat, which counts in ticks of 10 ms: a batch of 300
    messages at 200 us each is 60 ms of CPU, so the ticks alone made +-17 % of it.
    """
    return time.clock_gettime_ns(((~pid) << 3) | 2) / 1e9


def mxguard_config(tmp: Path, dns: str) -> str:
    """Every check on, with tables and keys so each has something to look at."""
    keys = tmp / "batv.keys"
    keys.write_text(f"0 {KEY}\n")
    keys.chmod(0o600)
    (tmp / "clients.cidr").write_text("192.0.2.0/24 REJECT bench: blocked network\n"
                                      "10.0.0.0/8 DUNNO\n")
    (tmp / "senders.regexp").write_text("/^spammer@/ REJECT bench: blocked sender\n")
    (tmp / "rcpts.regexp").write_text("/^blocked-[a-z]+@/ 550 5.7.1 bench: blocked\n")
    checks = ["access", "forged-local-sender", "null-mx-sender", "unroutable-sender", "null-mx",
              "no-mail-domain", "bogus-mx", "batv", "backscatter", "ban", "trap-mx",
              "unhandled-domain"]
    return (f"dns-server = {dns}\n"
            f"bogus-networks = {BOGUS}\n"
            "syslog = no\n"
            "log-level = warning\n"
            "local-domains = example.com\n"
            "our-relays = mx-out.example.com\n"
            f"batv-key-file = {keys}\n"
            "batv-sign = yes\n"
            "unhandled-domains = product.web.test\n"
            "trap-address = 127.0.0.10\n"
            f"client-access = cidr:{tmp}/clients.cidr\n"
            f"sender-access = regexp:{tmp}/senders.regexp\n"
            f"recipient-access = regexp:{tmp}/rcpts.regexp\n"
            + "".join(f"check.{c} = on\n" for c in checks))


def load(server: Postfix, sessions: int, messages: int, to: str, first: int) -> dict:
    return smtp_load(server, sessions, messages, SENDER, to, first)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=400, help="per variant, batch and round")
    ap.add_argument("--cold-serial", type=int, default=60,
                    help="messages per round for d at 1 session (50 ms each)")
    ap.add_argument("--sessions", default="1,10,50")
    ap.add_argument("--delay-ms", type=int, default=50)
    ap.add_argument("--compare-bin", type=Path, default=None,
                    help="another mxguard binary (e.g. the tree before a change): variant c0, "
                         "same configuration and warm DNS, interleaved with the others")
    ap.add_argument("--no-cold", action="store_true", help="leave out variant d (cold DNS)")
    ap.add_argument("--ledger", action="store_true",
                    help="variants cR and cN: the client trusted, so the ledger records every "
                         "message (cR), and the same with ledger = no (cN)")
    args = ap.parse_args()
    levels = [int(x) for x in args.sessions.split(",")]

    nsd = Nsd().start()
    proxy = DelayProxy(nsd.server, args.delay_ms).start()
    tmp = make_instance_dir("e2e-bench")
    mx = Mxguard(mxguard_config(tmp, proxy.server))
    mx0 = None
    if args.compare_bin:
        mx0 = Mxguard(mxguard_config(tmp, proxy.server), binary=args.compare_bin,
                      own_ledger_files=knows_own_files(args.compare_bin))
    trusted = mxguard_config(tmp, proxy.server) + "trusted-networks = 127.0.0.1/32\n"
    extra = {"cR": Mxguard(trusted), "cN": Mxguard(trusted + "ledger = no\n")} \
        if args.ledger else {}
    nulls = {"b": NullMilter(), "b2": NullMilter("connect,rcpt")}
    servers: dict[str, Postfix] = {}
    try:
        mx.start()
        for n in nulls.values():
            n.start()
        servers["a"] = Postfix(config=DISCARD).start()
        servers["b"] = Postfix(milter=nulls["b"].socket, config=DISCARD).start()
        servers["b2"] = Postfix(milter=nulls["b2"].socket, config=DISCARD).start()
        servers["m"] = Postfix(milter=mx.socket, config=DISCARD).start()
        assert mx.proc
        pids = {"b": nulls["b"].pid, "b2": nulls["b2"].pid, "c": mx.proc.pid, "d": mx.proc.pid}
        if mx0:
            mx0.start()
            assert mx0.proc
            servers["c0"] = Postfix(milter=mx0.socket, config=DISCARD).start()
            pids["c0"] = mx0.proc.pid
        for name, m in extra.items():
            m.start()
            assert m.proc
            servers[name] = Postfix(milter=m.socket, config=DISCARD).start()
            pids[name] = m.proc.pid

        blocks = itertools.count(0)

        def next_block(n: int) -> int:
            """First number of a block of new recipient domains dN.wild.test."""
            return 1 + next(blocks) * 100000

        # Warm-up: Postfix processes, mxguard's routes for the sender and the warm domains.
        for name, srv in servers.items():
            load(srv, 10, 100, "r{n}@good.mail.test", 1)
        for d in WARM_DOMAINS:
            load(servers["m"], 1, 2, f"r{{n}}@{d}", 1)
            if mx0:
                load(servers["c0"], 1, 2, f"r{{n}}@{d}", 1)
        load(servers["m"], 10, 100, "r@d{n}.wild.test", 900000000)

        variants = ["a", "b", "b2", "c"] + (["c0"] if mx0 else []) + list(extra) + \
            ([] if args.no_cold else ["d"])
        results: dict[tuple[str, int], list[dict]] = {}
        for r in range(args.rounds):
            for level in levels:
                order = variants if r % 2 == 0 else list(reversed(variants))
                for v in order:
                    srv = servers["m" if v in ("c", "d") else v]
                    n = args.messages if not (v == "d" and level == 1) else args.cold_serial
                    if v == "d":
                        to, first = "r@d{n}.wild.test", next_block(n)
                    else:
                        to, first = "r{n}@good.mail.test", 1
                    cpu0 = cpu_seconds(pids[v]) if v in pids else 0.0
                    res = load(srv, level, n, to, first)
                    if v in pids:
                        res["cpu_s"] = cpu_seconds(pids[v]) - cpu0
                    results.setdefault((v, level), []).append(res)
                    print(f"round {r + 1} x{level:<3d} {v:3s} {res['messages'] / res['seconds']:8.1f} "
                          f"msgs/s  median {res['median_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms  "
                          f"codes {res['codes']}"
                          + (f"  CPU {res['cpu_s'] / n * 1e6:.0f} us/msg" if v in pids else ""),
                          flush=True)

        print()
        print(f"End-to-end through Postfix -> discard, {args.rounds} interleaved rounds, "
              f"one ~4 KB message per connection; medians over rounds")
        print(f"{'variant':8s} {'sess':>4s} {'msgs/s':>8s} {'/a':>6s} {'/b':>6s} "
              f"{'median ms':>9s} {'p99 ms':>8s} {'CPU us/msg':>10s} {'CPU /b':>7s}  replies")
        for level in levels:
            rate = {}
            cpu = {}
            for v in variants:
                rs = results[(v, level)]
                rate[v] = statistics.median(x["messages"] / x["seconds"] for x in rs)
                if v in pids:  # summed over rounds
                    cpu[v] = sum(x["cpu_s"] for x in rs) / sum(x["messages"] for x in rs) * 1e6
            for v in variants:
                rs = results[(v, level)]
                codes: dict[str, int] = {}
                for x in rs:
                    for k, c in x["codes"].items():
                        codes[k] = codes.get(k, 0) + c
                med = statistics.median(x["median_ms"] for x in rs)
                p99 = statistics.median(x["p99_ms"] for x in rs)
                cpu_txt = f"{cpu[v]:10.1f}" if v in cpu else f"{'-':>10s}"
                cpu_b = f"{cpu[v] / cpu['b']:7.2f}" if v in cpu and cpu["b"] > 0 else f"{'-':>7s}"
                print(f"{v:8s} {level:4d} {rate[v]:8.1f} {rate[v] / rate['a']:6.2f} "
                      f"{rate[v] / rate['b']:6.2f} {med:9.2f} {p99:8.2f} {cpu_txt} {cpu_b}  "
                      f"{codes}")
        print(f"DNS queries through the delaying proxy: {proxy.queries}")
    finally:
        for s in servers.values():
            s.stop()
            s.cleanup()
        for n in nulls.values():
            n.stop()
        mx.stop()
        if mx0:
            mx0.stop()
        for m in extra.values():
            m.stop()
        proxy.stop()
        nsd.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
