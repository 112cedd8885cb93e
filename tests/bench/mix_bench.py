#!/usr/bin/python3
"""Realistic-traffic benchmark (issue 16, item 1): prints figures, asserts nothing.

Through a private Postfix delivering to discard, variants interleaved in rounds as in
e2e_bench.py:

  a    Postfix without any milter
  b    null_milter registering every callback
  b2   null_milter registering only connect and rcpt
  c    mxguard with every check on (e2e_bench.py's configuration), 127.0.0.1 trusted
  c0   with --compare-bin: the same configuration on another mxguard binary

Each variant gets the same seeded mix of sessions (one transaction each):

  in      70 %  from 127.0.0.3, 1-5 recipients; 30 % of recipient domains new to the cache
                (dN.wild.test behind the delaying DNS proxy, --delay-ms, 20 ms), the rest warm
  out     20 %  from 127.0.0.1 (trusted): alice@example.com, our user, so BATV signing and
                the ledger of sent mail apply; same recipient domains
  dsn-ok   5 %  null sender to alice, proving itself (half by a returned message that passed
                our relay, half by a recipient alice wrote to in the warm-up: the ledger)
  dsn-bad  5 %  null sender to alice about mail she never sent: backscatter (550 expected)
  web    ~1 %   to a website-only domain (5xx at RCPT expected), each from its own
                127.0.1.x address so that bans stay out of the way of the rest

Sizes are log-uniform from 2 KB to 200 KB; above 8 KB the message carries a base64
attachment. Prints, per variant and concurrency: sessions/s, transaction p50/p99, the milter's
and Postfix's CPU per session (the milter: its process CPU clock, to the nanosecond; Postfix:
utime+stime from /proc of the master's reaped children plus its live ones), final codes per
kind, and whether every accepted recipient was delivered (counted in Postfix's log:
"status=sent").

    MXGUARD_BIN=build-rel/milter/mxguard MXGUARD_BENCH_BIN=build-rel/tests/bench \\
        tests/bench/mix_bench.py [--rounds 3] [--sessions-per-run 600] [--levels 10,50]

Needs a Release build of mxguard, null_milter and smtp_load, Postfix and nsd (root).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# e2e_bench puts tests/e2e and its dns helpers on the path.
from e2e_bench import NullMilter, WARM_DOMAINS, cpu_seconds, mxguard_config  # noqa: E402
from benchlib import DISCARD, DelayProxy, bench_bin, knows_own_files  # noqa: E402
from dnstest import Nsd  # noqa: E402
from harness.milter import Mxguard  # noqa: E402
from harness.postfix import Postfix  # noqa: E402
from harness.util import make_instance_dir, wait_until  # noqa: E402

ALICE = "alice@example.com"
OUTSIDE = "127.0.0.3"
TRUSTED = "127.0.0.1"
TICKS = os.sysconf("SC_CLK_TCK")
LEDGER_RCPT = "w0@good.mail.test"  # alice writes to it in the warm-up


def body_of(rng: random.Random, size: int) -> str:
    """Text, and above 8 KB a base64 attachment, to about `size` bytes (CRLF lines)."""
    text = "Hello,\r\n\r\n" + "".join(
        " ".join(rng.choice(("mail", "report", "meeting", "invoice", "the", "of", "and", "we"))
                 for _ in range(12)) + "\r\n" for _ in range(max(1, min(size, 8192) // 80)))
    if size <= 8192:
        return "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
    raw = rng.randbytes((size - len(text)) * 3 // 4)
    b64 = base64.encodebytes(raw).decode().replace("\n", "\r\n")
    return ("Content-Type: multipart/mixed; boundary=\"mix-b\"\r\n\r\n"
            "--mix-b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text +
            "--mix-b\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + b64 + "--mix-b--\r\n")


def ordinary(rng: random.Random, n: int, sender: str, size: int | None = None) -> str:
    """An ordinary message, `size` bytes or, by default, log-uniform from 2 KB to 200 KB."""
    if size is None:
        size = int(math.exp(rng.uniform(math.log(2048), math.log(200 * 1024))))
    return (f"From: <{sender}>\r\nTo: undisclosed-recipients:;\r\n"
            f"Subject: mix {n}\r\nMessage-ID: <mix.{n}@{sender.split('@')[1]}>\r\n"
            "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
            body_of(rng, size))


def dsn(n: int, final_recipient: str, returned: bool, size: int | None = None) -> str:
    """A DSN to alice; with the returned headers of a message that passed our relay. With
    `size`, a part of base64 (a returned attachment) brings it to about that size."""
    original = ("--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
                "Received: from mx-out.example.com (mx-out.example.com [192.0.2.25])\r\n"
                "\tby mx.remote.example with ESMTP id X1; Mon, 23 Nov 2026 11:00:00 +0000\r\n"
                f"From: <{ALICE}>\r\nTo: <{final_recipient}>\r\n"
                f"Message-ID: <sent.{n}@example.com>\r\nSubject: ours\r\n\r\n") if returned else ""
    return ("From: Mail Delivery System <MAILER-DAEMON@mx.remote.example>\r\n"
            f"To: <{ALICE}>\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            f"Message-ID: <dsn.{n}@mx.remote.example>\r\n"
            "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.remote.example\r\n\r\n"
            f"Final-Recipient: rfc822; {final_recipient}\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n\r\n" + original + filler(n, size) + "--b--\r\n")


def filler(n: int, size: int | None) -> str:
    if not size:
        return ""
    raw = random.Random(n).randbytes(max(0, size - 1200) * 3 // 4)
    return ("--b\r\nContent-Type: application/octet-stream; name=\"returned.bin\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" +
            base64.encodebytes(raw).decode().replace("\n", "\r\n"))


def stuffed(text: str) -> str:
    return "".join(("." + line if line.startswith(".") else line)
                   for line in text.splitlines(keepends=True))


class Mix:
    """A seeded mix of sessions. The message files are written once per mix and shared by
    every variant (their To: names no recipient); each variant's plan, as smtp_load --plan
    reads it, gets its own block of new recipient domains."""

    def __init__(self, out: Path, seed: int, sessions: int, kinds: set[str] | None = None,
                 size: int | None = None):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        rng = random.Random(seed)
        # Bodies from their own generator: the sessions (kinds, recipients) stay the same
        # whatever --size says.
        body_rng = random.Random(seed + 7919)
        self.sessions: list[tuple[str, str, str, list[str | None], str]] = []
        web = 0
        for n in range(sessions):
            r = rng.random()
            kind = ("in" if r < 0.69 else "out" if r < 0.89 else "dsn-ok" if r < 0.94
                    else "dsn-bad" if r < 0.99 else "web")
            source, sender = OUTSIDE, f"s{n % 50}@good.mail.test"
            rcpts: list[str | None]  # None: a recipient in a domain new to the cache
            if kind in ("in", "out"):
                count = rng.choice((1, 1, 1, 1, 2, 2, 3, 4, 5))
                rcpts = [None if rng.random() < 0.3 else f"r{i}@{rng.choice(WARM_DOMAINS)}"
                         for i in range(count)]
                if kind == "out":
                    source, sender = TRUSTED, ALICE
                text = ordinary(body_rng, n, sender, size)
            elif kind == "web":
                web += 1
                source, rcpts = f"127.0.1.{1 + web % 250}", ["info@product.web.test"]
                text = ordinary(body_rng, n, sender, size)
            else:
                sender, rcpts = "", [ALICE]
                if kind == "dsn-ok":
                    by_relay = rng.random() < 0.5
                    text = dsn(n, f"x{n}@good.mail.test" if by_relay else LEDGER_RCPT,
                               returned=by_relay, size=size)
                else:
                    text = dsn(n, f"stranger{n}@elsewhere.example", returned=False, size=size)
            path = out / f"m{n}.eml"
            path.write_text(stuffed(text))
            if kinds is None or kind in kinds:
                self.sessions.append((source, kind, sender, rcpts, str(path)))

    def plan(self, cold_first: int, tag: str) -> tuple[Path, int]:
        """Writes the plan; returns it and the next unused cold domain number."""
        cold = cold_first
        lines = []
        for source, kind, sender, rcpts, path in self.sessions:
            names = []
            for i, r in enumerate(rcpts):
                if r is None:
                    names.append(f"r{i}@d{cold}.wild.test")
                    cold += 1
                else:
                    names.append(r)
            lines.append("\t".join((source, kind, sender, " ".join(names), path)))
        plan = self.out / f"plan-{tag}.tsv"
        plan.write_text("\n".join(lines) + "\n")
        return plan, cold


def postfix_cpu(server: Postfix) -> float:
    """CPU seconds of a Postfix instance: its master's reaped children and the live ones."""
    pid = int((server.queue_dir / "pid" / "master.pid").read_text().split()[0])
    total = 0.0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # ppid
            total += (int(fields[11]) + int(fields[12])) / TICKS
        elif p.name == str(pid):
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICKS
    return total


