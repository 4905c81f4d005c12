"""The emulated terminal servers (agents) of one generator: connecting, pooling, closing.

Contract:
- Each agent is a real protocol peer with its own Ed25519 key (derived from `--seed` when one
  is given, fresh otherwise). It says Hello to the target (LICENSING conversation, role
  terminal-server, version 2000 or 2003), asks for its terminal-server certificate with
  `RequestTermServCert` as a real terminal server would, then reconnects presenting that chain
  and stays connected. A lost connection is re-established with backoff; a refusal of the
  certificate or of the Hello (LOWER_VERSION, NOT_IN_SECURITY_GROUP...) is final for that agent
  and counted by its code.
- Agents connect at a controlled rate (`connect_rate` per second) and wait in a FIFO pool
  when idle; a request takes an idle agent, so when every agent is busy (the target is slow)
  the wait shows up as schedule lag and response time, never as a quieter schedule.
- Agents connected: `serve(agent)` (the worker's reader) runs while the connection is up;
  when it returns the agent reconnects. What each request asks for is `operations.py`.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import (
    ConnectionLost,
    Conversation,
    ProtocolError,
    ServiceError,
    Timeout,
    raw_public,
)
from tslic.protocol.domain import LicensingMode, PeerRole, WindowsVersion
from tslic.protocol.messages.licensing import (
    RequestTermServCert,
    TermServCert,
)
from tslic.runtime.clock import Clock
from tslic.runtime.peer import PeerStream, connect, open_peer

from .config import LoadConfig
from .link import Link
from .schedule import Share

_MASK = (1 << 64) - 1
_BACKOFF_MAX = 10.0


def unit(seed: int, k: int, salt: int) -> float:
    """A uniform number in [0, 1) from (seed, k, salt): splitmix64, cheap and stable."""
    z = (seed * 0x9E3779B97F4A7C15 + k * 0xBF58476D1CE4E5B9 + salt * 0x94D049BB133111EB) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((z ^ (z >> 31)) >> 11) / float(1 << 53)


def pick(weights: dict[str, float], u: float) -> str:
    """The name whose cumulative weight band contains u."""
    acc = 0.0
    last = ""
    for name, weight in weights.items():
        acc += weight
        last = name
        if u < acc:
            return name
    return last


def derive_key(seed: int | None, *parts: object) -> Ed25519PrivateKey:
    """A deterministic key from the seed and `parts`, or a fresh one without a seed."""
    if seed is None:
        return Ed25519PrivateKey.generate()
    material = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(material)


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """Who one emulated terminal server is."""

    index: int
    name: str
    version: WindowsVersion
    mode: LicensingMode


def plan_agents(config: LoadConfig, share: Share) -> list[AgentProfile]:
    """The profiles of the agents `share` runs (agent i belongs to share.owns(i))."""
    seed = config.seed or 0
    profiles = []
    for i in range(share.offset, config.agents, share.stride):
        version = WindowsVersion.W2000 if unit(seed, i, 1) < config.ts2000 else WindowsVersion.W2003
        per_user = version is WindowsVersion.W2003 and unit(seed, i, 2) < config.per_user
        mode = LicensingMode.PER_USER if per_user else LicensingMode.PER_DEVICE
        profiles.append(AgentProfile(i, f"LOADTS{i:05d}", version, mode))
    return profiles


class Agent:
    """One emulated terminal server, its held connection and its request in flight."""

    def __init__(self, profile: AgentProfile, key: Ed25519PrivateKey) -> None:
        self.profile = profile
        self.key = key
        self.chain: tuple[bytes, ...] = ()
        self.stream: PeerStream | None = None  # the conversation (its `conn` signs/verifies)
        self.link: Link | None = None  # the same socket, for the measured requests
        self.scope: trio.CancelScope | None = None  # its reading's: cancelled when dropped
        self.pending: object = None  # the worker's record of the request in flight
        self.idle = False  # in the fleet's pool of agents free to send


@dataclass(slots=True)
class FleetStats:
    connected: int = 0
    peak: int = 0  # the most agents connected at once
    attempts_done: int = 0  # agents that connected once or gave up
    connect_errors: Counter[int] = field(default_factory=Counter)


class Fleet:
    """The agents of one generator: connecting them, lending them out, closing them."""

    def __init__(
        self,
        config: LoadConfig,
        share: Share,
        clock: Clock,
        *,
        connect_rate: float,
        serve: Callable[[Agent], Awaitable[None]],
    ) -> None:
        self.config = config
        self.serve = serve
        self.clock = clock
        self.profiles = plan_agents(config, share)
        self.connect_rate = connect_rate
        self.stats = FleetStats()
        self._send, self._receive = trio.open_memory_channel[Agent](math.inf)
        self._all_tried = trio.Event()
        if not self.profiles:
            self._all_tried.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect every agent at the controlled rate and keep them connected until
        cancelled. Reports started at once; `wait_tried` says when each has tried."""
        task_status.started()
        async with trio.open_nursery() as agents:
            begin = trio.current_time()
            for n, profile in enumerate(self.profiles):
                await trio.sleep_until(begin + n / self.connect_rate)
                key = derive_key(self.config.seed, "agent", profile.index)
                agents.start_soon(self._keep_connected, Agent(profile, key))

    async def wait_tried(self) -> None:
        """Return once every agent has connected once or given up."""
        await self._all_tried.wait()

    async def acquire(self) -> Agent:
        """An idle, connected agent (waiting, FIFO, if none is free)."""
        while True:
            agent = await self._receive.receive()
            if self._take(agent):
                return agent

    def try_acquire(self) -> Agent | None:
        """An idle agent if one is free now, else None."""
        while True:
            try:
                agent = self._receive.receive_nowait()
            except trio.WouldBlock:
                return None
            if self._take(agent):
                return agent

    def release(self, agent: Agent) -> None:
        """Give an agent back to the pool (after a request that left it usable, or once
        connected). An agent whose connection broke while it waited in the pool stays there
        and is skipped when its turn comes (`_take`), unless it reconnected meanwhile: so
        the pool never holds an agent twice."""
        if not agent.idle:
            agent.idle = True
            self._send.send_nowait(agent)

    @staticmethod
    def _take(agent: Agent) -> bool:
        agent.idle = False
        return agent.link is not None

    def _tried(self) -> None:
        self.stats.attempts_done += 1
        if self.stats.attempts_done >= len(self.profiles):
            self._all_tried.set()

    async def _keep_connected(self, agent: Agent) -> None:
        backoff, first = 0.5, True
        while True:
            try:
                await self._connect_once(agent, first_attempt=first)
                backoff = 0.5  # it was connected, then broke: reconnect promptly
            except (ServiceError, ProtocolError) as exc:
                # The target refused this terminal server: final, as for a real one.
                self.stats.connect_errors[int(exc.code)] += 1
                if first:
                    self._tried()
                return
            except (ConnectionLost, Timeout) as exc:
                self.stats.connect_errors[int(exc.code)] += 1
                if first:
                    self._tried()
                    first = False
                await trio.sleep(backoff)
                backoff = min(_BACKOFF_MAX, backoff * 2)
                continue
            first = False
            await trio.sleep(backoff)  # the connection broke: reconnect, gently

    async def _connect_once(self, agent: Agent, *, first_attempt: bool) -> None:
        """Connect with the certificate, serve the agent's requests until the connection
        breaks (`serve` reads the replies; it returns when the agent must reconnect), then
        close it with a Goodbye."""
        profile = agent.profile
        if not agent.chain:
            agent.chain = await self._certify(agent)
        with _translated_timeout(self.config.timeout):
            link = Link(await connect(self.config.target))
        peer = open_peer(
            self.config.target,
            conversation=Conversation.LICENSING,
            key=agent.key,
            clock=self.clock,
            role=PeerRole.TERMINAL_SERVER,
            name=profile.name,
            version=int(profile.version),
            cert_chain=agent.chain,
            tcp=link.tcp,
        )
        # Entered by hand: only the connect and Hello are bounded by the timeout, and the
        # connection is then held for the whole run.
        try:
            with _translated_timeout(self.config.timeout):
                stream = await peer.__aenter__()
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(link.tcp)
            raise
        try:
            agent.stream, agent.link = stream, link
            self.stats.connected += 1
            self.stats.peak = max(self.stats.peak, self.stats.connected)
            if first_attempt:
                self._tried()
            self.release(agent)
            await self.serve(agent)
        finally:
            self.stats.connected -= 1
            agent.stream = agent.link = None
            with trio.CancelScope(shield=True):
                await peer.__aexit__(None, None, None)

    async def _certify(self, agent: Agent) -> tuple[bytes, ...]:
        profile = agent.profile
        request = RequestTermServCert(
            name=profile.name,
            domain=self.config.domain,
            site=self.config.site,
            version=profile.version,
            public_key=raw_public(agent.key),
        )
        with _translated_timeout(self.config.timeout):
            async with open_peer(
                self.config.target,
                conversation=Conversation.LICENSING,
                key=agent.key,
                clock=self.clock,
                role=PeerRole.TERMINAL_SERVER,
                name=profile.name,
                version=int(profile.version),
            ) as stream:
                reply = await stream.request(request)
        assert isinstance(reply, TermServCert)  # the state table admits nothing else
        return reply.cert_chain


@contextmanager
def _translated_timeout(seconds: float) -> Iterator[None]:
    """`trio.fail_after` whose TooSlowError becomes our `Timeout`."""
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError:
        raise Timeout("the target did not answer in time") from None
