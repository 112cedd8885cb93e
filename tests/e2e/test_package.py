"""The Debian package, installed on this machine (issues 6 and 15).

Builds the .deb with packaging/build-deb (dpkg-buildpackage -us -uc -b), runs lintian on it
(no error, no warning), installs it with dpkg -i, checks the installed files and the systemd
unit (systemd-analyze verify and security; systemd is not PID 1 here), starts mxguard through
the sysvinit script, checks the socket in Postfix's chroot (owner, group, mode), reloads, stops,
and purges the package. The reload is proven through a real (private) Postfix: a table and the
configuration change, and after the reload Postfix refuses what it accepted and accepts what it
refused, once through the init script and once started as the unit starts it (as user mxguard,
never root, reloaded with the unit's ExecReload). Needs root and the Build-Depends
(scripts/install-deps). Skipped when mxguard is already installed as a package: this test must
never purge an installation it did not make.

Building the package compiles mxguard once more without sanitizers: a few minutes
(MXGUARD_DEB=path/to/mxguard_*.deb skips the build while working on this test).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from harness.milter import mxguard_binary
from harness.postfix import Postfix
from harness.sendmail import ensure_sendmail
from harness.sink import Sink
from harness.smtp import send
from harness.util import make_instance_dir

REPO = Path(__file__).resolve().parents[2]
SOCKET = Path("/var/spool/postfix/mxguard/mxguard.sock")
PIDFILE = Path("/run/mxguard/mxguard.pid")
INIT = "/etc/init.d/mxguard"
UNIT = Path("/lib/systemd/system/mxguard.service")
CONF = Path("/etc/mxguard/mxguard.conf")
EXAMPLES = Path("/usr/share/doc/mxguard/examples/fail2ban")
OUTSIDE = "127.0.0.3"  # an untrusted client


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
    out = run("dpkg", "--purge", "mxguard", timeout=300, check=False)
    assert not installed("mxguard")
    assert not Path("/etc/mxguard").exists(), "purge left /etc/mxguard behind"
    # The package never edits main.cf or sendmail.mc, so it says what is left to take out.
    said = out.stdout + out.stderr
    for word in ["smtpd_milters", "non_smtpd_milters", "/etc/postfix/main.cf",
                 "/etc/mail/sendmail.mc", "INPUT_MAIL_FILTER"]:
        assert word in said, f"purge did not mention {word}:\n{said}"


def test_lintian_finds_no_error_and_no_warning(deb):
    """lintian -I --pedantic: errors and warnings fail; info and pedantic tags are listed."""
    if not shutil.which("lintian"):
        pytest.skip("lintian is not installed (scripts/install-deps installs it)")
    # lintian refuses to run as root without this; it only reads the .deb.
    out = run("lintian", "-I", "--pedantic", "--allow-root", str(deb), check=False, timeout=600)
    tags = out.stdout.splitlines()
    print("\n".join(tags))
    bad = [t for t in tags if t.startswith(("E:", "W:"))]
    assert not bad, "\n".join(bad)
    assert out.returncode == 0, out.stdout + out.stderr


def old_package_with_filter_conffile(directory: Path, filter_text: str) -> Path:
    """A stand-in for mxguard 0.1.0, as far as the upgrade concerns it: the fail2ban filter
    as a conffile in /etc/fail2ban/filter.d."""
    root = directory / "old"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "etc/fail2ban/filter.d").mkdir(parents=True)
    (root / "etc/fail2ban/filter.d/mxguard.conf").write_text(filter_text)
    (root / "DEBIAN/conffiles").write_text("/etc/fail2ban/filter.d/mxguard.conf\n")
    arch = run("dpkg", "--print-architecture").stdout.strip()  # as the real one: not "all"
    (root / "DEBIAN/control").write_text(
        f"Package: mxguard\nVersion: 0.1.0\nArchitecture: {arch}\n"
        "Maintainer: mxguard developers <mxguard@example.org>\n"
        "Description: stand-in for the first mxguard package\n")
    run("dpkg-deb", "--root-owner-group", "-b", str(root), str(directory / "old.deb"))
    return directory / "old.deb"


@pytest.mark.parametrize("jail_on,changed", [(True, False), (True, True), (False, False)],
                         ids=["jail on", "jail on, filter changed", "jail off"])
def test_upgrade_moves_the_fail2ban_filter_out_of_etc(deb, jail_on, changed):
    """Up to 0.1.0 the filter was a conffile in /etc/fail2ban/filter.d. After the upgrade no
    package owns it; an enabled jail keeps its filter (the admin's own version if changed)."""
    filter_path = Path("/etc/fail2ban/filter.d/mxguard.conf")
    jail = Path("/etc/fail2ban/jail.d/mxguard.conf")
    if filter_path.exists() or jail.exists():
        pytest.skip("this machine has an mxguard fail2ban filter or jail of its own")
    shipped = (REPO / "packaging/fail2ban/filter.d/mxguard.conf").read_text()
    old = old_package_with_filter_conffile(make_instance_dir("old-deb"), shipped)
    try:
        run("dpkg", "-i", str(old), timeout=300)
        if changed:
            filter_path.write_text(shipped + "# changed by the admin\n")
        if jail_on:
            jail.parent.mkdir(parents=True, exist_ok=True)
            jail.write_text("[mxguard]\nenabled = true\n")
        out = run("dpkg", "-i", str(deb), timeout=300)
        assert "0.1.1" <= run("dpkg-query", "-W", "-f=${Version}", "mxguard").stdout
        # dpkg remembers the old conffile as obsolete; the package does not ship it.
        conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "mxguard").stdout
        assert all(line.endswith(" obsolete") for line in conffiles.splitlines()
                   if "/etc/fail2ban" in line), conffiles
        assert (EXAMPLES / "filter.d/mxguard.conf").exists()
        if jail_on:
            assert filter_path.read_text() == shipped + ("# changed by the admin\n"
                                                         if changed else ""), out.stderr
            assert not Path(f"{filter_path}.dpkg-bak").exists()
        else:
            assert not filter_path.exists()
    finally:
        if Path(INIT).exists():
            run(INIT, "stop", check=False, timeout=60)
        run("dpkg", "--purge", "mxguard", timeout=300, check=False)
        for leftover in [filter_path, Path(f"{filter_path}.dpkg-bak"), jail]:
            leftover.unlink(missing_ok=True)
    assert not installed("mxguard")


