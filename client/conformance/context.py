"""The per-case context the cases work with, and the judgement of a refusal.

Contract:
- `Context` holds the run's configuration, the suite's estimate of the target's clock, the
  case's transcript and seeded randomness, and opens recorded connections to the target
  (`open_raw`), crafted envelopes (`crafter`) and the suite's Hello for the role (`hello`).
- `Context.served()` is the liveness check run after every case: a Hello and one simple
  request (a refusal counts as served), or for an agent the LicenseRequest greeting.
- `Context.sync_clock()` learns the target's virtual time from its first frame's timestamp.
- `judge_rejection(obs, codes)` turns the observation of bad input into a verdict.
This module imports only basics and wire from the suite (no cycle).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation, ErrorCode, ServiceError, TslicError
from tslic.protocol.codec import Unvalidated
from tslic.protocol.domain import PeerRole
from tslic.protocol.messages import Hello, Message
from tslic.protocol.messages.clearinghouse import ChClaimKeyPack
from tslic.protocol.messages.directory import DirQueryEnterprise
from tslic.protocol.messages.licensing import ReturnLicense
from tslic.runtime.peer import open_peer

from .basics import CONVERSATION, Judgement, OffsetClock, Role, SuiteConfig, Verdict
from .crafter import Crafter
from .peers import Peers
from .wire import Frame, Observation, RawClient, Transcript


class HelloFields(TypedDict, total=False):
    """`Hello`'s fields, for `Context.hello` overrides (Hello still validates them)."""

    role: PeerRole
    name: str
    version: int
    conversation: Conversation
    cert_chain: tuple[bytes, ...]
    features: tuple[str, ...]


@dataclass(slots=True)
class Context:
    """What a case works with: the target, crafted peers, the clock, its transcript."""

    config: SuiteConfig
    clock: OffsetClock = field(default_factory=OffsetClock)
    transcript: Transcript = field(default_factory=Transcript)
    rng: random.Random = field(default_factory=random.Random)
    clients: list[RawClient] = field(default_factory=list)
    case_id: str = ""  # the case running now
    # Retail codes for User CALs, held back by provisioning so that the cases about a server
    # without a User CAL pack (CAL-8, TEMP-9) run first; CAL-7 installs them.
    deferred_codes: list[str] = field(default_factory=list)
    peers: Peers | None = None  # the doubles of --manifest, while the run lasts
    origin: int = 0  # the target's virtual time when the run started (ms)
    manifest: dict[str, Unvalidated] = field(default_factory=dict)  # --manifest, as read
    shared: dict[str, Any] = field(default_factory=dict)  # what one case leaves the next
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

    def hello(self, **overrides: Unpack[HelloFields]) -> Hello:
        """The Hello the suite's simulated peer opens request/response conversations with."""
        role, version = {
            Role.LICENSE_SERVER: (PeerRole.TERMINAL_SERVER, 2000),  # served by 2000 and 2003
            Role.CLEARINGHOUSE: (PeerRole.LICENSE_SERVER, 2003),
            Role.DIRECTORY: (PeerRole.TERMINAL_SERVER, 2003),
            Role.AGENT: (PeerRole.RDP_CLIENT, 0),
        }[self.role]
        values: HelloFields = {
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
