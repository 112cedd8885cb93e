#!/usr/bin/python3
"""Soak (issue 7): many messages of every kind mxguard judges, through a real private Postfix at
50 concurrent SMTP sessions; afterwards nothing accepted is lost, every reply is the one its kind
must get, and mxguard's RSS and open file descriptors are flat.

Full form (prints figures and a verdict line; exit status 0 on PASS, 1 on FAIL):

    cmake -S . -B build-soak -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMXGUARD_WERROR=ON
    cmake --build build-soak -j2 --target mxguard
    MXGUARD_BIN=$PWD/build-soak/milter/mxguard MXGUARD_E2E_TMP=$PWD/build-soak/e2e-tmp \\
        /usr/bin/python3 tests/bench/soak.py --messages 100000 --sessions 50

Short form: tests/e2e/test_soak.py runs the same code with 10,000 messages and asserts.
Needs root, Postfix (with smtp-sink), nsd and, for --state redis, redis-server
(scripts/install-deps).

What runs (all on loopback):
- nsd serving tests/data/zones (mxguard's DNS), optionally redis-server (--state redis);
- the real mxguard daemon (harness.milter.Mxguard) with local domain example.com, BATV keys,
  check.backscatter and check.batv on, website-only domain product.web.test, bans;
- a private Postfix (harness.postfix.Postfix) with mxguard as smtpd milter, delivering every
  accepted message over SMTP to Postfix's own smtp-sink, which writes one file per delivered
  message. (The harness's Sink runs a Python process per message, ~15 ms of CPU each: at
  100,000 messages that alone would be the bottleneck on two cores.)
- an asyncio SMTP client with --sessions concurrent sessions. Transactions ride in sessions of
  1 to 10 messages (MAIL/RCPT/DATA repeated, RSET only after a transaction refused at RCPT);
  probes and banned clients have a session each.

Kinds (share of --messages; each is one SMTP transaction or connection):
  ordinary      45%  outside client -> our user: 250 at end of data, delivered
  outbound      10%  trusted client, our user -> remote domain: 250, delivered, BATV-signed
  backscatter   15%  MAIL FROM:<>, forged bounce/autoreply/virus notice: 550 5.7.1 after DATA
  batv-bounce   10%  MAIL FROM:<>, recipient with a valid BATV tag: 250, delivered untagged
  bogus-mx      10%  recipient domain whose MX is loopback/private/...: 550 5.1.2 at RCPT
  probe          5%  sender verification: MAIL FROM:<>, RCPT (250), QUIT; no DATA
  banned         5%  client banned beforehand (3 strikes on null-MX product.web.test): 421
                     at its RCPT (decided at connect, told there: delay-reject), after which
                     Postfix hangs up; mxguard's own log shows one check=ban line each

Every message carries a unique X-Soak-Id header; a delivered file is matched to it. The first
--warmup messages (default 10%) warm caches, threads and allocator; then the load pauses until
mxguard is idle (no milter connection open) and RSS / fds / threads are sampled; the rest runs;
at idle again the end sample is taken. /proc/PID/status and /proc/PID/fd are also sampled
every --sample-interval seconds during the run (min/max printed). Idle fd counts are the
minimum over about a second of samples: a file the daemon has open only for a moment (state
snapshot, metrics file) is not a leak.

Checks (the verdict line; tests/e2e/test_soak.py asserts the same): delivered == accepted with
the same ids and no duplicates, BATV bounces delivered to the untagged address; no reply other
than the expected one for its kind; mxguard's log has one reject line per refused message,
naming the expected check; idle fds at the end == after warm-up (with --state redis: besides
the pooled Redis connections, at most REDIS_POOL of them); RSS growth after warm-up
<= 10% + 5 MB (allocator slack: per-thread caches, a heap that peaked at 50 concurrent
sessions; DNS cache and state are bounded and filled during warm-up), under ASan plus
ASAN_BYTES_PER_MESSAGE per message; the daemon exits cleanly (status 0, no sanitizer report).

Under ASan the daemon runs without ASan's quarantine (see sanitizer_env()); RSS still creeps
up by about 1 KB per message there (ASan's own bookkeeping, see asan_threads()), so only a
build without sanitizers measures RSS finely: the full form is meant for a RelWithDebInfo
build. Longer ASan runs can also end in a LeakSanitizer false positive: GCC 12's ASan does not
intercept pthread_detach, so every libmilter worker (it detaches itself) stays "finished, not
joined" in ASan's registry with its kernel thread id; once the run has used up the pid space
(pid_max 32768 here, about 20,000 messages at 1.5 threads each), a live worker at exit can share
an id with such a record, LeakSanitizer says "Thread N not found in registry", skips it, and
reports what only its thread_local storage holds (PCRE2 match data, glibc's thread-dtor node).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "e2e"))
sys.path.insert(0, str(HERE.parent / "e2e" / "dns"))
sys.dont_write_bytecode = True

from dnstest import Nsd  # noqa: E402
from harness.milter import Mxguard, MxguardError  # noqa: E402
from harness.postfix import Postfix  # noqa: E402
from harness.smtp import send  # noqa: E402
from harness import util  # noqa: E402
from harness.util import can_connect, free_port, make_instance_dir, wait_until  # noqa: E402

SMTP_SINK = shutil.which("smtp-sink", path="/usr/sbin:/usr/bin") or "/usr/sbin/smtp-sink"
CORPUS = REPO / "tests" / "data" / "messages"
BATV_KEY = "soak-key-correct-horse-battery-0007"

LOCAL_DOMAIN = "example.com"
USERS = [f"{n}@{LOCAL_DOMAIN}" for n in (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "nina", "oscar", "peggy", "rupert", "sybil", "trent", "victor", "walter", "zoe")]
TRUSTED = "127.0.0.1"
OUTSIDE = [f"127.0.1.{i}" for i in range(1, 201)]
BANNED = [f"127.0.2.{i}" for i in range(1, 21)]
# Sender and remote domains the test zones route properly (looked up once, then cached).
GOOD_DOMAINS = (["good.mail.test", "mixed.mail.test", "nolisting.mail.test",
                 "viacname.mail.test", "dualstack.mail.test"]
                + [f"w{i}.wild.test" for i in range(1, 16)])
# Recipient domains whose every exchanger is in non-routable space (tests/data/zones).
BOGUS_DOMAINS = [f"{n}.mail.test" for n in (
    "loopback", "zero", "rfc1918-10", "rfc1918-172", "rfc1918-192", "cgnat", "bench",
    "testnet1", "testnet2", "testnet3", "v6loop", "ula", "linklocal", "mapped", "nat64",
    "sixto4", "doc6", "implicit", "nullmx-plus-bad")]
WEBSITE_DOMAIN = "product.web.test"  # null MX + unhandled-domains: three strikes ban

# Forged null-sender mail mxguard must refuse for our users, and bounces used as the bodies
# of legitimate (BATV-tagged) bounces; the forged ones too: the tag alone makes them ours.
FORGED = ["dsn-forged-spam-backscatter.eml", "virus-amavis.eml", "virus-notice-plain.eml",
          "autoreply-rfc3834.eml", "autoreply-precedence.eml", "challenge-verify-human.eml"]
BOUNCES = ["dsn-postfix.eml", "dsn-gmail.eml", "bounce-qmail.eml", "bounce-exim.eml",
           "dsn-exchange.eml", "dsn-forged-spam-backscatter.eml"]

KINDS = ("ordinary", "outbound", "backscatter", "batv-bounce", "bogus-mx", "probe", "banned")
WEIGHTS = {"ordinary": 45, "outbound": 10, "backscatter": 15, "batv-bounce": 10,
           "bogus-mx": 10, "probe": 5, "banned": 5}
#: The reply each kind must get at the step where it ends (the other steps: 220 banner,
#: 250 EHLO/MAIL/RCPT/RSET, 354 DATA, 221 QUIT).
FINAL = {"ordinary": "250", "outbound": "250", "backscatter": "550 5.7.1",
         "batv-bounce": "250", "bogus-mx": "550 5.1.2", "probe": "250", "banned": "421 4.7.0"}
#: The kinds mxguard itself refuses, by the check its log line names.
REFUSED_BY = {"banned": "ban", "bogus-mx": "bogus-mx", "backscatter": "backscatter"}
DECISION = re.compile(r": (would reject|reject|discard): ([A-Z-]+) from .* check=(\S+)")

RSS_SLACK_RATIO = 0.10
RSS_SLACK_BYTES = 5 * 1024 * 1024
#: Under ASan only: RSS allowed per message after warm-up (see asan_threads()). Measured under
#: ASan: 0.5-1.0 KB per message (6-9 MB over 9,000 messages, 19.5 MB over 39,000), where a
#: RelWithDebInfo build of the same code grows by 0.1 MB over 18,000.
ASAN_BYTES_PER_MESSAGE = 1536
#: mxguard keeps at most this many idle Redis connections (RedisStore max_idle_connections):
#: with --state redis the pool may still grow after warm-up, up to this.
REDIS_POOL = 16
REPLY_TIMEOUT = 120.0  # well above Postfix's milter timeouts: a hang shows as such


# -- the plan ------------------------------------------------------------------------------------

@dataclass
class Options:
    messages: int = 10_000
    sessions: int = 50
    warmup: int | None = None  # default: 10% of messages
    seed: int = 7
    state: str = "memory"  # or "redis"
    max_per_session: int = 10
    sample_interval: float = 1.0
    drain_timeout: float = 600.0
    verbose: bool = False

    def warmup_count(self) -> int:
        return self.messages // 10 if self.warmup is None else min(self.warmup, self.messages)


@dataclass
class Plan:
    """One SMTP session: its client address and the kinds of its transactions, with ids."""
    source: str
    kinds: list[str]
    ids: list[int]


def kind_counts(messages: int) -> dict[str, int]:
    """Exact counts per kind, summing to `messages` (largest remainders get the rest)."""
    total = sum(WEIGHTS.values())
    exact = {k: messages * w / total for k, w in WEIGHTS.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[
            :messages - sum(counts.values())]:
        counts[k] += 1
    return counts


def plan_sessions(kinds: list[str], first_id: int, rng: random.Random,
                  max_per_session: int) -> list[Plan]:
    """Group a shuffled list of kinds into sessions.

    Inbound transactions (ordinary, backscatter, batv-bounce, bogus-mx) from outside clients
    share sessions, outbound ones from the trusted client share theirs; probes and banned
    clients get one session each. About a third of the sessions carry one message.
    """
    plans: list[Plan] = []
    open_: dict[str, tuple[Plan, int]] = {}
    outside = iter(OUTSIDE * (len(kinds) // len(OUTSIDE) + 1))
    banned = iter(BANNED * (len(kinds) // len(BANNED) + 1))

    def length() -> int:
        return 1 if rng.random() < 0.35 else rng.randint(2, max_per_session)

    for i, kind in enumerate(kinds):
        mid = first_id + i
        if kind in ("probe", "banned"):
            plans.append(Plan(next(banned) if kind == "banned" else next(outside),
                              [kind], [mid]))
            continue
        group = "out" if kind == "outbound" else "in"
        if group not in open_:
            src = TRUSTED if group == "out" else next(outside)
            open_[group] = (Plan(src, [], []), length())
        plan, want = open_[group]
        plan.kinds.append(kind)
        plan.ids.append(mid)
        if len(plan.kinds) >= want:
            plans.append(plan)
            del open_[group]
    plans.extend(p for p, _ in open_.values())
    return plans


# -- messages --------------------------------------------------------------------------------------

def _crlf_stuffed(raw: bytes) -> bytes:
    """CRLF line ends and SMTP dot-stuffing, done once per template."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)


