"""What the target does of its own accord: as a client of its peers (STATE-4), in the bytes it
writes (ENV-16) and in the clock it follows (CLOCK-1).

Contract:
- STATE-4: the suite's doubles of the target's peers (watch.py) see whether the target, as a
  client, ever sent a request before the last was answered, over the whole run. An agent is
  first made to ask its license server for a new client's license (CONF-LS1 valid, clock moved
  past re-discovery, as cases_agent_lic.py does); a license server has already talked to the
  suite's Clearinghouse while the run prepared it. Without `--manifest` (no doubles) or when
  no request reached a double, the case is `unsupported`.
- ENV-16 (SHOULD): the target's first frames (Welcome and the answer to one request, or an
  agent's greeting and its answer to a NewLicenseRequest) are re-encoded with the shortest
  msgpack encoding and their body fields compared with the order of the message's table; a
  difference fails.
- CLOCK-1: the target's time (its Welcome, or an agent's greeting) is the time of the clock file
  it was started with (`--clock-file`, within a tolerance of a minute of virtual time per
  second of the file's speed); without one the case is `unsupported`; when the file's time is
  within a day of real time the two sources cannot be told apart (`informational`).
"""

from __future__ import annotations

import dataclasses
import time

from tslic.protocol import ServiceError, TslicError
from tslic.protocol.clock import ClockSpec, format_date
from tslic.protocol.codec import pack, unpack_untrusted
from tslic.protocol.messages import REGISTRY

from .cases_agent import exchange
from .cases_agent_env import Unprepared, pair
from .cases_envelope import opening
from .context import Context, _timestamp_of
from .lsclient import move_clock
from .model import ALL_ROLES, Case, Judgement, Role, Verdict, case
from .peers import LsMode
from .wire import Frame

CASES: list[Case] = []
AG, LS = Role.AGENT, Role.LICENSE_SERVER
DAY = 86_400_000
REDISCOVER = 61 * 60_000  # past the agent's 60-minute re-discovery (DISC-10)


# ---- STATE-4 -------------------------------------------------------------------------------


@case(CASES, "STATE-4", "target-never-pipelines", "the suite's doubles of the target's peers "
      "watch every request the target sends them during the run (an agent is made to license "
      "a new client first)", ("no request sent before the previous one was answered",),
      roles=frozenset({AG, LS}))  # fmt: skip
async def never_pipelines(ctx: Context) -> Judgement:
    if ctx.peers is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --manifest from `tslic conformance prepare`"
                         " (the suite plays the target's peers)")  # fmt: skip
    if ctx.role is AG:
        try:
            ls1, ls2 = pair(ctx)
        except Unprepared as why:
            return Judgement(Verdict.UNSUPPORTED, str(why))
        ls1.mode = ls2.mode = LsMode.VALID
        await move_clock(ctx, REDISCOVER)
        ex = await exchange(ctx)
        if ex.client is not None:
            await ex.client.aclose()
        ctx.transcript.event(f"the new client got {ex.names()}")
    watch = ctx.peers.watch
    seen = sum(watch.frames.values())
    if watch.pipelined:
        return Judgement(Verdict.FAIL, "; ".join(watch.pipelined[:3]))
    if not seen:
        return Judgement(Verdict.UNSUPPORTED, "no request of the target reached the suite's "
                         "doubles")  # fmt: skip
    where = ", ".join(f"{name} {n}" for name, n in sorted(watch.frames.items()))
    return Judgement(Verdict.PASS, f"{seen} frames from the target ({where}), each sent after "
                     "the answer to the one before")  # fmt: skip


# ---- ENV-16 --------------------------------------------------------------------------------


