"""The shared clock file: one parser for every command, and freshness across a change.

- `clock_source` precedence (CLOCK-1): --clock-file, --clock, --start-date/--speed, then
  TSLIC_CLOCK_FILE, then TSLIC_CLOCK; a missing or damaged file is refused with its path.
- `FileClock` never goes back (CLOCK-2), keeps the spec it left for `SETTLE` real seconds and
  re-reads the file on demand; a `Server` and an `open_peer` client over real loopback TCP,
  each on its own `FileClock` of one file (polling disabled, so the test decides who has
  seen the change), accept each other across a 121-day jump in either order (CLOCK-3).
- A peer on another clock is refused with both dates and the hint (CLOCK-4).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation, ErrorCode, Message, ServiceError
from tslic.protocol.clock import MS_PER_DAY, ClockSpec, format_date, parse_date
from tslic.protocol.domain import PeerRole
from tslic.protocol.errors import RemoteProtocolError
from tslic.protocol.messages import Welcome
from tslic.protocol.messages.directory import DirAck, DirRegister
from tslic.runtime.args import ClockSource, clock_source
from tslic.runtime.clock import FileClock, WallClock, write_clock_file
from tslic.runtime.peer import open_peer
from tslic.runtime.service import Peer, Server

START = parse_date("2003-05-01")
NO_POLL = 3600.0  # the test, not a poll, decides when each clock sees the file


def ns(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**values)


def write(path: Path, start: int, speed: float = 1.0) -> ClockSpec:
    spec = ClockSpec(start=start, anchor=time.time(), speed=speed)
    write_clock_file(str(path), spec)
    return spec


def test_flags_come_before_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "env-clock"
    write(env_file, START)
    monkeypatch.setenv("TSLIC_CLOCK_FILE", str(env_file))
    monkeypatch.setenv("TSLIC_CLOCK", "real")
    assert clock_source(ns()) == ClockSource(file=str(env_file), origin="TSLIC_CLOCK_FILE")
    assert clock_source(ns(clock_file="f")).origin == "--clock-file"
    assert clock_source(ns(clock="real")).origin == "--clock"
    assert clock_source(ns(start_date="2003-05-01", speed=60.0)).origin == "--start-date"
    monkeypatch.delenv("TSLIC_CLOCK_FILE")
    assert clock_source(ns()) == ClockSource(spec="real", origin="TSLIC_CLOCK")
    monkeypatch.delenv("TSLIC_CLOCK")
    assert clock_source(ns()).origin == "real time"
    clock = clock_source(ns(clock_file=str(env_file))).open()
    assert isinstance(clock, FileClock)
    assert abs(clock.now() - START) < 60_000


def test_a_missing_or_damaged_clock_file_is_refused_with_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("TSLIC_CLOCK_FILE", str(missing))
    with pytest.raises(ServiceError) as info:
        clock_source(ns()).open()
    assert info.value.code is ErrorCode.INVALID_FIELD
    assert str(missing) in info.value.message
    assert "TSLIC_CLOCK_FILE" in info.value.message
    damaged = tmp_path / "damaged"
    damaged.write_text("yesterday\n")
    with pytest.raises(ServiceError) as info:
        clock_source(ns(clock_file=str(damaged))).open()
    assert "START_MS@ANCHORxSPEED" in info.value.message


def test_file_clock_follows_forward_ignores_back_and_remembers_what_it_left(
    tmp_path: Path,
) -> None:
    path = tmp_path / "clock"
    write(path, START)
    clock = FileClock(str(path), poll=NO_POLL)
    assert clock.recent() == ()
    write(path, START + 121 * MS_PER_DAY)
    assert clock.now() - START < MS_PER_DAY  # not polled yet
    assert clock.reread() - START >= 121 * MS_PER_DAY
    (left,) = clock.recent()  # the old spec, still accepted for SETTLE seconds
    assert abs(left - START) < 60_000
    write(path, START)  # backwards: ignored (CLOCK-2)
    assert clock.reread() - START >= 121 * MS_PER_DAY
    path.write_text("half a spe")  # a damaged file: ignored, the clock goes on
    assert clock.reread() - START >= 121 * MS_PER_DAY


@pytest.mark.parametrize("watch", ["none", "running", "stopped before the jump"])
async def test_a_jump_of_the_file_wakes_a_sleeper(tmp_path: Path, watch: str) -> None:
    """A sleeper 30 virtual days away (speed 1) wakes once the file jumps past its instant:
    parked on the change event while a `watch` task polls, napping `poll` seconds without
    one, and back to napping when the watch ends while it sleeps."""
    path = tmp_path / "clock"
    write(path, START)
    clock = FileClock(str(path), poll=0.01)
    target = START + 30 * MS_PER_DAY
    stop = trio.Event()

    async def sleeper() -> None:
        await clock.sleep_until(target)
        stop.set()  # ends the watch, so the nursery can close

    with trio.fail_after(30):  # hang guard: without a wake-up the sleeper sleeps 30 days
        async with trio.open_nursery() as nursery:
            if watch != "none":
                nursery.start_soon(clock.watch, stop)
                await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(sleeper)
            await trio.testing.wait_all_tasks_blocked()
            # Watched, the sleeper waits for a change instead of polling the file itself.
            assert (clock._changed is not None) is (watch != "none")
            if watch == "stopped before the jump":
                stop.set()
                await trio.testing.wait_all_tasks_blocked()
            write(path, START + 31 * MS_PER_DAY)
        # The nursery closed: the sleeper has returned.
        assert clock.now() >= target


class Registrar:
    conversation = Conversation.DIRECTORY

    def __init__(self, clock: FileClock) -> None:
        self.clock = clock

    async def on_hello(self, peer: Peer) -> Welcome:
        return Welcome(role=PeerRole.DIRECTORY, name="DIR", version=0, server_time=self.clock.now())

    async def handle(self, peer: Peer, request: Message) -> Message:
        assert isinstance(request, DirRegister)
        return DirAck(detail=f"registered {request.computer}")


async def converse(address: str, clock: WallClock) -> int:
    """Hello, one request; the server's time from its Welcome."""
    async with open_peer(
        address,
        conversation=Conversation.DIRECTORY,
        key=Ed25519PrivateKey.generate(),
        clock=clock,
        role=PeerRole.TERMINAL_SERVER,
        name="TS1",
        version=2003,
    ) as stream:
        reply = await stream.request(DirRegister(computer="TS1", address="127.0.0.1:1"))
        assert isinstance(reply, DirAck)
        return stream.welcome.server_time


