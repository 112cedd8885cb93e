"""The foundation through real MTAs: access tables, forged local senders, report-only, reload,
configuration errors and hostile clients (issue 2).

Every test that uses `mta` runs twice: through a private Postfix and through Sendmail -bs.
Every accepted message must reach the sink.
"""

from __future__ import annotations

import threading
import subprocess
from pathlib import Path

import pytest

from harness.milter import checks_off_except, mxguard_binary
from harness.smtp import SmtpSession, make_message, send, send_many
from harness.util import BOGUS_NETWORKS

LOCAL = "ours.test.example"
TRUSTED = "127.0.0.1"     # in trusted-networks
OUTSIDE = "127.0.0.3"     # an untrusted client
BLOCKED = "127.0.0.66"    # in the cidr client table


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    (tmp_path / "rcpt.regexp").write_text(
        "# test table\n"
        "/^blocked-[a-z]+@/     551 5.7.1 Blocked by the test table\n"
        "/^later@/              DEFER Try again in a while\n"
        "/^fine@/               OK\n")
    (tmp_path / "clients.cidr").write_text(
        f"{BLOCKED}/32   REJECT Test client blocked\n"
        "10.0.0.0/8       DUNNO\n")
    return tmp_path


def other_checks_off() -> str:
    """Only the two checks under test here: these tests need no DNS."""
    return checks_off_except("access", "forged-local-sender")


def config(tables: Path, extra: str = "") -> str:
    return (other_checks_off() + f"recipient-access = regexp:{tables}/rcpt.regexp\n"
            f"client-access = cidr:{tables}/clients.cidr\n"
            f"local-domains = {LOCAL}\n"
            f"trusted-networks = {TRUSTED}/32\n"
            "check.forged-local-sender = on\n" + extra)


def ended_with(result, code: int, text: str) -> None:
    """The transaction was refused with `code` and a reply containing `text`."""
    replies = [r for r in [result.banner, result.ehlo, result.mail, *result.rcpts, result.data,
                           result.eom] if r is not None]
    assert any(r.code == code and text in r.text for r in replies), \
        f"no {code} '{text}' among {[str(r) for r in replies]}"
    assert not result.accepted


def test_regexp_recipient_table_rejects_at_rcpt_with_its_code_and_text(mta, mxguard, tables, sink):
    d = mxguard(config(tables))
    server = mta(milter=d.socket)
    result = send(server, recipients=["blocked-alice@dest.test.example"], source=OUTSIDE)
    assert result.rcpts[0].code == 551
    assert result.rcpts[0].text.startswith(
        "5.7.1 <blocked-alice@dest.test.example>: Recipient address rejected: "
        "Blocked by the test table")
    d.wait_log(r"reject: RCPT from \S+\[127\.0\.0\.3\]: 551 5\.7\.1 .*check=access")
    # The same client, another recipient: delivered.
    ok = send(server, recipients=["bob@dest.test.example"], source=OUTSIDE)
    assert ok.accepted
    assert sink.wait_find(recipient="bob@dest.test.example")


def test_defer_in_a_table_is_a_4xx(mta, mxguard, tables, sink):
    d = mxguard(config(tables))
    result = send(mta(milter=d.socket), recipients=["later@dest.test.example"], source=OUTSIDE)
    assert result.rcpts[0].code == 450
    assert "Try again in a while" in result.rcpts[0].text


def test_cidr_client_table_rejects_the_client(mta, mxguard, tables, sink):
    d = mxguard(config(tables))
    server = mta(milter=d.socket)
    result = send(server, recipients=["bob@dest.test.example"], source=BLOCKED)
    # Decided at connect, told at RCPT (delay-reject, the default), with the table's text.
    assert result.banner.code == 220 and result.mail.code == 250, str(result.mail)
    assert result.rcpts[0].code == 554, str(result.rcpts[0])
    assert "Client host rejected: Test client blocked" in result.rcpts[0].text
    d.wait_log(r"reject: CONNECT from \S+\[127\.0\.0\.66\]: 554 5\.7\.1 .*check=access")
    assert sink.count() == 0


