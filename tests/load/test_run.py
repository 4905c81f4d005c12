"""Whole runs in one process against the fake license server, in virtual time.

The autojump clock makes every run deterministic and instant: service time is the
server's stall and nothing else, so the relations below are exact, not timing luck.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import TypedDict, Unpack

import pytest
import trio
from tslic.client.load.config import LoadConfig, parse_mix
from tslic.client.load.coordinator import RunResult, Snapshot, merge_results, run_in_process
from tslic.client.load.errors import UsageError
from tslic.client.load.link import ReadySet
from tslic.client.load.report import (
    REPORT_SCHEMA_ID,
    TIMELINE_COLUMNS,
    build_report,
    check_schema,
    write_reports,
)
from tslic.client.load.schedule import OpenSchedule, Share, Stage
from tslic.client.load.thresholds import parse_threshold
from tslic.protocol.errors import ErrorCode
from tslic.runtime.clock import TrioClock
from tslic.runtime.service import Limits, Server

from tests.load.fakes import FakeLicenseService, FakeRdpAgent, serve_fake

START_MS = 1_700_000_000_000


@pytest.fixture(params=["ready-set", "per-socket"])
def reading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a worker reads its agents' replies: one epoll set for all of them (Linux),
    and the fallback that waits on each socket (where there is no epoll, both are that)."""
    if request.param == "per-socket":
        monkeypatch.setattr(ReadySet, "available", staticmethod(lambda: False))
    return str(request.param)


class Changes(TypedDict, total=False):
    """The `LoadConfig` fields a test sets; the others keep `_config`'s values."""

    duration: float
    timeout: float
    agents: int
    rdp_agents: tuple[str, ...]
    ts2000: float
    mix: dict[str, float]
    max_lag: float
    stages: tuple[Stage, ...]
    start_rate: float


def _config(address: str, **changes: Unpack[Changes]) -> LoadConfig:
    schedule = OpenSchedule.constant(100, 2.0)
    config = LoadConfig(
        target=address,
        duration=2.0,
        model="open",
        stages=schedule.stages,
        start_rate=schedule.start_rate,
        agents=4,
        seed=11,
        cpu_limit=None,  # virtual time: the CPU check compares real CPU with real wall time
    )
    return replace(config, **changes)


async def test_a_stall_shows_in_response_time_not_in_service_time(autojump_clock: object) -> None:
    clock = TrioClock(START_MS)
    async with trio.open_nursery() as nursery:
        service, server, address = await serve_fake(nursery, clock)
        stall = 1.0
        # the server stops answering for 1 s in the middle of a 4 s run at 100/s
        service.stall(trio.current_time() + 2.0, stall)
        config = _config(
            address, duration=4.0, agents=2, stages=OpenSchedule.constant(100, 4).stages
        )
        result = await run_in_process(config, Share(), clock)
        server.shutdown()
    report = build_report(result)
    latency = report["latency_ms"]
    assert report["requests"]["completed"] == 400
    assert report["requests"]["failed"] == 0
    # Only the 2 requests in flight when the stall began waited in the server (0.5 %): service
    # time p99 does not see the stall. Every request *intended* during the stall waited for
    # an agent, and that is schedule lag, so response time p99 does.
    assert latency["service"]["p99"] < 0.1 * stall * 1000
    assert latency["service"]["max"] >= 0.9 * stall * 1000
    assert latency["response"]["p99"] >= 0.9 * stall * 1000
    assert latency["lag"]["p99"] >= 0.8 * stall * 1000
    # The generator itself kept to its schedule: the run is valid.
    assert latency["dispatch"]["p99"] < 1.0
    assert report["verdict"]["status"] == "pass"
    # the stall is visible per second too
    worst = max(report["timeline"], key=lambda row: row["response_max_ms"])
    assert worst["response_max_ms"] >= 0.9 * stall * 1000


async def test_a_full_run_exercises_every_operation(autojump_clock: object, reading: str) -> None:
    clock = TrioClock(START_MS)
    async with trio.open_nursery() as nursery:
        service, server, address = await serve_fake(nursery, clock)
        snapshots: list[Snapshot] = []
        result = await run_in_process(_config(address), Share(), clock, progress=snapshots.append)
        server.shutdown()
    total = result.timeline.total
    assert total.scheduled == total.completed == total.ok == 200
    # the live display hears about every second, with the connected agents
    assert [s.second for s in snapshots] == [0, 1]
    assert [s.interval.completed for s in snapshots] == [100, 100]
    assert all(s.connected == 4 for s in snapshots)
    assert set(total.ops) == {"new", "upgrade", "mark", "return"}
    # what the generator counted is what the server saw
    assert service.requests["RequestTermServCert"] == 4
    assert service.requests["IssueLicense"] == total.ops["new"]
    assert service.requests["MarkLicense"] == total.ops["mark"]
    assert service.requests["ReturnLicense"] == total.ops["return"]
    assert service.requests["UpgradeLicenseRequest"] == total.ops["upgrade"]
    assert result.connected == 4


