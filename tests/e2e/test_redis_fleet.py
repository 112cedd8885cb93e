"""Redis for real fleets (issue 15, item 3): AUTH with a password file, Sentinel failover
under load, and the TLS route through stunnel, with real servers on loopback ports.

- AUTH: a redis-server that requires a password and has an ACL user; two mxguards, one as the
  ACL user and one with the password alone, both from mode-600 password files, share a ban;
  `mxguard -n` says "auth: yes" without the secret; a password file readable by others, and a
  rediss:// URL (Debian 12's hiredis has no TLS), end `mxguard -n` with status 78 naming the
  file and line. The secret never appears in mxguard's output.
- Sentinel: a master, a replica and three sentinels. A ban written before the failover; the
  master is killed while a background thread sends mail through Postfix; mxguard asks the
  sentinels, follows the promoted replica, and writes to it; no message that should be
  accepted gets a 5xx (250 or 4xx only) and every accepted one arrives; the ban is still
  honoured afterwards, by this mxguard and by one started after the failover.
- TLS: redis-server with its TLS port only (certificates made by the test), stunnel in client
  mode on "the mxguard host" verifying the chain and the host name; two mxguards share a ban
  through it, and redis-cli --tls sees the ban on the server. A tunnel with the wrong CA fails
  the handshake: mxguard says Redis is unreachable and keeps filtering on local state, mail
  still arrives (never a 5xx).
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from dns.dnstest import Nsd, free_port
from harness import smtp
from harness.milter import mxguard_binary
from harness.redis import (make_certificates, redis_cli, start_redis, start_sentinel,
                           start_stunnel_client, start_tls_redis)
from harness.util import BOGUS_NETWORKS, wait_until

SENDER = "sender@good.mail.test"
GOOD = "x@good.mail.test"
UNHANDLED = "info@product.web.test"  # null MX: 556 and a strike


@pytest.fixture(scope="module")
def nsd():
    with Nsd() as server:
        yield server


@pytest.fixture
def procs():
    """Processes a test starts (redis, sentinels, stunnel); killed at teardown."""
    started: list[subprocess.Popen] = []
    yield started
    for p in reversed(started):
        if p.poll() is None:
            p.kill()
        p.wait(10)


def send(server, **kwargs):
    kwargs.setdefault("sender", SENDER)
    return smtp.send(server, **kwargs)


def config(nsd, extra: str) -> str:
    return (f"dns-server = {nsd.server}\n"
            f"bogus-networks = {BOGUS_NETWORKS}\n"
            "unhandled-domains = product.web.test\n"
            "ban-strikes = 3\nban-window = 10m\nban-time = 10m\n"
            # The clients of these tests are loopback addresses playing remote hosts.
            "ban-loopback = yes\n"
            "redis-timeout = 200ms\n"
            "log-level = info\n" + extra)


def secret_file(directory: Path, name: str, text: str, mode: int = 0o600) -> Path:
    path = directory / name
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def strike_three(server, client: str) -> None:
    for _ in range(3):
        r = send(server, recipients=[UNHANDLED], source=client)
        assert r.rcpts and r.rcpts[0].code == 556, str(r.last())


def assert_banned(server, daemon, client: str) -> None:
    r = send(server, recipients=[GOOD], source=client)
    assert not r.accepted
    assert r.banner.code == 421 or (r.last().code // 100) == 4, str(r.last())
    daemon.wait_log(rf"reject: CONNECT from \S+\[{re.escape(client)}\]: 421 4\.7\.0 .*check=ban")


def assert_delivered(server, sink, client: str, subject: str) -> None:
    r = send(server, recipients=[GOOD], source=client, subject=subject)
    assert r.accepted, str(r.last())
    assert sink.wait_find(subject=subject)


def check_config(conf: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(mxguard_binary()), "-n", "-c", str(conf)], capture_output=True,
                          text=True, timeout=30)


def build_has_tls(tmp_path: Path) -> bool:
    """Whether this mxguard takes rediss:// (`-n` accepts it) or refuses it for want of TLS."""
    conf = tmp_path / "probe-tls.conf"
    conf.write_text(f"bogus-networks = {BOGUS_NETWORKS}\nstate = rediss://127.0.0.1:1/0\n")
    out = check_config(conf)
    if out.returncode == 78 and "hiredis" in out.stderr and "stunnel" in out.stderr:
        return False
    assert out.returncode == 0, out
    return True


# -- AUTH -----------------------------------------------------------------------------------