def encoding_problems(frame: Frame) -> list[str]:
    """How the frame's bytes differ from the shortest encoding in table order."""
    try:
        outer = unpack_untrusted(frame.raw)
        header = unpack_untrusted(outer[1])
    except (TslicError, IndexError, TypeError) as exc:
        return [f"undecodable: {exc}"]
    problems = []
    if pack(outer) != frame.raw:
        problems.append("the envelope is not in its shortest encoding")
    if pack(header) != outer[1]:
        problems.append("the inner header or body is not in its shortest encoding")
    cls = REGISTRY.get(header[1])
    body = header[6]
    if cls is not None and dataclasses.is_dataclass(cls) and isinstance(body, dict):
        order = [f.name for f in dataclasses.fields(cls)]
        keys = [k for k in body if k in order]
        if keys != sorted(keys, key=order.index):
            problems.append(f"{cls.__name__} fields in the order {keys}, not the table's")
    return problems


async def _two_frames(ctx: Context) -> list[Frame]:
    client = await ctx.open_raw()
    crafter = ctx.crafter()
    frames = []
    if ctx.role is AG:
        if ctx.greeting is not None:
            frames.append(ctx.greeting)
        await client.send(crafter.message(opening(ctx)), "NewLicenseRequest")
    else:
        welcome = await ctx.handshake(client, crafter)
        if welcome is None:
            return frames
        frames.append(welcome)
        await client.send(crafter.message(ctx.simple_request()), "request")
    reply = await client.read_frame(ctx.timeout)
    if reply is not None:
        frames.append(reply)
    return frames


@case(CASES, "ENV-16", "target-encoding", "the target's first two frames, re-encoded with the "
      "shortest msgpack encoding, body fields in the order of their table",
      ("byte-identical",))  # fmt: skip
async def target_encoding(ctx: Context) -> Judgement:
    frames = await _two_frames(ctx)
    if not frames:
        return Judgement(Verdict.FAIL, "the target sent no frame")
    problems = [f"{f.label()}: {p}" for f in frames for p in encoding_problems(f)]
    if problems:
        return Judgement(Verdict.FAIL, "; ".join(problems))
    return Judgement(Verdict.PASS, f"{', '.join(f.label() for f in frames)}: shortest "
                     "encoding, fields in table order")  # fmt: skip


# ---- CLOCK-1 -------------------------------------------------------------------------------


def _spec(ctx: Context) -> ClockSpec | None:
    path = ctx.config.clock_file
    try:
        return ClockSpec.from_arg(path.read_text(encoding="utf-8").strip()) if path else None
    except (OSError, ServiceError):
        return None


@case(CASES, "CLOCK-1", "follows-the-clock-file", "the target's time in its first frame (a "
      "Welcome's server_time, or an agent's greeting) compared with the clock file it was "
      "started with (--clock-file)", ("the clock file's time",), roles=ALL_ROLES)  # fmt: skip
async def follows_clock_file(ctx: Context) -> Judgement:
    spec = _spec(ctx)
    if spec is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --clock-file: the file the target was "
                         "started with (docs/CONFORMANCE.md)")  # fmt: skip
    client = await ctx.open_raw()
    frame: Frame | None
    if ctx.role is AG:
        frame = ctx.greeting
    else:
        frame = await ctx.handshake(client, ctx.crafter())
    stamp = _target_time(frame)
    expected = spec.at(time.time())
    if stamp is None:
        return Judgement(Verdict.FAIL, f"no time in {frame.label() if frame else 'nothing'}")
    tolerance = int(60_000 * max(1.0, spec.speed))
    shown = f"target {format_date(stamp)}, clock file {format_date(expected)}"
    if abs(stamp - expected) > tolerance:
        return Judgement(Verdict.FAIL, f"{shown}: the target does not follow its clock file")
    if abs(expected - int(time.time() * 1000)) < DAY:
        return Judgement(Verdict.INFORMATIONAL, f"{shown}, but the file's time is within a day "
                         "of real time: the sources cannot be told apart")  # fmt: skip
    return Judgement(Verdict.PASS, shown)


def _target_time(frame: Frame | None) -> int | None:
    if frame is not None and frame.name == "Welcome" and frame.body is not None:
        value: object = frame.body.get("server_time")
        if isinstance(value, int):
            return value
    return _timestamp_of(frame)