def prvs(address: str, day: int, key_number: int = 0, key: str = BATV_KEY) -> str:
    """A BATV prvs tag from the formula (independent of mxguard's code): K DDD HHHHHH."""
    ddd = f"{day % 1000:03d}"
    mac = hmac.new(key.encode(), f"{key_number}{ddd}{address}".encode(), hashlib.sha1)
    local, domain = address.split("@")
    return f"prvs={key_number}{ddd}{mac.hexdigest()[:6]}={local}@{domain}"


class Messages:
    """Builds the envelope and the (already dot-stuffed) content of each transaction."""

    def __init__(self, run_tag: str, rng: random.Random):
        self.run_tag = run_tag
        self.rng = rng
        self.forged = [_crlf_stuffed((CORPUS / f).read_bytes()) for f in FORGED]
        self.bounces = [_crlf_stuffed((CORPUS / f).read_bytes()) for f in BOUNCES]
        para = ("Dear colleague,\r\nhere are the figures we talked about on the phone; the "
                "spreadsheet follows tomorrow.\r\n\r\n")
        self.bodies = [para, para * 8, para * 60]  # about 0.1, 1 and 8 KB
        self.expiry_day = int(time.time() // 86400) + 5

    def soak_id(self, mid: int) -> str:
        return f"{self.run_tag}.{mid}"

    def ordinary(self, mid: int, sender: str, rcpt: str) -> bytes:
        body = self.bodies[mid % 7 // 3]  # 3/7 small, 3/7 medium, 1/7 large
        sid = self.soak_id(mid)
        return (f"X-Soak-Id: {sid}\r\nFrom: <{sender}>\r\nTo: <{rcpt}>\r\n"
                f"Subject: figures {mid}\r\nDate: Mon, 24 Nov 2025 10:00:00 +0000\r\n"
                f"Message-ID: <{sid}@client.test.example>\r\nMIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body).encode()

    def transaction(self, kind: str, mid: int) -> tuple[str, str, bytes | None]:
        """(envelope sender, recipient, content or None when there is no DATA)."""
        rng = self.rng
        user = USERS[mid % len(USERS)]
        outsider = f"s{mid % 97}@{GOOD_DOMAINS[mid % len(GOOD_DOMAINS)]}"
        if kind == "ordinary":
            return outsider, user, self.ordinary(mid, outsider, user)
        if kind == "outbound":
            rcpt = f"r{mid % 89}@{GOOD_DOMAINS[mid % len(GOOD_DOMAINS)]}"
            return user, rcpt, self.ordinary(mid, user, rcpt)
        if kind == "backscatter":
            head = f"X-Soak-Id: {self.soak_id(mid)}\r\n".encode()
            return "", user, head + rng.choice(self.forged)
        if kind == "batv-bounce":
            head = f"X-Soak-Id: {self.soak_id(mid)}\r\n".encode()
            return "", prvs(user, self.expiry_day), head + rng.choice(self.bounces)
        if kind == "bogus-mx":
            return outsider, f"x{mid % 13}@{BOGUS_DOMAINS[mid % len(BOGUS_DOMAINS)]}", None
        if kind == "probe":
            return "", user, None
        raise ValueError(kind)


# -- the load --------------------------------------------------------------------------------------

@dataclass
class Tally:
    """What the client saw. Reply keys are "CODE" or "CODE X.Y.Z" (enhanced status)."""
    by_kind: Counter = field(default_factory=Counter)
    replies: Counter = field(default_factory=Counter)
    final_by_kind: dict[str, Counter] = field(default_factory=dict)
    accepted: dict[str, str] = field(default_factory=dict)  # soak id -> kind
    unexpected: int = 0
    examples: list[str] = field(default_factory=list)
    sessions: int = 0
    last_text: str = ""

    def reply(self, code: int, text: str) -> str:
        self.last_text = text
        enh = text.split(" ", 1)[0]
        key = str(code)
        if code >= 400 and len(enh) >= 5 and enh[0] == key[0] and enh[1] == ".":
            key += " " + enh
        self.replies[key] += 1
        return key

    def final(self, kind: str, key: str) -> None:
        self.by_kind[kind] += 1
        self.final_by_kind.setdefault(kind, Counter())[key] += 1

    def wrong(self, what: str) -> None:
        self.unexpected += 1
        if len(self.examples) < 20:
            self.examples.append(what)


class Unexpected(Exception):
    """A reply other than the expected one: the session is abandoned."""


class Client:
    """asyncio SMTP client; one coroutine per concurrent session, sessions from a shared queue."""

    def __init__(self, server: tuple[str, int], messages: Messages, tally: Tally):
        self.server = server
        self.messages = messages
        self.tally = tally

    async def run(self, plans: list[Plan], concurrency: int) -> None:
        queue = deque(plans)

        async def worker() -> None:
            while queue:
                await self.session(queue.popleft())
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def session(self, plan: Plan) -> None:
        tally = self.tally
        tally.sessions += 1
        done = 0  # transactions of the plan finished
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                *self.server, local_addr=(plan.source, 0)), REPLY_TIMEOUT)

            async def step(line: bytes | None, want: str, kind: str, what: str) -> str:
                if line is not None:
                    writer.write(line)
                key = await self.read_reply(reader)
                if key != want and not key.startswith(want + " "):
                    raise Unexpected(f"{kind} {what} from {plan.source}: got {key!r} "
                                     f"({tally.last_text[:120]!r}), want {want!r}")
                return key

            await step(None, "220", plan.kinds[0], "banner")
            await step(b"EHLO client.test.example\r\n", "250", plan.kinds[0], "EHLO")
            if plan.kinds[0] == "banned":
                # Refused at connect, told at RCPT (delay-reject); Postfix then hangs up.
                await step(b"MAIL FROM:<someone@good.mail.test>\r\n", "250", "banned", "MAIL")
                key = await step(b"RCPT TO:<x@good.mail.test>\r\n", FINAL["banned"], "banned",
                                 "RCPT")
                tally.final("banned", key)
                done = 1
                return
            for kind, mid in zip(plan.kinds, plan.ids):
                sender, rcpt, content = self.messages.transaction(kind, mid)
                await step(f"MAIL FROM:<{sender}>\r\n".encode(), "250", kind, "MAIL")
                if kind == "bogus-mx":
                    key = await step(f"RCPT TO:<{rcpt}>\r\n".encode(), FINAL[kind], kind,
                                     f"RCPT <{rcpt}>")
                    tally.final(kind, key)
                    done += 1
                    await step(b"RSET\r\n", "250", kind, "RSET")
                    continue
                key = await step(f"RCPT TO:<{rcpt}>\r\n".encode(),
                                 FINAL[kind] if kind == "probe" else "250", kind,
                                 f"RCPT <{rcpt}>")
                if kind == "probe":
                    tally.final(kind, key)
                    done += 1
                    await step(b"QUIT\r\n", "221", kind, "QUIT")
                    return
                await step(b"DATA\r\n", "354", kind, "DATA")
                writer.write(content + b".\r\n")
                key = await self.read_reply(reader)
                if key == "250":  # accepted, expected or not: it must be delivered
                    tally.accepted[self.messages.soak_id(mid)] = kind
                if key != FINAL[kind]:
                    raise Unexpected(f"{kind} end of data from {plan.source}: got {key!r} "
                                     f"({tally.last_text[:120]!r}), want {FINAL[kind]!r}")
                tally.final(kind, key)
                done += 1
            await step(b"QUIT\r\n", "221", plan.kinds[-1], "QUIT")
        except Unexpected as e:
            self.fail(plan, done, str(e))
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            self.fail(plan, done, f"session from {plan.source}: {type(e).__name__}: {e}")
        finally:
            if writer is not None:
                writer.close()
                try:
                    await writer.wait_closed()
                except OSError:
                    pass

    def fail(self, plan: Plan, done: int, what: str) -> None:
        """Count the transaction that went wrong and the ones the session never reached."""
        self.tally.wrong(what)
        for i, kind in enumerate(plan.kinds[done:]):
            self.tally.final(kind, "unexpected" if i == 0 else "not reached")

    async def read_reply(self, reader: asyncio.StreamReader) -> str:
        first: tuple[int, str] | None = None
        while True:
            line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
            if not line:
                raise ValueError("connection closed")
            if first is None:  # the code and the enhanced status are those of the first line
                first = int(line[:3]), line[4:].decode("utf-8", "replace").strip()
            if line[3:4] != b"-":
                break
        return self.tally.reply(*first)


# -- delivery sink and sampling ----------------------------------------------------------------

class SmtpSink:
    """Postfix's smtp-sink on a loopback port, dumping each delivered message into a file."""

    def __init__(self):
        self.dir = make_instance_dir("smtp-sink")
        self.dump = self.dir / "dump"
        self.dump.mkdir()
        self.dump.chmod(0o1777)  # smtp-sink writes as nobody
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> "SmtpSink":
        self.port = free_port()
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-u", "nobody", "-h", "sink.test.example",
             "-d", f"{self.dump}/%H%M/", f"127.0.0.1:{self.port}", "256"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "smtp-sink.log", "wb"))
        wait_until(lambda: self.proc.poll() is not None or can_connect("127.0.0.1", self.port),
                   10, what="smtp-sink")
        if self.proc.poll() is not None:
            raise RuntimeError("smtp-sink did not start: "
                               + (self.dir / "smtp-sink.log").read_text())
        return self

    @property
    def nexthop(self) -> str:
        return f"smtp:[127.0.0.1]:{self.port}"

    def scan(self) -> tuple[Counter, dict[str, str], int]:
        """(count per soak id, envelope recipient per soak id, files without an id)."""
        ids: Counter = Counter()
        rcpts: dict[str, str] = {}
        anonymous = 0
        for sub in os.scandir(self.dump):
            for entry in os.scandir(sub.path):
                with open(entry.path, "rb") as f:
                    head = f.read(4096)
                sid = rcpt = None
                for line in head.split(b"\n"):
                    if line.startswith(b"X-Soak-Id: "):
                        sid = line[11:].strip().decode()
                        break
                    if line.startswith(b"X-Rcpt-Args: "):
                        rcpt = line[13:].split(b">")[0].split(b"<")[-1].decode()
                if sid is None:
                    anonymous += 1
                    continue
                ids[sid] += 1
                rcpts[sid] = rcpt or ""
        return ids, rcpts, anonymous

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class RedisServer:
    def __init__(self):
        self.dir = make_instance_dir("redis")
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: can_connect("127.0.0.1", self.port), 10, what="redis-server")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@dataclass
class Sample:
    t: float
    rss: int  # bytes
    fds: int
    threads: int
    pooled: int = 0  # of the fds: connections to Redis (--state redis)

    @property
    def own_fds(self) -> int:
        """fds other than pooled Redis connections (mxguard keeps up to REDIS_POOL idle)."""
        return self.fds - self.pooled