def test_files_are_installed(package):
    for path in ["/usr/sbin/mxguard", "/etc/mxguard/mxguard.conf", "/etc/default/mxguard",
                 "/etc/mxguard/rules/bogus-networks.cidr", INIT,
                 "/lib/systemd/system/mxguard.service", "/usr/share/man/man8/mxguard.8.gz",
                 "/usr/share/man/man5/mxguard.conf.5.gz",
                 f"{EXAMPLES}/filter.d/mxguard.conf", f"{EXAMPLES}/jail.d/mxguard.conf",
                 "/etc/mail/m4/mxguard.m4", "/usr/lib/tmpfiles.d/mxguard.conf",
                 "/usr/share/doc/mxguard/NEWS.Debian.gz"]:
        assert Path(path).exists(), f"{path} not installed"
    # fail2ban is only suggested: nothing of the package in its directory.
    owned = run("dpkg", "-L", "mxguard").stdout.splitlines()
    assert not [f for f in owned if f.startswith("/etc/fail2ban")], owned
    # Every shipped table is there.
    shipped = {p.name for p in (REPO / "rules").iterdir() if p.is_file()}
    assert shipped <= {p.name for p in Path("/etc/mxguard/rules").iterdir()}
    # The conffiles: an admin's edits survive upgrades.
    conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "mxguard").stdout
    for path in ["/etc/mxguard/mxguard.conf", "/etc/default/mxguard", INIT,
                 "/etc/mail/m4/mxguard.m4"]:
        assert path in conffiles
    # tmpfiles.d makes the runtime directory at boot, for the init script's pid file.
    assert re.search(r"^d /run/mxguard 0755 mxguard mxguard",
                     Path("/usr/lib/tmpfiles.d/mxguard.conf").read_text(), re.M)


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
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "User=mxguard",
                 "CapabilityBoundingSet=\n"]:
        assert line in unit


