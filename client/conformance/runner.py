"""Running cases against a target: selection, the per-case context, liveness checks, evidence.

Contract:
- `select(cases, config)` keeps the cases for the target's role that match `--only` (any of:
  exact case id, rule id, or a glob over either; repeatable) and no `--exclude` glob.
- `run_suite(config, cases, on_result)` syncs with the target's clock, runs each case under
  a hard time cap, and after EVERY case checks that a well-behaved client is still served (a
  Hello and one simple request, or for an agent the LicenseRequest greeting). A case after
  which the target no longer serves anyone fails, whatever its own verdict.
- SHOULD and MAY rules count towards the exit status only with `--strict`; a case listed with
  `--expect-fail` is "xfail" when it fails and "xpass" (which fails the run) when it passes.
- For every failing case an evidence bundle is written under `--evidence DIR`: the transcript
  both ways (hex and decoded), timings, the result, and a one-line command that reruns it.
- No trio, OS or msgpack exception escapes: a case that breaks is a `fail` with the reason.
- With `--clearinghouse` (license-server targets) the target is first activated and given the
  `--retail-code` key packs (provision.py); a preparation that fails raises ServiceError.
"""

from __future__ import annotations

import fnmatch
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import ConnectionLost, Conversation, ErrorCode, ServiceError, TslicError
from tslic.protocol.domain import PeerRole
from tslic.protocol.messages import Hello, Message
from tslic.protocol.messages.clearinghouse import ChClaimKeyPack
from tslic.protocol.messages.directory import DirQueryEnterprise
from tslic.protocol.messages.licensing import ReturnLicense
from tslic.protocol.rules import Level
from tslic.runtime.peer import open_peer

from .evidence import write_evidence
from .model import Case, Judgement, Result, Role, Verdict
from .wire import Crafter, Frame, Observation, RawClient, Transcript

log = logging.getLogger(__name__)

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