def sample(pid: int) -> Sample:
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return Sample(time.monotonic(), rss, len(os.listdir(f"/proc/{pid}/fd")), threads)


class Sampler(threading.Thread):
    """Samples the daemon every `interval` seconds while the load runs."""

    def __init__(self, pid: int, interval: float, trace=None):
        super().__init__(daemon=True, name="soak-sampler")
        self.pid, self.interval, self.trace = pid, interval, trace
        self.samples: list[Sample] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.samples.append(sample(self.pid))
            except OSError:
                return
            if self.trace:
                self.trace(self.samples[-1])

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def milter_connections(daemon: Mxguard) -> int:
    """Open connections on the daemon's milter socket (unix socket: /proc/net/unix)."""
    path = daemon.socket.path
    with open("/proc/net/unix") as f:
        return sum(1 for line in f if line.rstrip().endswith(" " + path)) - 1


def tcp_peers(pid: int, port: int) -> int:
    """The process's open TCP connections to 127.0.0.1:`port` (Redis: the pooled ones)."""
    inodes = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    want = f"0100007F:{port:04X}"
    n = 0
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[2] == want and cols[9] in inodes:
                n += 1
    return n


def idle_sample(daemon: Mxguard, redis_port: int = 0, timeout: float = 60.0) -> Sample:
    """Wait until no MTA connection is open to the daemon, then sample for about a second:
    the fewest fds (and pooled Redis connections) and threads seen, the last RSS."""
    pid = daemon.proc.pid
    try:
        wait_until(lambda: milter_connections(daemon) <= 0, timeout, interval=0.1,
                   what="mxguard's milter connections to close")
    except TimeoutError:
        pass  # sampled anyway: a connection that never closes shows in the fd count
    samples = []
    for _ in range(10):
        time.sleep(0.1)
        s = sample(pid)
        if redis_port:
            s.pooled = tcp_peers(pid, redis_port)
        samples.append(s)
    fewest = min(samples, key=lambda s: (s.own_fds, s.pooled))
    return Sample(samples[-1].t, samples[-1].rss, fewest.fds,
                  min(s.threads for s in samples), fewest.pooled)


