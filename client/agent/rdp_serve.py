"""The agent's real-RDP listener (`tslic agent run --rdp-listen HOST:PORT`).

Contract:
- `serve_agent_rdp(host, port, agent_address=, data_dir=, clock=, limits=, shutdown=,
  task_status=)` binds, reports "host:port" through `task_status`, and serves real RDP
  clients beside the agent's msgpack listener at `agent_address`: TLS with the certificate
  kept in `data_dir` (rdp_tls.py), Standard RDP Security with an RSA key made at start, and
  the agent's decisions through `AgentDecider` (rdp_decisions.py).
- The agent's Limits apply: at most `max_connections` RDP connections at once, capped by the
  open-files ceiling (runtime.fdlimit); a further one is closed at once, as the msgpack
  listener's SERVER_BUSY. Each step of a connection must come within `handshake_timeout`.
- Graceful shutdown when `shutdown` is set: stop accepting; sessions showing their outcome
  end at once with Deactivate All and a Disconnect Provider Ultimatum; connections still in
  licensing get `shutdown_grace` seconds, then are cancelled.
- A port that cannot be opened is the one-line StartupError of runtime/listen.py.
- Each finished connection is logged at INFO as one line of its `RdpSessionReport`.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
from functools import partial
from pathlib import Path

import trio
from tslic.protocol.rdp.keys import generate_rsa_key
from tslic.runtime.clock import Clock
from tslic.runtime.fdlimit import connection_ceiling
from tslic.runtime.limits import Limits
from tslic.runtime.listen import open_listeners

from .rdp_decisions import AgentDecider
from .rdp_link import ListenerConfig
from .rdp_listener import serve_rdp_connection
from .rdp_tls import server_context

log = logging.getLogger(__name__)


async def serve_agent_rdp(
    host: str,
    port: int,
    *,
    agent_address: str,
    data_dir: Path,
    clock: Clock,
    limits: Limits,
    shutdown: trio.Event,
    hold: float = 30.0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = ListenerConfig(
        server_key=generate_rsa_key(secrets.token_bytes),
        decider=AgentDecider(agent_address, data_dir, clock),
        tls=server_context(data_dir),
        step_timeout=limits.handshake_timeout,
        hold=hold,
    )
    ceiling = connection_ceiling(limits.max_connections)
    limiter = trio.CapacityLimiter(ceiling)
    holding: dict[int, trio.CancelScope] = {}
    numbers = itertools.count()
    listeners = await open_listeners(host, port, option="--rdp-listen")
    sockname = listeners[0].socket.getsockname()

    async def handler(stream: trio.SocketStream) -> None:
        try:
            limiter.acquire_nowait()
        except trio.WouldBlock:
            log.warning("RDP: %d connections already, refusing one", ceiling)
            await stream.aclose()
            return
        number = next(numbers)

        def painted(scope: trio.CancelScope) -> None:
            holding[number] = scope
            if shutdown.is_set():
                scope.cancel()

        try:
            report = await serve_rdp_connection(stream, config, on_painted=painted)
        finally:
            holding.pop(number, None)
            limiter.release()
        log.info("RDP connection: %s", json.dumps(report.as_dict(), sort_keys=True))

    async with trio.open_nursery() as handlers:
        async with trio.open_nursery() as accepting:
            await accepting.start(
                partial(trio.serve_listeners, handler, listeners, handler_nursery=handlers)
            )
            task_status.started(f"{sockname[0]}:{sockname[1]}")
            await shutdown.wait()
            accepting.cancel_scope.cancel()  # stop accepting; the listeners close
        for scope in list(holding.values()):
            scope.cancel()  # Deactivate All + DPUM for every session on show
        handlers.cancel_scope.deadline = trio.current_time() + limits.shutdown_grace