def test_password_file_and_acl_user_share_bans(postfix, mxguard, nsd, sink, tmp_path, procs):
    port = free_port()
    procs.append(start_redis(port, tmp_path, ["--requirepass", "Default-pw-7",
                                              "--user", "mx", "on", ">Acl-pw-9", "~mxguard:*", "+@read",
                                              "+@write", "+@connection", "+eval", "+role"]))
    acl = secret_file(tmp_path, "acl.pass", "Acl-pw-9")
    plain = secret_file(tmp_path, "default.pass", "Default-pw-7")
    url = f"redis://127.0.0.1:{port}/0"
    one = mxguard(config(nsd, f"state = {url}\nredis-user = mx\nredis-password-file = {acl}\n"))
    two = mxguard(config(nsd, f"state = {url}\nredis-password-file = {plain}\n"))
    for d in (one, two):
        d.wait_log(rf"state: using {re.escape(url)}")
    mx_one, mx_two = postfix(milter=one.socket), postfix(milter=two.socket)
    strike_three(mx_one, "127.0.0.51")
    one.wait_log(r"ban 127\.0\.0\.51 for 600s")
    assert redis_cli(port, "EXISTS", "mxguard:ban:127.0.0.51", user="mx",
                     password="Acl-pw-9").strip() == "1"
    assert_banned(mx_two, two, "127.0.0.51")  # the other host, as the default user
    assert_delivered(mx_one, sink, "127.0.0.52", "auth one")
    assert_delivered(mx_two, sink, "127.0.0.52", "auth two")

    # -n reports the mode and that it authenticates, never the secret.
    out = check_config(one.config_file)
    assert out.returncode == 0, out.stderr
    assert f"state: redis {url} (plain" in out.stdout
    assert f"auth: yes, user mx, password from {acl}" in out.stdout
    for d in (one, two):
        d.check()
        for text in (out.stdout + out.stderr, d.log_text()):
            assert "Acl-pw-9" not in text and "Default-pw-7" not in text


def test_password_file_readable_by_others_or_missing_is_refused(tmp_path):
    loose = secret_file(tmp_path, "loose.pass", "Loose-pw-1", mode=0o644)
    conf = tmp_path / "mxguard.conf"
    conf.write_text("state = redis://127.0.0.1:6379/0\n"
                    f"redis-password-file = {loose}\n")
    out = check_config(conf)
    assert out.returncode == 78, out
    assert f"{conf}:2: redis-password-file: {loose}: group or others may access it" in out.stderr
    assert "Loose-pw-1" not in out.stdout + out.stderr

    conf.write_text(f"state = redis://127.0.0.1:6379/0\nredis-password-file = {tmp_path}/none\n")
    out = check_config(conf)
    assert out.returncode == 78, out
    assert f"{conf}:2: redis-password-file: {tmp_path}/none: cannot read it" in out.stderr


def test_rediss_url_is_refused_with_the_tunnel_route(tmp_path):
    if build_has_tls(tmp_path):
        pytest.skip("this build has TLS: test_native_rediss_verifies_the_server runs instead")
    conf = tmp_path / "mxguard.conf"
    conf.write_text(f"bogus-networks = {BOGUS_NETWORKS}\n"
                    "state = rediss://:Tls-pw-3@redis.example:6380/0\n")
    out = check_config(conf)
    assert out.returncode == 78, out
    assert f"{conf}:2: state: rediss://" in out.stderr
    assert "stunnel" in out.stderr
    assert "Tls-pw-3" not in out.stdout + out.stderr


# -- Sentinel -------------------------------------------------------------------------------

def sentinel_master_info(port: int, password: str | None = None) -> dict[str, str]:
    out = redis_cli(port, "SENTINEL", "master", "mymaster", password=password,
                    check=False).splitlines()
    return dict(zip(out[0::2], out[1::2]))


def role(port: int) -> str:
    try:
        return redis_cli(port, "ROLE", check=False).split("\n")[0]
    except subprocess.TimeoutExpired:
        return ""


