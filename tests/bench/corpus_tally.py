#!/usr/bin/env python3
"""The bounce classifier over a folder of real messages (issue 14): runs the offline mode
(`mxguard -c CONF -t FILE...`) on every file of DIR with check.backscatter on, a test BATV key
and our relays, prints one line per file (file, class, proof, verdict) and a tally.

    corpus_tally.py DIR [--rules DIR] [--bin PATH]

The folder is a development corpus, never committed, such as the test corpus of the Perl
module Mail::DeliveryStatus::BounceParser (t/corpus). Its naming decides what a file should be:
`spam-*` files are spam, not notifications, except `spam-rejection*` (bounces that report a
spam rejection); every other file is a notification. The tally counts the notifications the
classifier called `ordinary` (missed) and the spam it called a notification (must be none).
Prints figures; the exit status is 0 unless mxguard itself fails.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEY = "corpus-tally-test-key-0001"
LINE = re.compile(r"^(?P<file>.*?): class=(?P<cls>\S+)(?: \((?P<reason>[^)]*)\))?"
                  r".*?(?: proof=(?P<proof>\S+)| backscatter=(?P<na>\S+))"
                  r".*? verdict=(?P<verdict>pass|\S+ \d{3} \d\.\d\.\d+)")


def is_notification(name: str) -> bool:
    return not name.startswith("spam-") or name.startswith("spam-rejection")


def checks_off_except(binary: str, *keep: str) -> str:
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True,
                               timeout=30).stdout
    names = set(re.findall(r"--check\.([a-z0-9-]+)", help_text))
    return "".join(f"check.{n} = off\n" for n in sorted(names - set(keep)))


def write_config(tmp: Path, binary: str, rules: Path) -> Path:
    keys = tmp / "batv.keys"
    keys.write_text(f"# test key\n0 {KEY}\n")
    os.chmod(keys, 0o600)
    conf = tmp / "corpus.conf"
    conf.write_text(checks_off_except(binary, "batv", "backscatter") +
                    "local-domains = example.com\n"
                    "our-relays = mx-out.example.com\n"
                    f"batv-key-file = {keys}\n"
                    "check.batv = on\n"
                    "check.backscatter = on\n"
                    f"message-rules = {rules}\n")
    return conf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--rules", type=Path, default=REPO / "rules")
    ap.add_argument("--bin", default=os.environ.get("MXGUARD_BIN") or
                    str(REPO / "build" / "milter" / "mxguard"))
    ap.add_argument("--recipient", default="user@example.com",
                    help="envelope recipient for every file (default %(default)s)")
    args = ap.parse_args()
    files = sorted(p for p in args.dir.iterdir() if p.is_file())
    if not files:
        print(f"corpus_tally: no files in {args.dir}", file=sys.stderr)
        return 66
    with tempfile.TemporaryDirectory(prefix="mxguard-corpus-") as tmp:
        conf = write_config(Path(tmp), args.bin, args.rules)
        out = subprocess.run([args.bin, "-c", str(conf), "-t", *map(str, files),
                              "--test-recipient", args.recipient],
                             capture_output=True, text=True, errors="replace", timeout=300)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return 1
    lines = out.stdout.splitlines()
    if len(lines) != len(files):
        print(f"corpus_tally: {len(files)} files but {len(lines)} lines", file=sys.stderr)
        print(out.stdout, file=sys.stderr)
        return 1

    classes: collections.Counter[str] = collections.Counter()
    proofs: collections.Counter[str] = collections.Counter()
    verdicts: collections.Counter[str] = collections.Counter()
    notifications = caught = spam = spam_caught = 0
    missed: list[str] = []
    wrong: list[str] = []
    width = max(len(p.name) for p in files)
    for path, line in zip(files, lines):
        m = LINE.match(line)
        if not m:
            print(f"corpus_tally: cannot read: {line}", file=sys.stderr)
            return 1
        cls = m["cls"]
        proof = m["proof"] or "n/a"
        verdict = m["verdict"]
        print(f"{path.name:<{width}}  class={cls:<9} ({m['reason'] or ''})  proof={proof}  "
              f"verdict={verdict}")
        classes[cls] += 1
        proofs[proof] += 1
        verdicts[verdict.split()[0] if verdict != "pass" else "pass"] += 1
        if is_notification(path.name):
            notifications += 1
            if cls != "ordinary":
                caught += 1
            else:
                missed.append(path.name)
        else:
            spam += 1
            if cls != "ordinary":
                spam_caught += 1
                wrong.append(f"{path.name} ({cls})")

    def counts(c: collections.Counter[str]) -> str:
        return " ".join(f"{k}={v}" for k, v in sorted(c.items()))

    print(f"files: {len(files)}")
    print(f"classes: {counts(classes)}")
    print(f"proofs: {counts(proofs)}")
    print(f"verdicts: {counts(verdicts)}")
    pct = 100.0 * caught / notifications if notifications else 0.0
    print(f"notifications classified: {caught}/{notifications} ({pct:.1f} %)")
    print(f"spam classified as a notification: {spam_caught}/{spam} (must be 0)")
    if missed:
        print("missed: " + " ".join(missed))
    if wrong:
        print("spam classified: " + " ".join(wrong))
    return 0


if __name__ == "__main__":
    sys.exit(main())