# -- the run ---------------------------------------------------------------------------------------

@dataclass
class Result:
    options: Options
    tally: Tally
    counts: dict[str, int]
    delivered: Counter = field(default_factory=Counter)
    delivered_rcpt: dict[str, str] = field(default_factory=dict)
    anonymous: int = 0
    start: Sample | None = None
    warm: Sample | None = None
    end: Sample | None = None
    during: list[Sample] = field(default_factory=list)
    seconds_warm: float = 0.0
    seconds_main: float = 0.0
    seconds_drain: float = 0.0
    queue_left: int = 0
    daemon_error: str | None = None
    banned_ok: int = 0
    decisions: Counter = field(default_factory=Counter)  # (word, stage, check) from the log
    asan: bool = False  # the daemon runs with AddressSanitizer
    threads_warm: int = 0  # threads started (ASan's count) at the warm-up sample
    threads_end: int = 0

    def decisions_by_check(self) -> Counter:
        out: Counter = Counter()
        for (word, _, check), n in self.decisions.items():
            out[f"{word} {check}"] += n
        return out

    def expected_decisions(self) -> Counter:
        return Counter({f"reject {check}": self.tally.by_kind[kind]
                        for kind, check in REFUSED_BY.items() if self.tally.by_kind[kind]})

    # -- derived
    @property
    def accepted(self) -> int:
        return len(self.tally.accepted)

    @property
    def lost(self) -> list[str]:
        return sorted(i for i in self.tally.accepted if i not in self.delivered)

    @property
    def unaccepted_delivered(self) -> list[str]:
        return sorted(i for i in self.delivered if i not in self.tally.accepted)

    @property
    def duplicates(self) -> list[str]:
        return sorted(i for i, n in self.delivered.items() if n > 1)

    @property
    def tagged_delivered(self) -> list[str]:
        """BATV bounces that reached the sink still addressed to the tagged recipient."""
        return sorted(i for i, k in self.tally.accepted.items()
                      if k == "batv-bounce" and self.delivered_rcpt.get(i, "").startswith("prvs="))

    def rss_bound(self) -> int:
        after = self.options.messages - self.options.warmup_count()
        asan = ASAN_BYTES_PER_MESSAGE * after if self.asan else 0
        return int(self.warm.rss * (1 + RSS_SLACK_RATIO) + RSS_SLACK_BYTES + asan)

    def failures(self) -> list[str]:
        out = []
        if self.daemon_error:
            out.append("daemon: " + self.daemon_error.splitlines()[0])
        if self.tally.unexpected:
            out.append(f"{self.tally.unexpected} unexpected replies")
        if self.decisions_by_check() != self.expected_decisions():
            out.append(f"mxguard logged {dict(self.decisions_by_check())}, expected "
                       f"{dict(self.expected_decisions())}")
        if sum(self.tally.by_kind.values()) != self.options.messages:
            out.append(f"{sum(self.tally.by_kind.values())} messages run, "
                       f"{self.options.messages} planned")
        if self.lost:
            out.append(f"{len(self.lost)} accepted but not delivered")
        if self.unaccepted_delivered:
            out.append(f"{len(self.unaccepted_delivered)} delivered but not accepted")
        if self.duplicates:
            out.append(f"{len(self.duplicates)} delivered more than once")
        if self.anonymous:
            out.append(f"{self.anonymous} delivered files without a soak id")
        if self.tagged_delivered:
            out.append(f"{len(self.tagged_delivered)} BATV bounces delivered to the tagged "
                       "address")
        if self.queue_left:
            out.append(f"{self.queue_left} messages left in Postfix's queue")
        if self.warm and self.end:
            if self.end.own_fds != self.warm.own_fds:
                out.append(f"fds {self.warm.own_fds} after warm-up, {self.end.own_fds} at the "
                           "end" + (" (besides pooled Redis connections)"
                                    if self.options.state == "redis" else ""))
            if self.end.pooled > REDIS_POOL:
                out.append(f"{self.end.pooled} Redis connections open at the end, pool "
                           f"holds at most {REDIS_POOL}")
            if self.end.rss > self.rss_bound():
                out.append(f"RSS grew from {mb(self.warm.rss)} to {mb(self.end.rss)} "
                           f"(bound {mb(self.rss_bound())})")
        return out

    def report(self) -> str:
        o, t = self.options, self.tally
        lines = [f"soak: {o.messages} messages, {o.sessions} concurrent sessions, "
                 f"warm-up {o.warmup_count()}, state {o.state}, seed {o.seed}, "
                 f"{t.sessions} SMTP sessions"]
        lines.append("messages by kind (final reply):")
        for k in KINDS:
            finals = ", ".join(f"{c} x {n}" for c, n in sorted(t.final_by_kind.get(k, {}).items()))
            lines.append(f"  {k:12s} {t.by_kind[k]:7d}   want {FINAL[k]:10s} got: {finals}")
        lines.append("replies by code (every reply, banners and QUIT included): "
                     + ", ".join(f"{c} x {n}" for c, n in sorted(t.replies.items())))
        lines.append("mxguard's own decision lines: " + ", ".join(
            f"{w} {st} check={c} x {n}" for (w, st, c), n in sorted(self.decisions.items())))
        lines.append(f"accepted {self.accepted}, delivered {sum(self.delivered.values())} "
                     f"(distinct ids {len(self.delivered)}); lost {len(self.lost)}, "
                     f"delivered-not-accepted {len(self.unaccepted_delivered)}, "
                     f"duplicates {len(self.duplicates)}, without id {self.anonymous}, "
                     f"left in queue {self.queue_left}")
        run_s = self.seconds_warm + self.seconds_main
        main_n = o.messages - o.warmup_count()
        lines.append(f"throughput: {o.messages / run_s:.1f} msgs/s overall "
                     f"({run_s:.1f} s of load), {main_n / self.seconds_main:.1f} msgs/s after "
                     f"warm-up; queue drained {self.seconds_drain:.1f} s after the last reply")
        lines.append("mxguard (idle samples)      RSS        fds  threads")
        for name, s in (("start", self.start), ("after warm-up", self.warm), ("end", self.end)):
            if s:
                pooled = f"   ({s.pooled} of the fds pooled Redis connections)" \
                    if o.state == "redis" else ""
                lines.append(f"  {name:24s} {mb(s.rss):>10s} {s.fds:6d} {s.threads:6d}{pooled}")
        if self.during:
            d = self.during
            lines.append(f"  during the load ({len(d)} samples): RSS {mb(min(s.rss for s in d))}"
                         f"-{mb(max(s.rss for s in d))}, fds {min(s.fds for s in d)}-"
                         f"{max(s.fds for s in d)}, threads {min(s.threads for s in d)}-"
                         f"{max(s.threads for s in d)}")
        if self.warm and self.end:
            lines.append(f"  RSS growth after warm-up: {mb(self.end.rss - self.warm.rss)} "
                         f"(bound {mb(self.rss_bound() - self.warm.rss)}); fds end - warm: "
                         f"{self.end.own_fds - self.warm.own_fds}")
        if self.asan and self.warm and self.end:
            after = o.messages - o.warmup_count()
            lines.append(f"  ASan build: {self.threads_end} threads started in all, "
                         f"{self.threads_end - self.threads_warm} after warm-up; RSS growth "
                         f"{(self.end.rss - self.warm.rss) / after:.0f} bytes per message after "
                         f"warm-up ({ASAN_BYTES_PER_MESSAGE} allowed under ASan)")
        for ex in t.examples[:10]:
            lines.append(f"  unexpected: {ex}")
        for i in self.lost[:10]:
            lines.append(f"  lost: {i} ({t.accepted[i]})")
        fails = self.failures()
        lines.append("VERDICT: " + ("PASS" if not fails else "FAIL: " + "; ".join(fails)))
        return "\n".join(lines)


def mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB"


def mxguard_config(nsd: Nsd, state_dir: Path, redis: RedisServer | None) -> str:
    keys = state_dir / "batv.keys"
    keys.write_text(f"0 {BATV_KEY}\n")
    keys.chmod(0o600)
    state = (f"state = redis://127.0.0.1:{redis.port}/0\n" if redis
             else f"state-file = {state_dir}/mxguard.state\n")
    return (f"dns-server = {nsd.server}\n"
            f"bogus-networks = {REPO / 'rules' / 'bogus-networks.cidr'}\n"
            f"message-rules = {REPO / 'rules'}\n"
            f"local-domains = {LOCAL_DOMAIN}\n"
            f"trusted-networks = {TRUSTED}/32\n"
            "our-relays = mx-out.example.com\n"
            f"batv-key-file = {keys}\n"
            "batv-sign = yes\n"
            "check.batv = on\n"
            "check.backscatter = on\n"
            f"unhandled-domains = {WEBSITE_DOMAIN}\n"
            "ban-strikes = 3\n"
            "ban-window = 10m\n"
            "ban-time = 12h\n"
            # The soak's clients are loopback addresses playing remote hosts.
            "ban-loopback = yes\n"
            f"allow-networks = {TRUSTED}/32\n"
            + state +
            f"metrics-file = {state_dir}/mxguard.prom\n"
            "syslog = no\n")


