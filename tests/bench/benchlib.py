"""Pieces the Postfix benchmarks share: where the C++ bench programs are, a Postfix that
delivers to discard, and one smtp_load run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Postfix delivering every accepted message to discard: the milter and smtpd are measured,
#: not a delivery agent (the test sink's pipe would cost a process per message).
DISCARD = {"default_transport": "discard", "relay_transport": "discard",
           "local_transport": "discard", "virtual_transport": "discard"}


def bench_bin(name: str) -> Path:
    """A program built from tests/bench (MXGUARD_BENCH_BIN, default build/tests/bench)."""
    d = Path(os.environ.get("MXGUARD_BENCH_BIN") or REPO / "build" / "tests" / "bench")
    if not (d / name).exists():
        sys.exit(f"{d / name} not found: build target {name} or set MXGUARD_BENCH_BIN")
    return d / name


def knows_own_files(binary: Path) -> bool:
    """Whether an mxguard binary (--compare-bin) knows socket-mode and the ledger's files, as
    every tree since 2026-12-04 does; the harness then gives it its own, as to the binary under
    test. An older binary gets its socket opened by the harness instead."""
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30)
    return "--socket-mode" in out.stdout + out.stderr


def smtp_load(server, sessions: int, messages: int, sender: str, rcpt_pattern: str,
              first: int = 1, size: int = 4096, per_connection: int = 1) -> dict:
    """Run tests/bench/smtp_load against a Postfix; its JSON result ("{n}" in rcpt_pattern
    becomes the message number, from `first`; `per_connection` messages share a session)."""
    out = subprocess.run(
        [str(bench_bin("smtp_load")), "--host", server.host, "--port", str(server.port),
         "--sessions", str(sessions), "--messages", str(messages), "--size", str(size),
         "--from", sender, "--to", rcpt_pattern, "--first", str(first),
         "--per-connection", str(per_connection)],
        capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(out.stdout)


class DelayProxy:
    """tests/bench/dns_delay: forwards every DNS query to `upstream` ("host:port") `delay_ms`
    after it came (the C++ form of dnstest.Responder("delay:..."), cheap enough not to take
    CPU from what is measured). Same interface: start(), server, queries, stop()."""

    def __init__(self, upstream: str, delay_ms: int):
        self.args = [str(bench_bin("dns_delay")), "--upstream", upstream,
                     "--delay-ms", str(delay_ms)]
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> "DelayProxy":
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.port = int(self.proc.stdout.readline())
        return self

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def queries(self) -> int:
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def stop(self) -> None:
        if self.proc:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
            self.proc = None


def stop_all(servers, daemons, proxy, nsd=None) -> None:
    """The end of a benchmark: each Postfix stopped and its files removed, each milter
    stopped, the DNS proxy stopped, and nsd stopped with its files."""
    for s in servers:
        s.stop()
        s.cleanup()
    for d in daemons:
        d.stop()
    proxy.stop()
    if nsd is not None:
        nsd.cleanup()
