#!/usr/bin/python3
"""Benchmarks of Redis for fleets (issue 15); print figures, assert nothing.

    tests/bench/redis_fleet.py failover [--rounds 3] [--senders 4]
        A master, a replica and three sentinels on loopback (down-after-milliseconds 1000,
        failover-timeout 4000), mxguard with state = sentinel behind a private Postfix, and
        `--senders` threads sending mail (a good recipient and a website-only one, whose
        strike is a write to Redis). Each round kills the master (SIGKILL) and measures the
        time until the promoted replica executes mxguard's first write (its EVAL count rises),
        and counts the replies the good recipients got meanwhile (250, 4xx, 5xx). The killed
        server comes back as a replica of the new master before the next round.
    tests/bench/redis_fleet.py tls [--lookups 5000]
        Ban lookup latency (tests/bench/bench_redis_lookup) against a plain redis-server and
        against a TLS-only one through a local stunnel in client mode that verifies the chain
        and the host name (Debian 12's route to TLS: its hiredis 0.14 has none).

Needs a built mxguard (MXGUARD_BIN, default build/milter/mxguard), the bench programs
(MXGUARD_BENCH_BIN, default build/tests/bench), scripts/install-deps, and root.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))
sys.path.insert(0, str(HERE))

from benchlib import DISCARD, bench_bin  # noqa: E402
from dns.dnstest import Nsd, free_port  # noqa: E402
from harness.milter import Mxguard  # noqa: E402
from harness.postfix import Postfix  # noqa: E402
from harness.redis import (make_certificates, redis_cli, start_redis, start_sentinel,  # noqa: E402
                           start_stunnel_client, start_tls_redis)
from harness.smtp import send  # noqa: E402
from harness.util import BOGUS_NETWORKS, wait_until  # noqa: E402


def eval_calls(port: int) -> int:
    try:
        out = redis_cli(port, "INFO", "commandstats", check=False)
    except subprocess.TimeoutExpired:
        return -1
    for line in out.splitlines():
        if line.startswith("cmdstat_eval:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def role(port: int) -> str:
    try:
        return redis_cli(port, "ROLE", check=False).split("\n")[0]
    except subprocess.TimeoutExpired:
        return ""


class Senders:
    def __init__(self, server, n: int):
        self.server = server
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.codes: list[tuple[float, int]] = []  # (time, reply code of the good recipient)
        self.threads = [threading.Thread(target=self.run, args=(k,), daemon=True)
                        for k in range(n)]
        self.counter = 0

    def run(self, k: int) -> None:
        while not self.stop_flag.is_set():
            with self.lock:
                i = self.counter
                self.counter += 1
            client = f"127.{10 + k}.{1 + (i // 2) // 250 % 250}.{1 + (i // 2) % 250}"
            try:
                r = send(self.server, sender="sender@good.mail.test",
                         recipients=["x@good.mail.test", "info@product.web.test"],
                         source=client, timeout=30)
                code = r.eom.code if r.eom else (r.rcpts[0].code if r.rcpts else r.last().code)
            except OSError:
                code = -1
            with self.lock:
                self.codes.append((time.monotonic(), code))

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(60)


def failover(args) -> int:
    work = Path(tempfile.mkdtemp(prefix="mxguard-bench-fleet-"))
    procs: list[subprocess.Popen] = []
    nsd = Nsd().__enter__()
    ports = [free_port(), free_port()]
    sentinels = [free_port() for _ in range(3)]
    servers = {}
    d = server = None
    try:
        servers[ports[0]] = start_redis(ports[0], work, log=work / "a.log")
        servers[ports[1]] = start_redis(ports[1], work, ["--replicaof", "127.0.0.1",
                                                         str(ports[0])], log=work / "b.log")
        for p in sentinels:
            procs.append(start_sentinel(p, work, ports[0]))
        d = Mxguard(f"dns-server = {nsd.server}\nbogus-networks = {BOGUS_NETWORKS}\n"
                    "unhandled-domains = product.web.test\nban-strikes = 1000000\n"
                    "ban-loopback = yes\n"  # the senders are loopback addresses
                    "redis-timeout = 200ms\nstate = sentinel\nredis-master-name = mymaster\n"
                    "redis-sentinels = " + ", ".join(f"127.0.0.1:{p}" for p in sentinels)
                    + "\nlog-level = notice\nsyslog = no\n").start()
        server = Postfix(milter=d.socket, config=DISCARD).start()
        print(f"Sentinel failover under load: {args.senders} senders through Postfix, "
              "down-after-milliseconds 1000, failover-timeout 4000")
        follow_times, lags = [], []
        for rnd in range(args.rounds):
            master = next(p for p in ports if role(p) == "master")
            replica = next(p for p in ports if p != master)
            wait_until(lambda: "master_link_status:up" in redis_cli(replica, "INFO",
                                                                     "replication"),
                       60, what="the replica in sync")

            def ready():
                for s in sentinels:
                    out = redis_cli(s, "SENTINEL", "master", "mymaster").splitlines()
                    info = dict(zip(out[0::2], out[1::2]))
                    if (info.get("port") != str(master) or info.get("num-slaves", "0") == "0"
                            or info.get("num-other-sentinels") != "2"
                            or "s_down" in info.get("flags", "")):
                        return False
                return True
            wait_until(ready, 60, interval=0.2, what="the sentinels agreed on the master")
            load = Senders(server, args.senders).start()
            # The load is under way before the kill: some replies have come back.
            wait_until(lambda: len(load.codes) >= 4 * args.senders, 60, interval=0.05,
                       what="the senders' first replies")
            base = eval_calls(replica)
            t_kill = time.monotonic()
            servers[master].send_signal(signal.SIGKILL)
            servers[master].wait(10)
            promoted = wrote = None

            def failed_over() -> bool:
                """Notes when the replica became master and when mxguard first wrote to it;
                polled every 50 ms, the grain of both figures."""
                nonlocal promoted, wrote
                if promoted is None and role(replica) == "master":
                    promoted = time.monotonic() - t_kill
                if promoted is not None and eval_calls(replica) > base:
                    wrote = time.monotonic() - t_kill
                return wrote is not None
            try:
                wait_until(failed_over, 60, interval=0.05, what="a write on the new master")
            except TimeoutError:
                pass  # reported below as no failover
            # Replies after the first write on the new master: the load goes on through it.
            after = len(load.codes)
            wait_until(lambda: len(load.codes) >= after + 4 * args.senders, 60, interval=0.05,
                       what="replies after the failover")
            load.stop()
            during = [c for t, c in load.codes if t >= t_kill and (wrote is None
                                                                   or t <= t_kill + wrote + 1)]
            n5 = sum(1 for c in during if 500 <= c < 600)
            n4 = sum(1 for c in during if 400 <= c < 500)
            n2 = sum(1 for c in during if 200 <= c < 300)
            print(f"  round {rnd + 1}: master :{master} killed; replica :{replica} promoted "
                  f"after {promoted if promoted is None else f'{promoted:.2f}'} s; mxguard "
                  f"writes to it after {wrote if wrote is None else f'{wrote:.2f}'} s"
                  f"{'' if None in (wrote, promoted) else f' ({wrote - promoted:.2f} s after)'}; "
                  f"meanwhile good recipients: {n2} accepted, {n4} 4xx, {n5} 5xx, "
                  f"{sum(1 for c in during if c < 0)} connection errors")
            if wrote is not None:
                follow_times.append(wrote)
                lags.append(wrote - promoted)
            # The killed server returns as a replica of the new master.
            servers[master] = start_redis(master, work, ["--replicaof", "127.0.0.1",
                                                         str(replica)],
                                          log=work / f"back-{rnd}.log")
        if follow_times:
            print(f"  time to follow the failover: median {statistics.median(follow_times):.2f}"
                  f" s, max {max(follow_times):.2f} s over {len(follow_times)} rounds "
                  "(target under 10 s)")
            print(f"  of which mxguard's own part, from the promotion to its first write: "
                  f"median {statistics.median(lags):.2f} s, max {max(lags):.2f} s")
    finally:
        if server:
            server.stop()
            server.cleanup()
        if d:
            d.stop()
        for p in list(servers.values()) + procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        nsd.__exit__(None, None, None)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def tls(args) -> int:
    work = Path(tempfile.mkdtemp(prefix="mxguard-bench-tls-"))
    procs: list[subprocess.Popen] = []
    try:
        certs = make_certificates(work, "ca")
        plain, tls_port, tunnel = free_port(), free_port(), free_port()
        procs.append(start_redis(plain, work))
        procs.append(start_tls_redis(tls_port, work, certs))
        procs.append(start_stunnel_client(tunnel, tls_port, work, certs["ca"]))
        print("Ban lookup latency, one thread (Bans::is_banned), pooled connections, plain and "
              "TLS taking turns")
        targets = [f"plain=redis://127.0.0.1:{plain}/0",
                   f"tls-via-stunnel=redis://127.0.0.1:{tunnel}/0"]
        # Native rediss:// too, when the bench program was built with a hiredis that has TLS
        # (>= 1.0 with hiredis_ssl; not Debian 12's 0.14).
        probe = subprocess.run([str(bench_bin("bench_redis_lookup")), "--lookups", "100",
                                "--tls-ca", str(certs["ca"]),
                                f"probe=rediss://127.0.0.1:{tls_port}/0"],
                               capture_output=True, text=True, timeout=120)
        if probe.returncode == 0 and "fallback" not in probe.stdout:
            targets.append(f"tls-native=rediss://127.0.0.1:{tls_port}/0")
        else:
            print("  (no native rediss:// in this build: hiredis without TLS)")
        out = subprocess.run([str(bench_bin("bench_redis_lookup")), "--lookups",
                              str(args.lookups), "--tls-ca", str(certs["ca"]), *targets],
                             capture_output=True, text=True, timeout=600)
        print(out.stdout, end="")
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            return out.returncode
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    f = sub.add_parser("failover")
    f.add_argument("--rounds", type=int, default=3)
    f.add_argument("--senders", type=int, default=4)
    t = sub.add_parser("tls")
    t.add_argument("--lookups", type=int, default=5000)
    args = ap.parse_args()
    return failover(args) if args.what == "failover" else tls(args)


if __name__ == "__main__":
    sys.exit(main())
