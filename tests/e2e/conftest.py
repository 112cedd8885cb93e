"""pytest fixtures of the mxguard end-to-end tests.

Fixtures:
  sink            a fresh delivery sink for the test
  postfix(...)    factory: a running private Postfix (pooled per module), delivering to `sink`
  sendmail(...)   factory: a running Sendmail front, delivering to `sink`
  mta(...)        factory for the MTA of the current parameter: a test that uses `mta` runs
                  once through Postfix and once through Sendmail (restrict with
                  @pytest.mark.mtas("postfix"))
  mxguard(...)    factory: starts the real daemon with a config text; stopped and checked
                  (exit status, sanitizer reports) at teardown
  milter_socket   a per-module unix socket path for milters (so pooled MTAs keep their config)

At teardown every MTA a test used must have an empty queue: accepted mail that did not reach
the sink fails the test. Runtime files live in $MXGUARD_E2E_TMP (default build/e2e-tmp) in a
per-process run directory, removed after a passing run unless MXGUARD_E2E_KEEP=1.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.dont_write_bytecode = True  # nothing written into the source tree at run time
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import util  # noqa: E402
from harness.milter import Mxguard, mxguard_binary  # noqa: E402
from harness.pool import KINDS, MtaPool, settle  # noqa: E402
from harness.sink import Sink  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "mtas(*kinds): run an `mta` test only through these MTAs "
                            "(postfix, sendmail)")


def pytest_generate_tests(metafunc):
    """Parametrize every test that uses `mta` over the MTAs (all, or those its marker names)."""
    if "mta_kind" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("mtas")
        kinds = marker.args if marker else KINDS
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown MTA kind(s) {unknown}")
        metafunc.parametrize("mta_kind", kinds)


def pytest_sessionfinish(session, exitstatus):
    """Remove this run's files after a passing run; keep them (and say where) otherwise."""
    if util._run_dir is None:
        return
    if exitstatus == 0 and not os.environ.get("MXGUARD_E2E_KEEP"):
        shutil.rmtree(util._run_dir, ignore_errors=True)
    else:
        print(f"\ne2e files kept in {util._run_dir}", file=sys.stderr)


@pytest.fixture
def sink():
    return Sink()


@pytest.fixture(scope="module")
def mta_pool():
    pool = MtaPool()
    yield pool
    pool.close()


def _mta_factory(kind: str, pool: MtaPool, sink: Sink, used: list):
    def factory(milter=None, config=None, **kwargs):
        inst = pool.get(kind, sink, milter=milter, config=config, **kwargs)
        used.append(inst)
        return inst
    factory.kind = kind  # type: ignore[attr-defined]
    return factory


def _settle_all(used: list) -> None:
    seen = set()
    for inst in used:
        if id(inst) not in seen:
            seen.add(id(inst))
            settle(inst)


@pytest.fixture
def _daemons():
    """The mxguard daemons a test started, stopped and checked at teardown.

    The MTA fixtures depend on this one so that it is torn down after them: the MTAs have
    finished their sessions (queue drained, sendmail processes gone) before the daemon gets
    SIGTERM, whatever order the test lists its fixtures in.
    """
    started: list[Mxguard] = []
    yield started
    errors = []
    for daemon in started:
        try:
            daemon.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def postfix(mta_pool, sink, _daemons):
    """Factory: postfix(milter=None, config="main.cf lines" | dict, listen=(...), ...)."""
    used: list = []
    yield _mta_factory("postfix", mta_pool, sink, used)
    _settle_all(used)


@pytest.fixture
def sendmail(mta_pool, sink, _daemons):
    """Factory: sendmail(milter=None, config="extra m4 lines", host="127.0.0.1", ...)."""
    used: list = []
    yield _mta_factory("sendmail", mta_pool, sink, used)
    _settle_all(used)


@pytest.fixture
def mta_kind(request):
    return request.param


@pytest.fixture
def mta(mta_kind, mta_pool, sink, _daemons):
    """Factory for the MTA of this parameter: mta(milter=..., postfix_config=...,
    sendmail_config=..., **common kwargs). `mta.kind` is "postfix" or "sendmail"."""
    used: list = []
    inner = _mta_factory(mta_kind, mta_pool, sink, used)

    def factory(milter=None, postfix_config=None, sendmail_config=None, **kwargs):
        if "config" in kwargs:
            raise TypeError("mta(): MTA configs differ; use postfix_config= / sendmail_config=")
        config = postfix_config if mta_kind == "postfix" else sendmail_config
        if mta_kind == "sendmail" and "listen" in kwargs:
            kwargs["host"] = kwargs.pop("listen")[0]
        return inner(milter=milter, config=config, **kwargs)
    factory.kind = mta_kind  # type: ignore[attr-defined]
    yield factory
    _settle_all(used)


@pytest.fixture(scope="module")
def milter_dir():
    """Per-module directory for milter sockets: stable paths keep pooled MTAs unchanged."""
    return util.make_instance_dir("milters")


@pytest.fixture
def milter_socket(milter_dir):
    return f"unix:{util.socket_path(milter_dir, 'milter.sock')}"


@pytest.fixture
def mxguard(milter_dir, _daemons):
    """Factory: mxguard(config_text="", args=(), socket=None) -> running Mxguard.

    The n-th daemon of a test listens on the module's n-th stable socket unless `socket` is
    given. Skips when the binary is missing and MXGUARD_BIN was not set explicitly. Daemons
    are stopped (and their exit checked) after the MTAs' teardown, see `_daemons`.
    """
    if not os.environ.get("MXGUARD_BIN") and not mxguard_binary().exists():
        pytest.skip(f"mxguard not built ({mxguard_binary()}); set MXGUARD_BIN")

    def factory(config: str = "", args=(), socket: str | None = None, **kwargs) -> Mxguard:
        n = len(_daemons) + 1
        name = "mxguard.sock" if n == 1 else f"mxguard-{n}.sock"
        sock = socket or f"unix:{util.socket_path(milter_dir, name)}"
        daemon = Mxguard(config, args=args, socket=sock, **kwargs)
        _daemons.append(daemon)
        return daemon.start()
    return factory
