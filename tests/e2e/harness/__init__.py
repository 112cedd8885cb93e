"""End-to-end test harness for mxguard: real Postfix and Sendmail, a delivery sink, the daemon.

    from harness import smtp
    from harness.postfix import Postfix
    from harness.sendmail import Sendmail
    from harness.sink import Sink
    from harness.milter import Mxguard

Everything here is Python standard library; pytest fixtures are in tests/e2e/conftest.py.
"""
