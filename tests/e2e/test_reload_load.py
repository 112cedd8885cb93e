"""Reload under load (issue 6): SIGUSR1 while many transactions run through Postfix.

A reload swaps the policy for new connections only; transactions under way finish under the
policy they started with. Under load that means no transaction may fail, no message may be
lost, and the daemon stays up through every swap.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from test_foundation import OUTSIDE, config
from harness.smtp import send
from harness.util import wait_until

MESSAGES = 300
CONCURRENCY = 20
RELOADS = 20


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    (tmp_path / "rcpt.regexp").write_text("/^blocked-[a-z]+@/  551 5.7.1 Blocked\n")
    (tmp_path / "clients.cidr").write_text("127.0.0.66/32   REJECT blocked\n")
    return tmp_path


@pytest.mark.mtas("postfix")
def test_twenty_reloads_during_300_concurrent_transactions(mta, mxguard, tables, sink):
    d = mxguard(config(tables))
    server = mta(milter=d.socket)
    results: list = []
    done = [0]  # transactions finished so far
    lock = threading.Lock()
    reloaded = threading.Event()
    tail = MESSAGES - CONCURRENCY  # the last round is sent only after the last reload

    def one(i: int):
        if i >= tail:
            reloaded.wait(300)
        r = send(server, subject=f"load {i}", recipients=["carol@dest.test.example"],
                 source=OUTSIDE)
        with lock:
            done[0] += 1
        return r

    def load():
        with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            results.extend(pool.map(one, range(MESSAGES)))

    sender = threading.Thread(target=load)
    sender.start()
    d.mark_log()
    try:
        for i in range(RELOADS):
            # Spread over the load by its progress, not by time: reload i once i + 1 shares
            # of the ungated part are done. The held last round keeps every reload within the
            # load, however fast the machine.
            share = (i + 1) * tail // (RELOADS + 1)
            wait_until(lambda: done[0] >= share, 120, what=f"{share} transactions done")
            # Each reload really changes a table, so every swap builds a new policy.
            with open(tables / "rcpt.regexp", "a") as f:
                f.write(f"/^reload-{i}@/  550 5.7.1 Reload {i}\n")
            d.reload()  # returns once the daemon has logged it
    finally:
        reloaded.set()
    sender.join(300)
    assert not sender.is_alive(), "the load did not finish"

    assert len(results) == MESSAGES
    failed = [str(r.last()) for r in results if not r.accepted]
    assert not failed, failed
    delivered = sink.wait_for(MESSAGES, timeout=120)
    assert len(delivered) == MESSAGES
    assert sorted(m.subject for m in delivered) == sorted(f"load {i}" for i in range(MESSAGES))
    assert d.alive()
    lines = d.log_lines()
    assert sum("reloaded configuration" in line for line in lines) == RELOADS
    assert not [line for line in lines if "reload failed" in line]
    # New connections see the table of the last reload.
    last = send(server, recipients=[f"reload-{RELOADS - 1}@dest.test.example"], source=OUTSIDE)
    assert last.rcpts[0].code == 550
