"""Keeps MTA instances running across the tests of a module.

Starting Postfix takes about two seconds and stopping one about one; most tests of a module use
the same MTA configuration and differ only in the milter's config (the milter restarts, its
socket path stays). The pool hands out a running instance per distinct configuration and
starts a new one only when the configuration changes, re-pointing it to the test's sink and
making sure the previous test left nothing in its queue.
"""

from __future__ import annotations

import collections
import subprocess

from .milteraddr import MilterAddress
from .postfix import Postfix
from .sendmail import Sendmail
from .sink import Sink

KINDS = ("postfix", "sendmail")


class MailStuck(AssertionError):
    """Accepted mail was still undelivered when a test ended: it would have been lost."""


class MtaPool:
    """Running MTA instances keyed by (kind, milter, configuration); at most `limit` alive."""

    def __init__(self, limit: int = 3):
        self.limit = limit
        self._instances: collections.OrderedDict[tuple, Postfix | Sendmail] = \
            collections.OrderedDict()
        self._retired: list[Postfix | Sendmail] = []

    @staticmethod
    def _key(kind: str, milter, config, kwargs: dict) -> tuple:
        address = str(MilterAddress.parse(milter)) if milter is not None else None
        cfg = tuple(sorted(config.items())) if isinstance(config, dict) else config
        return (kind, address, cfg, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))

    def get(self, kind: str, sink: Sink, milter=None, config=None, **kwargs):
        """A running instance of `kind` for this configuration, delivering into `sink`."""
        key = self._key(kind, milter, config, kwargs)
        inst = self._instances.get(key)
        if inst is None:
            while len(self._instances) >= self.limit:
                _, old = self._instances.popitem(last=False)
                old.terminate()  # finished in close(): no need to wait for it here
                self._retired.append(old)
            cls = {"postfix": Postfix, "sendmail": Sendmail}[kind]
            inst = cls(milter=milter, config=config, sink=sink, **kwargs)
            try:
                inst.start()
            except Exception:
                inst.stop()
                raise
            self._instances[key] = inst
        else:
            self._instances.move_to_end(key)
        inst.use_sink(sink)
        inst.mark_log()
        return inst

    def close(self) -> None:
        """Stop every instance: signal all first, so their shutdowns overlap."""
        instances = list(self._instances.values()) + self._retired
        self._instances.clear()
        self._retired = []
        for inst in instances:
            inst.terminate()
        for inst in instances:
            inst.stop()  # files stay for a failed run's post-mortem; the run dir goes later


def settle(inst: Postfix | Sendmail, timeout: float = 30.0) -> None:
    """End-of-test check: everything the MTA accepted has left its queue.

    Leftovers are purged (so they cannot land in the next test's sink) and reported as
    MailStuck: accepted mail that never reached the sink is lost mail.
    """
    try:
        inst.wait_queue_empty(timeout)
        return
    except TimeoutError:
        pass
    left = inst.queued()
    if isinstance(inst, Postfix):
        subprocess.run(["postsuper", "-c", str(inst.config_dir), "-d", "ALL"],
                       capture_output=True, timeout=60)
    else:
        for f in (inst.dir / "mqueue").iterdir():
            f.unlink(missing_ok=True)
    raise MailStuck(f"{inst.name} in {inst.dir}: {left} queue file(s) undelivered after the "
                    f"test; log tail:\n" + "\n".join(inst.log_lines()[-30:]))
