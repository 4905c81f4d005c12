"""The agent's kept connections to its license servers.

Contract:
- `Links` keeps a small pool of licensing conversations per license server address for the
  agent's lifetime (at most `per_server`, default 8, opened only when every open one is
  busy): one Hello per connection, then request after request on it. A conversation allows
  one outstanding request (docs/PROTOCOL.md ENV-9: no pipelining), so a connection carries
  one request at a time and concurrent RDP clients use the pool's others, or queue (the
  request's timeout starts once it has a connection: waiting in the queue is not the server
  failing). With `per_server=1` every request to a server is serialised on one connection.
  A probe never queues: it opens its own connection, which then joins the pool (the oldest
  idle one closes if the pool is full).
- Before a request, the connection taken from the pool is checked: if the server closed it
  while it was idle (a restarting server's Goodbye, its idle timeout, a reset), or its Hello
  presented another certificate chain than the one the agent holds now, it is replaced by a
  new one (one new Hello). A connection that breaks during a request, or a refused Hello,
  is closed; the error goes to the caller (failover.py then marks the server unusable and
  fails over, DISC-8).
- Reconnecting has a backoff: after a failed connection attempt to an address, requests do
  not dial it again for 1 s, doubling up to 60 s (reset by a success), and fail at once with
  `ConnectionLost`. A discovery probe (`fresh`) always dials: the documented discovery
  timers (docs/AGENT.md) are what bring a failed server back.
- All times are Trio's clock (autojump_clock in tests). `aclose()` says Goodbye on each
  idle connection. `stats` counts connections opened and requests sent.
"""

from __future__ import annotations

import select
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import trio
from tslic.protocol import ConnectionLost, ErrorCode, Message
from tslic.protocol.connection import NEED_DATA
from tslic.protocol.errors import ProtocolError, ServiceError
from tslic.protocol.states import READY
from tslic.runtime.peer import PeerStream

# Opens a licensing conversation (connect, Hello with the chain, Welcome); a refused Hello
# raises ServiceError.
Opener = Callable[[str, tuple[bytes, ...]], AbstractAsyncContextManager[PeerStream]]

BACKOFF_FIRST = 1.0  # real seconds before an address that could not be reached is dialled
BACKOFF_MAX = 60.0


