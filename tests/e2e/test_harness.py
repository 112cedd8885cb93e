"""Tests of the e2e harness itself: the MTAs deliver everything, see the right client, reach a
milter with the macros mxguard needs, and the daemon runner notices failures.

No mxguard needed: a raw-protocol fake milter stands in where a milter is required.
"""

from __future__ import annotations

import stat
import time

import pytest

from harness import smtp
from harness.fakemilter import FakeMilter
from harness.milter import Mxguard, MxguardError
from harness.util import make_instance_dir, socket_path


@pytest.fixture
def fake_milter(milter_socket):
    milter = FakeMilter(path=milter_socket[len("unix:"):], reject_rcpt=("bad@dest.example",))
    yield milter
    milter.close()


def test_postfix_delivers_100_messages(postfix, sink):
    server = postfix()
    started = time.monotonic()
    results = smtp.send_many(server, 100, concurrency=10, subject_prefix="bulk",
                             recipients=["user@dest.example"])
    assert [r for r in results if not r.accepted] == []
    sink.wait_for(100, timeout=60)
    elapsed = time.monotonic() - started
    delivered = sink.expect_exactly(100)
    assert sorted(m.subject for m in delivered) == sorted(f"bulk {i}" for i in range(100))
    assert {m.recipient for m in delivered} == {"user@dest.example"}
    print(f"100 messages through Postfix into the sink in {elapsed:.2f}s")


def test_sendmail_delivers_with_envelope(sendmail, sink):
    server = sendmail()
    result = smtp.send(server, sender="alice@client.example",
                       recipients=["Bob@dest.example", "carol@other.example"], subject="hi")
    assert result.accepted, result
    delivered = sink.expect_exactly(2)
    assert {(m.sender, m.recipient) for m in delivered} == {
        ("alice@client.example", "Bob@dest.example"),
        ("alice@client.example", "carol@other.example")}
    assert all(m.subject == "hi" for m in delivered)
    assert sink.find(recipient="bob@dest.example", subject="hi")  # addresses: any case
    assert not sink.find(recipient="bob@dest.example", subject="other")


def test_wait_find_waits_for_async_delivery(postfix, sink):
    server = postfix()
    assert smtp.send(server, recipients=["late@dest.example"], subject="async").accepted
    [m] = sink.wait_find(recipient="late@dest.example", subject="async")
    assert m.body.strip() == "Test message."
    sink.expect_exactly(1)


def test_null_sender_recorded_as_empty(mta, sink):
    result = smtp.send(mta(), sender="", recipients=["user@dest.example"], subject="bounce")
    assert result.accepted, result
    [m] = sink.expect_exactly(1)
    assert (m.sender, m.recipient) == ("", "user@dest.example")


def test_postfix_sees_bound_source_address(postfix, sink):
    server = postfix()
    result = smtp.send(server, source="127.0.0.2", subject="from .2")
    assert result.accepted, result
    sink.expect_exactly(1)
    server.wait_log(r"connect from [^ ]*\[127\.0\.0\.2\]")
    assert "[127.0.0.2]" in sink.find(subject="from .2")[0].headers("Received")[0]


def test_sendmail_sees_bound_source_address(sendmail, sink):
    server = sendmail()
    result = smtp.send(server, source="127.0.0.2", subject="from .2")
    assert result.accepted, result
    [m] = sink.expect_exactly(1)
    assert "[127.0.0.2]" in m.headers("Received")[0]
    server.wait_log(r"connect from \[127\.0\.0\.2\]")


def test_rejects_are_returned_as_replies(postfix, sink):
    # Only 127.0.0.1 may relay: a client on 127.0.0.2 is refused at RCPT, no DATA is sent.
    server = postfix(config="mynetworks = 127.0.0.1/32")
    result = smtp.send(server, source="127.0.0.2", recipients=["user@dest.example"])
    assert result.mail.code == 250
    assert result.rcpts[0].code == 554 and "Relay access denied" in result.rcpts[0].text
    assert result.data is None and not result.accepted
    assert result.quit.code == 221
    sink.expect_exactly(0)


def test_connect_refused_is_a_reply():
    port_nobody_listens_on = 1  # privileged port, nothing listens on loopback
    result = smtp.send(("127.0.0.1", port_nobody_listens_on))
    assert result.banner.closed and "connect failed" in result.banner.text


def test_two_postfix_instances_at_once(postfix, sink):
    first = postfix()
    second = postfix(config={"smtpd_banner": "$myhostname ESMTP second"})
    assert first.port != second.port and first.running() and second.running()
    assert smtp.send(first, subject="one").accepted
    assert smtp.send(second, subject="two").banner.text.endswith("second")
    delivered = sink.expect_exactly(2)
    assert {m.subject for m in delivered} == {"one", "two"}


