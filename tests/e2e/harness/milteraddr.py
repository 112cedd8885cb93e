"""Milter socket addresses, written once and rendered in each MTA's syntax."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MilterAddress:
    """Where a milter listens: a unix socket path, or a loopback TCP host and port.

    Parsed from libmilter syntax (what `mxguard -p` takes): `unix:/path`, `local:/path`,
    `inet:PORT@HOST`, `inet6:PORT@HOST`. Postfix wants `unix:/path` / `inet:HOST:PORT`,
    Sendmail's INPUT_MAIL_FILTER wants `S=unix:/path` / `S=inet:PORT@HOST`.
    """

    kind: str  # "unix", "inet" or "inet6"
    path: str = ""
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, spec: "str | MilterAddress") -> "MilterAddress":
        if isinstance(spec, MilterAddress):
            return spec
        spec = getattr(spec, "socket", spec)  # accept a running Mxguard too
        if isinstance(spec, MilterAddress):
            return spec
        scheme, _, rest = str(spec).partition(":")
        if scheme in ("unix", "local"):
            if not rest.startswith("/"):
                raise ValueError(f"milter socket path must be absolute: {spec}")
            return cls("unix", path=rest)
        if scheme in ("inet", "inet6"):
            port, sep, host = rest.partition("@")
            if not sep:
                raise ValueError(f"expected {scheme}:PORT@HOST, got {spec}")
            return cls(scheme, host=host.strip("[]"), port=int(port))
        raise ValueError(f"unsupported milter socket {spec!r}")

    def libmilter(self) -> str:
        """The form `mxguard -p` and other libmilter daemons take."""
        if self.kind == "unix":
            return f"unix:{self.path}"
        return f"{self.kind}:{self.port}@{self.host}"

    def postfix(self) -> str:
        """The form of Postfix's smtpd_milters."""
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.kind == "inet6" else self.host
        return f"inet:{host}:{self.port}"

    def sendmail(self) -> str:
        """The S= value of Sendmail's INPUT_MAIL_FILTER."""
        return self.libmilter()

    def __str__(self) -> str:
        return self.libmilter()
