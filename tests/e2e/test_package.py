"""The Debian package, installed on this machine (issue 6).

Builds the .deb with packaging/build-deb (dpkg-buildpackage -us -uc -b), installs it with
dpkg -i, checks the installed files and the systemd unit (systemd-analyze verify; systemd is
not PID 1 here), starts mxguard through the sysvinit script, checks the socket in Postfix's
chroot (owner, group, mode), reloads, stops, and purges the package. Needs root and the
Build-Depends (scripts/install-deps). Skipped when mxguard is already installed as a package:
this test must never purge an installation it did not make.

Building the package compiles mxguard once more without sanitizers: a few minutes
(MXGUARD_DEB=path/to/mxguard_*.deb skips the build while working on this test).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from harness.milter import mxguard_binary
from harness.util import make_instance_dir

REPO = Path(__file__).resolve().parents[2]
SOCKET = Path("/var/spool/postfix/mxguard/mxguard.sock")
PIDFILE = Path("/run/mxguard/mxguard.pid")
INIT = "/etc/init.d/mxguard"


def run(*args, timeout=120, check=True, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and out.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {out.returncode}:\n"
                    f"{out.stdout}\n{out.stderr}", pytrace=False)
    return out


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (the daemon's parent after it detaches is PID 1,
    which in some containers reaps late)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


class Notifications:
    """The datagram socket of systemd's notification protocol, for a daemon the init script
    starts: what mxguard says on it (READY=1, RELOADING=1) shows when a reload is done. The
    socket is writable by all, since mxguard writes to it as user mxguard."""

    def __init__(self):
        self.path = str(make_instance_dir("notify") / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.settimeout(0.2)
        self.seen: list[str] = []

    def env(self) -> dict[str, str]:
        return dict(os.environ, NOTIFY_SOCKET=self.path)

    def wait_for(self, *states: str, timeout: float = 30) -> None:
        """Wait until `states` have come, in this order, after those waited for before."""
        deadline = time.monotonic() + timeout
        wanted = list(states)
        while wanted and time.monotonic() < deadline:
            try:
                lines = self.sock.recv(4096).decode().splitlines()
            except socket.timeout:
                continue
            self.seen.extend(lines)
            for line in lines:
                if wanted and line == wanted[0]:
                    wanted.pop(0)
        if wanted:
            pytest.fail(f"mxguard did not notify {wanted} within {timeout}s; got {self.seen}")

    def close(self):
        self.sock.close()


def installed(package: str) -> bool:
    out = run("dpkg-query", "-W", "-f=${Status}", package, check=False)
    return out.returncode == 0 and "install ok installed" in out.stdout


@pytest.fixture(scope="module")
def deb() -> Path:
    if os.geteuid() != 0:
        pytest.skip("installing a package needs root")
    if installed("mxguard"):
        pytest.skip("mxguard is installed as a package on this machine; not touching it")
    if os.environ.get("MXGUARD_DEB"):  # a .deb built before, to iterate on this test
        return Path(os.environ["MXGUARD_DEB"])
    out_dir = mxguard_binary().parent.parent / "deb"
    shutil.rmtree(out_dir, ignore_errors=True)
    started = time.monotonic()
    run(str(REPO / "packaging" / "build-deb"), str(out_dir), timeout=1200)
    print(f"\n.deb built in {time.monotonic() - started:.0f}s")
    debs = [p for p in out_dir.glob("mxguard_*.deb")]
    assert len(debs) == 1, debs
    return debs[0]


@pytest.fixture(scope="module")
def package(deb):
    """The package installed; stopped and purged afterwards, whatever happened."""
    # policy-rc.d may forbid starting services from maintainer scripts (containers); the test
    # starts the daemon itself, so the result is the same either way.
    run("dpkg", "-i", str(deb), timeout=300)
    yield
    if Path(INIT).exists():
        run(INIT, "stop", check=False, timeout=60)
    run("dpkg", "--purge", "mxguard", timeout=300, check=False)
    assert not installed("mxguard")
    assert not Path("/etc/mxguard").exists(), "purge left /etc/mxguard behind"


def test_files_are_installed(package):
    for path in ["/usr/sbin/mxguard", "/etc/mxguard/mxguard.conf", "/etc/default/mxguard",
                 "/etc/mxguard/rules/bogus-networks.cidr", INIT,
                 "/lib/systemd/system/mxguard.service", "/usr/share/man/man8/mxguard.8.gz",
                 "/usr/share/man/man5/mxguard.conf.5.gz",
                 "/etc/fail2ban/filter.d/mxguard.conf",
                 "/usr/share/doc/mxguard/examples/fail2ban/jail.d/mxguard.conf"]:
        assert Path(path).exists(), f"{path} not installed"
    # Every shipped table is there.
    shipped = {p.name for p in (REPO / "rules").iterdir() if p.is_file()}
    assert shipped <= {p.name for p in Path("/etc/mxguard/rules").iterdir()}
    # The conffiles: an admin's edits survive upgrades.
    conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "mxguard").stdout
    for path in ["/etc/mxguard/mxguard.conf", "/etc/default/mxguard", INIT]:
        assert path in conffiles


def test_system_user_in_group_postfix(package):
    user = pwd.getpwnam("mxguard")
    assert user.pw_uid < 1000, "not a system user"
    assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false")
    try:
        postfix = grp.getgrnam("postfix")
    except KeyError:
        pytest.skip("no postfix group on this machine")
    assert "mxguard" in postfix.gr_mem


def test_installed_configuration_checks_out(package):
    out = run("/usr/sbin/mxguard", "-n", "-c", "/etc/mxguard/mxguard.conf")
    assert "configuration OK" in out.stdout


def test_systemd_unit_verifies(package):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze missing (scripts/install-deps installs systemd)")
    out = run("systemd-analyze", "verify", "/lib/systemd/system/mxguard.service", check=False)
    assert out.returncode == 0 and "mxguard.service" not in out.stderr, out.stderr
    unit = Path("/lib/systemd/system/mxguard.service").read_text()
    for line in ["Type=notify", "ExecReload=/bin/kill -USR1 $MAINPID", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes",
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"]:
        assert line in unit


def test_sysvinit_start_socket_reload_stop(package):
    run(INIT, "stop", check=False, timeout=60)  # in case a maintainer script started it
    notify = Notifications()
    run(INIT, "start", timeout=60, env=notify.env())
    try:
        notify.wait_for("READY=1")
        # The script returns once the socket is open (mxguard detaches after opening it).
        st = SOCKET.stat()
        assert stat.S_ISSOCK(st.st_mode)
        assert pwd.getpwuid(st.st_uid).pw_name == "mxguard"
        assert grp.getgrgid(st.st_gid).gr_name == "postfix"
        assert stat.S_IMODE(st.st_mode) == 0o770, oct(st.st_mode)
        d = SOCKET.parent.stat()
        assert (pwd.getpwuid(d.st_uid).pw_name, grp.getgrgid(d.st_gid).gr_name) == \
            ("mxguard", "postfix")
        assert stat.S_IMODE(d.st_mode) == 0o750, oct(d.st_mode)

        pid = int(PIDFILE.read_text())
        status = Path(f"/proc/{pid}/status").read_text()
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
        assert pwd.getpwuid(uid).pw_name == "mxguard", "privileges not dropped"
        assert run(INIT, "status", check=False).returncode == 0

        # Reload keeps the process and the socket.
        run(INIT, "reload", timeout=60)
        notify.wait_for("RELOADING=1", "READY=1")  # the reload is done
        assert alive(pid)
        assert SOCKET.exists()
    finally:
        run(INIT, "stop", timeout=60)
        notify.close()
    assert not alive(pid)
    assert not SOCKET.exists(), "socket left behind after stop"
    assert run(INIT, "status", check=False).returncode != 0


def test_sysvinit_refuses_a_broken_configuration_on_restart(package):
    """restart checks the new configuration first and keeps the running daemon."""
    run(INIT, "start", timeout=60)
    conf = Path("/etc/mxguard/mxguard.conf")
    original = conf.read_text()
    try:
        pid = int(PIDFILE.read_text())
        conf.write_text(original + "no-such-option = 1\n")
        out = run(INIT, "restart", check=False, timeout=60)
        assert out.returncode != 0
        assert "no-such-option" in out.stdout + out.stderr
        assert alive(pid), "a bad configuration stopped the daemon"
    finally:
        conf.write_text(original)
        run(INIT, "stop", timeout=60)
