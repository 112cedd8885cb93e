"""The milter socket is right whatever the caller's umask (issue 15).

Postfix's smtpd connects to a unix socket as user postfix, which needs write permission on the
socket and search permission on every directory above it. mxguard sets the socket's mode itself
(socket-mode, 0660 by default), gives it to the user and group of -u, and makes a missing
directory for it 0750 for that group. Here mxguard is started the way scripts/run starts it and
the way README's manual line does, under umask 022 (the usual shell's), and a forked child that
has become `postfix` connects and negotiates the milter protocol, while one that has become
`nobody` is refused with EACCES.

README's line names user mxguard, which only the package creates; user `daemon` (every Debian
system has it) stands in for it, with the same group postfix. A short directory under /tmp
stands in for /var/spool/postfix, so nothing here touches the system's spool.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness.milter import mxguard_binary
from harness.milterclient import MilterClient
from harness.util import BOGUS_NETWORKS, REPO_ROOT, free_port, wait_until

MILTER_USER = "daemon"  # stands in for README's `mxguard`


@pytest.fixture
def base():
    """A short world-traversable directory (unix socket paths are short), removed after."""
    d = Path(tempfile.mkdtemp(prefix="mxg-sock-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def connect_as(user: str, path: Path) -> str:
    """In a forked child that has become `user` (its groups included): connect to the milter
    socket at `path` and negotiate (OPTNEG). "ok", or the errno name of what failed."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no Python-level cleanup, only os._exit
        result = "error"
        try:
            os.close(r)
            pw = pwd.getpwnam(user)
            os.initgroups(user, pw.pw_gid)
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            with MilterClient(f"unix:{path}", timeout=10) as m:
                m.negotiate()
            result = "ok"
        except OSError as e:
            result = errno.errorcode.get(e.errno, str(e.errno))
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            result = f"{type(e).__name__}: {e}"
        finally:
            os.write(w, result.encode())
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    return out


class Daemon:
    """mxguard (or scripts/run, which execs it) in the foreground under umask 022; its output
    goes to a file (no reader thread: the test forks)."""

    def __init__(self, cmd: list[str], directory: Path, env: dict[str, str] | None = None):
        self.log = directory / "daemon.log"
        self.out = open(self.log, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, env=full_env, umask=0o022)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_listening(self, path: Path) -> None:
        def ready():
            assert self.proc.poll() is None, f"mxguard exited:\n{self.text()}"
            return "listening on" in self.text() and path.exists()
        wait_until(ready, 30, what=f"mxguard to listen on {path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.out.close()
        assert self.proc.returncode == 0, f"status {self.proc.returncode}:\n{self.text()}"


def owner(path: Path) -> tuple[str, str, int]:
    st = path.lstat()
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(
        st.st_mode)


def own_files(directory: Path, user: str) -> list[str]:
    """Flags that keep the ledger's files out of /var/lib/mxguard, in a directory `user` may
    write: they do not touch the socket."""
    d = directory / "state"
    d.mkdir()
    pw = pwd.getpwnam(user)
    os.chown(d, pw.pw_uid, pw.pw_gid)
    return ["--syslog=no", f"--ledger-file={d / 'ledger'}", f"--ledger-key-file={d / 'ledger.key'}"]


def test_scripts_run_socket_lets_postfix_in_and_keeps_others_out(base):
    """scripts/run as a new user runs it on Debian: smtpd chrooted (master.cf says y), so the
    socket goes inside Postfix's queue directory and main.cf gets the path as smtpd sees it."""
    assert grp.getgrnam("postfix"), "Postfix is installed by scripts/install-deps"
    conf = base / "postfix"
    conf.mkdir()
    spool = base / "spool"
    spool.mkdir()
    (conf / "main.cf").write_text(f"queue_directory = {spool}\n")
    (conf / "master.cf").write_text(
        "smtp      inet  n       -       y       -       -       smtpd\n")
    run = Daemon([str(REPO_ROOT / "scripts" / "run"), *own_files(base, "root")], base,
                 env={"MXGUARD_BIN": str(mxguard_binary()), "MAIL_CONFIG": str(conf)})
    sock = spool / "mxguard" / "mxguard.sock"
    try:
        run.wait_listening(sock)
        printed = run.text()
        assert "smtpd_milters = unix:/mxguard/mxguard.sock\n" in printed
        assert f"S=unix:{sock}," in printed  # Sendmail is not chrooted: the full path
        assert owner(sock) == ("root", "postfix", 0o660)
        assert owner(sock.parent) == ("root", "postfix", 0o750)
        assert connect_as("postfix", sock) == "ok"
        assert connect_as("nobody", sock) == "EACCES"
    finally:
        run.stop()
    assert not sock.exists()


def test_scripts_run_names_the_chroot_path_it_cannot_use(base):
    """A socket outside the chroot of a chrooted smtpd: scripts/run says so, and which socket
    and main.cf line to use instead."""
    conf = base / "postfix"
    conf.mkdir()
    (conf / "main.cf").write_text(f"queue_directory = {base / 'spool'}\n")
    (conf / "master.cf").write_text("smtp inet n - y - - smtpd\n")
    sock = base / "run" / "mxguard.sock"
    out = subprocess.run([str(REPO_ROOT / "scripts" / "run")], capture_output=True, text=True,
                         timeout=30,
                         env={**os.environ, "MXGUARD_BIN": "/bin/echo", "MAIL_CONFIG": str(conf),
                              "MXGUARD_SOCKET": str(sock)})
    assert out.returncode == 0, out.stderr
    assert f"cannot reach {sock}" in out.stdout
    assert f"MXGUARD_SOCKET={base / 'spool'}/mxguard/mxguard.sock scripts/run" in out.stdout
    # /bin/echo shows the flags mxguard would get: the group postfix, no config file.
    assert out.stdout.rstrip().endswith(f"-f -p unix:{sock} -c /dev/null --bogus-networks "
                                        f"{REPO_ROOT}/rules/bogus-networks.cidr -u root:postfix")


def test_readme_manual_line_lets_postfix_in_and_keeps_others_out(base):
    """`mxguard -p unix:/var/spool/postfix/mxguard/mxguard.sock -u mxguard:postfix`, with -f
    to keep it in the test's hands; mxguard makes the missing mxguard directory itself."""
    spool = base / "spool"
    spool.mkdir()
    sock = spool / "mxguard" / "mxguard.sock"
    cmd = [str(mxguard_binary()), "-p", f"unix:{sock}", "-u", f"{MILTER_USER}:postfix", "-f",
           f"--bogus-networks={BOGUS_NETWORKS}", *own_files(base, MILTER_USER)]
    d = Daemon(cmd, base)
    try:
        d.wait_listening(sock)
        assert owner(sock) == (MILTER_USER, "postfix", 0o660)
        assert owner(sock.parent) == (MILTER_USER, "postfix", 0o750)
        assert connect_as("postfix", sock) == "ok"
        assert connect_as("nobody", sock) == "EACCES"
        # The daemon runs as the user, in the group, and the socket goes when it stops.
        status = Path(f"/proc/{d.proc.pid}/status").read_text()
        assert f"\nUid:\t{pwd.getpwnam(MILTER_USER).pw_uid}\t" in status
        assert f"\nGid:\t{grp.getgrnam('postfix').gr_gid}\t" in status
    finally:
        d.stop()
    assert not sock.exists()


def test_socket_mode_and_an_existing_directory(base):
    """socket-mode from the config file; a directory the admin made is left as it is."""
    run_dir = base / "run"
    run_dir.mkdir(mode=0o755)
    run_dir.chmod(0o755)
    sock = run_dir / "mxguard.sock"
    conf = base / "mxguard.conf"
    conf.write_text("# anyone may connect\nsocket-mode = 0666\n")
    d = Daemon([str(mxguard_binary()), "-f", "-c", str(conf), "-p", f"unix:{sock}",
                "-u", f"{MILTER_USER}:postfix", f"--bogus-networks={BOGUS_NETWORKS}",
                *own_files(base, MILTER_USER)], base)
    try:
        d.wait_listening(sock)
        assert owner(sock) == (MILTER_USER, "postfix", 0o666)
        assert owner(run_dir) == ("root", "root", 0o755)
        assert connect_as("nobody", sock) == "ok"
    finally:
        d.stop()

    private = base / "private"
    private.mkdir()
    sock = private / "mxguard.sock"
    d = Daemon([str(mxguard_binary()), "-f", "--socket-mode=0600", "-p", f"unix:{sock}",
                f"--bogus-networks={BOGUS_NETWORKS}", *own_files(private, "root")], base)
    try:
        d.wait_listening(sock)
        assert owner(sock) == ("root", "root", 0o600)
        assert connect_as("postfix", sock) == "EACCES"
    finally:
        d.stop()


def check_config(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(mxguard_binary()), "-n", f"--bogus-networks={BOGUS_NETWORKS}",
                           *args], capture_output=True, text=True, timeout=30)