def _matches(case: Case, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        p = pattern.upper()
        for name in (case.id.upper(), case.rule.upper()):
            if name == p or fnmatch.fnmatchcase(name, p):
                return True
    return False


def select(cases: Sequence[Case], config: SuiteConfig) -> list[Case]:
    chosen = [c for c in cases if config.role in c.roles]
    if config.only:
        chosen = [c for c in chosen if _matches(c, config.only)]
    if config.exclude:
        chosen = [c for c in chosen if not _matches(c, config.exclude)]
    return chosen


@dataclass(slots=True)
class Context:
    """What a case works with: the target, crafted peers, the clock, its transcript."""

    config: SuiteConfig
    clock: OffsetClock = field(default_factory=OffsetClock)
    transcript: Transcript = field(default_factory=Transcript)
    rng: random.Random = field(default_factory=random.Random)
    clients: list[RawClient] = field(default_factory=list)
    case: Case | None = None
    greeting: Frame | None = None  # an agent's LicenseRequest, from the last open_raw

    @property
    def role(self) -> Role:
        return self.config.role

    @property
    def conversation(self) -> Conversation:
        return CONVERSATION[self.config.role]

    @property
    def timeout(self) -> float:
        return self.config.timeout

    def now(self) -> int:
        return self.clock.now()

    def key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.rng.randbytes(32))

    def crafter(self, key: Ed25519PrivateKey | None = None) -> Crafter:
        return Crafter(key=key or self.key(), rng=self.rng, now=self.now)

    async def open_raw(self, *, greet: bool = True) -> RawClient:
        """A recorded TCP connection; for an agent, past its LicenseRequest greeting."""
        sub = Transcript()
        client = await RawClient.connect(self.config.target, sub)
        self.clients.append(client)
        if self.role is Role.AGENT and greet:
            self.greeting = await client.read_frame(self.timeout)
        return client

    def hello(self, **overrides: Any) -> Hello:
        """The Hello the suite's simulated peer opens request/response conversations with."""
        role, version = {
            Role.LICENSE_SERVER: (PeerRole.TERMINAL_SERVER, 2000),  # served by 2000 and 2003
            Role.CLEARINGHOUSE: (PeerRole.LICENSE_SERVER, 2003),
            Role.DIRECTORY: (PeerRole.TERMINAL_SERVER, 2003),
            Role.AGENT: (PeerRole.RDP_CLIENT, 0),
        }[self.role]
        values: dict[str, Any] = {
            "role": role,
            "name": "CONFORMANCE",
            "version": version,
            "conversation": self.conversation,
        }
        values.update(overrides)
        return Hello(**values)

    def simple_request(self) -> Message:
        """A request any target of the role answers (a reply or a refusal both count)."""
        if self.role is Role.LICENSE_SERVER:
            return ReturnLicense(license_id=0, hwid=bytes(32))
        if self.role is Role.CLEARINGHOUSE:
            return ChClaimKeyPack(license_server_id="CONFORMANCE", keypack_code="0")
        return DirQueryEnterprise(site="conformance")

    async def handshake(self, client: RawClient, crafter: Crafter) -> Frame | None:
        """Send our Hello on `client` and return the target's first reply."""
        await client.send(crafter.message(self.hello()), "Hello")
        return await client.read_frame(self.timeout)

    def reject(
        self,
        obs: Observation,
        codes: set[ErrorCode] | frozenset[ErrorCode],
        *,
        close_ok: bool = True,
    ) -> Judgement:
        """Judge the target's answer to bad input that must be refused with one of `codes`."""
        return judge_rejection(obs, codes, close_ok=close_ok)

    async def served(self) -> tuple[bool, str]:
        """Is a well-behaved client still served? (Hello + one request, or the greeting.)"""
        try:
            with trio.fail_after(max(self.timeout, 1.0)):
                if self.role is Role.AGENT:
                    client = await RawClient.connect(self.config.target)
                    try:
                        frame = await client.read_frame(self.timeout)
                    finally:
                        await client.aclose()
                    if frame is None or frame.name != "LicenseRequest":
                        return False, "no LicenseRequest greeting: " + (
                            frame.label() if frame else "nothing"
                        )
                    return True, "LicenseRequest received"
                async with open_peer(
                    self.config.target,
                    conversation=self.conversation,
                    key=Ed25519PrivateKey.generate(),
                    clock=self.clock,
                    role=self.hello().role,
                    name="WELLBEHAVED",
                    version=self.hello().version,
                ) as stream:
                    self.clock.sync(stream.welcome.server_time)
                    try:
                        reply = await stream.request(self.simple_request())
                        return True, f"Welcome, then {type(reply).__name__}"
                    except ServiceError as exc:
                        return True, f"Welcome, then refusal {exc.code.name}"
        except trio.TooSlowError:
            return False, "no answer in time"
        except TslicError as exc:
            return False, str(exc)

    async def sync_clock(self) -> None:
        """Learn the target's virtual time from the envelope timestamp of its first frame.

        The first frame is a Welcome, or (if our Hello's timestamp was outside the target's
        window) the Error refusing it: either way it carries the target's `now`. An agent's
        LicenseRequest greeting carries it too. Nothing else is needed from the target.
        """
        with trio.fail_after(max(self.timeout, 1.0)):
            client = await RawClient.connect(self.config.target)
            try:
                if self.role is not Role.AGENT:
                    crafter = Crafter(key=Ed25519PrivateKey.generate(), rng=random.Random(),
                                      now=self.now)  # fmt: skip
                    await client.send(crafter.message(self.hello()))
                frame = await client.read_frame(self.timeout)
            finally:
                await client.aclose()
        stamp = _timestamp_of(frame)
        if stamp is not None:
            self.clock.sync(stamp)

    async def close_clients(self) -> None:
        for i, client in enumerate(self.clients, 1):
            await client.aclose()
            self.transcript.extend(client.transcript, str(i))
        self.clients.clear()


def _timestamp_of(frame: Frame | None) -> int | None:
    if frame is None or frame.problem:
        return None
    from tslic.protocol.codec import unpack_untrusted

    try:
        outer = unpack_untrusted(frame.raw)
        header = unpack_untrusted(outer[1])
        stamp = header[5]
    except (TslicError, IndexError, TypeError):
        return None
    return stamp if isinstance(stamp, int) else None


