"""Private Redis services on loopback ports, for the tests of shared state (bans, the ledger)
and of Redis for fleets (issue 15): a redis-server (with a password or ACL user when asked),
Sentinels watching a master, certificates made on the spot with openssl, a TLS-only
redis-server and stunnel in client mode in front of it.

Every process is started by the test and killed by it (or by stop_all at the end of the
test); nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from harness.util import wait_until


def _wait_port(proc: subprocess.Popen, port: int, what: str) -> None:
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            assert proc.poll() is None, f"{what} exited with {proc.returncode}"
            return False
    wait_until(up, 10, what=f"{what} on port {port}")


def start_redis(port: int, directory: Path, extra: list[str] | tuple[str, ...] = (),
                log: Path | None = None) -> subprocess.Popen:
    """redis-server on 127.0.0.1:port, no persistence; `extra` adds arguments (a password,
    --replicaof, TLS...). With `port` 0 the caller waits for its TLS port itself."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(directory),
                             *extra], stdout=out, stderr=out)
    if port:
        _wait_port(proc, port, "redis-server")
    return proc


def stop_redis(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(10)


def redis_cli(port: int, *args: str, password: str | None = None, user: str | None = None,
              tls: list[str] | tuple[str, ...] = (), check: bool = True) -> str:
    """One redis-cli command; its --raw output. The password goes through REDISCLI_AUTH, as
    an admin would keep it off the command line."""
    env = {"PATH": "/usr/bin:/bin"}
    if password is not None:
        env["REDISCLI_AUTH"] = password
    cmd = ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *tls, "--raw"]
    if user:
        cmd += ["--user", user]
    out = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=10, env=env,
                         check=check)
    return out.stdout


def start_sentinel(port: int, directory: Path, master_port: int, name: str = "mymaster",
                   quorum: int = 2, down_after_ms: int = 1000, failover_timeout_ms: int = 4000,
                   master_password: str | None = None,
                   own_password: str | None = None) -> subprocess.Popen:
    """redis-server --sentinel watching the master on 127.0.0.1:master_port. Short
    down-after and failover timeouts, so that a failover takes a few seconds."""
    conf = directory / f"sentinel-{port}.conf"
    lines = [f"port {port}", "bind 127.0.0.1", f"dir {directory}",
             f"sentinel monitor {name} 127.0.0.1 {master_port} {quorum}",
             f"sentinel down-after-milliseconds {name} {down_after_ms}",
             f"sentinel failover-timeout {name} {failover_timeout_ms}",
             f"sentinel parallel-syncs {name} 1"]
    if master_password:
        lines.append(f"sentinel auth-pass {name} {master_password}")
    if own_password:  # clients and the other sentinels alike must AUTH
        lines += [f"requirepass {own_password}", f"sentinel sentinel-pass {own_password}"]
    conf.write_text("\n".join(lines) + "\n")  # sentinels rewrite it: it must be writable
    log = directory / f"sentinel-{port}.log"
    proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    _wait_port(proc, port, "redis sentinel")
    return proc


def make_certificates(directory: Path, name: str, host: str = "redis.fleet.test") -> dict:
    """A CA (named `name`) and a server certificate it signs for `host` and 127.0.0.1:
    {"ca", "cert", "key"} paths, made with the openssl command line."""
    d = directory / name
    d.mkdir(parents=True, exist_ok=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    ca_key, ca = d / "ca.key", d / "ca.pem"
    key, csr, cert = d / "server.key", d / "server.csr", d / "server.pem"
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(ca_key),
        "-out", str(ca), "-subj", f"/CN=mxguard test CA {name}")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", f"/CN={host}")
    ext = d / "server.ext"
    ext.write_text(f"subjectAltName = DNS:{host}, IP:127.0.0.1\n"
                   "extendedKeyUsage = serverAuth\n")
    ssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(ext))
    key.chmod(0o600)
    return {"ca": ca, "cert": cert, "key": key}


def start_tls_redis(tls_port: int, directory: Path, certs: dict) -> subprocess.Popen:
    """redis-server that speaks TLS only: plain port 0, tls-port `tls_port`; clients need no
    certificate of their own (tls-auth-clients no)."""
    proc = start_redis(0, directory, ["--tls-port", str(tls_port),
                                      "--tls-cert-file", str(certs["cert"]),
                                      "--tls-key-file", str(certs["key"]),
                                      "--tls-ca-cert-file", str(certs["ca"]),
                                      "--tls-auth-clients", "no"],
                       log=directory / f"redis-tls-{tls_port}.log")
    _wait_port(proc, tls_port, "redis-server (TLS)")
    return proc


def start_stunnel_client(accept_port: int, connect_port: int, directory: Path, ca: Path,
                         check_host: str = "redis.fleet.test") -> subprocess.Popen:
    """stunnel in client mode, as on an mxguard host: plain Redis on 127.0.0.1:accept_port,
    TLS to 127.0.0.1:connect_port, the server's chain verified against `ca` and its name
    against `check_host`."""
    conf = directory / f"stunnel-{accept_port}.conf"
    conf.write_text(
        "foreground = yes\n"
        "pid =\n"
        "debug = notice\n"
        f"output = {directory / f'stunnel-{accept_port}.log'}\n"
        "[redis]\n"
        "client = yes\n"
        f"accept = 127.0.0.1:{accept_port}\n"
        f"connect = 127.0.0.1:{connect_port}\n"
        f"CAfile = {ca}\n"
        "verifyChain = yes\n"
        f"checkHost = {check_host}\n")
    proc = subprocess.Popen(["stunnel4", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_port(proc, accept_port, "stunnel")
    return proc