def test_without_delay_reject_the_client_is_refused_at_connect(mta, mxguard, tables, sink):
    d = mxguard(config(tables) + "delay-reject = no\n")
    server = mta(milter=d.socket)
    result = send(server, recipients=["bob@dest.test.example"], source=BLOCKED)
    # Both MTAs answer a reject at connect with their own 554 text; the log names the reason.
    ended_with(result, 554, "not accepting")
    d.wait_log(r"reject: CONNECT from \S+\[127\.0\.0\.66\]: 554 5\.7\.1 .*check=access")
    assert sink.count() == 0


def test_forged_local_sender_from_untrusted_client_gets_550_571(mta, mxguard, tables, sink):
    d = mxguard(config(tables))
    server = mta(milter=d.socket)
    forged = send(server, sender=f"ceo@{LOCAL}", recipients=["bob@dest.test.example"],
                  source=OUTSIDE)
    # Refused at RCPT: MAIL has no reply of its own.
    assert forged.mail.code == 250
    assert forged.rcpts[0].code == 550
    assert forged.rcpts[0].text.startswith("5.7.1 ")
    # The same sender from a trusted network is ours: delivered.
    ours = send(server, sender=f"ceo@{LOCAL}", recipients=["bob@dest.test.example"],
                source=TRUSTED)
    assert ours.accepted
    assert sink.wait_find(recipient="bob@dest.test.example")


def test_forged_local_sender_is_off_by_default(mta, mxguard, tables, sink):
    d = mxguard(config(tables).replace("check.forged-local-sender = on\n", ""))
    result = send(mta(milter=d.socket), sender=f"ceo@{LOCAL}",
                  recipients=["bob@dest.test.example"], source=OUTSIDE)
    assert result.accepted
    assert sink.wait_find(recipient="bob@dest.test.example")


def test_hundred_ordinary_messages_pass_and_all_arrive(mta, mxguard, tables, sink):
    d = mxguard(config(tables))
    results = send_many(mta(milter=d.socket), 100, concurrency=10, source=OUTSIDE,
                        recipients=["carol@dest.test.example"])
    assert all(r.accepted for r in results), [str(r.last()) for r in results if not r.accepted]
    delivered = sink.wait_for(100)
    assert sorted(m.subject for m in delivered) == sorted(f"bulk {i}" for i in range(100))


def test_report_only_logs_the_rejects_and_delivers_the_mail(mta, mxguard, tables, sink):
    d = mxguard(config(tables, "report-only = yes\n"))
    server = mta(milter=d.socket)
    results = [
        send(server, recipients=["blocked-alice@dest.test.example"], source=OUTSIDE),
        send(server, recipients=["bob@dest.test.example"], source=BLOCKED),
        send(server, sender=f"ceo@{LOCAL}", recipients=["dave@dest.test.example"],
             source=OUTSIDE),
    ]
    assert all(r.accepted for r in results), [str(r.last()) for r in results]
    sink.wait_for(3)
    for rcpt in ("blocked-alice", "bob", "dave"):
        assert sink.wait_find(recipient=f"{rcpt}@dest.test.example")
    d.wait_log(r"would reject: RCPT .* 551 5\.7\.1 .*check=access")
    d.wait_log(r"would reject: CONNECT from \S+\[127\.0\.0\.66\]")
    d.wait_log(r"would reject: MAIL .* 550 5\.7\.1 .*check=forged-local-sender")
    assert not [line for line in d.log_lines(since_mark=False) if ": reject:" in line]


def test_per_check_report_mode(mta, mxguard, tables, sink):
    d = mxguard(config(tables, "check.forged-local-sender = report\n"))
    server = mta(milter=d.socket)
    forged = send(server, sender=f"ceo@{LOCAL}", recipients=["erin@dest.test.example"],
                  source=OUTSIDE)
    assert forged.accepted
    assert sink.wait_find(recipient="erin@dest.test.example")
    d.wait_log(r"would reject: MAIL .*check=forged-local-sender")
    # access stays enforcing.
    blocked = send(server, recipients=["blocked-bob@dest.test.example"], source=OUTSIDE)
    assert blocked.rcpts[0].code == 551