async def test_errors_are_counted_by_wire_code(autojump_clock: object) -> None:
    clock = TrioClock(START_MS)
    async with trio.open_nursery() as nursery:
        service, server, address = await serve_fake(nursery, clock, version=2000)
        service.refuse["MarkLicense"] = ErrorCode.LICENSE_NOT_FOUND
        config = _config(address, agents=8, ts2000=0.5, mix=parse_mix("new=50,mark=50"))
        result = await run_in_process(config, Share(), clock)
        server.shutdown()
    # A 2000 license server refuses 2003 terminal servers at Hello: LOWER_VERSION.
    refused = result.connect_errors[int(ErrorCode.LOWER_VERSION)]
    assert refused > 0
    assert result.connected == 8 - refused
    report = build_report(result, [parse_threshold("errors<1%")])
    by_code = {e["name"]: e["count"] for e in report["errors"]["by_code"]}
    assert by_code == {"LICENSE_NOT_FOUND": service.requests["MarkLicense"]}
    assert report["errors"]["count"] > 0
    assert report["agents"]["connect_errors"] == {"LOWER_VERSION": refused}
    assert report["verdict"]["exit_code"] == 1


async def test_no_agent_connecting_is_a_setup_error(autojump_clock: object) -> None:
    clock = TrioClock(START_MS)
    async with trio.open_nursery() as nursery:
        _, server, address = await serve_fake(nursery, clock, version=2000)
        with pytest.raises(UsageError, match="LOWER_VERSION"):
            await run_in_process(_config(address, ts2000=0.0, agents=2), Share(), clock)
        server.shutdown()


async def test_report_schema_and_files(autojump_clock: object, tmp_path: Path) -> None:
    clock = TrioClock(START_MS)
    async with trio.open_nursery() as nursery:
        _, server, address = await serve_fake(nursery, clock)
        result = await run_in_process(_config(address), Share(), clock)
        server.shutdown()
    thresholds = [parse_threshold(t) for t in ("p99<20ms", "errors<0.1%", "rate>90")]
    report = build_report(result, thresholds)
    assert check_schema(report) == []
    assert report["schema"] == REPORT_SCHEMA_ID
    assert report["rate"] == {"target": 100.0, "achieved": 100.0}
    assert report["verdict"] == {
        "status": "pass",
        "exit_code": 0,
        "inconclusive": [],
        "thresholds": report["verdict"]["thresholds"],
    }
    assert all(t["passed"] for t in report["verdict"]["thresholds"])
    # a report that lost a key or changed a type no longer conforms
    broken = json.loads(json.dumps(report))
    del broken["rate"]["achieved"]
    broken["workers"] = "one"
    assert sorted(check_schema(broken)) == ["'workers' has type str", "rate.missing key 'achieved'"]

    paths = write_reports(report, tmp_path / "out")
    assert json.loads(paths[0].read_text()) == report
    with paths[1].open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == TIMELINE_COLUMNS
    assert sum(int(r["completed"]) for r in rows) == 200
    assert [int(r["second"]) for r in rows] == [row["second"] for row in report["timeline"]]
    page = paths[2].read_text()
    assert page.count("<svg") == 2
    assert "Latency over time" in page
    assert "Percentile distribution" in page
    assert "<polyline" in page
    assert "<script" not in page
    assert 'href="http' not in page
    assert 'src="' not in page


async def test_inconclusive_when_the_generator_is_late(autojump_clock: object) -> None:
    clock = TrioClock(START_MS)
    async with trio.open_nursery() as nursery:
        _, server, address = await serve_fake(nursery, clock)
        # A bound of zero: any lateness at all (the clamp records 1 µs) counts as falling behind.
        result = await run_in_process(_config(address, max_lag=0.0), Share(), clock)
        server.shutdown()
    report = build_report(result, [parse_threshold("p99<1s")])
    assert report["verdict"]["status"] == "inconclusive"
    assert report["verdict"]["exit_code"] == 3
    assert "fell behind its schedule" in report["verdict"]["inconclusive"][0]


