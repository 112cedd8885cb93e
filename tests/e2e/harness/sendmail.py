"""Sendmail in `-bs` mode behind a tiny TCP front, from a tree unpacked by scripts/fetch-sendmail.

Sendmail and Postfix conflict as Debian packages, so Sendmail is never installed: its packages
are unpacked (MXGUARD_SENDMAIL_ROOT, default build/sendmail-root) and run with a generated
sendmail.cf. The front listens on a loopback port; for each connection it starts
`sendmail -bs` with the accepted socket as stdin/stdout, so Sendmail (getpeername on stdin)
and its milter see the real client address, exactly as for a daemon. Every recipient is routed
to a `sink` mailer that runs the sink delivery agent; delivery mode is interactive.

A daemon sets {daemon_*} (and, off loopback, {if_addr}) from its listening socket; -bs
cannot, so the front passes them with -oM (see Sendmail._daemon_macros). Sendmail logs only
to syslog: each sendmail gets a private /dev/log that a receiver thread writes to `maillog`.

Each sendmail runs in its own UTS and mount namespace (we are root) with the host name
mx.test.example and a private /etc/hosts: without a fully qualified host name Sendmail
sleeps 60 s at start, and no name lookup must leave the machine.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from .milteraddr import MilterAddress
from .sink import Sink
from .util import REPO_ROOT, TEST_HOSTNAME, FileLog, kill_pid, make_instance_dir, run, wait_until

CONNECT_MACROS = ("j, _, {daemon_name}, {daemon_addr}, {daemon_port}, {daemon_family}, "
                  "{if_name}, {if_addr}, {if_family}, "
                  "{client_addr}, {client_name}, {client_port}, {client_ptr}")
HELO_MACROS = "{tls_version}, {cipher}, {cipher_bits}, {cert_subject}, {cert_issuer}"
MAIL_MACROS = "i, {auth_type}, {auth_authen}, {auth_ssf}, {auth_author}, {mail_mailer}, " \
              "{mail_host}, {mail_addr}"
RCPT_MACROS = "{rcpt_mailer}, {rcpt_host}, {rcpt_addr}, i"
EOM_MACROS = "{msg_id}"

# m4 source of sendmail.cf. ParseLocal (LOCAL_RULE_0) runs first in ruleset 0: it sends every
# address, whatever its domain, to the sink mailer. F=S keeps root for the agent (no
# DefaultUser games); no F=m, so the agent runs once per recipient; no S=/R= rulesets, so $g
# and $u are the envelope addresses as given (EnvToL would cut the domain off); F=u keeps case.
# TrustStickyBit: milter socket paths may run through /tmp, which Sendmail's safe-file checks
# would otherwise call unsafe (world-writable directory). MaxHeadersLength as Postfix's
# header_size_limit (Sendmail's default of 32k rejects what Postfix takes). QueueLA/RefuseLA are
# raised out of reach: on a busy test machine Sendmail would otherwise queue instead of
# delivering, and the mail would not reach the sink in time.
MC_TEMPLATE = """\
divert(-1)
divert(0)dnl
include(`{cfdir}/m4/cf.m4')dnl
VERSIONID(`mxguard e2e harness')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `{hostname}')dnl
define(`QUEUE_DIR', `{inst}/mqueue')dnl
define(`STATUS_FILE', `{inst}/statistics')dnl
define(`HELP_FILE', `{inst}/helpfile')dnl
define(`confPID_FILE', `{inst}/sendmail.pid')dnl
define(`confHOSTS_FILE', `{inst}/hosts')dnl
define(`confSERVICE_SWITCH_FILE', `{inst}/service.switch')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confDELIVERY_MODE', `interactive')dnl
define(`confQUEUE_LA', `1000')dnl
define(`confREFUSE_LA', `1000')dnl
define(`confDELAY_LA', `0')dnl
define(`confTO_IDENT', `0s')dnl
define(`confBIND_OPTS', `-DNSRCH -DEFNAMES')dnl
define(`confLOG_LEVEL', `10')dnl
define(`confAUTH_MECHANISMS', `')dnl
define(`confMILTER_LOG_LEVEL', `14')dnl
define(`confPRIVACY_FLAGS', `authwarnings')dnl
define(`confSAFE_QUEUE', `True')dnl
define(`confMAX_HEADERS_LENGTH', `102400')dnl
define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit')dnl
define(`confMILTER_MACROS_CONNECT', `{connect_macros}')dnl
define(`confMILTER_MACROS_HELO', `{helo_macros}')dnl
define(`confMILTER_MACROS_ENVFROM', `{mail_macros}')dnl
define(`confMILTER_MACROS_ENVRCPT', `{rcpt_macros}')dnl
define(`confMILTER_MACROS_EOM', `{eom_macros}')dnl
undefine(`ALIAS_FILE')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`accept_unqualified_senders')dnl
FEATURE(`promiscuous_relay')dnl
{milter}dnl
{extra_mc}
MAILER(`local')dnl
MAILER_DEFINITIONS
Msink,	P=/usr/bin/python3, F=lsnuDFMqS, T=DNS/RFC822/X-Unix,
	A=python3 {agent} {sinkdir} from=$g to=$u
LOCAL_RULE_0
R$* < @ $* > $*	$#sink $@ localhost $: $1 < @ $2 > $3
R$+	$#sink $@ localhost $: $1
"""


def sendmail_root() -> Path:
    """Where scripts/fetch-sendmail unpacked the Debian packages."""
    return Path(os.environ.get("MXGUARD_SENDMAIL_ROOT") or REPO_ROOT / "build" / "sendmail-root")


def ensure_sendmail(root: Path | None = None) -> Path:
    """Unpack Sendmail if it is not there yet (runs scripts/fetch-sendmail; cached)."""
    root = Path(root or sendmail_root())
    binary = root / "usr/libexec/sendmail/sendmail"
    if not binary.exists():
        run([str(REPO_ROOT / "scripts" / "fetch-sendmail"), str(root)], timeout=300)
    return root


class Sendmail(FileLog):
    """A Sendmail "daemon" made of a loopback TCP front and one `sendmail -bs` per connection.

    `milter`: libmilter-style address, `MilterAddress` or running `Mxguard`; None: no milter.
    `milter_flags` / `milter_timeouts` fill F= and T= of INPUT_MAIL_FILTER. `config`: extra
    m4 lines for the .mc file. `host`: loopback address of the front. `loopback_if_addr`:
    pass {if_addr} although the listener is loopback (a real daemon would not; see
    _daemon_macros).
    """

    name = "sendmail"

    def __init__(self, milter=None, config: str | None = "", sink: Sink | None = None,
                 host: str = "127.0.0.1", milter_flags: str = "T",
                 milter_timeouts: str = "C:10s;S:10s;R:30s;E:60s",
                 root: Path | None = None, directory: Path | None = None,
                 loopback_if_addr: bool = False):
        self.root = ensure_sendmail(root)
        self.loopback_if_addr = loopback_if_addr
        self.binary = self.root / "usr/libexec/sendmail/sendmail"
        self.cfdir = self.root / "usr/share/sendmail/cf"
        self.milter = MilterAddress.parse(milter) if milter is not None else None
        self.milter_flags = milter_flags
        self.milter_timeouts = milter_timeouts
        self.extra_mc = config or ""
        self.host = host
        self.port = 0
        self.dir = Path(directory) if directory else make_instance_dir("sendmail")
        self.cf = self.dir / "sendmail.cf"
        self.log_file = self.dir / "maillog"
        self.stderr_file = self.dir / "sendmail.stderr"
        self.sink_link = self.dir / "sink"
        self.agent = Sink.install_agent(self.dir)
        self.sink = sink
        self.use_sink(sink or Sink(self.dir / "default-sink"))
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._children: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._syslog = None
        self._log_mark = 0
        self.connections = 0

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    # -- configuration ---------------------------------------------------------------------
    def milter_line(self) -> str:
        if not self.milter:
            return ""
        return (f"INPUT_MAIL_FILTER(`mxguard', `S={self.milter.sendmail()}, "
                f"F={self.milter_flags}, T={self.milter_timeouts}')")

    def mc(self) -> str:
        return MC_TEMPLATE.format(
            cfdir=self.cfdir, hostname=TEST_HOSTNAME, inst=self.dir,
            connect_macros=CONNECT_MACROS, helo_macros=HELO_MACROS, mail_macros=MAIL_MACROS,
            rcpt_macros=RCPT_MACROS, eom_macros=EOM_MACROS, milter=self.milter_line(),
            extra_mc=self.extra_mc, agent=self.agent, sinkdir=self.sink_link)

    def write_config(self) -> None:
        """Generate sendmail.cf with m4 and the support files it names."""
        (self.dir / "mqueue").mkdir(mode=0o700, exist_ok=True)
        (self.dir / "statistics").touch()
        (self.dir / "helpfile").write_text("")
        (self.dir / "hosts").write_text(f"127.0.0.1\t{TEST_HOSTNAME} localhost\n"
                                        f"::1\tlocalhost ip6-localhost\n")
        (self.dir / "service.switch").write_text("hosts\tfiles\naliases\tfiles\n")
        mc = self.dir / "sendmail.mc"
        mc.write_text(self.mc())
        out = run(["m4", f"-D_CF_DIR_={self.cfdir}/", str(mc)])
        self.cf.write_text(out.stdout)
        self.cf.chmod(0o644)

    def use_sink(self, sink: Sink) -> None:
        """Deliver from now on into `sink` (re-points the instance's sink link atomically)."""
        tmp = self.dir / f".sink-{os.getpid()}-{time.monotonic_ns()}"
        tmp.symlink_to(sink.dir)
        tmp.rename(self.sink_link)
        self.sink = sink
        sink.fed_by(self)

    def command(self, *extra: str) -> list[str]:
        """Command line of one sendmail process, inside its private UTS + mount namespace."""
        inner = (f"hostname {TEST_HOSTNAME} && mount --bind {self.dir}/hosts /etc/hosts"
                 f"{self._syslog_mount()} && exec \"$0\" \"$@\"")
        return ["unshare", "-u", "-m", "--propagation", "private", "sh", "-c", inner,
                str(self.binary), "-C", str(self.cf), "-odi", *extra]

    def _syslog_mount(self) -> str:
        """Shell steps giving this sendmail a /dev/log that is our syslog receiver.

        /dev/log does not exist here, and a bind mount needs an existing target: so the
        namespace gets a tmpfs /dev holding binds of the few device nodes Sendmail and the
        agent use, plus /dev/log -> our socket. Nothing changes outside the namespace.
        """
        if not self._syslog:
            return ""
        hostdev = self.dir / "hostdev"
        hostdev.mkdir(exist_ok=True)
        nodes = " ".join(["null", "zero", "full", "random", "urandom", "tty"])
        return (f" && mount --rbind /dev {hostdev} && mount -t tmpfs -o mode=0755 e2edev /dev"
                f" && for n in {nodes}; do [ -e {hostdev}/$n ] || continue;"
                f" : > /dev/$n && mount --bind {hostdev}/$n /dev/$n; done"
                f" && ln -s /proc/self/fd /dev/fd && ln -s {self._syslog.path} /dev/log")

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> "Sendmail":
        self.write_config()
        self._syslog = SyslogReceiver.create(self.dir / "syslog.sock", self.log_file)
        self._check_config()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, self.port))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name=f"sendmail-front-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def _check_config(self) -> None:
        """Fail early, with Sendmail's own words, if the generated cf does not load."""
        proc = run(self.command("-bt", "-d0.1"), check=False, timeout=60,
                   input="$=w\n")
        if proc.returncode != 0 or "cannot open" in proc.stderr or "line " in proc.stderr:
            raise RuntimeError(f"sendmail rejects {self.cf}:\n{proc.stdout}{proc.stderr}")

    def _serve(self) -> None:
        """Accept loop: one `sendmail -bs` per connection, its stdin/stdout the socket."""
        stderr = open(self.stderr_file, "ab")
        try:
            while not self._stopping.is_set():
                self._reap()
                try:
                    conn, _ = self._listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    break
                try:
                    proc = subprocess.Popen(self.command("-bs", *self._daemon_macros(conn)),
                                            stdin=conn, stdout=conn,
                                            stderr=stderr, close_fds=True)
                    with self._lock:
                        self._children.append(proc)
                        self.connections += 1
                except OSError as e:
                    conn.sendall(f"421 4.3.0 harness cannot start sendmail: {e}\r\n".encode())
                finally:
                    conn.close()
        finally:
            stderr.close()

    def _daemon_macros(self, conn: socket.socket) -> list[str]:
        """-oM options for the macros a sendmail daemon sets itself but -bs does not.

        A daemon listening with DAEMON_OPTIONS(`Addr=A, Port=P, Name=MTA') sets
        {daemon_addr} {daemon_port} {daemon_name} {daemon_family} and {if_name}; it sets
        {if_addr}/{if_family} only when the connection came in on a NON-loopback interface
        (daemon.c: `if (!isloopback(sa))`). All our listeners are loopback, so by default
        {if_addr} stays unset as with a real daemon; `loopback_if_addr=True` sets it anyway
        for tests that need a listener address from Sendmail.
        """
        addr, port = conn.getsockname()[:2]
        v6 = conn.family == socket.AF_INET6
        shown = sendmail_ipv6(addr) if v6 else addr
        if_name = TEST_HOSTNAME if addr in ("127.0.0.1", "::1") else f"[{shown}]"
        args = [f"-oM{{daemon_addr}}{shown}", f"-oM{{daemon_port}}{port}",
                "-oM{daemon_name}MTA", "-oM{daemon_family}" + ("inet6" if v6 else "inet"),
                f"-oM{{if_name}}{if_name}"]
        if self.loopback_if_addr:
            args += [f"-oM{{if_addr}}{shown}",
                     f"-oM{{if_family}}{int(socket.AF_INET6 if v6 else socket.AF_INET)}"]
        return args

    def _reap(self) -> None:
        with self._lock:
            self._children = [p for p in self._children if p.poll() is None]

    def active(self) -> int:
        """sendmail processes still running (sessions or deliveries in progress)."""
        self._reap()
        with self._lock:
            return len(self._children)

    def wait_idle(self, timeout: float = 30) -> None:
        """Wait until every sendmail started so far has exited (its delivery finished)."""
        wait_until(lambda: self.active() == 0, timeout, what="sendmail processes to finish")

    def queued(self) -> int:
        """Messages left in the queue (a deferred delivery leaves its qf file)."""
        return sum(1 for p in (self.dir / "mqueue").iterdir() if p.name.startswith("qf"))

    def wait_queue_empty(self, timeout: float = 30) -> None:
        self.wait_idle(timeout)
        wait_until(lambda: self.queued() == 0, timeout, what="sendmail queue to drain")

    def terminate(self) -> None:
        """Stop accepting connections (the pool calls stop() later)."""
        self._stopping.set()

    def stop(self) -> None:
        """Close the front and end the sendmail processes it started."""
        self._stopping.set()
        if self._thread:
            self._thread.join(5)
            self._thread = None
        if self._listener:
            self._listener.close()
            self._listener = None
        try:
            self.wait_idle(timeout=10)
        except TimeoutError:
            pass
        with self._lock:
            children, self._children = self._children, []
        for p in children:
            if p.poll() is None:
                kill_pid(p.pid)
                p.wait(5)
        if self._syslog:
            self._syslog.close()
            self._syslog = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Sendmail":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def sendmail_ipv6(addr: str) -> str:
    """An IPv6 address as this Sendmail (built with IPV6_FULL) writes it: "IPv6:0:0:0:0:0:0:0:1"."""
    groups = ipaddress.IPv6Address(addr.split("%")[0]).exploded.split(":")
    return "IPv6:" + ":".join(f"{int(g, 16):x}" for g in groups)


class SyslogReceiver:
    """Receives syslog datagrams on a unix socket and appends them as lines to a file.

    Sendmail logs only through syslog(3); tests read its log (milter errors, rejects) here.
    """

    def __init__(self, path: Path, log_file: Path):
        self.path = path
        self.log_file = log_file
        path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        path.chmod(0o666)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"syslog-{path}", daemon=True)
        self._thread.start()

    @classmethod
    def create(cls, path: Path, log_file: Path) -> "SyslogReceiver | None":
        """A receiver, or None when the path is too long for a unix socket (log is lost)."""
        if len(os.fsencode(str(path))) >= 104:
            return None
        return cls(path, log_file)

    def _run(self) -> None:
        with open(self.log_file, "ab", buffering=0) as out:
            while not self._stop.is_set():
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
                out.write(_strip_priority(data).rstrip(b"\n\0") + b"\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        self.path.unlink(missing_ok=True)


def _strip_priority(datagram: bytes) -> bytes:
    """Drop the leading <PRI> of a syslog datagram."""
    if datagram.startswith(b"<"):
        end = datagram.find(b">")
        if 0 < end < 5:
            return datagram[end + 1:]
    return datagram
