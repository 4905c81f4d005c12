"""The agent's real-RDP listener (`tslic agent run --rdp-listen HOST:PORT`).

Contract:
- `serve_agent_rdp(host, port, agent_address=, data_dir=, clock=, task_status=)` binds,
  reports "host:port" through `task_status`, and serves real RDP clients until cancelled,
  beside the agent's msgpack listener at `agent_address`: TLS with the certificate kept in
  `data_dir` (rdp_tls.py), Standard RDP Security with an RSA key made at start, and the
  agent's decisions through `AgentDecider` (rdp_decisions.py). Handlers run in their own
  nursery; cancelling the task stops accepting and ends the open connections.
- At most `max_connections` RDP connections are served at once; a further one is closed at
  once (its client reports a network error), as the agent's own SERVER_BUSY would.
- Each finished connection is logged at INFO as one line of its `RdpSessionReport`.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

import trio
from tslic.protocol.rdp.keys import generate_rsa_key
from tslic.runtime.clock import Clock

from .rdp_decisions import AgentDecider
from .rdp_listener import ListenerConfig, serve_rdp_connection
from .rdp_tls import server_context

log = logging.getLogger(__name__)
MAX_CONNECTIONS = 64


async def serve_agent_rdp(
    host: str,
    port: int,
    *,
    agent_address: str,
    data_dir: Path,
    clock: Clock,
    hold: float = 30.0,
    max_connections: int = MAX_CONNECTIONS,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = ListenerConfig(
        server_key=generate_rsa_key(secrets.token_bytes),
        decider=AgentDecider(agent_address, data_dir, clock),
        tls=server_context(data_dir),
        hold=hold,
    )
    limiter = trio.CapacityLimiter(max_connections)
    listeners = await trio.open_tcp_listeners(port, host=host)
    sockname = listeners[0].socket.getsockname()

    async def handler(stream: trio.SocketStream) -> None:
        try:
            limiter.acquire_nowait()
        except trio.WouldBlock:
            log.warning("RDP: %d connections already, refusing one", max_connections)
            await stream.aclose()
            return
        try:
            report = await serve_rdp_connection(stream, config)
        finally:
            limiter.release()
        log.info("RDP connection: %s", json.dumps(report.as_dict(), sort_keys=True))

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(f"{sockname[0]}:{sockname[1]}")