async def test_shards_merged_equal_a_single_run(autojump_clock: object) -> None:
    clock = TrioClock(START_MS)
    async with trio.open_nursery() as nursery:
        _, server, address = await serve_fake(nursery, clock)
        config = _config(address, stages=OpenSchedule.constant(60, 2).stages, start_rate=60)
        single = await run_in_process(config, Share(), clock)
        shards = []
        for shard in Share().split(3):
            result = await run_in_process(config, shard, clock)
            # through the results file, as between machines
            shards.append(RunResult.from_results(json.loads(json.dumps(result.to_results()))))
        server.shutdown()
    merged = merge_results(shards)
    assert merged.shards == ["0/3", "1/3", "2/3"]
    a, b = single.timeline.total, merged.timeline.total
    assert (b.scheduled, b.completed, b.ok) == (a.scheduled, a.completed, a.ok) == (120, 120, 120)
    assert sum(b.ops.values()) == sum(a.ops.values())
    assert merged.connected == single.connected == 4
    assert b.hists["response"].get_total_count() == 120
    with pytest.raises(UsageError, match="twice"):
        merge_results([shards[0], shards[0]])
    with pytest.raises(UsageError, match="results file"):
        RunResult.from_results({"schema": "something else"})


async def test_full_stack_rdp_logons_through_agents(autojump_clock: object) -> None:
    clock = TrioClock(START_MS)
    async with trio.open_nursery() as nursery:
        ls, server, _ = await serve_fake(nursery, clock)
        agents = [FakeRdpAgent(ls, clock) for _ in range(2)]
        addresses = tuple([await nursery.start(agent.serve) for agent in agents])
        config = _config(
            addresses[0],
            agents=0,
            rdp_agents=addresses,
            mix=parse_mix("new=50,upgrade=50"),
            stages=OpenSchedule.constant(20, 2).stages,
            start_rate=20,
        )
        result = await run_in_process(config, Share(), clock)
        server.shutdown()
        nursery.cancel_scope.cancel()
    total = result.timeline.total
    assert total.completed == total.ok == 40
    # requests alternate between the two agents
    assert [a.logons for a in agents] == [20, 20]
    # returning devices presented their license and were upgraded
    assert sum(a.upgrades for a in agents) == total.ops["upgrade"] > 0
    report = build_report(result)
    assert report["latency_ms"]["response"]["count"] == 40


async def test_a_request_over_the_timeout_counts_and_the_agent_reconnects(
    autojump_clock: object, reading: str
) -> None:
    """A server that stalls longer than --timeout: the requests in the server then are
    counted under the timeout's wire code (not dropped), their agents reconnect, and the
    rest of the run is answered."""
    clock = TrioClock(START_MS)
    async with trio.open_nursery() as nursery:
        service, server, address = await serve_fake(nursery, clock)
        service.stall(trio.current_time() + 1.5, 10.0)  # far longer than the 1 s timeout
        config = _config(
            address,
            duration=4.0,
            agents=2,
            timeout=1.0,
            stages=OpenSchedule.constant(20, 4).stages,
            start_rate=20,
            mix=parse_mix("new=100"),
        )
        result = await run_in_process(config, Share(), clock)
        server.shutdown()
    total = result.timeline.total
    report = build_report(result)
    timed_out = total.errors[int(ErrorCode.IDLE_TIMEOUT)]
    assert timed_out >= 2  # at least the two held in the stalled server
    assert total.scheduled == total.completed == 80  # nothing silently dropped
    assert total.ok + total.error_count == total.completed
    # a timed-out request ended between 1.0 and 1.1 timeouts after it was sent
    assert report["latency_ms"]["service"]["max"] <= 1.1 * 1000 + 5
    # the agents came back: requests sent after the reconnection succeeded
    assert total.ok > 0
    assert result.connected == 2


async def test_agents_closed_while_idle_reconnect_without_failing_requests(
    autojump_clock: object, reading: str
) -> None:
    """A server that closes idle connections (its idle timeout) ends agents waiting in the
    pool: they reconnect, and the schedule only ever sends on a live connection."""
    clock = TrioClock(START_MS)
    async with trio.open_nursery() as nursery:
        service = FakeLicenseService(clock)
        limits = Limits(rate_per_second=1e9, rate_burst=1e9, idle_timeout=1.3)
        server = Server(service, key=service.key, clock=clock, limits=limits)
        address = await nursery.start(server.serve)
        config = _config(
            address,
            duration=6.0,
            agents=4,
            stages=OpenSchedule.constant(2, 6).stages,
            start_rate=2,
            mix=parse_mix("new=100"),
        )
        result = await run_in_process(config, Share(), clock)
        server.shutdown()
    total = result.timeline.total
    assert total.scheduled == total.completed == total.ok == 12
    # agents sat idle past the server's idle timeout (1.3 s; requests every 0.5 s take
    # the four agents in turn, so each is idle 2 s) and were told so
    assert server.counters.errors.get(int(ErrorCode.IDLE_TIMEOUT), 0) >= 4
    assert service.requests["IssueLicense"] == 12