def test_mta_passes_client_and_macros_to_milter(mta, sink, fake_milter):
    server = mta(milter=fake_milter)
    result = smtp.send(server, source="127.0.0.2", sender="alice@client.example",
                       recipients=["good@dest.example", "bad@dest.example"], subject="milter")
    assert [r.code for r in result.rcpts] == [250, 550], result
    assert result.rcpts[1].code == 550 and "fake milter rejects" in result.rcpts[1].text
    assert result.accepted
    [m] = sink.expect_exactly(1)
    assert m.recipient == "good@dest.example"

    [session] = [s for s in fake_milter.sessions if s.recipients]
    assert (session.family, session.address) == ("4", "127.0.0.2")
    assert session.macro("client_addr") == "127.0.0.2"
    assert session.macro("j") == "mx.test.example"
    assert session.macro("mail_addr") == "alice@client.example"
    assert session.macro("rcpt_addr") == "bad@dest.example"
    assert session.macro("i")  # queue id, at least from RCPT on
    assert session.macro("daemon_addr") == "127.0.0.1"
    # Like a real Sendmail daemon on a loopback interface, no {if_addr} (Postfix has none).
    assert session.macro("if_addr") is None
    assert session.helo == "client.test.example"
    assert ("Subject", "milter") in [(k, v.strip()) for k, v in session.headers]


def test_unreachable_milter_tempfails(mta, sink, milter_dir):
    nobody_listens = f"unix:{socket_path(milter_dir, 'nobody.sock')}"
    result = smtp.send(mta(milter=nobody_listens), subject="lost?")
    assert not result.accepted
    assert result.last().temporary, result
    sink.expect_exactly(0)


def _fake_daemon(directory) -> str:
    """An executable with mxguard's command line, backed by the fake milter."""
    import harness.fakemilter as fm
    script = directory / "fake-mxguard"
    script.write_text(f"#!/bin/sh\nexec /usr/bin/python3 {fm.__file__} \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_mxguard_runner_with_stand_in_daemon(postfix, sink, milter_dir):
    binary = _fake_daemon(make_instance_dir("fake-bin"))
    sock = f"unix:{socket_path(milter_dir, 'stand-in.sock')}"
    daemon = Mxguard("# empty\n", args=["--reject-rcpt", "bad@dest.example"], socket=sock,
                     binary=binary).start()
    try:
        server = postfix(milter=daemon)
        result = smtp.send(server, recipients=["ok@dest.example", "bad@dest.example"])
        assert [r.code for r in result.rcpts] == [250, 550] and result.accepted
        sink.expect_exactly(1)
        daemon.wait_log(r"rcpt=<bad@dest.example> client=127.0.0.1 action=reject")
        daemon.reload()
        daemon.wait_log("reloaded")
    finally:
        assert daemon.stop() == 0


def test_mxguard_runner_reports_a_failing_daemon():
    binary = make_instance_dir("fake-bin") / "crashing-mxguard"
    binary.write_text("#!/bin/sh\necho 'fatal: bad config' >&2\nexit 78\n")
    binary.chmod(0o755)
    with pytest.raises(MxguardError, match="(?s)status 78.*bad config"):
        Mxguard("", binary=binary).start(timeout=5)


def test_mxguard_runner_reports_sanitizer_output():
    binary = make_instance_dir("fake-bin") / "asan-mxguard"
    binary.write_text("#!/bin/sh\n"
                      "python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX);"
                      " s.bind(sys.argv[1]); s.listen(); import time; time.sleep(60)' "
                      "\"${3#unix:}\" &\n"
                      "trap 'kill $!; echo \"==1==ERROR: AddressSanitizer: heap-use-after-free\""
                      " >&2; exit 0' TERM\nwait\n")
    binary.chmod(0o755)
    daemon = Mxguard("", binary=binary).start(timeout=10)
    with pytest.raises(MxguardError, match="AddressSanitizer"):
        daemon.stop()


def test_ipv6_loopback_client_reaches_milter(mta, sink, fake_milter):
    server = mta(milter=fake_milter, listen=("::1",))
    result = smtp.send(server, subject="over v6")
    assert result.accepted, result
    sink.expect_exactly(1)
    [session] = [s for s in fake_milter.sessions if s.recipients]
    assert session.family == "6"
    # The forms differ: what the milter must normalise.
    if mta.kind == "postfix":
        assert session.address == "::1"
        assert session.macro("client_addr") == "IPv6:::1"
        assert session.macro("daemon_addr") == "::1"
    else:  # Sendmail is built with IPV6_FULL
        assert session.address == "IPv6:0:0:0:0:0:0:0:1"
        assert session.macro("client_addr") == "IPv6:0:0:0:0:0:0:0:1"
        assert session.macro("daemon_addr") == "IPv6:0:0:0:0:0:0:0:1"


def test_sendmail_if_addr_on_request(sendmail, sink, fake_milter):
    server = sendmail(milter=fake_milter, host="127.0.0.3", loopback_if_addr=True)
    assert smtp.send(server, source="127.0.0.2").accepted
    sink.expect_exactly(1)
    [session] = [s for s in fake_milter.sessions if s.recipients]
    assert session.macro("if_addr") == "127.0.0.3"
    assert session.macro("daemon_addr") == "127.0.0.3"
    assert session.macro("client_addr") == "127.0.0.2"
