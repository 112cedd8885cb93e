"""Small helpers shared by the harness: paths, ports, polling, process clean-up."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

#: Repository root (tests/e2e/harness/util.py -> four levels up).
REPO_ROOT = Path(__file__).resolve().parents[3]

#: The shipped bogus-networks table. bogus-mx (on by default) needs one, and mxguard looks for
#: it only where the package installs it (/etc/mxguard/rules): tests name this one.
BOGUS_NETWORKS = REPO_ROOT / "rules" / "bogus-networks.cidr"

#: Host name every MTA under test uses for itself; never resolved through DNS.
TEST_HOSTNAME = "mx.test.example"


def e2e_tmp_root() -> Path:
    """Directory under which every instance keeps its files.

    Runtime files never go into the source tree: CTest passes MXGUARD_E2E_TMP (inside the
    build directory); run by hand, build/e2e-tmp of the repository is used. The directory and
    everything the harness creates below it must be traversable by unprivileged users, since
    Postfix runs its delivery pipe as `nobody`.
    """
    root = Path(os.environ.get("MXGUARD_E2E_TMP") or REPO_ROOT / "build" / "e2e-tmp")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    return root


_run_dir: Path | None = None


def run_dir() -> Path:
    """This test process's own directory under e2e_tmp_root(), made on first use.

    One per process, so parallel CTest jobs never share files and a failed run's files can be
    kept for inspection while a passing run's are removed (see conftest.py).
    """
    global _run_dir
    if _run_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        _run_dir = Path(tempfile.mkdtemp(prefix=f"run-{stamp}-{os.getpid()}-",
                                          dir=e2e_tmp_root()))
        _run_dir.chmod(0o755)
    return _run_dir


def check_world_traversable(path: Path) -> None:
    """Fail early, and clearly, if unprivileged MTA processes cannot reach `path`.

    Postfix's smtpd (user postfix) opens milter sockets and its pipe (user nobody) runs the
    sink agent below the instance directory; a 0700 ancestor (a home directory, say) would
    show up only as deferred mail. Then point MXGUARD_E2E_TMP somewhere else, e.g. /tmp.
    """
    for d in [Path(path), *Path(path).parents]:
        mode = d.stat().st_mode
        if not mode & 0o001:
            raise RuntimeError(f"{d} is not world-traversable (mode {oct(mode & 0o7777)}): "
                               f"Postfix's unprivileged processes cannot reach {path}; "
                               "set MXGUARD_E2E_TMP to a directory they can reach")


def make_instance_dir(prefix: str) -> Path:
    """Fresh, world-traversable directory for one instance (mkdtemp makes 0700 ones)."""
    path = Path(tempfile.mkdtemp(prefix=prefix + "-", dir=run_dir()))
    path.chmod(0o755)
    return path


#: sun_path holds 108 bytes on Linux; keep a margin.
MAX_SOCKET_PATH = 100


def socket_path(directory: Path, name: str) -> Path:
    """A unix socket path in `directory`, or in a short /tmp directory if that is too long.

    Deep build directories can exceed the unix socket path limit; the fallback directory is
    world-traversable so Postfix's unprivileged smtpd can reach the socket.
    """
    path = Path(directory) / name
    if len(os.fsencode(str(path))) <= MAX_SOCKET_PATH:
        return path
    key = str(path)
    if key not in _short_paths:  # same answer every time: pooled MTAs keep their config
        _short_paths[key] = _short_tmp_dir() / name
    return _short_paths[key]


def short_alias(directory: Path, longest_inside: int) -> Path:
    """`directory`, or a short /tmp symlink to it if sockets inside it would be too long.

    For daemons that make unix sockets at fixed places inside a directory they are given
    (Postfix's queue_directory/public/postlog, say): `longest_inside` is the length of the
    longest relative socket path. The files stay in `directory`, kept with a failed run's.
    """
    directory = Path(directory)
    if len(os.fsencode(str(directory))) + 1 + longest_inside <= MAX_SOCKET_PATH:
        return directory
    key = str(directory)
    if key not in _short_paths:
        link = _short_tmp_dir() / "d"
        link.symlink_to(directory)
        _short_paths[key] = link
    return _short_paths[key]


_short_paths: dict[str, Path] = {}
_short_dirs: list[Path] = []


def _short_tmp_dir() -> Path:
    short = Path(tempfile.mkdtemp(prefix="mxg-", dir="/tmp"))
    short.chmod(0o755)
    _short_dirs.append(short)
    return short


@atexit.register
def _remove_short_dirs() -> None:
    for d in _short_dirs:
        shutil.rmtree(d, ignore_errors=True)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago.

    Only for servers the harness cannot bind itself (Postfix binds its own listener); callers
    must cope with losing the race to another process and retry with a new port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05,
               what: str = "condition") -> T:
    """Poll `predicate` until it returns a true value; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def can_connect(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to host:port succeeds (the connection is closed at once)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (zombies count as alive for the kernel)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_pid(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM one process we started, then SIGKILL if it does not go away in time."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        try:
            wait_until(lambda: not pid_alive(pid), timeout, what=f"pid {pid} to exit")
            return
        except TimeoutError:
            continue


def run(cmd: list[str], timeout: float = 60, check: bool = True,
        **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run with captured text output and an error that shows that output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with status {proc.returncode}:\n"
                           f"{proc.stdout}{proc.stderr}")
    return proc


def wait_for_line(lines: Callable[[], list[str]], pattern: str, timeout: float,
                  what: str) -> re.Match:
    """Wait until one of `lines()` matches regex `pattern`; return the match."""
    rx = re.compile(pattern)

    def search():
        for line in lines():
            m = rx.search(line)
            if m:
                return m
        return None
    return wait_until(search, timeout, what=f"{what} line /{pattern}/")


class FileLog:
    """Log reading for an MTA that writes its log to `self.log_file` (Postfix's maillog,
    Sendmail's syslog receiver); `name` names it in timeouts."""

    name = "mta"
    log_file: Path
    _log_mark = 0

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self, since_mark: bool = True) -> list[str]:
        """Log lines, by default only those written since the last `mark_log()`."""
        text = self.log_text()
        return text[self._log_mark if since_mark else 0:].splitlines()

    def mark_log(self) -> None:
        """Remember the current end of the log; later `log_lines()` start there."""
        self._log_mark = len(self.log_text())

    def wait_log(self, pattern: str, timeout: float = 10) -> re.Match:
        """Wait for a log line (since the mark) matching regex `pattern`; return the match."""
        return wait_for_line(self.log_lines, pattern, timeout, f"{self.name} log")