class Refused(Exception):
    """A Hello or certificate request was refused with a code that says why."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class LinkStats:
    """What the kept connections cost (for the full-stack bench and the tests)."""

    opened: int = 0  # connections opened, each with one Hello
    requests: int = 0  # requests sent on kept connections
    failed_dials: int = 0  # connection attempts that could not reach the server
    held_off: int = 0  # requests failed at once during a backoff


@dataclass(slots=True)
class _Link:
    stream: PeerStream | None = None
    chain: tuple[bytes, ...] = ()
    stack: AsyncExitStack | None = None

    async def close(self) -> None:
        stack, self.stack, self.stream = self.stack, None, None
        if stack is not None:
            await stack.aclose()  # Goodbye if the state allows one, then close


class _Pool:
    """The connections to one address: idle ones, and a bound on all of them."""

    def __init__(self, size: int) -> None:
        self.slots = trio.Semaphore(size)
        self.idle: list[_Link] = []  # last in, first out: a few hot connections
        self.retry_at = float("-inf")  # Trio time before which requests do not dial
        self.backoff = 0.0


class Links:
    """A pool of kept licensing conversations per license server address."""

    def __init__(self, opener: Opener, now: Callable[[], int], *, per_server: int = 8) -> None:
        self._opener = opener
        self._now = now
        self._per_server = max(1, per_server)
        self._pools: dict[str, _Pool] = {}
        self.stats = LinkStats()

    @property
    def open_count(self) -> int:
        """Idle connections open now."""
        return sum(len(pool.idle) for pool in self._pools.values())

    def _pool(self, address: str) -> _Pool:
        pool = self._pools.get(address)
        if pool is None:
            pool = self._pools[address] = _Pool(self._per_server)
        return pool

    async def request(
        self,
        address: str,
        chain: tuple[bytes, ...],
        message: Message,
        *,
        timeout: float,  # noqa: ASYNC109 (starts after the queue: a caller's fail_after cannot)
    ) -> Message:
        """Send `message` on a kept connection to `address` (a new one, with `chain` in its
        Hello, when none is idle and usable) and return the reply. `timeout` (real seconds)
        bounds the dial and the exchange, not the wait for a free connection: queueing
        behind other clients is not the server failing.

        Raises:
            ServiceError: the server refused the request (the connection stays open).
            Refused: the server refused the Hello of a new connection.
            ConnectionLost, ProtocolError: the connection could not be made, or broke.
            trio.TooSlowError: no answer within `timeout`.
        """
        pool = self._pool(address)
        async with pool.slots:
            link = pool.idle.pop() if pool.idle else _Link()
            try:
                with trio.fail_after(timeout):
                    return await self._exchange(pool, link, address, chain, message)
            finally:
                if link.stream is not None:
                    pool.idle.append(link)

    async def _exchange(
        self, pool: _Pool, link: _Link, address: str, chain: tuple[bytes, ...], message: Message
    ) -> Message:
        if link.stream is not None and (link.chain != chain or not self._usable(link.stream)):
            await link.close()
        if link.stream is None:
            if trio.current_time() < pool.retry_at:
                self.stats.held_off += 1
                raise ConnectionLost(
                    f"{address} could not be reached; not dialling it again for"
                    f" {pool.retry_at - trio.current_time():.1f} s"
                )
            await self._dial(pool, link, address, chain)
        assert link.stream is not None
        self.stats.requests += 1
        try:
            return await link.stream.request(message)
        except ServiceError:
            raise  # a refusal of this request: the conversation goes on
        except BaseException:
            await link.close()  # broken, timed out or cancelled mid-request
            raise

    @asynccontextmanager
    async def fresh(self, address: str, chain: tuple[bytes, ...]) -> AsyncIterator[PeerStream]:
        """A new connection to `address` (a probe: always dialled, never held off, and never
        queued behind the pool's requests, whose wait would look like the server failing),
        kept in the pool afterwards unless the block fails (the oldest idle connection makes
        room if the pool is full)."""
        pool = self._pool(address)
        link = _Link()
        await self._dial(pool, link, address, chain)
        assert link.stream is not None
        try:
            yield link.stream
        except BaseException:
            await link.close()
            raise
        pool.idle.append(link)
        while len(pool.idle) > self._per_server:
            await pool.idle.pop(0).close()

    async def drop(self, address: str) -> None:
        """Close the idle connections to `address` (a server we cannot use now)."""
        pool = self._pools.get(address)
        while pool is not None and pool.idle:
            await pool.idle.pop().close()

    async def aclose(self) -> None:
        """Say Goodbye on every idle connection and close it."""
        for address in list(self._pools):
            await self.drop(address)

    async def _dial(self, pool: _Pool, link: _Link, address: str, chain: tuple[bytes, ...]) -> None:
        stack = AsyncExitStack()
        try:
            stream = await stack.enter_async_context(self._opener(address, chain))
        except ServiceError as exc:
            await stack.aclose()
            pool.backoff, pool.retry_at = 0.0, float("-inf")  # it answered: it is up
            raise Refused(exc.code, exc.message) from None
        except ConnectionLost:
            await stack.aclose()
            self.stats.failed_dials += 1
            pool.backoff = min(BACKOFF_MAX, pool.backoff * 2 or BACKOFF_FIRST)
            pool.retry_at = trio.current_time() + pool.backoff
            raise
        except BaseException:
            await stack.aclose()
            raise
        self.stats.opened += 1
        link.stream, link.stack, link.chain = stream, stack, chain
        pool.backoff, pool.retry_at = 0.0, float("-inf")

    def _usable(self, stream: PeerStream) -> bool:
        """Is a kept connection still open? While it is idle the server may only say
        Goodbye, send a fatal Error or close, so anything waiting to be read ends it."""
        conn = stream.conn
        if conn.state != READY:
            return False
        try:
            if conn.next_event(now=self._now()) is not NEED_DATA:
                return False
        except ProtocolError:
            return False
        sock = getattr(stream.stream, "socket", None)
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable


class Unusable(Exception):
    """The server could not be used for this request; its cache entry records why."""
