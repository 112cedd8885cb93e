"""report-header (issue 6): in report-only mode a message that would have been rejected is
delivered with "X-Mxguard: would-reject=CHECK", so users can sort it while they gain
confidence; without report-header it is delivered untouched."""

from __future__ import annotations

import pytest

from test_foundation import LOCAL, OUTSIDE, config, tables  # noqa: F401 (fixture)
from harness.smtp import send


@pytest.mark.mtas("postfix")
def test_report_only_marks_a_forged_local_sender(mta, mxguard, tables, sink):  # noqa: F811
    d = mxguard(config(tables, "report-only = yes\nreport-header = yes\n"))
    server = mta(milter=d.socket)
    forged = send(server, sender=f"ceo@{LOCAL}", recipients=["dave@dest.test.example"],
                  source=OUTSIDE, subject="forged")
    clean = send(server, recipients=["erin@dest.test.example"], source=OUTSIDE, subject="clean")
    assert forged.accepted and clean.accepted
    assert sink.wait_find(recipient="dave@dest.test.example")[0].headers("X-Mxguard") == \
        ["would-reject=forged-local-sender"]
    assert sink.wait_find(recipient="erin@dest.test.example")[0].headers("X-Mxguard") == []


@pytest.mark.mtas("postfix")
def test_per_check_report_marks_a_would_reject_recipient(mta, mxguard, tables,  # noqa: F811
                                                         sink):
    d = mxguard(config(tables, "check.access = report\nreport-header = yes\n"))
    server = mta(milter=d.socket)
    r = send(server, recipients=["bob@dest.test.example", "blocked-alice@dest.test.example"],
             source=OUTSIDE, subject="one blocked")
    assert r.accepted and r.accepted_rcpts == 2
    for rcpt in ("bob", "blocked-alice"):
        m = sink.wait_find(recipient=f"{rcpt}@dest.test.example")[0]
        assert m.headers("X-Mxguard") == ["would-reject=access"]
    d.wait_log(r"would reject: RCPT .*check=access")


@pytest.mark.mtas("postfix")
def test_without_report_header_nothing_is_added(mta, mxguard, tables, sink):  # noqa: F811
    d = mxguard(config(tables, "report-only = yes\n"))
    server = mta(milter=d.socket)
    forged = send(server, sender=f"ceo@{LOCAL}", recipients=["dave@dest.test.example"],
                  source=OUTSIDE)
    assert forged.accepted
    assert sink.wait_find(recipient="dave@dest.test.example")[0].headers("X-Mxguard") == []
    d.wait_log(r"would reject: MAIL .*check=forged-local-sender")