def test_check_config_reports_the_socket_mode_and_owner(base):
    sock = base / "spool" / "mxguard" / "mxguard.sock"
    (base / "spool").mkdir()
    out = check_config("-p", f"unix:{sock}", "-u", f"{MILTER_USER}:postfix")
    assert out.returncode == 0, out.stderr
    assert f"  socket: unix:{sock}\n" in out.stdout
    assert f"  socket permissions: 0660 {MILTER_USER}:postfix\n" in out.stdout
    assert (f"  socket directory: {sock.parent} (made at start: 0750 {MILTER_USER}:postfix)\n"
            in out.stdout)
    assert not sock.parent.exists(), "-n makes nothing"

    out = check_config("-p", f"unix:{sock}", "--socket-mode", "0640")
    assert "  socket permissions: 0640 root:root\n" in out.stdout
    assert "(made at start: 0750 root:root)" in out.stdout

    # A directory on the way that the socket's group cannot search is named.
    closed = base / "closed"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    out = check_config("-p", f"unix:{closed}/mxguard/mxguard.sock", "-u",
                       f"{MILTER_USER}:postfix")
    assert out.returncode == 0, out.stderr
    assert (f"  warning: group postfix cannot search {closed} (0700 root:root), so its members "
            "cannot reach the socket\n") in out.stdout

    out = check_config("-p", "inet:8894@127.0.0.1", "-u", f"{MILTER_USER}:postfix")
    assert "  socket permissions: none (TCP: any local user can connect)\n" in out.stdout

    bad = check_config("--socket-mode", "rw-rw----")
    assert bad.returncode == 78
    assert "command line: socket-mode: expected permissions in octal" in bad.stderr


def test_a_tcp_socket_is_unaffected(base):
    port = free_port()
    d = Daemon([str(mxguard_binary()), "-f", "-p", f"inet:{port}@127.0.0.1",
                f"--bogus-networks={BOGUS_NETWORKS}", *own_files(base, "root")], base)
    try:
        wait_until(lambda: d.proc.poll() is not None or "listening on" in d.text(), 30,
                   what="mxguard to listen")
        assert d.proc.poll() is None, d.text()
        with MilterClient(f"inet:{port}@127.0.0.1") as m:
            m.negotiate()
        assert f"listening on inet:{port}@127.0.0.1\n" in d.text()
    finally:
        d.stop()
