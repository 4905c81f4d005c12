"""The shared vocabulary of the conformance suite: verdicts, roles, judgements, the run's
configuration and the suite's estimate of the target's clock.

Contract: this module imports nothing else from the suite, so every other module of
client/conformance may import it (there is no import cycle in the package: model, context,
lsclient, provision, evidence and runner all build on this one). `Verdict` is the
Autobahn-style outcome; `failing` verdicts fail a run (unless the case is an expected failure,
or its rule is SHOULD and the run is not strict); `informational` and `unsupported` never fail.
`SuiteConfig` is everything the command line says about one run.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio
from tslic.protocol import Conversation


class Verdict(enum.StrEnum):
    """The outcome of one case (after the Autobahn test suite's verdicts, in our terms)."""

    PASS = "pass"
    NON_STRICT = "non-strict"  # allowed but not preferred (closed instead of an Error)
    WRONG_CODE = "wrong-error-code"  # refused, but with another code than documented
    UNCLEAN = "unclean-close"  # dropped the TCP connection (reset) without an Error
    FAIL = "fail"  # accepted bad input, or broke a licensing rule
    TIMEOUT = "timeout"  # silence until the case's budget ran out
    UNSUPPORTED = "unsupported"  # the target declares the feature absent / not prepared
    INFORMATIONAL = "informational"  # an observation about optional behaviour

    @property
    def failing(self) -> bool:
        return self in _FAILING


_FAILING = frozenset({Verdict.WRONG_CODE, Verdict.UNCLEAN, Verdict.FAIL, Verdict.TIMEOUT})


class Role(enum.StrEnum):
    """What kind of daemon the target is."""

    LICENSE_SERVER = "license-server"
    AGENT = "agent"
    CLEARINGHOUSE = "clearinghouse"
    DIRECTORY = "directory"


ALL_ROLES = frozenset(Role)
REQUEST_REPLY_ROLES = frozenset({Role.LICENSE_SERVER, Role.CLEARINGHOUSE, Role.DIRECTORY})


@dataclass(slots=True)
class Judgement:
    """What a case's coroutine concludes."""

    verdict: Verdict
    actual: str
    time_to_reject: float | None = None  # seconds from the offending byte to the rejection
    notes: list[str] = field(default_factory=list)


CONVERSATION = {
    Role.LICENSE_SERVER: Conversation.LICENSING,
    Role.AGENT: Conversation.RDP,
    Role.CLEARINGHOUSE: Conversation.CLEARINGHOUSE,
    Role.DIRECTORY: Conversation.DIRECTORY,
}


@dataclass(slots=True, kw_only=True)
class SuiteConfig:
    """Everything the command line says about one run."""

    target: str
    role: Role
    only: Sequence[str] = ()
    exclude: Sequence[str] = ()
    strict: bool = False
    expect_fail: Sequence[str] = ()
    timeout: float = 5.0  # seconds a target has to answer one probe
    seed: int = 0
    evidence: Path | None = None
    admin_credential: Path | None = None
    trust_root: Path | None = None
    clock_file: Path | None = None
    window_ms: int = 300_000  # the target's freshness window (virtual ms)
    handshake_timeout: float = 10.0  # the target's documented Hello deadline (seconds)
    flood: int = 200  # connections opened without a handshake
    slow_delay: float = 0.05  # seconds between bytes of a slow sender
    idle_timeout: float = 0.0  # the target's idle timeout; 0 skips the idle case
    names: dict[str, str] = field(default_factory=dict)  # --name KEY=VALUE (site, group)
    clearinghouse: str = ""  # --clearinghouse: the suite activates a license-server target
    retail_codes: Sequence[str] = ()  # --retail-code: installed after activation
    manifest: Path | None = None  # --manifest: the peers prepare.py chose (agent targets)
    events_command: str = ""  # --events-command: prints the target's events as JSON
    status_command: str = ""  # --status-command: prints the target's status as JSON
    web: str = ""  # --web: a Clearinghouse target's web pages (HOST:PORT)
    argv: Sequence[str] = ()  # the command line, for rerun commands


class OffsetClock:
    """The target's virtual clock as we estimate it: local time plus a measured offset."""

    speed = 1.0

    def __init__(self) -> None:
        self.offset = 0

    def now(self) -> int:
        return int(time.time() * 1000) + self.offset

    def sync(self, target_now: int) -> None:
        if target_now > 0:
            self.offset = target_now - int(time.time() * 1000)

    async def sleep_until(self, virtual_ms: int) -> None:
        await trio.sleep(max(0.0, (virtual_ms - self.now()) / 1000))
