"""License lifetimes: lease lengths, expiries and the renewal window.

Contract:
- TechNet Revoke a Per Device CAL: a permanent Per Device CAL is leased for a random 52-89
  days (`lease_days` maps an
  integer the caller drew onto that range, uniformly); a client renews from 7 days before
  expiry on (`needs_renewal`). KB 813052: a temporary license lasts 90 days.
- A license is valid up to, not including, its `expires_at` (`is_expired`).
- Sans-IO and pure: no clock, no randomness. Datetimes must be timezone-aware; a naive one
  raises ValueError (`ensure_aware`).
- Re-exported by `tslic.protocol.policy`, where callers have always found these names.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# TechNet Revoke a Per Device CAL: permanent Per Device leases run a random 52-89 days;
# renewal starts 7 days before (TS licensing FAQ).
LEASE_MIN_DAYS = 52
LEASE_MAX_DAYS = 89
RENEWAL_WINDOW_DAYS = 7
# KB 813052: a temporary license lasts 90 days.
TEMPORARY_DAYS = 90


def ensure_aware(when: datetime, name: str = "now") -> datetime:
    """Return `when` unchanged if it carries a time zone (the core compares aware datetimes).

    Args:
        when: the datetime to check; name: the argument's name, for the message.

    Raises:
        ValueError: if `when` is naive.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (UTC), got {when!r}")
    return when


def lease_days(draw: int) -> int:
    """Map any integer the caller drew onto a lease length of 52..89 days, uniformly
    (TechNet Revoke a Per Device CAL).

    Args:
        draw: any integer (e.g. from a random generator outside the core).

    Returns:
        ``draw % 38 + 52``.
    """
    return draw % (LEASE_MAX_DAYS - LEASE_MIN_DAYS + 1) + LEASE_MIN_DAYS


def lease_expiry(now: datetime, draw: int) -> datetime:
    """Return the expiry, ``now + lease_days(draw)`` days, of a permanent CAL issued at `now`.

    Args:
        now: issue time (aware); draw: the caller's random integer (see `lease_days`).
    """
    return ensure_aware(now) + timedelta(days=lease_days(draw))


def temporary_expiry(now: datetime) -> datetime:
    """Return the expiry, ``now + 90 days``, of a temporary license issued at `now` (KB 813052).

    Args:
        now: issue time (aware).
    """
    return ensure_aware(now) + timedelta(days=TEMPORARY_DAYS)


def needs_renewal(expires_at: datetime, now: datetime) -> bool:
    """Whether a client should renew its license (TS licensing FAQ: from 7 days before expiry on).

    Args:
        expires_at: the license's expiry; now: current time (both aware).

    Returns:
        True when at most 7 days are left (exactly 7 included), or the license has expired.
    """
    left = ensure_aware(expires_at, "expires_at") - ensure_aware(now)
    return left <= timedelta(days=RENEWAL_WINDOW_DAYS)


def is_expired(expires_at: datetime, now: datetime) -> bool:
    """Whether a license has run out (it is valid up to, not including, `expires_at`).

    Args:
        expires_at: the license's expiry; now: current time (both aware).

    Returns:
        True when ``now >= expires_at``.
    """
    return ensure_aware(now) >= ensure_aware(expires_at, "expires_at")
