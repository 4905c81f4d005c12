"""What one generator says about itself at the end, and its self-check.

Contract: `WorkerSummary` travels from a worker process to the coordinator as a JSON-able
dict (`to_wire`). `self_check` marks the run *inconclusive* (never the target's fault) when
the generator's dispatch lateness p99 exceeds `--max-lag`, or when its CPU time reached
`--cpu-limit` of the wall time: it was saturated, so the latencies are partly its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from .config import LoadConfig
from .report_types import WorkerJson


@dataclass(slots=True)
class WorkerSummary:
    """What a generator says about itself at the end."""

    worker: int
    agents: int
    connected: int  # at the start of the schedule; at the end, the most at once
    connect_errors: Counter[int] = field(default_factory=Counter)
    cpu_share: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the load phase (for the cost per request)
    cpu_system_seconds: float = 0.0  # of which in the kernel (socket calls)
    dispatch_p99_ms: float = 0.0
    inconclusive: list[str] = field(default_factory=list)

    def to_wire(self) -> WorkerJson:
        return {
            "worker": self.worker,
            "agents": self.agents,
            "connected": self.connected,
            "connect_errors": {str(k): v for k, v in sorted(self.connect_errors.items())},
            "cpu_share": round(self.cpu_share, 4),
            "cpu_seconds": round(self.cpu_seconds, 4),
            "cpu_system_seconds": round(self.cpu_system_seconds, 4),
            "dispatch_p99_ms": round(self.dispatch_p99_ms, 3),
            "inconclusive": list(self.inconclusive),
        }


def self_check(summary: WorkerSummary, dispatch: HdrHistogram, config: LoadConfig) -> None:
    """Fill `dispatch_p99_ms` and the reasons (if any) the run cannot blame the target."""
    count = dispatch.get_total_count()
    p99 = dispatch.get_value_at_percentile(99.0) / 1e6 if count else 0.0
    summary.dispatch_p99_ms = p99 * 1000
    if p99 > config.max_lag:
        summary.inconclusive.append(
            f"worker {summary.worker} fell behind its schedule: dispatch lateness p99 "
            f"{p99 * 1000:.1f} ms > --max-lag {config.max_lag * 1000:.0f} ms"
        )
    limit = config.cpu_limit
    if limit is not None and summary.cpu_share >= limit:
        summary.inconclusive.append(
            f"worker {summary.worker} was CPU-saturated ({summary.cpu_share:.0%} of a core "
            f">= {limit:.0%}); add --workers or lower the rate"
        )
