"""Reload under load (issue 6): SIGUSR1 while many transactions run through Postfix.

A reload swaps the policy for new connections only; transactions under way finish under the
policy they started with. Under load that means no transaction may fail, no message may be
lost, and the daemon stays up through every swap.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from test_foundation import OUTSIDE, config
from harness.smtp import send, send_many

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

    def load():
        results.extend(send_many(server, MESSAGES, concurrency=CONCURRENCY, source=OUTSIDE,
                                 subject_prefix="load", recipients=["carol@dest.test.example"]))

    sender = threading.Thread(target=load)
    sender.start()
    d.mark_log()
    under_load = 0
    for i in range(RELOADS):
        # Each reload really changes a table, so every swap builds a new policy.
        with open(tables / "rcpt.regexp", "a") as f:
            f.write(f"/^reload-{i}@/  550 5.7.1 Reload {i}\n")
        under_load += sender.is_alive()
        d.reload(settle=0.05)
        time.sleep(0.05)
    sender.join(300)
    # The reloads must overlap the load, or this test proves nothing.
    assert under_load == RELOADS, f"only {under_load} reloads during the load"
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
