"""`tslic load` end to end: options, exit codes, files, worker processes, merge.

These run in real time against the fake license server (the CLI owns its Trio loop, so it
runs in a thread while the fake serves in the test's loop). Runs are tiny (at most 1 s) and the
assertions are about relations and counts, never about speed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest
import trio
from tslic.client.load.cli import add_arguments, config_from_args, main
from tslic.runtime.clock import WallClock

from tests.load.fakes import serve_fake

# These runs use the wall clock on a machine that may be busy: the generator's own lateness
# (its self-check, exit 3) is not what they test, so they allow plenty; the check itself is
# tested with --max-lag 0ms below and in test_run.py.
PATIENT = ["--max-lag", "10s"]


async def _cli(*argv: str) -> int:
    code: int = await trio.to_thread.run_sync(main, list(argv))
    return code


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--rate", "10"], "--target"),
        (["--target", "127.0.0.1:1"], "choose one workload model"),
        (["--target", "127.0.0.1:1", "--rate", "5", "--stages", "1s:5"], "choose one"),
        (["--target", "nowhere", "--rate", "5"], "HOST:PORT"),
        (["--target", "127.0.0.1:1", "--rate", "5", "--duration", "soon"], "duration"),
        (["--target", "127.0.0.1:1", "--rate", "5", "--mix", "new=1,steal=2"], "unknown 'steal'"),
        (["--target", "127.0.0.1:1", "--rate", "5", "--ts2000", "2"], "between 0 and 1"),
        (["--target", "127.0.0.1:1", "--rate", "5", "--threshold", "p99"], "METRIC OP VALUE"),
        (["--target", "127.0.0.1:1", "--rate", "5", "--shard", "2/2"], "--shard"),
        (["merge"], "merge FILE"),
        (["--target", "127.0.0.1:1", "--rate", "5", "--agents", "many"], "--agents 'many'"),
        (["--agents", "127.0.0.1:1", "--agents-rdp", "127.0.0.1:2", "--rate", "5"], "once"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tslic: error:")
    assert needle in err
    assert "Traceback" not in err


def test_agents_takes_a_count_or_the_addresses_of_real_agents() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    fleet, _ = config_from_args(
        parser.parse_args(["--target", "127.0.0.1:1", "--rate", "5", "--agents", "250"])
    )
    assert (fleet.agents, fleet.rdp_agents) == (250, ())
    stack, _ = config_from_args(
        parser.parse_args(["--agents", "127.0.0.1:3389, 127.0.0.1:3390", "--rate", "5"])
    )
    assert (stack.agents, stack.rdp_agents) == (0, ("127.0.0.1:3389", "127.0.0.1:3390"))


@pytest.mark.parametrize("workers", [1, 2])
def test_an_unreachable_target_is_a_setup_error(
    workers: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--target", "127.0.0.1:9", "--rate", "5", "--duration", "1s", "--agents", "4"]
    assert main([*argv, "--workers", str(workers), "--timeout", "1s"]) == 2
    err = capsys.readouterr().err
    assert "no emulated terminal server could connect to 127.0.0.1:9" in err
    assert "CONNECTION_LOST ×4" in err  # every agent's failure, from every worker


async def test_run_thresholds_reports_and_exit_codes(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        _, server, address = await serve_fake(nursery, WallClock())
        common = ["--target", address, "--rate", "40", "--duration", "0.5s", "--agents", "4"]
        common += ["--workers", "1", "--seed", "5", "--no-cpu-check", "--json", *PATIENT]
        passing = ["--threshold", "errors<0.1%", "--threshold", "rate>0"]
        assert await _cli(*common, *passing, "--report", str(tmp_path / "a")) == 0
        report = json.loads((tmp_path / "a" / "report.json").read_text())
        assert report["requests"]["completed"] == 20
        assert (tmp_path / "a" / "timeline.csv").read_text().count("\n") >= 2
        assert "<svg" in (tmp_path / "a" / "report.html").read_text()
        # an impossible SLO fails the thresholds: exit 1
        assert await _cli(*common, "--threshold", "rate>1000000") == 1
        # a generator that cannot be on time is inconclusive, not the target's fault: exit 3
        assert await _cli(*common, "--threshold", "rate>1000000", "--max-lag", "0ms") == 3
        server.shutdown()


async def test_worker_processes_and_shard_merge(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        _, server, address = await serve_fake(nursery, WallClock())
        common = ["--target", address, "--rate", "30", "--duration", "1s", "--agents", "4"]
        common += ["--seed", "9", "--no-cpu-check", "--json", *PATIENT]
        assert await _cli(*common, "--workers", "2", "--report", str(tmp_path / "two")) == 0
        two = json.loads((tmp_path / "two" / "report.json").read_text())
        assert two["workers"] == 2
        assert two["requests"]["scheduled"] == two["requests"]["completed"] == 30
        # two "machines" started together with --start-at
        files = [str(tmp_path / f"shard{i}.json") for i in range(2)]
        start = f"{time.time() + 3.0:.3f}"  # both shards connected by then, even when loaded
        codes: list[int] = []

        async def shard(i: int) -> None:
            argv = [*common, "--workers", "1", "--shard", f"{i}/2", "--results", files[i]]
            codes.append(await _cli(*argv, "--start-at", start))

        async with trio.open_nursery() as machines:
            for i in range(2):
                machines.start_soon(shard, i)
        assert codes == [0, 0]
        server.shutdown()
    assert await _cli("merge", *files, "--json", "--report", str(tmp_path / "merged")) == 0
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())
    assert merged["shards"] == ["0/2", "1/2"]
    assert merged["requests"]["scheduled"] == merged["requests"]["completed"] == 30
    assert merged["agents"]["connected"] == 4


async def test_closed_model_and_ramp_stages(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        _, server, address = await serve_fake(nursery, WallClock())
        base = ["--target", address, "--agents", "3", "--workers", "1", "--no-cpu-check", *PATIENT]
        closed = [*base, "--concurrency", "2", "--duration", "0.5s", "--json"]
        assert await _cli(*closed, "--report", str(tmp_path / "c")) == 0
        report = json.loads((tmp_path / "c" / "report.json").read_text())
        assert report["model"] == "closed"
        assert "coordinated omission" in report["model_description"]
        assert report["rate"]["target"] is None
        assert report["requests"]["completed"] > 0
        assert report["requests"]["failed"] == 0
        # a ramp 0 -> 40/s over 1 s plans exactly 20 requests
        ramp = [*base, "--stages", "1s:40", "--json", "--report", str(tmp_path / "r")]
        assert await _cli(*ramp) == 0
        report = json.loads((tmp_path / "r" / "report.json").read_text())
        assert report["requests"]["scheduled"] == report["requests"]["completed"] == 20
        assert report["rate"]["target"] == 20.0
        server.shutdown()
