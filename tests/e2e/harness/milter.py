"""Runs the real mxguard daemon in the foreground for a test.

    mxguard -f -p unix:/path/mxguard.sock -c CONFIG [extra args]

The binary is $MXGUARD_BIN (CTest sets it to the built target), else build/milter/mxguard of the
repository. stderr (one line per decision in the foreground) is collected into a list and a
file. stop() fails the test if the daemon died early, exited non-zero or printed a sanitizer
report: a crash must never pass as "mail got through".
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from .milteraddr import MilterAddress
from .util import (REPO_ROOT, can_connect, make_instance_dir, socket_path, wait_for_line,
                   wait_until)

# Without -c, mxguard reads /etc/mxguard/mxguard.conf when it exists (the package test installs
# one system-wide); MXGUARD_CONFIG names the file read instead, empty for none. Every mxguard a
# test runs, with or without -c, thus reads only what the test gives it; a test of the default
# file sets MXGUARD_CONFIG itself in the child's environment.
os.environ["MXGUARD_CONFIG"] = ""

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
    "ERROR: ThreadSanitizer", "ERROR: MemorySanitizer", "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer", "SUMMARY: AddressSanitizer",
)


class MxguardError(AssertionError):
    """The daemon failed: did not start, crashed, exited non-zero or reported a sanitizer bug."""


def mxguard_binary() -> Path:
    return Path(os.environ.get("MXGUARD_BIN") or REPO_ROOT / "build" / "milter" / "mxguard")


class Mxguard:
    """One mxguard daemon with its own directory, config file and socket.

    `config`: text of the config file. `args`: extra command-line flags. `socket`: libmilter
    address; default a unix socket in the instance directory. `socket` (attribute) is what
    the Postfix and Sendmail classes take as `milter`.
    """

    def __init__(self, config: str = "", args: tuple[str, ...] | list[str] = (),
                 socket: str | None = None, directory: Path | None = None,
                 binary: Path | None = None, env: dict[str, str] | None = None,
                 own_ledger_files: bool = True):
        # own_ledger_files=False: a binary from before the ledger (benchmarks comparing trees).
        self.own_ledger_files = own_ledger_files
        self.dir = Path(directory) if directory else make_instance_dir("mxguard")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.binary = Path(binary or mxguard_binary())
        self.config_file = self.dir / "mxguard.conf"
        self.config_text = config
        self.args = list(args)
        self.socket = MilterAddress.parse(
            socket or f"unix:{socket_path(self.dir, 'mxguard.sock')}")
        self.log_file = self.dir / "mxguard.log"
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._mark = 0
        self._stopped = False

    def command(self) -> list[str]:
        return [str(self.binary), "-f", "-p", self.socket.libmilter(),
                "-c", str(self.config_file), *self.args]

    # -- life cycle ------------------------------------------------------------------------
    def start(self, timeout: float = 20) -> "Mxguard":
        """Start and wait until the socket accepts connections; fail with the daemon's log."""
        if not self.binary.exists():
            raise MxguardError(f"mxguard binary not found: {self.binary} (set MXGUARD_BIN)")
        self.write_config(self.config_text)
        if self.socket.kind == "unix":
            Path(self.socket.path).unlink(missing_ok=True)  # stale socket of an earlier run
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:print_summary=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:print_summary=1")
        env.update(self.env)
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env, cwd=self.dir)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True,
                                        name=f"mxguard-stderr-{self.proc.pid}")
        self._reader.start()
        try:
            wait_until(self._ready, timeout, interval=0.02, what=f"mxguard socket {self.socket}")
        except TimeoutError:
            self._abort()
            raise MxguardError(f"mxguard did not open {self.socket} within {timeout}s:\n"
                               + self.log_text())
        if self.socket.kind == "unix" and not self.own_ledger_files:
            # A binary from before socket-mode (benchmarks' --compare-bin): it leaves the
            # socket as the umask made it, so it is opened here.
            os.chmod(self.socket.path, 0o666)
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            self._reader.join(2)
            raise MxguardError(f"mxguard exited with status {self.proc.returncode} during "
                               f"start-up:\n{self.log_text()}")
        if self.socket.kind == "unix":
            # The file appears at bind(); only a connect shows that listen() has happened too.
            if not Path(self.socket.path).exists():
                return False
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.2)
                try:
                    s.connect(self.socket.path)
                    return True
                except OSError:
                    return False
        return can_connect(self.socket.host, self.socket.port, timeout=0.2)

    def write_config(self, text: str) -> None:
        self.config_text = text
        self.config_file.write_text(text + self._own_files(text))

    def _own_files(self, text: str) -> str:
        """Lines that keep the ledger's files in the instance directory, not in the system's
        /var/lib/mxguard, unless the test's config names them itself. Appended, so the line
        numbers of the test's own lines do not move."""
        extra = ""
        if not self.own_ledger_files:
            return extra
        for key, name in (("ledger-file", "ledger"), ("ledger-key-file", "ledger.key")):
            if not re.search(rf"^\s*{key}\s*=", text, re.M):
                extra += f"{key} = {self.dir / name}\n"
        # Postfix's smtpd connects as user postfix, and mxguard runs without -u here: the
        # socket must be open to others. Set by mxguard itself when it makes the socket; a
        # chmod from here could land before mxguard's own and be undone by it.
        if not re.search(r"^\s*socket-mode\s*=", text, re.M):
            extra += "socket-mode = 0666\n"
        return ("\n" if text and not text.endswith("\n") else "") + extra

    def _read_stderr(self) -> None:
        with open(self.log_file, "ab", buffering=0) as out:
            for raw in self.proc.stderr:
                out.write(raw)
                with self._lines_lock:
                    self._lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise MxguardError if the daemon died or reported a sanitizer error so far."""
        if self.proc is None:
            raise MxguardError("mxguard was never started")
        if self.proc.poll() is not None and not self._stopped:
            self._reader.join(2)
            raise MxguardError(f"mxguard died with status {self.proc.returncode}:\n"
                               + self.log_text())
        self._check_sanitizers()

    def _check_sanitizers(self) -> None:
        text = self.log_text()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                raise MxguardError(f"mxguard sanitizer report ({marker}):\n{text}")

    #: What the daemon logs when it has handled a SIGUSR1, either way.
    RELOADED = r"reloaded|reload failed"

    def reload(self, config: str | None = None, timeout: float = 20) -> None:
        """Optionally rewrite the config file, then SIGUSR1 (reload config and tables), and
        wait until the daemon logs that it reloaded (or that the reload failed)."""
        if config is not None:
            self.write_config(config)
        self.check()
        rx = re.compile(self.RELOADED)
        before = sum(1 for line in self.log_lines(since_mark=False) if rx.search(line))
        self.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: sum(1 for line in self.log_lines(since_mark=False)
                               if rx.search(line)) > before,
                   timeout, what=f"mxguard to log /{self.RELOADED}/ after SIGUSR1")
        self.check()

    def stats(self) -> None:
        """SIGUSR2: the daemon writes a stats line."""
        self.check()
        self.proc.send_signal(signal.SIGUSR2)

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM and wait; MxguardError on a non-zero status or a sanitizer report.

        The default timeout exceeds the daemon's own 30 s drain of open transactions.
        """
        if self.proc is None or self._stopped:
            return 0 if self.proc is None else self.proc.returncode
        died_early = self.proc.poll() is not None
        if not died_early:
            self.proc.send_signal(signal.SIGTERM)
            if not self._wait_exit(timeout):
                self._abort()
                raise MxguardError(f"mxguard still running {timeout}s after SIGTERM "
                                   f"(killed):\n" + self.log_text())
        self._stopped = True
        self._reader.join(5)
        status = self.proc.returncode
        if died_early:
            raise MxguardError(f"mxguard had died before stop() with status {status}:\n"
                               + self.log_text())
        if status != 0:
            raise MxguardError(f"mxguard exited with status {status} after SIGTERM:\n"
                               + self.log_text())
        self._check_sanitizers()
        return status

    def _wait_exit(self, timeout: float) -> bool:
        """Wait for the exit after SIGTERM, poking the listening socket meanwhile.

        libmilter's listener notices the stop flag only when its select() returns, which
        without traffic takes up to 5 s; an empty connection wakes it at once.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.proc.wait(0.05)
                return True
            except subprocess.TimeoutExpired:
                self._poke()
        return self.proc.poll() is not None

    def _poke(self) -> None:
        family = socket.AF_UNIX if self.socket.kind == "unix" else (
            socket.AF_INET6 if self.socket.kind == "inet6" else socket.AF_INET)
        target = self.socket.path if self.socket.kind == "unix" else (self.socket.host,
                                                                      self.socket.port)
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(0.2)
                s.connect(target)
        except OSError:
            pass

    def _abort(self) -> None:
        """Kill our daemon process hard (start-up failure or hang)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stopped = True
        if self._reader:
            self._reader.join(2)

    def __enter__(self) -> "Mxguard":
        return self.start()

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.stop()
        else:
            self._abort()

    # -- log -------------------------------------------------------------------------------
    def log_lines(self, since_mark: bool = True) -> list[str]:
        """stderr lines, by default only those after the last mark_log()."""
        with self._lines_lock:
            return list(self._lines[self._mark if since_mark else 0:])

    def log_text(self) -> str:
        return "\n".join(self.log_lines(since_mark=False))

    def mark_log(self) -> None:
        with self._lines_lock:
            self._mark = len(self._lines)

    def wait_log(self, pattern: str, timeout: float = 10) -> re.Match:
        """Wait for a stderr line (since the mark) matching regex `pattern`."""
        return wait_for_line(self.log_lines, pattern, timeout, "mxguard log")


def checks_off_except(*keep: str) -> str:
    """Config lines switching off every check the daemon knows but `keep`, so a test sees only
    what it tests (and needs no DNS for the rest). The names come from `mxguard --help`, so a
    check added later is switched off here without editing the tests."""
    help_text = subprocess.run([str(mxguard_binary()), "--help"], capture_output=True,
                               text=True, timeout=30).stdout
    names = set(re.findall(r"--check\.([a-z0-9-]+)", help_text))
    return "".join(f"check.{n} = off\n" for n in sorted(names - set(keep)))
