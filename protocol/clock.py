"""The virtual clock as a value: a start date, a speed, and the real instant they refer to.

Contract: pure arithmetic, no clock reading (sans-IO). `ClockSpec.at(real)` maps a real time
(seconds since the epoch, read by the caller) to virtual milliseconds since the epoch. Every
process given the same spec reads the same virtual time at the same real instant, which is
what lets separate daemons agree on dates while months pass in seconds. Real time is the
spec with no start date and speed 1.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from .errors import ErrorCode, ServiceError

MS_PER_DAY = 86_400_000


class ClockView(Protocol):
    """What a freshness check may ask of the receiver's clock beyond one reading of `now`
    (docs/PROTOCOL.md §1.1, CLOCK-3). Implemented by clocks that follow a shared clock file;
    passing one is how the sans-IO core re-reads time without reading a clock itself."""

    def recent(self) -> tuple[int, ...]:
        """Readings (virtual ms) under the clock specs this process left within the last few
        real seconds; empty unless the shared clock was just changed. No I/O."""
        ...

    def reread(self) -> int:
        """Re-read the shared clock (a file read) and return the current virtual time."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockSpec:
    """start: virtual epoch-ms at the real instant `anchor` (epoch seconds); speed: virtual
    seconds per real second. With start None the clock is real time (speed must be 1)."""

    start: int | None = None
    anchor: float = 0.0
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.speed <= 10_000_000:
            raise ServiceError(
                f"clock speed must be above 0 and at most 10,000,000 (got {self.speed})",
                code=ErrorCode.INVALID_FIELD,
            )
        # A NaN or infinite anchor (say "1@nanx2" on a command line) would only fail later,
        # inside at(), as a raw ValueError/OverflowError.
        if not math.isfinite(self.anchor):
            raise ServiceError(
                f"clock anchor must be a finite number of seconds (got {self.anchor})",
                code=ErrorCode.INVALID_FIELD,
            )

    def at(self, real: float) -> int:
        """Virtual milliseconds since the epoch at real time `real` (epoch seconds)."""
        if self.start is None:
            return int(real * 1000)
        return self.start + int((real - self.anchor) * self.speed * 1000)

    def real_seconds(self, virtual_ms: int) -> float:
        """How many real seconds a virtual span of `virtual_ms` takes."""
        return virtual_ms / 1000 / self.speed

    def to_arg(self) -> str:
        """The `--clock` argument that recreates this spec in another process."""
        if self.start is None:
            return "real"
        return f"{self.start}@{self.anchor!r}x{self.speed!r}"

    @classmethod
    def from_arg(cls, text: str) -> ClockSpec:
        """Parse `to_arg()` output."""
        if text == "real":
            return cls()
        try:
            start, rest = text.split("@", 1)
            anchor, speed = rest.split("x", 1)
            return cls(start=int(start), anchor=float(anchor), speed=float(speed))
        except ValueError:
            raise ServiceError(
                f"clock {text!r} is not 'real' or START_MS@ANCHORxSPEED",
                code=ErrorCode.INVALID_FIELD,
            ) from None


def to_datetime(ms: int) -> datetime:
    """Virtual epoch-ms as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def from_datetime(when: datetime) -> int:
    """An aware datetime as epoch-ms."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def parse_date(text: str) -> int:
    """A date or date-time in ISO 8601 (2003-05-01, 2003-05-01 09:00, 2003-05-01T09:00) as
    epoch-ms, UTC.

    Raises:
        ServiceError: INVALID_FIELD with the expected format.
    """
    try:
        return from_datetime(datetime.fromisoformat(text))
    except ValueError:
        raise ServiceError(
            f"{text!r} is not a date like 2003-05-01 or 2003-05-01 09:00",
            code=ErrorCode.INVALID_FIELD,
        ) from None


_SPAN_PART = re.compile(r"(\d+(?:\.\d+)?)(w|d|h|m|s)")
_SPAN_UNITS = {"w": 7 * MS_PER_DAY, "d": MS_PER_DAY, "h": 3_600_000, "m": 60_000, "s": 1000}


def parse_span(text: str) -> int:
    """A virtual span such as `90d`, `12h`, `30m`, `1d12h` or `2w` as milliseconds.

    Raises:
        ServiceError: INVALID_FIELD for anything else, or a span of zero.
    """
    cleaned = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for match in _SPAN_PART.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _SPAN_UNITS[match.group(2)]
        pos = match.end()
    if not cleaned or pos != len(cleaned) or total <= 0 or not math.isfinite(total):
        raise ServiceError(
            f"{text!r} is not a span of time; write it like 90d, 12h, 30m, 1d12h or 2w",
            code=ErrorCode.INVALID_FIELD,
        )
    return int(total)


def format_date(ms: int) -> str:
    """Epoch-ms as 'YYYY-MM-DD HH:MM' for people."""
    return to_datetime(ms).strftime("%Y-%m-%d %H:%M")