def sanitizer_env() -> dict[str, str]:
    """Sanitizer options for the daemon (a build without sanitizers ignores them).

    ASan holds freed memory back in a quarantine (256 MB by default) to catch use after free,
    and hands it out again in an order that keeps touching new pages: under ASan, RSS then grows
    for tens of thousands of messages (measured: +31 MB over 29,000 messages after warm-up with
    a 16 MB quarantine, while a RelWithDebInfo build stays within 0.1 MB) and the growth it
    shows is the sanitizer's, not the daemon's. The soak therefore runs without quarantine;
    every other ASan check stays on, LeakSanitizer runs at exit (with the suite's
    suppressions unless LSAN_OPTIONS says otherwise), and the other e2e tests keep the
    quarantine. verbosity=1 makes ASan log "T<n>: stack ..." for each thread it starts, n
    counting every thread ever started: see asan_threads().
    """
    asan = os.environ.get("ASAN_OPTIONS", "abort_on_error=0:print_summary=1")
    return {"ASAN_OPTIONS": f"{asan}:quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
                            ":verbosity=1",
            "LSAN_OPTIONS": os.environ.get(
                "LSAN_OPTIONS", f"suppressions={REPO / 'tests' / 'lsan.supp'}:print_suppressions=0")}


ASAN_THREAD = re.compile(r"^==\d+==T(\d+): stack ")


