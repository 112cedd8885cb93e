"""A private Postfix instance for one test module: own config, queue and data directories.

Runs as root from the system package without touching /etc/postfix or /var/spool/postfix:
`postfix -c DIR start` accepts any config directory when run by root. Only the services a
loopback smtpd -> cleanup -> qmgr -> pipe(sink) path needs are in master.cf; there is no pickup,
so nothing from a system maildrop can interfere. Every accepted message, for any domain, goes
to the `sink` pipe service and so into a `Sink`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import time
import weakref
from pathlib import Path

from .milteraddr import MilterAddress
from .sink import Sink
from .util import (TEST_HOSTNAME, FileLog, check_world_traversable, free_port, kill_pid,
                   make_instance_dir, pid_alive, run, short_alias, wait_until)

POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/postfix"
MASTER = "/usr/lib/postfix/sbin/master"

#: (path relative to the instance, owner, group, mode), as in /etc/postfix/postfix-files.
QUEUE_LAYOUT = [("queue", "root", "root", 0o755), ("data", "postfix", "postfix", 0o700)] + [
    (f"queue/{sub}", "postfix", "postfix", 0o700)
    for sub in ("active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
                "incoming", "private", "saved", "trace")] + [
    ("queue/maildrop", "postfix", "postdrop", 0o730),
    ("queue/public", "postfix", "postdrop", 0o710),
    ("queue/pid", "root", "root", 0o755),
]

#: Room for the longest socket path Postfix makes inside its queue directory:
#: "private/" or "public/" and a service name (the longest standard one is "proxywrite").
QUEUE_LONGEST_SOCKET = 32

#: Macros mxguard relies on (see DESIGN.md); Postfix has {daemon_addr} where Sendmail has {if_addr}.
CONNECT_MACROS = ("j {daemon_name} {daemon_addr} {daemon_port} v _ "
                  "{client_addr} {client_name} {client_port} {client_ptr}")
HELO_MACROS = "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}"
MAIL_MACROS = "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}"
RCPT_MACROS = "i {rcpt_addr} {rcpt_host} {rcpt_mailer}"

# master.cf: every service chroot=n (the instance is not laid out for a chroot); no pickup,
# no local submission. Columns: service type private unpriv chroot wakeup maxproc command.
MASTER_CF = """\
{listeners}
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
sink      unix  -       n       n       -       -       pipe
  flags=q user=nobody null_sender=
  argv=/usr/bin/python3 {agent} {sinkdir} from=${{sender}} to=${{recipient}}
{extra_master}
"""


_running: "weakref.WeakSet[Postfix]" = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    """Stop instances a crashed or interrupted test run left behind (master daemonizes, so
    it would otherwise outlive the test process and keep its port)."""
    for inst in list(_running):
        inst.terminate()


class Postfix(FileLog):
    """One private Postfix instance listening on loopback.

    `milter` is a libmilter-style address (`unix:/abs/path`, `inet:PORT@127.0.0.1`), a
    `MilterAddress` or a running `Mxguard`; None runs without milter. `config` holds extra
    main.cf lines (`name = value`), which override the defaults. `listen` lists the loopback
    addresses smtpd listens on (same port on each). Use as a context manager or call
    start()/stop().
    """

    def __init__(self, milter=None, config: str | dict | None = None,
                 listen: tuple[str, ...] = ("127.0.0.1",), extra_master: str = "",
                 sink: Sink | None = None, directory: Path | None = None):
        self.milter = MilterAddress.parse(milter) if milter is not None else None
        self.extra_config = config
        self.listen = tuple(listen)
        self.extra_master = extra_master
        self.dir = Path(directory) if directory else make_instance_dir("postfix")
        check_world_traversable(self.dir)
        self.config_dir = self.dir / "etc"
        self.queue_dir = self.dir / "queue"
        self.data_dir = self.dir / "data"
        self.log_file = self.dir / "maillog"
        self.sink_link = self.dir / "sink"
        self.agent = Sink.install_agent(self.dir)
        self.port = 0
        self.sink = sink
        self.use_sink(sink or Sink(self.dir / "default-sink"))
        self._log_mark = 0

    # -- addresses -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """Address clients connect to (the first listener)."""
        return self.listen[0]

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    name = "postfix"

    # -- configuration ---------------------------------------------------------------------
    def main_cf(self) -> str:
        """The generated main.cf: defaults tuned for fast, DNS-free, lossless tests."""
        d = self.dir
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(short_alias(self.queue_dir, QUEUE_LONGEST_SOCKET)),
            "data_directory": str(self.data_dir),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "syslog_name": f"postfix-e2e-{self.port}",
            "maillog_file": str(self.log_file),
            "maillog_file_prefixes": str(d),
            "myhostname": TEST_HOSTNAME,
            "mydomain": "test.example",
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "relay_domains": "",
            "mynetworks": "127.0.0.0/8 [::1]/128",
            "inet_interfaces": ", ".join(a for a in self.listen),
            "inet_protocols": "all" if any(":" in a for a in self.listen) else "ipv4",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "",
            "smtpd_banner": "$myhostname ESMTP",
            "smtpd_peername_lookup": "no",
            "smtpd_error_sleep_time": "0",
            "smtpd_soft_error_limit": "1000",
            "smtpd_hard_error_limit": "1000",
            "smtpd_junk_command_limit": "1000",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_port_logging": "no",
            "smtputf8_enable": "no",
            "in_flow_delay": "0",
            "default_transport": "sink",
            "relay_transport": "sink",
            "local_transport": "sink",
            "virtual_transport": "sink",
            "sink_destination_recipient_limit": "1",
            "sink_destination_concurrency_limit": "50",
            "default_process_limit": "100",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "delay_warning_time": "0",
            "biff": "no",
            "append_dot_mydomain": "no",
            "smtp_dns_support_level": "disabled",
            "smtpd_milters": self.milter.postfix() if self.milter else "",
            "non_smtpd_milters": "",
            "milter_protocol": "6",
            "milter_default_action": "tempfail",
            "milter_connect_timeout": "10s",
            "milter_command_timeout": "30s",
            "milter_content_timeout": "60s",
            "milter_connect_macros": CONNECT_MACROS,
            "milter_helo_macros": HELO_MACROS,
            "milter_mail_macros": MAIL_MACROS,
            "milter_rcpt_macros": RCPT_MACROS,
        }
        settings.update(_parse_config(self.extra_config))
        return "".join(f"{k} = {v}\n" for k, v in settings.items())

    def master_cf(self) -> str:
        listeners = "\n".join(
            f"{_bracket(addr)}:{self.port} inet n - n - - smtpd" for addr in self.listen)
        return MASTER_CF.format(listeners=listeners, agent=self.agent, sinkdir=self.sink_link,
                                extra_master=self.extra_master)

    def write_config(self) -> None:
        self.config_dir.mkdir(exist_ok=True)
        past = time.time() - 10
        for name, text in (("main.cf", self.main_cf()), ("master.cf", self.master_cf())):
            path = self.config_dir / name
            path.write_text(text)
            # Postfix re-reads a dictionary file until its mtime is over a second old (it
            # might still be being written): backdating saves ~2 s per start and reload.
            os.utime(path, (past, past))

    def use_sink(self, sink: Sink) -> None:
        """Deliver from now on into `sink` (atomically re-points the instance's sink link).

        Lets a module-scoped instance serve function-scoped sinks without a restart.
        """
        tmp = self.dir / f".sink-{os.getpid()}-{time.monotonic_ns()}"
        tmp.symlink_to(sink.dir)
        tmp.rename(self.sink_link)
        self.sink = sink
        sink.fed_by(self)

    # -- life cycle ------------------------------------------------------------------------
    def _postfix(self, *args: str, timeout: float = 60, check: bool = True):
        return run([POSTFIX, "-c", str(self.config_dir), *args], timeout=timeout, check=check)

    def start(self, attempts: int = 5) -> "Postfix":
        """Start on a free port; retries with another port if the chosen one was taken.

        Runs `master -w` directly: `postfix start` spends about two seconds in postfix-script
        checks (which also look at system files) before it does the same.
        """
        for attempt in range(attempts):
            self.port = free_port(self.host)
            self.write_config()
            self._make_dirs()
            proc = run([MASTER, "-c", str(self.config_dir), "-w"], check=False, timeout=60)
            if proc.returncode != 0:
                check = self._postfix("check", check=False)
                raise RuntimeError(f"postfix master in {self.dir} failed to start:\n"
                                   f"{proc.stdout}{proc.stderr}{check.stdout}{check.stderr}\n"
                                   + self.log_text()[-3000:])
            _running.add(self)
            try:
                self._wait_listening()
                return self
            except TimeoutError:
                in_use = "Address already in use" in self.log_text()
                self.stop()
                if not in_use or attempt == attempts - 1:
                    raise RuntimeError(f"postfix in {self.dir} did not start listening:\n"
                                       + self.log_text()[-3000:])
        raise AssertionError("unreachable")

    def _make_dirs(self) -> None:
        """Queue and data directories with the owners and modes of Postfix's postfix-files.

        What `postfix start` (post-install create-missing) would make; the queue is root's,
        its subdirectories belong to the postfix user, maildrop/public to group postdrop.
        """
        for path, owner, group, mode in QUEUE_LAYOUT:
            d = self.dir / path
            d.mkdir(exist_ok=True)
            shutil.chown(d, owner, group)
            d.chmod(mode)

    def _wait_listening(self, timeout: float = 20) -> None:
        """Wait until every smtpd listener answers with an SMTP banner (any code: a milter
        may refuse the probe itself, as a trap listener does)."""
        import socket

        def banner(addr: str) -> bool:
            try:
                with socket.create_connection((addr, self.port), timeout=2) as s:
                    s.settimeout(5)
                    ok = s.recv(512)[:3].isdigit()
                    s.sendall(b"QUIT\r\n")
                    return ok
            except OSError:
                return False
        for addr in self.listen:
            wait_until(lambda: banner(addr), timeout, interval=0.1,
                       what=f"postfix banner on {addr}:{self.port}")

    def master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.master_pid()
        return pid is not None and pid_alive(pid)

    def reload(self) -> None:
        """Rewrite the config and signal the master to reload (keeps port and queue)."""
        self.write_config()
        pid = self.master_pid()
        if pid is None or not pid_alive(pid):
            raise RuntimeError(f"postfix in {self.dir} is not running")
        os.kill(pid, signal.SIGHUP)

    def terminate(self) -> None:
        """SIGTERM the master (it terminates its children) without waiting.

        The master takes one to two seconds to exit; stopping several instances is faster
        as terminate() on all, then stop() on each.
        """
        pid = self.master_pid()
        self._stopping_pid = pid
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)

    def stop(self) -> None:
        """Stop the master and wait for it; SIGKILL if it does not exit within 10 s."""
        pid = self.master_pid() or getattr(self, "_stopping_pid", None)
        if pid is not None and pid_alive(pid):
            kill_pid(pid, timeout=10)
        _running.discard(self)

    def cleanup(self) -> None:
        """Stop and remove the instance directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Postfix":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- queue and log ---------------------------------------------------------------------
    def queued(self) -> int:
        """Messages still in the queue (incoming, active, deferred, hold, maildrop)."""
        total = 0
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(self.queue_dir / sub):
                total += len(files)
        return total

    def wait_queue_empty(self, timeout: float = 30) -> None:
        """Wait until Postfix has delivered (or bounced) everything it accepted."""
        wait_until(lambda: self.queued() == 0, timeout, what=f"postfix queue in {self.dir} "
                   "to drain")

    def flush(self) -> None:
        """Ask Postfix to retry deferred mail now."""
        self._postfix("flush", check=False)


def _bracket(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr


def _parse_config(extra: str | dict | None) -> dict[str, str]:
    """Extra main.cf settings as dict, from a dict or from `name = value` lines."""
    if not extra:
        return {}
    if isinstance(extra, dict):
        return {k: str(v) for k, v in extra.items()}
    result: dict[str, str] = {}
    key = None
    for line in extra.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and key:  # continuation line
            result[key] += " " + line.strip()
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"bad main.cf line: {line!r}")
        key = key.strip()
        result[key] = value.strip()
    return result
