"""The command line as an admin meets it (issue 15): the default config file, -c before or
after `audit`, `audit --help`, file and line in every configuration error, and the warning for
a metrics listener off loopback.

mxguard reads /etc/mxguard/mxguard.conf when no -c is given; MXGUARD_CONFIG names another file
(the harness sets it empty for every test, so that an installed package's file is never read).
Here it points at a file of the test's own, standing in for /etc/mxguard/mxguard.conf.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from harness.milter import Mxguard, mxguard_binary
from harness.util import BOGUS_NETWORKS, free_port

# A DNS server nobody answers on (the discard port): audit reports which server it asked,
# which shows whose dns-server option was read, within one short timeout.
SILENT_DNS = "127.0.0.1:9"


def mxguard(*args: str, default: str | Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["MXGUARD_CONFIG"] = str(default) if default is not None else ""
    return subprocess.run([str(mxguard_binary()), *args], capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.fixture
def conf(tmp_path) -> Path:
    """A config that names the shipped table, a silent DNS server and report-only."""
    path = tmp_path / "mxguard.conf"
    path.write_text(f"bogus-networks = {BOGUS_NETWORKS}\n"
                    f"dns-server = {SILENT_DNS}\n"
                    "dns-timeout = 100ms\n"
                    "dns-retries = 0\n"
                    "report-only = yes\n")
    return path


def test_help_names_the_default_config_file():
    out = mxguard("--help")
    assert out.returncode == 0, out.stderr
    assert "/etc/mxguard/mxguard.conf" in out.stdout


def test_check_config_reads_the_default_file_without_c(conf, tmp_path):
    out = mxguard("-n", default=conf)
    assert out.returncode == 0, out.stderr
    assert f"  config: {conf}\n" in out.stdout
    assert "  report-only: yes\n" in out.stdout
    # -c wins, in every spelling; -c /dev/null reads nothing.
    other = tmp_path / "other.conf"
    other.write_text(f"bogus-networks = {BOGUS_NETWORKS}\n")
    for args in (["-c", str(other)], ["--config", str(other)], [f"--config={other}"]):
        out = mxguard("-n", *args, default=conf)
        assert out.returncode == 0, out.stderr
        assert f"  config: {other}\n" in out.stdout
        assert "  report-only: no\n" in out.stdout
    out = mxguard("-n", "-c", "/dev/null", f"--bogus-networks={BOGUS_NETWORKS}", default=conf)
    assert "  report-only: no\n" in out.stdout
    # A default file that does not exist is no error: the built-in defaults apply.
    out = mxguard("-n", f"--bogus-networks={BOGUS_NETWORKS}", default=tmp_path / "absent.conf")
    assert out.returncode == 0, out.stderr
    assert "  config: none (built-in defaults)\n" in out.stdout


def test_the_default_file_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "mxguard.conf"
    bad.write_text(f"bogus-networks = {BOGUS_NETWORKS}\n# a typo\nreport-only = sometimes\n")
    out = mxguard("-n", default=bad)
    assert out.returncode == 78
    assert out.stderr.startswith(f"mxguard: {bad}:3: report-only")


@pytest.mark.parametrize("args", [
    ["-c", "{conf}", "audit", "example.invalid"],
    ["audit", "-c", "{conf}", "example.invalid"],
    ["--config={conf}", "audit", "example.invalid"],
    ["--config", "{conf}", "audit", "example.invalid"],
    ["audit", "--config={conf}", "example.invalid"],
    ["audit", "example.invalid", "--config", "{conf}"],
    ["audit", "example.invalid"],  # the default file
], ids=lambda a: " ".join(a))
def test_audit_takes_c_before_or_after_the_word_audit(conf, args):
    out = mxguard(*(a.format(conf=conf) for a in args), default=conf)
    assert out.returncode == 2, out.stdout + out.stderr  # tempfail: the server is silent
    assert f"asking {SILENT_DNS} for example.invalid" in out.stdout


def test_audit_help_and_usage():
    out = mxguard("audit", "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: mxguard audit [-c FILE] ")
    assert "--dns-server" in out.stdout
    assert mxguard("audit", "-h").stdout == out.stdout
    none = mxguard("audit", f"--bogus-networks={BOGUS_NETWORKS}")
    assert none.returncode == 64
    assert none.stderr.startswith("usage: mxguard audit [-c FILE]")
    # A word that is not audit is still an error of the daemon's command line.
    other = mxguard("-n", "audits", f"--bogus-networks={BOGUS_NETWORKS}")
    assert other.returncode == 78
    assert "unexpected argument 'audits'" in other.stderr


def test_backscatter_on_without_a_proof_source_names_file_and_line(tmp_path):
    path = tmp_path / "mxguard.conf"
    path.write_text(f"bogus-networks = {BOGUS_NETWORKS}\nledger = no\n\ncheck.backscatter = on\n")
    out = mxguard("-n", "-c", str(path))
    assert out.returncode == 78
    assert out.stderr.startswith(
        f"mxguard: {path}:4: check.backscatter = on: no way to recognise bounces")
    flag = mxguard("-n", f"--bogus-networks={BOGUS_NETWORKS}", "--ledger=no",
                   "--check.backscatter=on")
    assert flag.returncode == 78
    assert flag.stderr.startswith("mxguard: command line: check.backscatter = on: ")


def test_metrics_listen_off_loopback_warns_in_check_config(tmp_path):
    path = tmp_path / "mxguard.conf"
    path.write_text(f"bogus-networks = {BOGUS_NETWORKS}\n# everywhere\n"
                    "metrics-listen = 0.0.0.0:9100\n")
    out = mxguard("-n", "-c", str(path))
    assert out.returncode == 0, out.stderr
    assert f"  warning: {path}:3: metrics-listen 0.0.0.0:9100: not a loopback address" \
        in out.stdout
    quiet = mxguard("-n", "-c", str(path), "--metrics-listen=127.0.0.1:9100")
    assert quiet.returncode == 0, quiet.stderr
    assert "metrics-listen" not in quiet.stdout
    bad = mxguard("-n", "-c", str(path), "--metrics-listen=localhost:9100")
    assert bad.returncode == 78
    assert "command line: metrics-listen: 'localhost' is not an IP address" in bad.stderr


def test_metrics_listen_off_loopback_warns_at_start_and_still_serves(mxguard_factory, tmp_path):
    """The daemon, started without -c, reads the default file, warns (naming its line) and
    keeps starting: refusing would turn an upgrade into deferred mail; a reload warns again.
    Only loopback is used to fetch the metrics."""
    port = free_port()
    default = tmp_path / "mxguard.conf"
    default.write_text(f"bogus-networks = {BOGUS_NETWORKS}\nmetrics-listen = 0.0.0.0:{port}\n")
    d = mxguard_factory(default)
    d.wait_log(rf"{default}:2: metrics-listen 0\.0\.0\.0:{port}: not a loopback address")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert b"mxguard_" in r.read()
    # A reload says it again: the admin who reloads looks at the log then.
    d.mark_log()
    d.reload()
    d.wait_log(rf"{default}:2: metrics-listen 0\.0\.0\.0:{port}: not a loopback address")


@pytest.fixture
def mxguard_factory():
    """The harness daemon, but without -c: the file is the default one (MXGUARD_CONFIG)."""
    started = []

    def start(default: Path):
        class NoC(Mxguard):
            def command(self):
                return [str(self.binary), "-f", "--syslog=no", "-p", self.socket.libmilter(),
                        f"--ledger-file={self.dir / 'ledger'}",
                        f"--ledger-key-file={self.dir / 'ledger.key'}"]

        d = NoC(env={"MXGUARD_CONFIG": str(default)})
        d.start()
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()
