#!/usr/bin/python3
"""Benchmark (prints figures, asserts nothing): mxguard's memory with 1,000 concurrent SMTP
sessions held open through a real Postfix (issue 7, item 6; target: RSS under 100 MB).

One mxguard with its default checks behind a private Postfix whose smtpd may run 1,000+
processes (default_process_limit raised; Postfix delivers to discard). The client opens N SMTP sessions one after the other and keeps them all
open: Postfix keeps one smtpd process and one milter connection per session. mxguard's
VmRSS, VmHWM, threads and descriptors (from /proc) and its own count of open MTA connections
(metrics) are sampled. mxguard's DNS servers are, in this order, one that never answers
(dnstest.Responder("silent")) and a real nsd serving tests/data/zones: every lookup not in
the cache waits --dns-timeout-ms on the first, then gets its answer from nsd.

  0 sessions   after one message went through (DNS cache, libmilter's worker pool warm)
  N after EHLO every session connected and greeted
  N after RCPT every session inside a transaction (MAIL and one RCPT each, one session after
               the other, recipient domain in the cache)
  N in RCPT at once
               RSET, MAIL, then every session's RCPT sent at once, each to a domain not yet
               looked up (dN.wild.test): N callbacks busy at the same moment for the DNS
               timeout, the worst case for threads (peak figures while replies are awaited)
  N after the burst
  closed       after every session said QUIT

Per-session cost = (RSS at N - RSS at 0) / N at each step.

    MXGUARD_BIN=$PWD/build-perf/milter/mxguard /usr/bin/python3 tests/bench/session_memory.py \
        [--sessions 1000] [--dns-timeout-ms 3000] [--bursts 1]
Needs a built mxguard (MXGUARD_BIN, default build/milter/mxguard), nsd and Postfix
(scripts/install-deps); run as root (private Postfix).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))
sys.path.insert(0, str(HERE.parent / "e2e" / "dns"))

from dnstest import Nsd, Responder, free_port  # noqa: E402
from harness import procstat  # noqa: E402
from harness.milter import Mxguard  # noqa: E402
from harness.postfix import Postfix  # noqa: E402
from harness.smtp import SmtpSession, send  # noqa: E402
from harness.util import wait_until  # noqa: E402

from benchlib import DISCARD  # noqa: E402

SENDER = "sender@good.mail.test"
REPO = HERE.parents[1]


def active_connections(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("mxguard_connections_active "):
                return int(float(line.split()[1]))
    raise RuntimeError("no mxguard_connections_active in the metrics")


def smtpd_pss_kb(postfix: Postfix) -> tuple[int, int]:
    """(number of this instance's smtpd processes, their summed proportional set size)."""
    n = total = 0
    master = str(postfix.master_pid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            # "pid (comm) state ppid ...": comm may hold spaces, so split after the ")".
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = stat[stat.rindex(")") + 2:].split()[1]
            if comm != "smtpd" or ppid != master:
                continue
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
            n += 1
        except (OSError, ValueError):
            continue
    return n, total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--dns-timeout-ms", type=int, default=3000)
    ap.add_argument("--bursts", type=int, default=1, help="repeat the busy moment (new domains)")
    args = ap.parse_args()
    n = args.sessions
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * n + 1024)), hard))

    nsd = Nsd().start()
    silent = Responder("silent").start()
    metrics_port = free_port()
    daemon = Mxguard(f"dns-server = {silent.server}, {nsd.server}\n"
                     f"dns-timeout = {args.dns_timeout_ms}ms\ndns-retries = 0\n"
                     "dns-deadline = 60s\nsyslog = no\n"
                     f"bogus-networks = {REPO / 'rules' / 'bogus-networks.cidr'}\n"
                     f"metrics-listen = 127.0.0.1:{metrics_port}\n")
    postfix = None
    sessions: list[SmtpSession] = []
    rows = []
    try:
        daemon.start()
        pid = daemon.proc.pid
        # smtpd's maxproc is "-" in the harness's master.cf: default_process_limit rules it.
        postfix = Postfix(milter=daemon.socket, config={
            **DISCARD, "default_process_limit": n + 100, "smtpd_client_connection_count_limit": 0,
        }).start()

        def sample(label: str, expect_open: int) -> dict:
            wait_until(lambda: active_connections(metrics_port) == expect_open, 120,
                       what=f"mxguard to count {expect_open} open connections")
            time.sleep(1)  # let lazily freed memory settle
            row = {"label": label, "open": active_connections(metrics_port),
                   **procstat.snapshot(pid)}
            row["smtpd"], row["smtpd_pss_kb"] = smtpd_pss_kb(postfix)
            rows.append(row)
            print(f"  {label:22s} open {row['open']:5d}  RSS {row['rss_kb'] / 1024:7.1f} MiB  "
                  f"peak {row['hwm_kb'] / 1024:7.1f} MiB  threads {row['threads']:4d}  "
                  f"fds {row['fds']:5d}  (smtpd: {row['smtpd']} processes, "
                  f"PSS {row['smtpd_pss_kb'] / 1024:.0f} MiB)", flush=True)
            return row

        print(f"mxguard {daemon.binary} with {n} concurrent SMTP sessions through Postfix")
        warm = send(postfix, sender=SENDER, recipients=["warm@good.mail.test"],
                    source="127.0.0.3")
        if not warm.accepted:
            sys.exit(f"warm-up message not accepted: {warm.last()}")
        sample("0 sessions", 0)
        started = time.monotonic()
        for i in range(n):
            s = SmtpSession(postfix, source="127.0.0.3", timeout=60)
            if s.banner.code != 220:
                sys.exit(f"session {i}: banner {s.banner}")
            r = s.ehlo()
            if r.code != 250:
                sys.exit(f"session {i}: EHLO {r}")
            sessions.append(s)
        print(f"  ({n} sessions opened in {time.monotonic() - started:.1f} s)")
        at_ehlo = sample(f"{n} after EHLO", n)
        # One transaction each, one session after the other (the recipient domain is cached).
        for i, s in enumerate(sessions):
            if s.mail(SENDER).code != 250 or s.rcpt(f"user{i}@good.mail.test").code != 250:
                sys.exit(f"session {i}: MAIL/RCPT refused")
        at_rcpt = sample(f"{n} after RCPT", n)
        # Then a new transaction each, every RCPT at once, each to a domain no one asked for
        # yet: N callbacks waiting for DNS at the same moment.
        for burst in range(args.bursts):
            for i, s in enumerate(sessions):
                if s.rset().code != 250 or s.mail(SENDER).code != 250:
                    sys.exit(f"session {i}: RSET/MAIL refused")
            for i, s in enumerate(sessions):
                s.sock.sendall(f"RCPT TO:<user{i}@d{burst * n + i}.wild.test>\r\n".encode())
            peak = {"threads": 0, "rss_kb": 0}
            replied = threading.Event()

            def watch():  # the peak while the replies are awaited
                while not replied.is_set():
                    now = procstat.snapshot(pid)
                    for k in peak:
                        peak[k] = max(peak[k], now[k])
                    time.sleep(0.05)
            watcher = threading.Thread(target=watch)
            watcher.start()
            codes: dict[int, int] = {}
            for s in sessions:
                c = s.read_reply().code
                codes[c] = codes.get(c, 0) + 1
            replied.set()
            watcher.join()
            peak["hwm_kb"] = procstat.hwm_kb(pid)
            print(f"  {n} in RCPT at once   peak: RSS {peak['rss_kb'] / 1024:7.1f} MiB  "
                  f"VmHWM {peak['hwm_kb'] / 1024:7.1f} MiB  threads {peak['threads']:4d}  "
                  f"(RCPT replies: {codes})", flush=True)
            after_burst = sample(f"{n} after the burst", n)
        for s in sessions:
            s.quit()
        sessions.clear()
        sample("closed", 0)
        base = rows[0]

        def per_session(row: dict) -> str:
            return f"{(row['rss_kb'] - base['rss_kb']) / n:.1f} KiB"
        print(f"per session (RSS at {n} minus RSS at 0, divided by {n}): after EHLO "
              f"{per_session(at_ehlo)}, after RCPT {per_session(at_rcpt)}, at the busy moment "
              f"{per_session(peak)} ({peak['threads']} threads), after it "
              f"{per_session(after_burst)}")
        print(f"mxguard RSS with {n} sessions: {at_rcpt['rss_kb'] / 1024:.1f} MiB in "
              f"transactions, at most {peak['hwm_kb'] / 1024:.1f} MiB (target < 100 MB)")
    finally:
        for s in sessions:
            s.close()
        try:
            if postfix:
                postfix.stop()
            daemon.stop()
        finally:
            silent.stop()
            nsd.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
