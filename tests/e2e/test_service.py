"""mxguard under a service manager (issue 6): systemd's notification protocol, as a
Type=notify unit sees it, without systemd running here.

The test plays systemd's part: it binds the datagram socket named in $NOTIFY_SOCKET, starts
mxguard in the foreground, and reads what mxguard tells it: READY=1 once the milter socket
accepts connections, RELOADING=1 then READY=1 around a SIGUSR1 reload, STOPPING=1 at SIGTERM.
Also: what the daemon keeps of its groups when it drops to user:group.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness.milter import mxguard_binary
from harness.util import BOGUS_NETWORKS, make_instance_dir

CHECKS_OFF = ["--check.null-mx=off", "--check.no-mail-domain=off", "--check.bogus-mx=off",
              "--check.null-mx-sender=off"]


class FakeSystemd:
    def __init__(self, directory: Path):
        self.path = str(directory / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)

    def messages_until(self, wanted: str, timeout: float = 20.0) -> list[str]:
        """Every state line received until one equals `wanted`."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            seen.extend(data.splitlines())
            if wanted in data.splitlines():
                return seen
        pytest.fail(f"no {wanted} from mxguard within {timeout}s; got {seen}")

    def close(self):
        self.sock.close()


def help_options() -> str:
    return subprocess.run([str(mxguard_binary()), "--help"], capture_output=True, text=True,
                          timeout=30).stdout


@pytest.fixture
def fake_systemd(tmp_path):
    s = FakeSystemd(tmp_path)
    yield s
    s.close()


def test_ready_reloading_and_stopping_are_notified(tmp_path, fake_systemd):
    milter = tmp_path / "m.sock"
    checks = [c for c in CHECKS_OFF if c.split("=")[0].lstrip("-") in help_options()]
    env = dict(os.environ, NOTIFY_SOCKET=fake_systemd.path)
    proc = subprocess.Popen([str(mxguard_binary()), "-f", "--syslog=no", "-p", f"unix:{milter}",
                             *checks], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        states = fake_systemd.messages_until("READY=1")
        assert "STOPPING=1" not in states
        # Ready means Postfix can connect now.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(str(milter))

        proc.send_signal(signal.SIGUSR1)
        states = fake_systemd.messages_until("READY=1")
        assert "RELOADING=1" in states

        proc.send_signal(signal.SIGTERM)
        fake_systemd.messages_until("STOPPING=1")
        rc = proc.wait(timeout=40)
        assert rc == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "ERROR: AddressSanitizer" not in (proc.stderr.read() if proc.stderr else "")


def test_stop_during_a_reload_is_an_orderly_stop(tmp_path):
    """`systemctl reload` then `stop` at once: the SIGTERM must reach mxguard, not libmilter's
    own signal thread (which stops at once, drops the sessions, and made mxguard exit 70 for
    one such stop in seven when mxguard reloaded on the thread that waited for it)."""
    checks = [c for c in CHECKS_OFF if c.split("=")[0].lstrip("-") in help_options()]
    for i in range(10):
        (tmp_path / f"run{i}").mkdir()
        fake = FakeSystemd(tmp_path / f"run{i}")
        milter = tmp_path / f"run{i}" / "m.sock"
        env = dict(os.environ, NOTIFY_SOCKET=fake.path)
        proc = subprocess.Popen([str(mxguard_binary()), "-f", "--syslog=no", "-p",
                                 f"unix:{milter}", *checks], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            fake.messages_until("READY=1")
            proc.send_signal(signal.SIGUSR1)
            time.sleep(0.002 * (i % 4))  # during the reload, at different points
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=40)
            err = proc.stderr.read() if proc.stderr else ""
            assert rc == 0, f"run {i}: exit {rc}\n{err}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            fake.close()


def test_no_notify_socket_no_trouble(tmp_path):
    """Outside systemd (no $NOTIFY_SOCKET), -n and a normal start behave as before."""
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    out = subprocess.run([str(mxguard_binary()), "-n", f"--bogus-networks={BOGUS_NETWORKS}",
                          "-p", f"unix:{tmp_path}/x.sock"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def test_dropping_to_user_and_group_keeps_the_users_own_group():
    """-u USER:GROUP as root: uid USER, gid GROUP, and USER's own primary group still among the
    supplementary groups (issue 15: as mxguard:postfix the daemon lost group mxguard, so a
    reload could not read /etc/mxguard, root:mxguard 0750)."""
    if os.geteuid() != 0:
        pytest.skip("changing user needs root")
    user = pwd.getpwnam("nobody")
    other = next((g for g in ("postfix", "daemon", "mail") if _group(g) is not None), None)
    assert other is not None and _group(other).gr_gid != user.pw_gid
    directory = make_instance_dir("drop")
    fake = FakeSystemd(directory)
    os.chmod(fake.path, 0o666)  # mxguard says READY=1 after it dropped privileges
    checks = [c for c in CHECKS_OFF if c.split("=")[0].lstrip("-") in help_options()]
    env = dict(os.environ, NOTIFY_SOCKET=fake.path)
    proc = subprocess.Popen([str(mxguard_binary()), "-f", "--syslog=no", "-p",
                             f"unix:{directory}/m.sock", "-u", f"nobody:{other}", *checks],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        fake.messages_until("READY=1")
        status = Path(f"/proc/{proc.pid}/status").read_text()
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
        groups = {int(g) for g in re.search(r"^Groups:(.*)$", status, re.M).group(1).split()}
        assert set(map(int, uids)) == {user.pw_uid}, uids
        assert set(map(int, gids)) == {_group(other).gr_gid}, gids
        assert user.pw_gid in groups, f"primary group {user.pw_gid} of nobody lost: {groups}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        fake.close()


def _group(name: str):
    try:
        return grp.getgrnam(name)
    except KeyError:
        return None