@pytest.mark.parametrize("first", ["client", "server"])
async def test_daemons_of_one_file_accept_each_other_across_a_jump(
    tmp_path: Path, first: str
) -> None:
    path = tmp_path / "clock"
    write(path, START)
    server_clock = FileClock(str(path), poll=NO_POLL)
    client_clock = FileClock(str(path), poll=NO_POLL)
    server = Server(Registrar(server_clock), key=Ed25519PrivateKey.generate(), clock=server_clock)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve)
        assert abs(await converse(address, client_clock) - START) < 60_000
        write(path, START + 121 * MS_PER_DAY)  # tslic clock advance 121d
        # Only one side has seen the change: the other judges the first frame stamped on the
        # new clock (client first), or on the old one (server first).
        (client_clock if first == "client" else server_clock).reread()
        server_time = await converse(address, client_clock)
        assert server_time - START >= (121 * MS_PER_DAY if first == "server" else 0)
        assert server.counters.errors == {}
        server.shutdown()


async def test_a_peer_on_another_clock_is_told_both_dates_and_what_to_pass(
    tmp_path: Path,
) -> None:
    path = tmp_path / "clock"
    write(path, START)
    clock = FileClock(str(path), poll=NO_POLL)
    server = Server(Registrar(clock), key=Ed25519PrivateKey.generate(), clock=clock)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve)
        with pytest.raises(RemoteProtocolError) as info:
            await converse(address, WallClock())  # real time: 2026, not 2003
        server.shutdown()
    # The server refused the Hello (FUTURE_TIMESTAMP), in a frame stamped 2003 that the client
    # in turn finds stale: either way the text says both dates and what to pass.
    assert info.value.code in (ErrorCode.STALE_TIMESTAMP, ErrorCode.FUTURE_TIMESTAMP)
    text = info.value.message
    assert format_date(START)[:10] in text
    assert time.strftime("%Y-%m-%d", time.gmtime()) in text
    assert "--clock-file" in text
    assert "TSLIC_CLOCK_FILE" in text