def test_systemd_unit_exposure_is_at_most_2(package):
    """systemd-analyze security rates the unit 2.0 or less (it was 2.6 while the daemon
    started as root with four capabilities). --offline: systemd is not running here."""
    out = run("systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT),
              check=False)
    m = re.search(r"Overall exposure level for mxguard\.service: (\d+\.\d+)", out.stdout)
    assert m, out.stdout + out.stderr
    print(f"\nexposure: {m.group(1)}")
    assert float(m.group(1)) <= 2.0, out.stdout


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
        # Group postfix may connect, nobody else may (0770, or 0660 with socket-mode).
        assert stat.S_IMODE(st.st_mode) & 0o060 == 0o060, oct(st.st_mode)
        assert stat.S_IMODE(st.st_mode) & 0o007 == 0, oct(st.st_mode)
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


# -- reload, proven through Postfix -------------------------------------------------------------

RCPT_TABLE = Path("/etc/mxguard/test-recipients.regexp")
SENDER_TABLE = Path("/etc/mxguard/test-senders.regexp")


def installed_checks_off() -> str:
    """Every check of the installed mxguard off but the access tables: no DNS needed."""
    help_text = run("/usr/sbin/mxguard", "--help").stdout
    names = set(re.findall(r"--check\.([a-z0-9-]+)", help_text))
    assert "access" in names, help_text
    return "".join(f"check.{n} = off\n" for n in sorted(names - {"access"}))


def write_owned(path: Path, text: str) -> None:
    """A file only root and group mxguard may read, as an admin keeps keys and tables in
    /etc/mxguard: the daemon reads it through its own group, at start and at reload."""
    path.write_text(text)
    os.chown(path, 0, grp.getgrnam("mxguard").gr_gid)
    os.chmod(path, 0o640)


@pytest.fixture
def test_config(package):
    """The installed configuration with every check but the access tables off and a recipient
    table; the original is put back afterwards."""
    original = CONF.read_text()
    write_owned(RCPT_TABLE, "/^blocked@/   REJECT refused by table one\n")
    write_owned(CONF, original + "\n# test_package\n" + installed_checks_off() +
                f"recipient-access = regexp:{RCPT_TABLE}\n")
    yield original
    CONF.write_text(original)
    os.chown(CONF, 0, 0)
    os.chmod(CONF, 0o644)
    RCPT_TABLE.unlink(missing_ok=True)
    SENDER_TABLE.unlink(missing_ok=True)


def unit_setting(name: str) -> list[str]:
    """The values of `name=` in the installed unit, in order."""
    return re.findall(rf"^{name}=(.*)$", UNIT.read_text(), re.M)


def unit_command(line: str, mainpid: int | None = None) -> list[str]:
    """A unit's command line as systemd runs it here: without its +/- prefixes, ${CONFIG}
    from Environment=, $DAEMON_OPTS from /etc/default/mxguard (empty), $MAINPID."""
    line = line.lstrip("+-@!:")
    line = line.replace("${CONFIG}", str(CONF)).replace("$MAINPID", str(mainpid))
    return [w for w in shlex.split(line) if w != "$DAEMON_OPTS"]


