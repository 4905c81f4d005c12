"""The freshness window and the replay memory over time (docs/PROTOCOL.md §3.6, §9: ENV-12,
LIMIT-6), for request/response targets started with a clock file the suite moves.

Contract: LIMIT-6 runs first: right after the clock moves, a daemon of a shared clock file
also accepts timestamps of the spec it left for a few seconds (CLOCK-3), which would blur the
window. ENV-12 has a Hello welcomed, moves the target's clock forward half a window and
replays the Hello byte for byte on a new connection: the target must still remember the nonce
(REPLAYED_MESSAGE). LIMIT-6 reads the speed `s` of the target's clock file and checks the
window is 300 000 × max(1, s) ms: a Hello stamped 0.8 window in the past is welcomed, one
stamped 1.2 window in the past is refused STALE_TIMESTAMP. Without `--clock-file` (or the
manifest's), `unsupported`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from tslic.protocol import ErrorCode, TslicError
from tslic.protocol.clock import ClockSpec
from tslic.protocol.codec import to_wire

from .cases_envelope import opening
from .context import Context
from .lsclient import move_clock
from .model import REQUEST_REPLY_ROLES, Case, Judgement, Verdict, case
from .wire import Frame

CASES: list[Case] = []
E = ErrorCode
WINDOW_MS = 300_000  # §3.6 at speed 1


def _speed(ctx: Context) -> float | None:
    path = ctx.config.clock_file
    if path is None:
        return None
    speed = 1.0
    with contextlib.suppress(OSError, TslicError, ValueError):
        speed = ClockSpec.from_arg(path.read_text(encoding="utf-8").strip()).speed
    return speed


Accepted = Callable[[Frame | None], bool]
"""Whether the target accepted the opening message (a Welcome; for an agent, any answer)."""


def welcomed(frame: Frame | None) -> bool:
    return frame is not None and frame.name == "Welcome"


async def judge_window(ctx: Context, what: str, accepted: Accepted, verb: str) -> Judgement:
    """LIMIT-6 for any target: its opening message `what` stamped 0.8 window in the past is
    accepted (`verb` says how), one stamped 1.2 window in the past is refused STALE_TIMESTAMP."""
    speed = _speed(ctx)
    if speed is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --clock-file (the clock's speed)")
    window = int(WINDOW_MS * max(1.0, speed))
    for share, expect_accepted in ((0.8, True), (1.2, False)):
        crafter = ctx.crafter()
        msg = opening(ctx)
        inner = crafter.inner(int(msg.TYPE), to_wire(msg),
                              timestamp=max(0, ctx.now() - int(window * share)))  # fmt: skip
        client = await ctx.open_raw()
        await client.send(crafter.frame(crafter.envelope(inner)), f"{what} {share} window old")
        if expect_accepted:
            reply = await client.read_frame(ctx.timeout)
            if not accepted(reply):
                return Judgement(Verdict.FAIL, f"a {what} {share} window ({window} ms) old was "
                                 f"refused: {reply.label() if reply else 'no reply'}")  # fmt: skip
            await client.aclose()
            continue
        judged = ctx.reject(await client.observe(ctx.timeout), {E.STALE_TIMESTAMP})
        if judged.verdict.failing:
            judged.actual = f"a {what} 1.2 window ({window} ms) old: {judged.actual}"
            return judged
    return Judgement(Verdict.PASS, f"window {window} ms (speed {speed}): 0.8 window {verb}, "
                     "1.2 window refused")  # fmt: skip


async def judge_replay(ctx: Context, what: str, accepted: Accepted, verb: str) -> Judgement:
    """ENV-12 for any target: its opening message `what` is accepted, the suite moves the
    target's clock forward half a window and replays it on a new connection: REPLAYED_MESSAGE."""
    speed = _speed(ctx)
    if speed is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --clock-file (the suite moves the clock)")
    frame = ctx.crafter().message(opening(ctx))
    first = await ctx.open_raw()
    await first.send(frame, "original")
    reply = await first.read_frame(ctx.timeout)
    if not accepted(reply):
        return Judgement(Verdict.FAIL, f"the original {what} was not {verb}: "
                         + (reply.label() if reply else "no reply"))  # fmt: skip
    await first.aclose()
    await move_clock(ctx, int(WINDOW_MS * max(1.0, speed)) // 2)
    second = await ctx.open_raw()
    await second.send(frame, "replay")
    return ctx.reject(await second.observe(ctx.timeout), {E.REPLAYED_MESSAGE})


@case(CASES, "LIMIT-6", "window-follows-speed", "two Hellos stamped 0.8 and 1.2 freshness "
      "windows in the past, the window being 300 s × max(1, speed of the target's clock file)",
      ("the first welcomed, the second Error STALE_TIMESTAMP (1009)",),
      roles=REQUEST_REPLY_ROLES)  # fmt: skip
async def window_speed(ctx: Context) -> Judgement:
    return await judge_window(ctx, "Hello", welcomed, "welcomed")


@case(CASES, "ENV-12", "replay-after-half-a-window", "a Hello is welcomed; the suite moves the "
      "target's clock forward half a freshness window and replays it byte for byte on a new "
      "connection", ("Error REPLAYED_MESSAGE (1008): the nonce is remembered while its "
      "timestamp is inside the window",), roles=REQUEST_REPLY_ROLES, negative=True)  # fmt: skip
async def replay_later(ctx: Context) -> Judgement:
    return await judge_replay(ctx, "Hello", welcomed, "welcomed")
