"""A private redis-server on a loopback port, for the tests of shared state (bans, the ledger)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from harness.util import wait_until


def start_redis(port: int, directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            assert proc.poll() is None, f"redis-server exited with {proc.returncode}"
            return False
    wait_until(up, 10, what=f"redis-server on port {port}")
    return proc


def stop_redis(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(10)