def test_sigusr1_reload_changes_behaviour_without_dropping_a_transaction(mta, mxguard, tables,
                                                                          sink):
    d = mxguard(config(tables))
    server = mta(milter=d.socket)
    with SmtpSession(server, source=OUTSIDE) as s:
        assert s.ehlo().code == 250
        assert s.mail("sender@client.test.example").code == 250
        assert s.rcpt("newly-banned-1@dest.test.example").code == 250
        # The table changes and mxguard reloads while this transaction is open.
        with open(tables / "rcpt.regexp", "a") as f:
            f.write("/^newly-banned/   550 5.7.1 Banned since the reload\n")
        d.mark_log()
        d.reload()
        d.wait_log(r"reloaded configuration")
        # The open transaction finishes under the policy it started with.
        assert s.rcpt("newly-banned-2@dest.test.example").code == 250
        data, eom = s.data(make_message(subject="through the reload"))
        assert data.code == 354 and eom.code == 250
    assert sink.wait_for(2)  # one copy per accepted recipient
    assert all(m.subject == "through the reload" for m in sink.messages())
    # A new connection sees the new table.
    after = send(server, recipients=["newly-banned-3@dest.test.example"], source=OUTSIDE)
    assert after.rcpts[0].code == 550
    assert "Banned since the reload" in after.rcpts[0].text


@pytest.mark.mtas("postfix")
def test_reload_with_a_broken_table_keeps_the_old_policy(mta, mxguard, tables, sink):
    d = mxguard(config(tables))
    server = mta(milter=d.socket)
    (tables / "rcpt.regexp").write_text("/^blocked-[a-z]+@/  551 5.7.1 still here\n/unclosed\n")
    d.mark_log()
    d.reload()
    line = d.wait_log(r"reload failed: (\S+): ").group(1)
    assert line == f"{tables}/rcpt.regexp:2"
    # The old table (with its original text) is still in force.
    old = send(server, recipients=["blocked-zed@dest.test.example"], source=OUTSIDE)
    assert old.rcpts[0].code == 551
    assert "Blocked by the test table" in old.rcpts[0].text


# -- configuration errors, no MTA needed ---------------------------------------------------

def run_mxguard(*args: str) -> subprocess.CompletedProcess:
    """mxguard with `args`, after a --bogus-networks naming the shipped table (which `args`
    may override): a configuration error a test provokes is then the only one."""
    return subprocess.run([str(mxguard_binary()), f"--bogus-networks={BOGUS_NETWORKS}", *args],
                          capture_output=True, text=True, timeout=30)


