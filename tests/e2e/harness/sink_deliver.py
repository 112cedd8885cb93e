#!/usr/bin/python3
"""Delivery agent the MTAs under test run for every accepted message (stdlib only).

    sink_deliver.py SINKDIR from=SENDER to=RECIPIENT [to=RECIPIENT...]

Reads the message on stdin and writes one file per recipient into SINKDIR/new, prefixed with
`X-Sink-From: <sender>` and `X-Sink-To: <recipient>` lines. Files are written into SINKDIR/tmp
first and renamed, so a reader never sees half a message. The `from=`/`to=` prefixes keep an
empty (null) sender a visible argument whatever the MTA does with empty words.
Exits 75 (EX_TEMPFAIL) on any error so the MTA keeps the message and retries: a test then sees
a missing message instead of a silently lost one.
"""

import os
import sys
import time

EX_USAGE = 64
EX_TEMPFAIL = 75


def parse_args(argv):
    """Split the command line into (sink directory, sender, [recipients])."""
    if len(argv) < 3:
        raise ValueError("usage: sink_deliver.py SINKDIR from=SENDER to=RCPT...")
    sinkdir, sender, recipients = argv[0], None, []
    for arg in argv[1:]:
        if arg.startswith("from="):
            sender = arg[len("from="):]
        elif arg.startswith("to="):
            recipients.append(arg[len("to="):])
        else:
            raise ValueError(f"unexpected argument {arg!r}")
    if sender is None or not recipients:
        raise ValueError("need from= and at least one to=")
    return sinkdir, sender, recipients


def strip_brackets(address):
    """MTAs differ in whether they pass <addr> or addr; store the bare address."""
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    return address


def deliver(sinkdir, sender, recipient, body, seq):
    """Write one recipient's copy atomically (tmp/ then rename into new/)."""
    sinkdir = os.path.realpath(sinkdir)
    name = f"{time.time_ns()}.{os.getpid()}.{seq}.msg"
    tmp = os.path.join(sinkdir, "tmp", name)
    head = f"X-Sink-From: <{strip_brackets(sender)}>\nX-Sink-To: <{strip_brackets(recipient)}>\n"
    with open(tmp, "wb") as f:
        f.write(head.encode("utf-8", "surrogateescape"))
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, os.path.join(sinkdir, "new", name))


def main(argv):
    try:
        sinkdir, sender, recipients = parse_args(argv)
    except ValueError as e:
        print(f"sink_deliver: {e}", file=sys.stderr)
        return EX_USAGE
    try:
        body = sys.stdin.buffer.read()
        for seq, recipient in enumerate(recipients):
            deliver(sinkdir, sender, recipient, body, seq)
    except OSError as e:
        print(f"sink_deliver: {e}", file=sys.stderr)
        return EX_TEMPFAIL
    return 0


if __name__ == "__main__":
    sys.exit(main([os.fsencode(a).decode("utf-8", "surrogateescape") for a in sys.argv[1:]]))
