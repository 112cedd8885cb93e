"""Macros mxguard relies on (issue 6): when the MTA is not configured to send one, mxguard says
so once in its log, naming the MTA setting to add."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_foundation import OUTSIDE, config
from harness.postfix import CONNECT_MACROS
from harness.smtp import send

WARNING = r"does not send macro \{daemon_addr\}"


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    (tmp_path / "rcpt.regexp").write_text("/^blocked-[a-z]+@/  551 5.7.1 Blocked\n")
    (tmp_path / "clients.cidr").write_text("127.0.0.66/32   REJECT blocked\n")
    return tmp_path


@pytest.mark.mtas("postfix")
def test_missing_daemon_addr_is_warned_about_once(mta, mxguard, tables, sink):
    d = mxguard(config(tables, "trap-address = 127.0.0.10\n"))
    macros = CONNECT_MACROS.replace("{daemon_addr} ", "")
    assert "{daemon_addr}" not in macros
    server = mta(milter=d.socket, postfix_config={"milter_connect_macros": macros})
    for i in range(2):
        r = send(server, recipients=["bob@dest.test.example"], source=OUTSIDE,
                 subject=f"macro {i}")
        assert r.accepted, str(r.last())
    sink.wait_for(2)
    line = d.wait_log(WARNING).string
    assert "Postfix: add {daemon_addr} to milter_connect_macros" in line
    # Both sessions are over (both messages arrived), so a second warning would already be in
    # the log, before the stats line that SIGUSR2 asks for now.
    d.stats()
    d.wait_log(r"stats: connections=")
    assert sum("does not send macro {daemon_addr}" in x for x in d.log_lines()) == 1


@pytest.mark.mtas("postfix")
def test_no_warning_when_the_macro_arrives(mta, mxguard, tables, sink):
    d = mxguard(config(tables, "trap-address = 127.0.0.10\n"))
    server = mta(milter=d.socket)
    assert send(server, recipients=["bob@dest.test.example"], source=OUTSIDE).accepted
    sink.wait_for(1)
    assert not [x for x in d.log_lines() if "does not send macro" in x]