def asan_threads(daemon: Mxguard) -> int:
    """Threads the daemon has started so far, as ASan numbers them (it never reuses a number).

    libmilter's worker pool starts a thread whenever a command arrives and no worker is idle,
    and lets it end when more than one is idle: about 1.4-1.7 threads per message at 50
    sessions. ASan keeps a record of every thread that ever ran (its thread registry does not
    reuse entries) and hands each dying thread's allocator cache back to shared free lists:
    the likely source of the RSS creep seen only under ASan (ASAN_BYTES_PER_MESSAGE).
    """
    last = 0
    for line in reversed(daemon.log_lines(since_mark=False)):
        m = ASAN_THREAD.match(line)
        if m:
            last = int(m.group(1))
            break
    return last


def ban_clients(server: Postfix, daemon: Mxguard) -> int:
    """Three strikes on the null-MX website domain from each BANNED address; wait for the
    bans. Returns how many clients were banned."""
    for client in BANNED:
        for i in range(3):
            r = send(server, sender="sender@good.mail.test", recipients=[f"info@{WEBSITE_DOMAIN}"],
                     source=client, subject=f"strike {i}")
            if not r.rcpts or r.rcpts[0].code != 556:
                raise RuntimeError(f"strike from {client}: {r.last()}")
    for client in BANNED:
        daemon.wait_log(rf"ban {client.replace('.', '[.]')} for ", timeout=30)
    return len(BANNED)