def delivered(server: Postfix) -> int:
    try:
        return server.log_file.read_text(errors="replace").count(" status=sent ")
    except OSError:
        return 0


def run_plan(server: Postfix, level: int, plan: Path) -> dict:
    out = subprocess.run(
        [str(bench_bin("smtp_load")), "--host", server.host, "--port", str(server.port),
         "--sessions", str(level), "--plan", str(plan)],
        capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout)


def start_recorders(args, pid: int, name: str) -> list[subprocess.Popen]:
    """perf (system-wide) and strace (the milter's threads) as asked, recording from now on
    into `name` in their directories; stopped with SIGINT after the run."""
    out = []
    if args.perf:
        data = args.perf / f"{name}.data"
        out.append(subprocess.Popen(["perf", "record", "-a", "-g", "-q", "-o", str(data)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(data.exists, 10, what="perf")
    if args.strace:
        tracer = subprocess.Popen(["strace", "-f", "-c", "-o", str(args.strace / f"{name}.txt"),
                                   "-p", str(pid)], stderr=subprocess.PIPE, text=True)
        assert tracer.stderr
        tracer.stderr.readline()  # "strace: Process N attached"
        out.append(tracer)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sessions-per-run", type=int, default=600)
    ap.add_argument("--levels", default="10,50")
    ap.add_argument("--delay-ms", type=int, default=20)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--variants", default="a,b,b2,c", help="which variants to run")
    ap.add_argument("--compare-bin", type=Path, default=None,
                    help="another mxguard binary (e.g. the tree before a change): variant c0, "
                         "same configuration, interleaved with the others")
    ap.add_argument("--config", action="append", default=[],
                    help="a line added to mxguard's configuration (what a setting costs)")
    ap.add_argument("--size", type=int, default=None,
                    help="every message about this many bytes (DSNs with a returned "
                         "attachment), instead of 2-200 KB: what a message's size costs")
    ap.add_argument("--kinds", default=None,
                    help="only these kinds of session (e.g. in,out): what each costs")
    ap.add_argument("--perf", type=Path, default=None,
                    help="a directory: record each milter's run system-wide with perf "
                         "(perf record -a -g); read one with perf report --pid")
    ap.add_argument("--strace", type=Path, default=None,
                    help="a directory: count each milter's system calls with strace -f -c "
                         "(slows the milter: its rates are then no figure)")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    nsd = Nsd().start()
    proxy = DelayProxy(nsd.server, args.delay_ms).start()
    tmp = make_instance_dir("mix-bench")
    config = (mxguard_config(tmp, proxy.server) + f"trusted-networks = {TRUSTED}/32\n" +
              "".join(line + "\n" for line in args.config))
    mx = Mxguard(config)
    # The same configuration on another binary (the tree before a change): variant c0.
    mx0 = Mxguard(config, binary=args.compare_bin,
                  own_ledger_files=knows_own_files(args.compare_bin)) if args.compare_bin else None
    nulls = {"b": NullMilter(), "b2": NullMilter("connect,rcpt")}
    servers: dict[str, Postfix] = {}
    variants = args.variants.split(",") + (["c0"] if mx0 else [])
    for d in (args.perf, args.strace):
        if d:
            d.mkdir(parents=True, exist_ok=True)
    try:
        mx.start()
        for nm in nulls.values():
            nm.start()
        milters = {"a": None, "b": nulls["b"].socket, "b2": nulls["b2"].socket, "c": mx.socket}
        assert mx.proc
        pids = {"b": nulls["b"].pid, "b2": nulls["b2"].pid, "c": mx.proc.pid}
        if mx0:
            mx0.start()
            assert mx0.proc
            milters["c0"], pids["c0"] = mx0.socket, mx0.proc.pid
        for v in variants:
            servers[v] = Postfix(milter=milters[v], config=DISCARD).start()
        print(f"milter pids: {pids}", flush=True)

        # Warm-up: Postfix's processes; mxguard's routes for the warm domains; alice writes
        # to LEDGER_RCPT so that the ledger proves the DSNs about it.
        warm = Mix(tmp / "warm", args.seed + 1, 100)
        cold = 800000000
        for name, srv in servers.items():
            plan, cold = warm.plan(cold, f"warm-{name}")
            run_plan(srv, 10, plan)
        seed = tmp / "ledger-seed.eml"
        seed.write_text(ordinary(random.Random(0), 0, ALICE))
        (tmp / "ledger-seed.tsv").write_text(f"{TRUSTED}\tout\t{ALICE}\t{LEDGER_RCPT}\t{seed}\n")
        for v in ("c", "c0"):
            if v in servers:
                run_plan(servers[v], 1, tmp / "ledger-seed.tsv")

        results: dict[tuple[str, int], list[dict]] = {}
        cold = 1
        for r in range(args.rounds):
            for level in levels:
                # One seeded mix per round and concurrency, the same for every variant.
                mix = Mix(tmp / f"mix-{r}-{level}", args.seed * 1000 + r * 10 + level,
                          args.sessions_per_run, set(args.kinds.split(",")) if args.kinds else None,
                          args.size)
                order = variants if r % 2 == 0 else list(reversed(variants))
                for v in order:
                    plan, cold = mix.plan(cold, v)
                    srv = servers[v]
                    d0, p0 = delivered(srv), postfix_cpu(srv)
                    cpu0 = cpu_seconds(pids[v]) if v in pids else 0.0
                    name = f"{v}-x{level}-r{r + 1}"
                    recorders = start_recorders(args, pids[v], name) if v in pids else []
                    res = run_plan(srv, level, plan)
                    for t in recorders:
                        t.send_signal(signal.SIGINT)
                        t.wait()
                    res["postfix_cpu_s"] = postfix_cpu(srv) - p0
                    if v in pids:
                        res["cpu_s"] = cpu_seconds(pids[v]) - cpu0
                    want = res["accepted_rcpts"]
                    try:
                        wait_until(lambda: delivered(srv) - d0 >= want, 60, interval=0.2,
                                   what="deliveries")
                    except Exception:  # noqa: BLE001  (a figure, not an assertion)
                        pass
                    res["delivered"] = delivered(srv) - d0
                    results.setdefault((v, level), []).append(res)
                    print(f"round {r + 1} x{level:<3d} {v:3s} "
                          f"{res['messages'] / res['seconds']:8.1f} sessions/s  "
                          f"p50 {res['median_ms']:7.2f} ms  p99 {res['p99_ms']:8.2f} ms  "
                          f"accepted rcpts {want} delivered {res['delivered']}  "
                          f"{res['kinds']}", flush=True)
                shutil.rmtree(mix.out, ignore_errors=True)

        print()
        print(f"Realistic mix through Postfix -> discard, {args.rounds} interleaved rounds of "
              f"{args.sessions_per_run} sessions, seed {args.seed}; medians over rounds")
        print(f"{'variant':8s} {'sess':>4s} {'per s':>8s} {'/a':>6s} {'/b':>6s} {'/b2':>6s} "
              f"{'p50 ms':>8s} {'p99 ms':>8s} {'milter us':>9s} {'postfix us':>10s}  lost")
        for level in levels:
            rate = {v: statistics.median(x["messages"] / x["seconds"]
                                         for x in results[(v, level)]) for v in variants}
            for v in variants:
                rs = results[(v, level)]
                sessions = sum(x["messages"] for x in rs)
                milter = (f"{sum(x['cpu_s'] for x in rs) / sessions * 1e6:9.0f}"
                          if v in pids else f"{'-':>9s}")
                pf = sum(x["postfix_cpu_s"] for x in rs) / sessions * 1e6
                lost = sum(x["accepted_rcpts"] - x["delivered"] for x in rs)
                ratios = " ".join(f"{rate[v] / rate[x] if x in rate else math.nan:6.2f}"
                                  for x in ("a", "b", "b2"))
                print(f"{v:8s} {level:4d} {rate[v]:8.1f} {ratios} "
                      f"{statistics.median(x['median_ms'] for x in rs):8.2f} "
                      f"{statistics.median(x['p99_ms'] for x in rs):8.2f} {milter} {pf:10.0f}  "
                      f"{lost}")
            # The machine's speed drifts between rounds (the other variants' rates with it):
            # the ratio within each round, and its median, is the steadier figure.
            for top, base in (("c", "b"), ("c", "b2"), ("c", "c0"), ("c0", "b2")):
                if top in variants and base in variants:
                    per_round = [c["messages"] / c["seconds"] / (x["messages"] / x["seconds"])
                                 for c, x in zip(results[(top, level)], results[(base, level)])]
                    print(f"  {top}/{base} per round at {level} sessions: "
                          f"{' '.join(f'{r:.2f}' for r in per_round)}; "
                          f"median {statistics.median(per_round):.2f}")
            if "c" not in variants:
                continue
            kinds: dict[str, dict[str, int]] = {}
            for x in results[("c", level)]:
                for k, codes in x["kinds"].items():
                    for code, n in codes.items():
                        kinds.setdefault(k, {}).setdefault(code, 0)
                        kinds[k][code] += n
            print(f"  mxguard's final codes per kind at {level} sessions: {kinds}")
        print(f"DNS queries through the delaying proxy: {proxy.queries}")
    finally:
        for s in servers.values():
            s.stop()
            s.cleanup()
        for nm in nulls.values():
            nm.stop()
        mx.stop()
        if mx0:
            mx0.stop()
        proxy.stop()
        nsd.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
