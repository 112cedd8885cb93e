"""DNS servers for the tests: a real nsd serving tests/data/zones on a free loopback port, and
tiny misbehaving UDP responders (SERVFAIL, garbage, wrong id, silence) on others.

    with Nsd() as ns:                    # ns.server == "127.0.0.1:PORT"
        ...
    with Responder("servfail") as bad:   # bad.server == "127.0.0.1:PORT"
        ...

Everything listens on 127.0.0.1 only. nsd runs as root with username "" (no privilege drop),
in the foreground, with its own config, pid, log and state files in a temporary directory.
"""

from __future__ import annotations

import heapq
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
ZONES_DIR = REPO_ROOT / "tests" / "data" / "zones"
NSD = shutil.which("nsd") or "/usr/sbin/nsd"


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (nsd needs both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port")


def make_query(name: str, qtype: int = 6, qid: int | None = None) -> bytes:
    qid = random.randrange(65536) if qid is None else qid
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return header + qname + struct.pack("!HH", qtype, 1)


def ask(server: tuple[str, int], name: str, qtype: int = 6, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(make_query(name, qtype), server)
        try:
            return s.recv(4096)
        except OSError:
            return None


class Nsd:
    def __init__(self, zones_dir: Path = ZONES_DIR):
        self.zones_dir = Path(zones_dir)
        self.dir = Path(tempfile.mkdtemp(prefix="mxguard-nsd-"))
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> str:
        zones = sorted(p.name[: -len(".zone")] for p in self.zones_dir.glob("*.zone"))
        lines = [
            "server:",
            f"  ip-address: 127.0.0.1@{self.port}",
            f"  port: {self.port}",
            '  username: ""',
            '  chroot: ""',
            f'  zonesdir: "{self.zones_dir}"',
            '  database: ""',
            f'  zonelistfile: "{self.dir}/zone.list"',
            f'  xfrdfile: "{self.dir}/xfrd.state"',
            f'  xfrdir: "{self.dir}"',
            f'  pidfile: "{self.dir}/nsd.pid"',
            f'  logfile: "{self.dir}/nsd.log"',
            "  server-count: 1",
            "  do-ip6: no",
            "  hide-version: yes",
            "  verbosity: 1",
            # No response rate limiting: nsd's default (200 answers a second to one
            # client) silently drops answers in the concurrency benchmarks.
            "  rrl-ratelimit: 0",
            "remote-control:",
            "  control-enable: no",
        ]
        for z in zones:
            lines += ["zone:", f'  name: "{z}"', f'  zonefile: "{z}.zone"']
        return "\n".join(lines) + "\n"

    def start(self) -> "Nsd":
        last = ""
        for _ in range(5):
            self.port = free_port()
            conf = self.dir / "nsd.conf"
            conf.write_text(self._config())
            check = subprocess.run([NSD + "-checkconf", str(conf)], capture_output=True, text=True)
            if check.returncode != 0:
                raise RuntimeError(f"nsd-checkconf: {check.stderr}{check.stdout}")
            self.proc = subprocess.Popen([NSD, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if ask(("127.0.0.1", self.port), "mail.test") is not None:
                    return self
                time.sleep(0.05)
            last = self._log()
            self.stop()
        raise RuntimeError(f"nsd did not start: {last}")

    def _log(self) -> str:
        p = self.dir / "nsd.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Nsd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


class Responder:
    """A UDP 'DNS server' that misbehaves on purpose.

    modes: servfail (proper SERVFAIL reply), garbage (random bytes), mismatch (a NOERROR
    reply with the wrong id), truncated (TC bit set, and no TCP listener), silent (reads,
    never answers), delay:<ms>:<host:port> (forwards to a real server after a delay, for the
    concurrency benchmark).
    """

    def __init__(self, mode: str):
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Responder":
        self._thread.start()
        return self

    def _answer(self, data: bytes) -> bytes | None:
        if len(data) < 12:
            return None
        qid, flags = struct.unpack("!HH", data[:4])
        question = data[12:]
        if self.mode == "servfail":
            return struct.pack("!HHHHHH", qid, 0x8182, 1, 0, 0, 0) + question
        if self.mode == "garbage":
            return os.urandom(random.randrange(1, 64))
        if self.mode == "mismatch":
            return struct.pack("!HHHHHH", qid ^ 0x5A5A, 0x8180, 1, 0, 0, 0) + question
        if self.mode == "truncated":
            return struct.pack("!HHHHHH", qid, 0x8380, 1, 0, 0, 0) + question
        return None

    def _run(self) -> None:
        if self.mode.startswith("delay:"):
            self._run_delay()
            return
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.queries += 1
            reply = self._answer(data)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def _run_delay(self) -> None:
        """Forwards every query to the real server `delay` after it came, in one thread: a
        heap of queries waiting for their time, and one upstream socket whose query ids are
        renumbered so that answers find their way back to the right client."""
        _, ms, target = self.mode.split(":", 2)
        host, port = target.rsplit(":", 1)
        delay = int(ms) / 1000
        upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        upstream.connect((host, int(port)))
        waiting: list[tuple[float, int, bytes, tuple]] = []  # (due, seq, query, client)
        pending: dict[int, tuple[bytes, tuple, float]] = {}  # new id -> (old id, client, sent)
        seq = 0
        next_id = 0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                while waiting and waiting[0][0] <= now:
                    _, _, query, client = heapq.heappop(waiting)
                    next_id = (next_id + 1) % 65536
                    while next_id in pending:
                        next_id = (next_id + 1) % 65536
                    pending[next_id] = (query[:2], client, now)
                    upstream.send(struct.pack("!H", next_id) + query[2:])
                timeout = min(0.2, max(0.0, waiting[0][0] - now)) if waiting else 0.2
                readable, _, _ = select.select([self.sock, upstream], [], [], timeout)
                if self.sock in readable:
                    try:
                        data, peer = self.sock.recvfrom(4096)
                    except OSError:
                        return
                    if len(data) >= 12:
                        self.queries += 1
                        seq += 1
                        heapq.heappush(waiting, (time.monotonic() + delay, seq, data, peer))
                if upstream in readable:
                    try:
                        reply = upstream.recv(65535)
                    except OSError:
                        reply = b""
                    if len(reply) >= 12:
                        entry = pending.pop(struct.unpack("!H", reply[:2])[0], None)
                        if entry is not None:
                            self.sock.sendto(entry[0] + reply[2:], entry[1])
                # answers the real server never gave: forgotten after 5 s
                for qid in [q for q, e in pending.items() if now - e[2] > 5]:
                    del pending[qid]
        finally:
            upstream.close()

    def stop(self) -> None:
        """Stop serving; `queries` then counts every query that came before, read or not."""
        self._stop.set()
        self._thread.join(timeout=2)
        if not self._thread.is_alive():
            self.sock.setblocking(False)
            while True:
                try:
                    data = self.sock.recv(4096)
                except OSError:
                    break
                if len(data) >= 12 or not self.mode.startswith("delay:"):
                    self.queries += 1
        self.sock.close()

    def __enter__(self) -> "Responder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