def run(opts: Options, log=print) -> Result:
    """Set everything up, run the soak, tear down; returns the figures (raises only when the
    set-up fails)."""
    rng = random.Random(opts.seed)
    counts = kind_counts(opts.messages)
    kinds = [k for k in KINDS for _ in range(counts[k])]
    rng.shuffle(kinds)
    warm_n = opts.warmup_count()
    warm_plans = plan_sessions(kinds[:warm_n], 0, rng, opts.max_per_session)
    main_plans = plan_sessions(kinds[warm_n:], warm_n, rng, opts.max_per_session)
    tally = Tally()
    result = Result(opts, tally, counts)
    messages = Messages(f"{os.getpid():x}{rng.getrandbits(24):06x}", rng)

    nsd = Nsd()
    redis = RedisServer() if opts.state == "redis" else None
    sink = SmtpSink()
    daemon: Mxguard | None = None
    server: Postfix | None = None
    sampler: Sampler | None = None
    try:
        nsd.start()
        if redis:
            redis.start()
        sink.start()
        state_dir = make_instance_dir("soak-state")
        daemon = Mxguard(mxguard_config(nsd, state_dir, redis), env=sanitizer_env()).start()
        result.asan = "libasan" in Path(f"/proc/{daemon.proc.pid}/maps").read_text()
        result.start = idle_sample(daemon, redis.port if redis else 0)
        hop = sink.nexthop
        server = Postfix(milter=daemon.socket, config={
            "default_transport": hop, "relay_transport": hop, "local_transport": hop,
            "virtual_transport": hop}).start()
        log(f"soak: mxguard pid {daemon.proc.pid}, postfix port {server.port}, "
            f"smtp-sink port {sink.port}, nsd {nsd.server}")
        result.banned_ok = ban_clients(server, daemon)
        client = Client(server.address, messages, tally)
        t_load = time.monotonic()

        def trace(s: Sample) -> None:
            log(f"  {s.t - t_load:7.1f} s {sum(tally.by_kind.values()):7d} msgs  "
                f"RSS {mb(s.rss):>9s}  fds {s.fds:4d}  threads {s.threads:3d}")
        sampler = Sampler(daemon.proc.pid, opts.sample_interval,
                          trace if opts.verbose else None)
        sampler.start()

        daemon.mark_log()
        t0 = time.monotonic()
        asyncio.run(client.run(warm_plans, opts.sessions))
        result.seconds_warm = time.monotonic() - t0
        log(f"soak: warm-up: {warm_n} messages in {result.seconds_warm:.1f} s")
        result.warm = idle_sample(daemon, redis.port if redis else 0)
        result.threads_warm = asan_threads(daemon)

        t0 = time.monotonic()
        asyncio.run(client.run(main_plans, opts.sessions))
        result.seconds_main = time.monotonic() - t0
        log(f"soak: main: {opts.messages - warm_n} messages in {result.seconds_main:.1f} s")
        result.end = idle_sample(daemon, redis.port if redis else 0)
        result.threads_end = asan_threads(daemon)
        sampler.stop()
        result.during = sampler.samples

        t0 = time.monotonic()
        try:
            server.wait_queue_empty(opts.drain_timeout)
        except TimeoutError:
            pass
        result.seconds_drain = time.monotonic() - t0
        result.queue_left = server.queued()
        time.sleep(0.5)  # the last smtp-sink files are closed after its reply to Postfix
        result.delivered, result.delivered_rcpt, result.anonymous = sink.scan()
        for line in daemon.log_lines():
            m = DECISION.search(line)
            if m:
                result.decisions[m.groups()] += 1
    finally:
        # Each step on its own: one failing must not leave the others' processes running.
        def stop_daemon() -> None:
            try:
                daemon.stop()
            except MxguardError as e:
                text = str(e)
                summary = [l for l in text.splitlines() if "SUMMARY:" in l or "ERROR:" in l]
                result.daemon_error = " ".join([text.split("\n", 1)[0]] + summary[:2]) + \
                    "\n" + text[-5000:]
        steps = [sampler.stop if sampler else None, server.stop if server else None,
                 stop_daemon if daemon else None, sink.stop, redis.stop if redis else None,
                 nsd.cleanup]
        for step in steps:
            if step is None:
                continue
            try:
                step()
            except Exception as e:  # noqa: BLE001 - report, and go on stopping the rest
                log(f"soak: tear-down step {getattr(step, '__qualname__', step)} failed: {e!r}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=None,
                    help="messages before the 'after warm-up' sample (default 10%%)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--state", choices=("memory", "redis"), default="memory")
    ap.add_argument("--sample-interval", type=float, default=1.0)
    ap.add_argument("--verbose", action="store_true", help="print every sample as taken")
    args = ap.parse_args()
    opts = Options(messages=args.messages, sessions=args.sessions, warmup=args.warmup,
                   seed=args.seed, state=args.state, sample_interval=args.sample_interval,
                   verbose=args.verbose)
    result = run(opts)
    print(result.report())
    if result.failures() or os.environ.get("MXGUARD_E2E_KEEP"):
        print(f"files kept in {util.run_dir()}")
    else:
        shutil.rmtree(util.run_dir(), ignore_errors=True)
    return 1 if result.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
