"""The protections every listener shares (`Limits`) and the per-peer request rate limiter.

Contract:
- `Limits` is immutable and valid by construction: a value out of range raises `ServiceError`
  (INVALID_FIELD) whose message names the command-line option (`--max-connections`, ...), so
  a daemon refuses a bad setting in one line before it binds. The defaults are documented in
  docs/RELIABILITY.md and docs/PROTOCOL.md §9; runtime/args.py puts every field on the
  command line.
- `RateLimiter.take(key)` is a token bucket per peer key (`rate_per_second`, burst
  `rate_burst`) on Trio's clock; it returns False when the key has no token left. Memory
  follows the keys active in the last refill period, with a hard ceiling (see `_prune`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import trio
from tslic.protocol import ErrorCode, ServiceError

# Frames smaller than this cannot carry a Hello with its signature and header.
MIN_FRAME = 1024
MAX_FRAME = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Configurable protections; the defaults are documented in docs/RELIABILITY.md."""

    max_connections: int = 15_000
    handshake_timeout: float = 10.0  # real seconds for the first message to arrive
    idle_timeout: float = 300.0  # real seconds between requests
    request_timeout: float = 30.0  # real seconds a handler may take
    max_frame: int = 65536
    rate_per_second: float = 2000.0  # requests per peer key per second
    rate_burst: float = 4000.0
    shutdown_grace: float = 5.0
    accept_rate: float = 10_000.0  # new connections per second (0: unpaced)
    accept_burst: float = 2_000.0
    window_real_seconds: float = 300.0  # freshness window, in real seconds

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = int if f.type in (int, "int") else (int, float)
            if isinstance(value, bool) or not isinstance(value, expected):
                _bad(f.name, f"must be a {'whole ' if expected is int else ''}number")
        _at_least(self, "max_connections", 1)
        for name in ("handshake_timeout", "idle_timeout", "request_timeout"):
            _positive(self, name)
        _positive(self, "window_real_seconds")
        _positive(self, "rate_per_second")
        _at_least(self, "rate_burst", 1)
        _at_least(self, "accept_burst", 1)
        _at_least(self, "accept_rate", 0)
        _at_least(self, "shutdown_grace", 0)
        if not MIN_FRAME <= self.max_frame <= MAX_FRAME:
            _bad("max_frame", f"must be between {MIN_FRAME} and {MAX_FRAME} bytes")


def option(name: str) -> str:
    """The command-line option of a `Limits` field (`max_frame` -> `--max-frame`)."""
    return "--" + name.replace("_", "-")


def _bad(name: str, why: str) -> None:
    raise ServiceError(f"{option(name)} {why}", code=ErrorCode.INVALID_FIELD)


def _positive(limits: Limits, name: str) -> None:
    value = getattr(limits, name)
    if not value > 0 or value == float("inf"):
        unit = " of seconds" if "timeout" in name or name.endswith("seconds") else ""
        _bad(name, f"must be a positive number{unit} (got {value})")


def _at_least(limits: Limits, name: str, low: float) -> None:
    value = getattr(limits, name)
    if not value >= low or value == float("inf"):
        _bad(name, f"must be at least {low:g} (got {value})")


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = burst
        self.stamp = now


class RateLimiter:
    """Token buckets per peer key (LIMIT-5)."""

    KEYS_BEFORE_PRUNE = 10_000
    MAX_KEYS = 100_000

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[bytes, _Bucket] = {}
        self._pruned_at = float("-inf")

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: bytes) -> bool:
        """Take one token for `key`; False if it has none left."""
        now = trio.current_time()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.KEYS_BEFORE_PRUNE:
                self._prune(now)
            if len(self._buckets) > self.MAX_KEYS:
                self._buckets.clear()  # bounded memory under a flood of keys
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _prune(self, now: float) -> None:
        """Forget the buckets that have refilled: such a bucket behaves exactly as a new one,
        so memory follows the peers active in the last refill period, not every key ever
        seen (a fuzzer or a flood uses a fresh key per connection). At most once per refill
        period, so a flood of new keys cannot make every request pay for a full scan."""
        refill = self.burst / max(self.rate, 1e-9)
        if now - self._pruned_at < refill:
            return
        self._pruned_at = now
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.stamp < refill}
