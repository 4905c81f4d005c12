"""Prometheus metrics of a license server and the tiny HTTP endpoint that serves them.

Contract: each `Metrics` has its own `CollectorRegistry` (several servers can share a test
process). Exposed: licenses issued by product and kind, free CALs per product (pool levels),
request latency by message, active and accepted connections, errors by wire code. `serve`
(Trio-shaped) answers every HTTP GET on its port with `generate_latest` and closes; it
reads at most 8 KiB of request and never lets a client's error reach the daemon.
"""

from __future__ import annotations

import logging

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from tslic.protocol.domain import CalProduct, LicenseKind
from tslic.protocol.errors import ErrorCode
from tslic.runtime.listen import open_listeners
from tslic.runtime.service import Counters

log = logging.getLogger(__name__)


class Metrics:
    """The license server's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.issued_total = Counter(
            "tslic_licenses_issued", "Licenses issued", ["product", "kind"], registry=r
        )
        self.pool = Gauge("tslic_pool_available", "Free CALs per product", ["product"], registry=r)
        self.latency = Histogram(
            "tslic_request_seconds",
            "Time to answer a request",
            ["message"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.connections = Gauge("tslic_connections_active", "Open connections", registry=r)
        self.accepted = Gauge("tslic_connections_accepted", "Connections accepted", registry=r)
        self.errors = Counter("tslic_errors", "Errors sent, by wire code", ["code"], registry=r)
        # Labelled children, looked up once: `labels()` costs microseconds on every request.
        self._issued: dict[tuple[CalProduct, LicenseKind], Counter] = {}
        self._pool: dict[CalProduct, Gauge] = {}
        self._latency: dict[str, Histogram] = {}

    def bind_counters(self, counters: Counters) -> None:
        self.connections.set_function(lambda: counters.active)
        self.accepted.set_function(lambda: counters.accepted)

    def issued(self, product: CalProduct, kind: LicenseKind) -> None:
        child = self._issued.get((product, kind))
        if child is None:
            child = self._issued[product, kind] = self.issued_total.labels(
                product=product.value, kind=kind.value
            )
        child.inc()

    def set_pools(self, pools: dict[CalProduct, int]) -> None:
        for product, free in pools.items():
            child = self._pool.get(product)
            if child is None:
                child = self._pool[product] = self.pool.labels(product=product.value)
            child.set(free)

    def observe(self, message: str, seconds: float) -> None:
        child = self._latency.get(message)
        if child is None:
            child = self._latency[message] = self.latency.labels(message=message)
        child.observe(seconds)

    def error(self, code: ErrorCode) -> None:
        self.errors.labels(code=f"{code.name}").inc()

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))

    async def serve(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve the metrics over HTTP until cancelled; report "host:port"."""
        listeners = await open_listeners(host, port, option="--metrics")
        name = listeners[0].socket.getsockname()
        task_status.started(f"{name[0]}:{name[1]}")
        await trio.serve_listeners(self._http, listeners)

    async def _http(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(5):
                data = b""
                while b"\r\n\r\n" not in data and len(data) < 8192:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    data += chunk
                body = self.render()
                head = (
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                ).encode()
                await stream.send_all(head + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the scraper went away; nothing to tell anybody
        finally:
            await stream.aclose()