class Fleet:
    """A master, a replica of it and three sentinels, all on loopback."""

    def __init__(self, directory: Path, procs: list, password: str | None = None,
                 sentinel_password: str | None = None):
        self.password, self.sentinel_password = password, sentinel_password
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        auth = ["--requirepass", password, "--masterauth", password] if password else []
        self.master = start_redis(self.master_port, directory, auth,
                                  log=directory / "master.log")
        procs.append(self.master)
        procs.append(start_redis(self.replica_port, directory,
                                 ["--replicaof", "127.0.0.1", str(self.master_port), *auth],
                                 log=directory / "replica.log"))
        for p in self.sentinel_ports:
            procs.append(start_sentinel(p, directory, self.master_port,
                                        master_password=password,
                                        own_password=sentinel_password))
        wait_until(lambda: "master_link_status:up" in redis_cli(
            self.replica_port, "INFO", "replication", password=password),
            20, what="the replica in sync")

        def sentinels_know_everyone():
            for p in self.sentinel_ports:
                info = sentinel_master_info(p, sentinel_password)
                if info.get("num-slaves") != "1" or info.get("num-other-sentinels") != "2":
                    return False
            return True
        # A sentinel learns the replica from the master's INFO (every 10 s) and the other
        # sentinels from their hello messages (every 2 s): on a loaded machine (the
        # sanitizer stages) that once took over 30 s.
        wait_until(sentinels_know_everyone, 90, interval=0.2,
                   what="each sentinel to know the replica and the other two")

    @property
    def sentinels(self) -> str:
        return ", ".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def config(self) -> str:
        return (f"state = sentinel\nredis-master-name = mymaster\n"
                f"redis-sentinels = {self.sentinels}\n")


class Load:
    """A background sender: one message at a time through Postfix, each for a good recipient
    (must get 250 or 4xx, never 5xx) and for the website-only domain (a strike: a write to
    Redis); the client address changes every second message, so no strike count reaches a
    ban."""

    def __init__(self, server):
        self.server = server
        self.results: list[tuple[str, smtp.SmtpResult]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="failover-load")

    def _run(self) -> None:
        i = 0
        try:
            while not self._stop.is_set():
                n = i // 2
                client = f"127.0.{1 + n // 250}.{1 + n % 250}"
                subject = f"failover {i}"
                r = send(self.server, recipients=[GOOD, UNHANDLED], source=client,
                         subject=subject, timeout=30)
                self.results.append((subject, r))
                i += 1
        except BaseException as e:  # reported by stop()
            self.errors.append(e)

    def start(self) -> "Load":
        self._thread.start()
        return self

    def count(self) -> int:
        return len(self.results)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the load thread did not stop"
        assert not self.errors, self.errors


