"""Opening a daemon's listening sockets, with start-up failures as one plain sentence.

Contract: `open_listeners(host, port, option=...)` is `trio.open_tcp_listeners` whose
failures (a busy port, an address not on this machine, a port that needs privileges, a host
name that does not resolve) raise `StartupError`: one line naming the address and the option
that chose it, which `run_daemon` prints with exit status 2. `listen_failure` words the same
sentence for a listener whose sockets were opened some other way.
"""

from __future__ import annotations

import errno
import socket

import trio
from tslic.protocol.errors import ErrorCode, ServiceError


class StartupError(ServiceError):
    """A daemon cannot start: a busy port, a missing permission, a bad path."""

    code = ErrorCode.INVALID_FIELD


_HINTS = {
    errno.EADDRINUSE: "the port is busy; choose another port, or 0 for any free one",
    errno.EACCES: "permission denied; ports below 1024 need privileges, choose another",
    errno.EPERM: "permission denied; choose another port",
    errno.EADDRNOTAVAIL: "the address is not on this machine; use 127.0.0.1 or one of its own",
}


def listen_failure(host: str, port: int, exc: OSError, *, option: str = "--listen") -> StartupError:
    """The one-line refusal for a listener that could not be opened."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        why = f"the host name {host!r} does not resolve"
    else:
        why = _HINTS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
    return StartupError(f"cannot listen on {where} ({option}): {why}")


async def open_listeners(
    host: str, port: int, *, option: str = "--listen"
) -> list[trio.SocketListener]:
    """`trio.open_tcp_listeners(port, host=host)`, failing with a `StartupError`."""
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise listen_failure(host, port, exc, option=option) from None
