"""How many connections a daemon can hold: its file-descriptor limit, not just its setting.

Contract:
- `raise_file_limit()` raises the process's soft RLIMIT_NOFILE to its hard limit (as nginx's
  `worker_rlimit_nofile` or systemd's LimitNOFILE do; an unprivileged process may) and
  returns the soft limit now in force. It never lowers a limit and never fails: a platform
  without `resource`, or a refusal, leaves the limit as it was.
- `connection_ceiling(wanted, reserve)` is `wanted` capped at the soft limit minus `reserve`
  descriptors kept for everything else a daemon opens (its database and journal files,
  listeners, logs, Trio's wake-up socket and threads): at that ceiling the server answers the
  next peer SERVER_BUSY itself and closes, instead of failing `accept()` with EMFILE and
  leaving peers stuck in the kernel's accept queue.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)

RESERVE = 256  # descriptors kept for files, listeners, logs and threads

if sys.platform != "win32":  # Windows has no `resource` (and no RLIMIT_NOFILE)
    import resource


def file_limit() -> int | None:
    """The soft RLIMIT_NOFILE, or None if unlimited or unknown."""
    if sys.platform == "win32":
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def raise_file_limit() -> int | None:
    """Raise the soft limit to the hard one; return the soft limit now in force."""
    if sys.platform == "win32":
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:  # soft <= hard always, so this raises it (RLIM_INFINITY included)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %s to %s: %s", soft, hard, exc)
    return file_limit()


def connection_ceiling(wanted: int, reserve: int = RESERVE) -> int:
    """`wanted`, capped so the descriptors for that many connections plus `reserve` fit."""
    limit = file_limit()
    if limit is None:
        return wanted
    return max(1, min(wanted, limit - reserve))