def judge_rejection(
    obs: Observation, codes: set[ErrorCode] | frozenset[ErrorCode], *, close_ok: bool = True
) -> Judgement:
    """The verdict for a probe that must be refused with one of `codes`."""
    wanted = " or ".join(f"{c.name} ({int(c)})" for c in sorted(codes))
    err = obs.first_error
    ttr = obs.first_reply
    if err is not None:
        code = err.error_code
        if code is not None and code in {int(c) for c in codes}:
            if obs.end == "open" and 1000 <= code < 2000:
                return Judgement(
                    Verdict.NON_STRICT,
                    obs.summary(),
                    ttr,
                    ["a fatal (1xxx) Error must be followed by closing the connection"],
                )
            return Judgement(Verdict.PASS, obs.summary(), ttr)
        return Judgement(Verdict.WRONG_CODE, f"{obs.summary()} (expected {wanted})", ttr)
    if any(f.problem for f in obs.frames):
        return Judgement(Verdict.FAIL, f"{obs.summary()}: the target's frame was invalid", ttr)
    if obs.frames:
        return Judgement(Verdict.FAIL, f"accepted the bad input: {obs.summary()}", ttr)
    if obs.end == "clean-close":
        verdict = Verdict.NON_STRICT if close_ok else Verdict.FAIL
        return Judgement(verdict, f"{obs.summary()} without an Error (expected {wanted})", ttr)
    if obs.end == "reset":
        return Judgement(Verdict.UNCLEAN, f"{obs.summary()} without an Error", ttr)
    return Judgement(Verdict.TIMEOUT, obs.summary(), None)


@dataclass(slots=True)
class SuiteReport:
    config: SuiteConfig
    results: list[Result]
    started: float
    wall_time: float
    prepared: list[str] = field(default_factory=list)  # what provisioning did (--clearinghouse)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status in ("failed", "xpass")]

    @property
    def exit_status(self) -> int:
        return 1 if self.failed else 0


async def run_case(ctx: Context, case: Case) -> Result:
    """Run one case, then the liveness check; never raises for the target's behaviour."""
    ctx.case = case
    ctx.transcript = Transcript()
    ctx.rng = random.Random(f"{ctx.config.seed}:{case.id}")
    start = time.monotonic()
    cap = ctx.timeout * 4 + (ctx.config.handshake_timeout if case.heavy else 0) + 5
    try:
        with trio.move_on_after(cap) as scope:
            judgement = await case.run(ctx)
        if scope.cancelled_caught:
            judgement = Judgement(Verdict.TIMEOUT, f"the case did not finish within {cap:.0f} s")
    except ConnectionLost as exc:
        judgement = Judgement(Verdict.FAIL, f"transport failure: {exc.message}")
    except TslicError as exc:
        judgement = Judgement(Verdict.FAIL, f"unexpected protocol failure: {exc}")
    finally:
        await ctx.close_clients()
    duration = time.monotonic() - start
    served, detail = await ctx.served()
    verdict, notes = judgement.verdict, list(judgement.notes)
    if not served:
        notes.append(f"after this case a well-behaved client was not served: {detail}")
        if not verdict.failing:
            verdict = Verdict.FAIL
    counted = ctx.config.strict or case.level is Level.MUST
    return Result(
        case=case,
        verdict=verdict,
        actual=judgement.actual,
        duration=duration,
        time_to_reject=judgement.time_to_reject if case.negative else None,
        served_after=served,
        served_detail=detail,
        notes=notes,
        transcript=ctx.transcript,
        expected_failure=_matches(case, ctx.config.expect_fail),
        counted=counted,
    )


async def run_suite(
    config: SuiteConfig,
    cases: Sequence[Case],
    on_result: Callable[[Result], None] | None = None,
) -> SuiteReport:
    """Run the selected cases in order and collect the report."""
    started = time.time()
    t0 = time.monotonic()
    ctx = Context(config)
    try:
        await ctx.sync_clock()
    except trio.TooSlowError:
        # A silent target is still tested: its cases will time out, with evidence.
        log.warning("the target %s did not answer in time; using the local clock", config.target)
    prepared: list[str] = []
    if config.clearinghouse and config.role is Role.LICENSE_SERVER:
        from .provision import provision  # provision builds on lsclient, which imports us

        prepared = await provision(ctx)
    results = []
    for case in select(cases, config):
        result = await run_case(ctx, case)
        if result.status in ("failed", "xpass"):
            result.evidence = write_evidence(config, result)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return SuiteReport(config, results, started, time.monotonic() - t0, prepared)
