"""What a running process holds, from /proc: resident memory, threads, open descriptors.

Used by the fault tests (nothing may grow without bound after a dropped connection or a huge
message) and by the session-memory benchmark.
"""

from __future__ import annotations

import os


def _status(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def rss_kb(pid: int) -> int:
    """Resident set size in KiB (VmRSS)."""
    return int(_status(pid)["VmRSS"].split()[0])


def hwm_kb(pid: int) -> int:
    """Peak resident set size in KiB (VmHWM)."""
    return int(_status(pid)["VmHWM"].split()[0])


def threads(pid: int) -> int:
    return int(_status(pid)["Threads"])


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def snapshot(pid: int) -> dict[str, int]:
    """rss_kb, hwm_kb, threads and fds at once, for messages."""
    st = _status(pid)
    return {"rss_kb": int(st["VmRSS"].split()[0]), "hwm_kb": int(st["VmHWM"].split()[0]),
            "threads": int(st["Threads"]), "fds": fds(pid)}