def assert_never_5xx_for_good_mail(results) -> list[str]:
    """Each message: its good recipient got 250 or 4xx (and so did DATA when reached); the
    subjects of the accepted ones."""
    accepted = []
    for subject, r in results:
        replies = [r.banner, r.ehlo, r.mail] + r.rcpts[:1] + [r.data, r.eom]
        for reply in replies:
            if reply is not None:
                assert reply.code // 100 != 5, f"{subject}: {reply}"
        if r.accepted:
            accepted.append(subject)
        else:
            assert any(x is not None and x.code // 100 == 4 for x in replies), \
                f"{subject}: neither accepted nor 4xx: {r.last()}"
    return accepted


def test_sentinel_failover_under_load(postfix, mxguard, nsd, sink, tmp_path, procs):
    fleet = Fleet(tmp_path, procs)
    d = mxguard(config(nsd, fleet.config()))
    d.wait_log(rf"the sentinels name 127\.0\.0\.1:{fleet.master_port} as master mymaster")
    server = postfix(milter=d.socket)

    # A ban written before the failover, replicated.
    strike_three(server, "127.0.0.61")
    d.wait_log(r"ban 127\.0\.0\.61 for 600s")
    wait_until(lambda: redis_cli(fleet.replica_port, "EXISTS",
                                 "mxguard:ban:127.0.0.61").strip() == "1",
               10, what="the ban on the replica")

    load = Load(server).start()
    try:
        wait_until(lambda: load.count() >= 5, 60, what="mail flowing")
        d.mark_log()
        fleet.master.send_signal(signal.SIGKILL)
        fleet.master.wait(10)
        # mxguard notices, filters on local state, finds the promoted replica and uses it.
        d.wait_log(r"state: sentinel master mymaster .* is unreachable", timeout=30)
        d.wait_log(rf"the sentinels name 127\.0\.0\.1:{fleet.replica_port} as master mymaster",
                   timeout=90)
        d.wait_log(r"state: sentinel master mymaster .* is reachable again", timeout=30)
        assert role(fleet.replica_port) == "master"
        # Writes reach the new master: strike keys of the load's clients appear there.
        before = load.count()
        wait_until(lambda: load.count() >= before + 5, 60, what="mail after the failover")
    finally:
        load.stop()
    accepted = assert_never_5xx_for_good_mail(load.results)
    assert accepted, "no message accepted at all"
    for subject in accepted:
        assert sink.wait_find(subject=subject), subject
    last_client = f"127.0.{1 + (load.count() - 1) // 2 // 250}.{1 + (load.count() - 1) // 2 % 250}"
    wait_until(lambda: redis_cli(fleet.replica_port, "KEYS", f"mxguard:*{last_client}*").strip(),
               10, what=f"a key of {last_client} on the new master")

    # The ban from before the failover holds, here and on a host that started after it.
    assert_banned(server, d, "127.0.0.61")
    late = mxguard(config(nsd, fleet.config()))
    late.wait_log(rf"the sentinels name 127\.0\.0\.1:{fleet.replica_port} as master mymaster")
    assert_banned(postfix(milter=late.socket), late, "127.0.0.61")
    # A ban made after the failover lands on the new master.
    strike_three(server, "127.0.0.62")
    d.wait_log(r"ban 127\.0\.0\.62 for 600s")
    assert redis_cli(fleet.replica_port, "EXISTS", "mxguard:ban:127.0.0.62").strip() == "1"
    out = check_config(d.config_file)
    assert out.returncode == 0, out.stderr
    assert (f"state: redis through sentinel: master name mymaster, sentinels {fleet.sentinels}"
            ", db 0, auth: no") in out.stdout
    d.check()
    late.check()


# -- TLS through stunnel ----------------------------------------------------------------------

def test_tls_tunnel_shares_bans_and_a_wrong_ca_falls_back(postfix, mxguard, nsd, sink,
                                                          tmp_path, procs):
    certs = make_certificates(tmp_path, "right")
    other = make_certificates(tmp_path, "other")
    tls_port = free_port()
    procs.append(start_tls_redis(tls_port, tmp_path, certs))
    tunnel_a, tunnel_b, wrong = free_port(), free_port(), free_port()
    # One tunnel per "host"; each verifies the server's chain and name.
    procs.append(start_stunnel_client(tunnel_a, tls_port, tmp_path, certs["ca"]))
    procs.append(start_stunnel_client(tunnel_b, tls_port, tmp_path, certs["ca"]))
    procs.append(start_stunnel_client(wrong, tls_port, tmp_path, other["ca"]))

    one = mxguard(config(nsd, f"state = redis://127.0.0.1:{tunnel_a}/0\n"))
    two = mxguard(config(nsd, f"state = redis://127.0.0.1:{tunnel_b}/0\n"))
    mx_one, mx_two = postfix(milter=one.socket), postfix(milter=two.socket)
    strike_three(mx_one, "127.0.0.71")
    one.wait_log(r"ban 127\.0\.0\.71 for 600s")
    assert_banned(mx_two, two, "127.0.0.71")
    tls = ["--tls", "--cacert", str(certs["ca"]), "--sni", "redis.fleet.test"]
    assert redis_cli(tls_port, "EXISTS", "mxguard:ban:127.0.0.71", tls=tls).strip() == "1"
    # Nothing listens in clear on the server side: the TLS port refuses a plain client.
    plain = subprocess.run(["redis-cli", "-p", str(tls_port), "PING"], capture_output=True,
                           text=True, timeout=10)
    assert "PONG" not in plain.stdout

    # The wrong CA: the tunnel refuses the server, mxguard filters on local state.
    bad = mxguard(config(nsd, f"state = redis://127.0.0.1:{wrong}/0\n"))
    mx_bad = postfix(milter=bad.socket)
    assert_delivered(mx_bad, sink, "127.0.0.72", "wrong ca")
    bad.wait_log(rf"state: redis://127\.0\.0\.1:{wrong}/0 is unreachable .*local memory state",
                 timeout=30)
    r = send(mx_bad, recipients=[GOOD], source="127.0.0.71", subject="wrong ca banned elsewhere")
    assert r.last().code // 100 != 5, str(r.last())  # the shared ban is out of reach: no 5xx
    if r.accepted:
        assert sink.wait_find(subject="wrong ca banned elsewhere")
    log = (tmp_path / f"stunnel-{wrong}.log").read_text(errors="replace")
    assert re.search(r"certificate verify failed|CERT: Verification error|"
                     r"unable to get local issuer", log, re.I), log[-2000:]
    for d in (one, two, bad):
        d.check()


def test_sentinel_with_passwords_everywhere(postfix, mxguard, nsd, sink, tmp_path, procs):
    """The worked example of mxguard(8): data servers with requirepass, sentinels with their
    own requirepass; mxguard reads both passwords from mode-600 files."""
    fleet = Fleet(tmp_path, procs, password="Data-pw-5", sentinel_password="Sent-pw-6")
    data = secret_file(tmp_path, "redis.pass", "Data-pw-5")
    sent = secret_file(tmp_path, "sentinel.pass", "Sent-pw-6")
    d = mxguard(config(nsd, fleet.config() + f"redis-password-file = {data}\n"
                       f"redis-sentinel-password-file = {sent}\n"))
    d.wait_log(rf"the sentinels name 127\.0\.0\.1:{fleet.master_port} as master mymaster")
    server = postfix(milter=d.socket)
    strike_three(server, "127.0.0.65")
    d.wait_log(r"ban 127\.0\.0\.65 for 600s")
    assert redis_cli(fleet.master_port, "EXISTS", "mxguard:ban:127.0.0.65",
                     password="Data-pw-5").strip() == "1"
    assert_delivered(server, sink, "127.0.0.66", "sentinel with passwords")
    out = check_config(d.config_file)
    assert out.returncode == 0, out.stderr
    assert (f"auth: yes, password from {data}, sentinel auth: yes, password from {sent}"
            in out.stdout), out.stdout
    assert "unreachable" not in d.log_text()
    for text in (out.stdout + out.stderr, d.log_text()):
        assert "Data-pw-5" not in text and "Sent-pw-6" not in text
    d.check()

    # A wrong sentinel password: no sentinel answers, mxguard filters on local state.
    wrong = secret_file(tmp_path, "wrong.pass", "not-it")
    w = mxguard(config(nsd, fleet.config() + f"redis-password-file = {data}\n"
                       f"redis-sentinel-password-file = {wrong}\n"))
    w.wait_log(r"state: sentinel master mymaster .* is unreachable \(no sentinel named a "
               r"master: .*(WRONGPASS|invalid password)")
    assert_delivered(postfix(milter=w.socket), sink, "127.0.0.67", "wrong sentinel password")
    w.check()


# -- rediss:// (builds with hiredis >= 1.0 and hiredis_ssl only) ------------------------------

def test_native_rediss_verifies_the_server(postfix, mxguard, nsd, sink, tmp_path, procs):
    """rediss:// straight to a TLS-only redis-server: bans shared, the certificate verified
    (a wrong CA and a wrong name each fall back to local state, never a 5xx). Debian 12's
    hiredis 0.14 has no TLS: there this test is skipped, and
    test_rediss_url_is_refused_with_the_tunnel_route holds instead."""
    if not build_has_tls(tmp_path):
        pytest.skip("this build has no TLS (hiredis < 1.0 or no hiredis_ssl): the stunnel "
                    "route is tested instead")
    certs = make_certificates(tmp_path, "right")
    other = make_certificates(tmp_path, "other")
    tls_port = free_port()
    procs.append(start_tls_redis(tls_port, tmp_path, certs))
    url = f"rediss://127.0.0.1:{tls_port}/0"
    good = (f"state = {url}\nredis-tls-ca-file = {certs['ca']}\n"
            "redis-tls-server-name = redis.fleet.test\n")
    one, two = mxguard(config(nsd, good)), mxguard(config(nsd, good))
    one.wait_log(rf"state: using {re.escape(url)}")
    mx_one, mx_two = postfix(milter=one.socket), postfix(milter=two.socket)
    strike_three(mx_one, "127.0.0.81")
    one.wait_log(r"ban 127\.0\.0\.81 for 600s")
    assert_banned(mx_two, two, "127.0.0.81")
    tls = ["--tls", "--cacert", str(certs["ca"])]
    assert redis_cli(tls_port, "EXISTS", "mxguard:ban:127.0.0.81", tls=tls).strip() == "1"
    out = check_config(one.config_file)
    assert out.returncode == 0, out.stderr
    assert (f"state: redis {url} (TLS, certificate verified against {certs['ca']} for "
            "redis.fleet.test)") in out.stdout, out.stdout

    for name, extra in (("wrong ca", f"redis-tls-ca-file = {other['ca']}\n"),
                        ("wrong name", f"redis-tls-ca-file = {certs['ca']}\n"
                                       "redis-tls-server-name = other.fleet.test\n")):
        bad = mxguard(config(nsd, f"state = {url}\n" + extra))
        bad.wait_log(rf"state: {re.escape(url)} is unreachable .*local memory state",
                     timeout=30)
        assert_delivered(postfix(milter=bad.socket), sink, "127.0.0.82", name)
        bad.check()
    one.check()
    two.check()
