"""The manual pages cannot drift from the code (issue 6).

Every option `mxguard --help` prints must be documented in man/mxguard.conf.5 (as an
`.It Cm NAME` item), and the page must document nothing mxguard no longer knows, as Postfix's
check-postconf-undocumented does for postconf(5). Every single-letter flag must be in
mxguard(8). Both pages must pass `mandoc -T lint -W warning`, and groff (through which Debian's
man(1), and lintian, render them) must not warn either.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.milter import mxguard_binary

MAN = Path(__file__).resolve().parents[2] / "man"
PAGES = [MAN / "mxguard.8", MAN / "mxguard.conf.5"]


def help_text() -> str:
    out = subprocess.run([str(mxguard_binary()), "--help"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def options_in_help() -> set[str]:
    return set(re.findall(r"--([a-z0-9][a-z0-9.-]*)", help_text()))


def short_flags_in_help() -> set[str]:
    return set(re.findall(r"^\s*-([A-Za-z]) \[ --", help_text(), re.M))


def items(page: Path, macro: str) -> set[str]:
    """First argument of every `.It <macro> NAME` line of a page."""
    found = set()
    for line in page.read_text().splitlines():
        m = re.match(rf"\.It {macro} ([A-Za-z0-9][A-Za-z0-9.-]*)", line)
        if m:
            found.add(m.group(1))
    return found


def test_every_option_is_in_mxguard_conf_5_and_nothing_else():
    in_code = options_in_help()
    assert "socket" in in_code and "check.access" in in_code, "cannot read --help"
    in_page = items(MAN / "mxguard.conf.5", "Cm")
    undocumented = sorted(in_code - in_page)
    unknown = sorted(in_page - in_code)
    assert not undocumented, f"options missing from man/mxguard.conf.5: {undocumented}"
    assert not unknown, f"man/mxguard.conf.5 documents options mxguard lacks: {unknown}"


def test_every_short_flag_is_in_mxguard_8():
    in_code = short_flags_in_help()
    assert "p" in in_code, "cannot read the short flags from --help"
    missing = sorted(in_code - items(MAN / "mxguard.8", "Fl"))
    assert not missing, f"flags missing from man/mxguard.8: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_mandoc_lint_is_clean(page):
    if not shutil.which("mandoc"):
        pytest.fail("mandoc is not installed (scripts/install-deps installs it)")
    out = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", str(page)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and not out.stdout and not out.stderr, out.stdout + out.stderr


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_groff_renders_without_warnings(page):
    """mandoc and groff differ: groff warned 'cannot chop empty macro' at a quoted .%T that
    mandoc took without a word."""
    if not shutil.which("groff"):
        pytest.fail("groff is not installed (scripts/install-deps installs groff-base)")
    out = subprocess.run(["groff", "-man", "-ww", "-z", str(page)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and not out.stderr, out.stderr


CONF = Path(__file__).resolve().parents[2] / "packaging" / "mxguard.conf"
COMMAND_LINE_ONLY = {"config", "check-config", "help", "version", "test", "test-sender",
                     "test-recipient"}


def conf_keys() -> dict[str, str]:
    """key -> value of every `key = value` line of the shipped config, commented out or not."""
    keys = {}
    for line in CONF.read_text().splitlines():
        m = re.match(r"^#? ?([a-z0-9][a-z0-9.-]*) =(.*)$", line)
        if m:
            keys[m.group(1)] = m.group(2).strip()
    return keys


def test_every_option_is_in_the_shipped_config():
    in_code = options_in_help() - COMMAND_LINE_ONLY
    in_conf = set(conf_keys())
    assert not sorted(in_code - in_conf), \
        f"options missing from packaging/mxguard.conf: {sorted(in_code - in_conf)}"
    assert not sorted(in_conf - in_code), \
        f"packaging/mxguard.conf names options mxguard lacks: {sorted(in_conf - in_code)}"


def test_the_shipped_defaults_load(tmp_path):
    """Every default shown in the shipped config, uncommented, is a valid configuration."""
    rules = str(Path(__file__).resolve().parents[2] / "rules")
    lines = [f"{k} = {v.replace('/etc/mxguard/rules', rules)}"
             for k, v in conf_keys().items() if v and k != "user"]
    conf = tmp_path / "mxguard.conf"
    conf.write_text("\n".join(lines) + "\n")
    out = subprocess.run([str(mxguard_binary()), "-n", "-c", str(conf)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_list_of_checks_has_the_registry_order():
    """The checks run in the registry's order: `--help`, `mxguard -n` (the pipeline's own
    description), the shipped config and the CHECKS section of mxguard.conf.5 list the same
    checks in that same order (issue 13)."""
    in_help = re.findall(r"--check\.([a-z-]+)", help_text())
    rules = Path(__file__).resolve().parents[2] / "rules"
    out = subprocess.run([str(mxguard_binary()), "-n", "--bogus-networks",
                          str(rules / "bogus-networks.cidr")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    in_pipeline = re.findall(r"^  check\.([a-z-]+) = ", out.stdout, re.M)
    in_conf = re.findall(r"^# check\.([a-z-]+) = ", CONF.read_text(), re.M)
    in_page = re.findall(r"^\.It Cm check\.([a-z-]+) ", (MAN / "mxguard.conf.5").read_text(),
                         re.M)
    assert len(in_help) >= 12, in_help
    assert in_pipeline == in_help, "mxguard -n and --help disagree"
    assert in_conf == in_help, "packaging/mxguard.conf lists the checks in another order"
    assert in_page == in_help, "mxguard.conf.5 lists the checks in another order"


def test_an_unknown_check_is_a_configuration_error(tmp_path):
    conf = tmp_path / "mxguard.conf"
    conf.write_text("# a typo in a check's name must not silently mean off\ncheck.bogus_mx = on\n")
    out = subprocess.run([str(mxguard_binary()), "-n", "-c", str(conf)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 78, out.stdout + out.stderr
    assert f"{conf}:2: unknown check 'bogus_mx'" in out.stderr


def test_readme_debian_gives_postfix_the_same_lines_as_readme():
    """README.Debian's main.cf block is README.md's (issue 15: milter_rcpt_macros was left
    out), and it says how to reload with and without systemd."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    block = re.search(r"^# /etc/postfix/main\.cf\n(.*?)^```", readme, re.M | re.S).group(1)
    upstream = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    debian_text = (root / "packaging" / "debian" / "README.Debian").read_text()
    debian = [line.strip() for line in debian_text.splitlines()
              if re.match(r"^    [a-z_]+ = ", line) and "milter" in line]
    assert "milter_rcpt_macros" in " ".join(upstream)
    assert debian == upstream
    for command in ["systemctl reload mxguard", "service mxguard reload",
                    "/etc/init.d/mxguard reload"]:
        assert command in debian_text, command