class InitScript:
    """mxguard as /etc/init.d/mxguard runs it: started as root, drops to mxguard:postfix."""

    name = "init script"

    def start(self, notify: Notifications) -> int:
        run(INIT, "start", timeout=60, env=notify.env())
        notify.wait_for("READY=1")
        return int(PIDFILE.read_text())

    def reload(self, pid: int) -> None:
        run(INIT, "reload", timeout=60)

    def stop(self, pid: int) -> None:
        run(INIT, "stop", timeout=60)


class AsTheUnit:
    """mxguard as mxguard.service runs it, as far as that can be done without systemd: the
    unit's ExecStartPre as root, then its ExecStart as User= with the user's groups, no
    capability, no new privileges and the unit's UMask; reloaded with the unit's ExecReload.
    (The sandbox itself needs systemd; systemd-analyze checks it above.)"""

    name = "as the unit"

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.log: Path | None = None

    def start(self, notify: Notifications) -> int:
        for pre in unit_setting("ExecStartPre"):
            run(*unit_command(pre))
        user, = unit_setting("User")
        group, = unit_setting("Group")
        umask = int(unit_setting("UMask")[0], 8)
        self.log = make_instance_dir("unit") / "stderr"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
                 *unit_command(unit_setting("ExecStart")[0])],
                env=notify.env(), stdout=subprocess.DEVNULL, stderr=err,
                preexec_fn=lambda: os.umask(umask))
        notify.wait_for("READY=1")
        return self.proc.pid

    def reload(self, pid: int) -> None:
        run(*unit_command(unit_setting("ExecReload")[0], mainpid=pid))

    def stop(self, pid: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        assert rc == 0, f"exit {rc}: {self.log.read_text() if self.log else ''}"


def refused(result, code_class: int, text: str) -> bool:
    replies = [r for r in [result.mail, *result.rcpts] if r is not None]
    return not result.accepted and any(r.code // 100 == code_class and text in r.text
                                       for r in replies)


@pytest.mark.parametrize("launcher", [InitScript(), AsTheUnit()], ids=lambda l: l.name)
def test_reload_takes_effect_through_postfix(test_config, launcher):
    """Table and configuration change, reload: Postfix now refuses what it accepted and
    accepts what it refused. (The daemon used to lose group mxguard when it dropped to
    mxguard:postfix: the reload failed to read /etc/mxguard and kept the old tables.)"""
    run(INIT, "stop", check=False, timeout=60)
    notify = Notifications()
    pid = launcher.start(notify)
    sink = Sink()
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
        groups = {int(g) for g in re.search(r"^Groups:(.*)$", status, re.M).group(1).split()}
        assert pwd.getpwuid(uid).pw_name == "mxguard"
        assert grp.getgrnam("mxguard").gr_gid in groups, f"group mxguard lost: {groups}"
        if "mxguard" in grp.getgrnam("postfix").gr_mem:
            assert grp.getgrnam("postfix").gr_gid in groups, groups
        st = SOCKET.stat()
        assert grp.getgrgid(st.st_gid).gr_name == "postfix"

        with Postfix(milter=f"unix:{SOCKET}", sink=sink) as postfix:
            # Before: blocked@ refused by the table, friend@ and spammer@ accepted.
            r = send(postfix, recipients=["blocked@dest.test.example"], source=OUTSIDE)
            assert refused(r, 5, "refused by table one"), r
            r = send(postfix, sender="spammer@client.test.example",
                     recipients=["friend@dest.test.example"], source=OUTSIDE)
            assert r.accepted, r
            assert sink.wait_find(recipient="friend@dest.test.example")

            # The table changes, and the configuration names a sender table.
            write_owned(RCPT_TABLE, "/^friend@/   REJECT refused by table two\n")
            write_owned(SENDER_TABLE, "/^spammer@/   REJECT sender refused after reload\n")
            write_owned(CONF, CONF.read_text() + f"sender-access = regexp:{SENDER_TABLE}\n")
            launcher.reload(pid)
            notify.wait_for("RELOADING=1", "READY=1")
            assert alive(pid)

            # After: blocked@ accepted, friend@ refused by the new table, spammer@ refused by
            # the table the new configuration names.
            r = send(postfix, recipients=["blocked@dest.test.example"], source=OUTSIDE)
            assert r.accepted, f"the reload did not take effect: {r}"
            assert sink.wait_find(recipient="blocked@dest.test.example")
            r = send(postfix, recipients=["friend@dest.test.example"], source=OUTSIDE)
            assert refused(r, 5, "refused by table two"), r
            r = send(postfix, sender="spammer@client.test.example",
                     recipients=["blocked@dest.test.example"], source=OUTSIDE)
            assert refused(r, 5, "sender refused after reload"), r
    finally:
        launcher.stop(pid)
        notify.close()
    assert not alive(pid)


def test_postinst_and_start_respect_dpkg_statoverride(package):
    """An admin's dpkg-statoverride wins over the package's owners and modes, in postinst and
    at every start (prepare-dirs)."""
    overrides = {"/etc/mxguard": ("root", "mxguard", 0o710),
                 "/var/lib/mxguard": ("mxguard", "mxguard", 0o700)}
    version = run("dpkg-query", "-W", "-f=${Version}", "mxguard").stdout
    # As dpkg runs it (dpkg-maintscript-helper needs to know the package).
    env = dict(os.environ, DPKG_MAINTSCRIPT_PACKAGE="mxguard", DPKG_MAINTSCRIPT_NAME="postinst",
               DPKG_MAINTSCRIPT_ARCH=run("dpkg", "--print-architecture").stdout.strip())
    try:
        for path, (owner, group, mode) in overrides.items():
            run("dpkg-statoverride", "--update", "--add", owner, group, f"{mode:o}", path)
        run("/var/lib/dpkg/info/mxguard.postinst", "configure", version, timeout=120, env=env)
        run("/usr/libexec/mxguard/prepare-dirs", str(CONF))
        for path, (owner, group, mode) in overrides.items():
            st = Path(path).stat()
            assert (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
                    stat.S_IMODE(st.st_mode)) == (owner, group, mode), path
    finally:
        for path in overrides:
            run("dpkg-statoverride", "--remove", path, check=False)
        run("/var/lib/dpkg/info/mxguard.postinst", "configure", version, timeout=120, env=env)
    # Without overrides, the package's own choice again.
    st = Path("/etc/mxguard").stat()
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert stat.S_IMODE(Path("/var/lib/mxguard").stat().st_mode) == 0o750


def test_sendmail_snippet_makes_the_milter_line(package):
    """/etc/mail/m4/mxguard.m4, included from a sendmail.mc, gives sendmail.cf the milter and
    the macros README.md names (built with Sendmail's own cf files)."""
    cfdir = ensure_sendmail() / "usr/share/sendmail/cf"
    mc = make_instance_dir("sendmail-mc") / "sendmail.mc"
    mc.write_text(f"include(`{cfdir}/m4/cf.m4')dnl\nOSTYPE(`linux')dnl\n"
                  "include(`/etc/mail/m4/mxguard.m4')dnl\nMAILER(`smtp')dnl\n")
    cf = run("m4", f"-D_CF_DIR_={cfdir}/", str(mc)).stdout
    assert re.search(r"^Xmxguard, S=unix:/run/mxguard/mxguard\.sock, F=T, T=S:10s;R:30s;E:5m$",
                     cf, re.M), cf[-3000:]
    assert re.search(r"^O InputMailFilters=mxguard$", cf, re.M)
    connect = re.search(r"^O Milter\.macros\.connect=(.*)$", cf, re.M).group(1)
    envfrom = re.search(r"^O Milter\.macros\.envfrom=(.*)$", cf, re.M).group(1)
    assert "{if_addr}" in connect and "{daemon_name}" in connect, connect
    assert "{auth_authen}" in envfrom and "{mail_addr}" in envfrom, envfrom
