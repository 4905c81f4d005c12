"""Prometheus metrics of a license server and the tiny HTTP endpoint that serves them.

Contract: each `Metrics` has its own `CollectorRegistry` (several servers can share a test
process). Exposed: licenses issued by product and kind, free CALs per product (pool levels),
request latency by message, active and accepted connections, errors by wire code. `serve`
(Trio-shaped) answers every HTTP GET on its port with `generate_latest` and closes; it
reads at most 8 KiB of request and never lets a client's error reach the daemon.
The per-request figures (issued, pools, latency) are plain counters read by a custom
collector at scrape time (prometheus_client's documented pattern): a labelled child's `inc`
or `observe` takes a lock and costs microseconds on every license request, a scrape comes
every few seconds.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from tslic.protocol.domain import CalProduct, LicenseKind
from tslic.protocol.errors import ErrorCode
from tslic.runtime.listen import open_listeners
from tslic.runtime.service import Counters

log = logging.getLogger(__name__)


LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _Latency:
    """One message's response times: a count per bucket (not cumulative) and their sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last is above every bound
        self.total = 0.0


class _RequestFigures(Collector):
    """The per-request metrics, kept as plain numbers and turned into families at scrape."""

    def __init__(self) -> None:
        self.issued: dict[tuple[CalProduct, LicenseKind], int] = {}
        self.pools: dict[CalProduct, int] = {}
        self.latency: dict[str, _Latency] = {}

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        issued = CounterMetricFamily(
            "tslic_licenses_issued", "Licenses issued", labels=["product", "kind"]
        )
        for (product, kind), count in sorted(self.issued.items()):
            issued.add_metric([product.value, kind.value], count)
        yield issued
        pool = GaugeMetricFamily(
            "tslic_pool_available", "Free CALs per product", labels=["product"]
        )
        for product, free in sorted(self.pools.items(), key=lambda item: item[0].value):
            pool.add_metric([product.value], free)
        yield pool
        latency = HistogramMetricFamily(
            "tslic_request_seconds", "Time to answer a request", labels=["message"]
        )
        for message, figures in sorted(self.latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), figures.counts, strict=True):
                cumulative += count
                buckets.append((_bound(bound), cumulative))
            latency.add_metric([message], buckets, figures.total)
        yield latency


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class Metrics:
    """The license server's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._figures = _RequestFigures()
        r.register(self._figures)
        self.connections = Gauge("tslic_connections_active", "Open connections", registry=r)
        self.accepted = Gauge("tslic_connections_accepted", "Connections accepted", registry=r)
        self.errors = Counter("tslic_errors", "Errors sent, by wire code", ["code"], registry=r)

    def bind_counters(self, counters: Counters) -> None:
        self.connections.set_function(lambda: counters.active)
        self.accepted.set_function(lambda: counters.accepted)

    def issued(self, product: CalProduct, kind: LicenseKind) -> None:
        key = (product, kind)  # StrEnums: their values when exposed
        issued = self._figures.issued
        issued[key] = issued.get(key, 0) + 1

    def set_pools(self, pools: dict[CalProduct, int]) -> None:
        self._figures.pools.update(pools)

    def observe(self, message: str, seconds: float) -> None:
        figures = self._figures.latency.get(message)
        if figures is None:
            figures = self._figures.latency[message] = _Latency()
        # Prometheus buckets are "less than or equal": a value on a bound counts in it.
        figures.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        figures.total += seconds

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
