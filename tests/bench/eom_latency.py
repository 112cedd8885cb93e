#!/usr/bin/python3
"""End-of-message latency that mxguard adds through Postfix (issue 4). Prints figures; not a test.

Sends the corpus bounces, padded to 4-8 KB as bench_classifier pads them, through a private
Postfix whose smtpd calls mxguard, and times DATA -> final reply on the client side. Two runs:
check.backscatter off and on (every other check off in both), so the difference is the
classifier and the backscatter decision at end of headers and end of message.

Run: MXGUARD_BIN=build-perf/milter/mxguard /usr/bin/python3 tests/bench/eom_latency.py [N]
(N messages per run, default 300). Loopback only.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.dont_write_bytecode = True
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from harness.milter import Mxguard  # noqa: E402
from harness.postfix import Postfix  # noqa: E402
from harness.sink import Sink  # noqa: E402
from harness.smtp import SmtpSession  # noqa: E402
from test_backscatter import other_checks_off  # noqa: E402

CORPUS = REPO / "tests" / "data" / "messages"
FILLER = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n"


def pad(text: bytes, target: int) -> bytes:
    end = text.rfind(b"\n--")
    filler = b""
    while len(text) + len(filler) < target:
        filler += FILLER
    if end < 0:
        return text + filler
    return text[:end + 1] + filler + text[end + 1:]


def bounces() -> list[bytes]:
    out = []
    for p in sorted(CORPUS.iterdir()):
        if p.name.startswith(("dsn-", "bounce-")):
            out.append(pad(p.read_bytes(), 4096 + (len(out) % 5) * 1024))
    return out


def run(backscatter: bool, messages: list[bytes], n: int) -> tuple[list[float], dict[int, int]]:
    config = (other_checks_off() + "local-domains = example.com\n"
              "our-relays = mx-out.example.com\n"
              f"check.backscatter = {'on' if backscatter else 'off'}\n")
    times: list[float] = []
    codes: dict[int, int] = {}
    sink = Sink()
    with Mxguard(config) as d, Postfix(milter=d, sink=sink) as mta:
        with SmtpSession(mta) as s:
            s.ehlo()
            for i in range(n + 20):  # the first 20 warm up both daemons
                s.mail("")
                s.rcpt("alice@example.com")
                start = time.perf_counter()
                _, end = s.data(messages[i % len(messages)])
                elapsed = time.perf_counter() - start
                s.rset()
                if i < 20 or end is None:
                    continue
                times.append(elapsed)
                codes[end.code] = codes.get(end.code, 0) + 1
            s.quit()
    sink.remove()
    return times, codes


def p99(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * 0.99))]


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    msgs = bounces()
    figures = {}
    for on in (False, True):
        times, codes = run(on, msgs, n)
        figures[on] = (statistics.median(times), p99(times))
        print(f"check.backscatter={'on ' if on else 'off'}  n={len(times)}  "
              f"median {figures[on][0] * 1e3:.2f} ms  p99 {figures[on][1] * 1e3:.2f} ms  "
              f"replies {dict(sorted(codes.items()))}")
    print(f"on/off ratio: median {figures[True][0] / figures[False][0]:.2f}  "
          f"p99 {figures[True][1] / figures[False][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