def test_check_config_names_the_bad_line_and_exits_78(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("# fine\nlocal-domains = ours.test.example\nreport-only = sometimes\n")
    r = run_mxguard("-n", "-c", str(bad))
    assert r.returncode == 78
    assert f"{bad}:3:" in r.stderr
    assert "report-only" in r.stderr


def test_bad_table_line_names_the_table_file_and_line(tmp_path):
    table = tmp_path / "clients.cidr"
    table.write_text("192.0.2.0/24 REJECT\n192.0.2.1/24 REJECT host bits set\n")
    r = run_mxguard("-n", "--client-access", f"cidr:{table}")
    assert r.returncode == 78
    assert f"{table}:2:" in r.stderr


def test_bad_bogus_networks_line_names_the_file_and_line(tmp_path):
    table = tmp_path / "bogus-networks.cidr"
    table.write_text("127.0.0.0/8 loopback\n10.0.0.1/8 private, host bits set\n")
    r = run_mxguard("-n", "--bogus-networks", str(table))
    assert r.returncode == 78, r.stderr
    assert f"{table}:2:" in r.stderr


@pytest.mark.parametrize("args", [["--no-such-flag"], ["--log-level", "loud"],
                                  ["-p", "tcp:25"], ["--check.nonexistent", "on"]])
def test_bad_flags_exit_78(args):
    r = run_mxguard("-n", *args)
    assert r.returncode == 78, r.stderr
    assert r.stderr.startswith("mxguard: ")


def test_good_config_checks_clean(tmp_path, tables):
    conf = tmp_path / "good.conf"
    conf.write_text(config(tables))
    r = run_mxguard("-n", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    assert "check.forged-local-sender = on" in r.stdout


def test_socket_in_use_is_a_clear_error(mxguard, tables):
    d = mxguard(config(tables))
    r = run_mxguard("-f", "-p", d.socket.libmilter(), "--syslog", "no")
    assert r.returncode != 0
    assert "socket in use" in r.stderr
    assert d.alive()


# -- hostile clients ------------------------------------------------------------------------

def test_client_disconnecting_mid_transaction_does_no_harm(mta, mxguard, tables, sink):
    d = mxguard(config(tables))
    server = mta(milter=d.socket)
    for stage in ("ehlo", "mail", "rcpt", "data"):
        s = SmtpSession(server, source=OUTSIDE)
        s.ehlo()
        if stage in ("rcpt", "data"):
            s.mail("sender@client.test.example")
        if stage == "data":
            s.rcpt("bob@dest.test.example")
            s.command("DATA")
            s.sock.sendall(b"Subject: half a message\r\n\r\nand then nothing")
        s.sock.close()
    after = send(server, recipients=["bob@dest.test.example"], source=OUTSIDE,
                 subject="after the drops")
    assert after.accepted
    assert sink.wait_for(1)[0].subject == "after the drops"
    assert d.alive()


@pytest.mark.mtas("postfix")
def test_thousand_recipients_in_one_transaction(mta, mxguard, tables, sink):
    d = mxguard(config(tables))
    server = mta(milter=d.socket)
    rcpts = [f"user{i}@dest.test.example" for i in range(1000)]
    result = send(server, recipients=rcpts, source=OUTSIDE, subject="many")
    assert result.accepted_rcpts == 1000 and result.accepted
    delivered = sink.wait_for(1000, timeout=180)
    assert {m.recipient for m in delivered} == set(rcpts)
    assert d.alive()


def test_eight_bit_and_64k_header_lines(mta, mxguard, tables, sink):
    d = mxguard(config(tables))
    server = mta(milter=d.socket)
    long_value = "x" * (64 * 1024)
    raw = ("From: sender@client.test.example\r\n"
           "To: bob@dest.test.example\r\n"
           "Subject: =?utf-8?q?caf=C3=A9?=\r\n"
           f"X-Long: {long_value}\r\n"
           "X-Eight-Bit: caf\xe9 na\xefve \xff\xfe\r\n"
           "\r\nbody \xe9\r\n").encode("latin-1")
    result = send(server, recipients=["bob@dest.test.example"], message=raw, source=OUTSIDE)
    assert result.accepted, str(result.last())
    assert sink.wait_for(1)
    assert d.alive()


def test_sigterm_lets_the_open_transaction_finish(mta, mxguard, tables, sink):
    d = mxguard(config(tables))
    server = mta(milter=d.socket)
    with SmtpSession(server, source=OUTSIDE) as s:
        assert s.ehlo().code == 250
        assert s.mail("sender@client.test.example").code == 250
        assert s.rcpt("frank@dest.test.example").code == 250
        stopper = threading.Thread(target=d.stop)
        stopper.start()
        # The signal has been seen, and the daemon waits for this transaction.
        d.wait_log(r"stopping: waiting for 1 open transaction\(s\)")
        assert d.alive(), "mxguard quit with a transaction open"
        data, eom = s.data(make_message(subject="finished after SIGTERM"))
        assert data.code == 354 and eom.code == 250
    stopper.join(60)
    assert not d.alive()
    assert sink.wait_find(recipient="frank@dest.test.example")
    d.wait_log(r"mxguard stopped")
