"""Cases for the clock rules (CLOCK-2..4, docs/PROTOCOL.md §7.19).

Contract: each case probes one clock sentence with a raw Hello (the helpers of cases_spec16,
after which this module runs). Cases that move the target's clock need `--clock-file` and are
`unsupported` without it; they only move it forward, as every clock case does, and put it back
when they tried to move it back.
"""

from __future__ import annotations

import time

import trio
from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.clock import MS_PER_DAY, ClockSpec, format_date
from tslic.runtime.clock import write_clock_file

from .cases_spec16 import hello_body, send_hello
from .model import REQUEST_REPLY_ROLES, Case, Judgement, Verdict, case
from .runner import Context

CASES: list[Case] = []
E = ErrorCode
DAY = MS_PER_DAY


# ---- CLOCK-2..4 ----------------------------------------------------------------------------


@case(CASES, "CLOCK-4", "wrong-clock-says-both-dates", "a Hello stamped 2 days behind the "
      "target's clock", ("Error STALE_TIMESTAMP (1009) whose text gives both dates and "
      "--clock-file / TSLIC_CLOCK_FILE",), roles=REQUEST_REPLY_ROLES,
      negative=True)  # fmt: skip
async def wrong_clock(ctx: Context) -> Judgement:
    stamp = ctx.now() - 2 * DAY
    frame = await send_hello(ctx, hello_body(ctx), timestamp=stamp)
    if frame is None or frame.error_code != int(E.STALE_TIMESTAMP) or frame.body is None:
        return Judgement(Verdict.WRONG_CODE, frame.label() if frame else "no answer")
    text = str(frame.body.get("message", ""))
    missing = [w for w in (format_date(stamp)[:10], format_date(ctx.now())[:10],
                           "--clock-file", "TSLIC_CLOCK_FILE") if w not in text]  # fmt: skip
    if missing:
        return Judgement(Verdict.FAIL, f"the text lacks {missing}: {text!r}")
    return Judgement(Verdict.PASS, f"STALE_TIMESTAMP: {text!r}")


def _file_spec(ctx: Context) -> ClockSpec | None:
    path = ctx.config.clock_file
    try:
        return ClockSpec.from_arg(path.read_text(encoding="utf-8").strip()) if path else None
    except (OSError, ServiceError):
        return None


@case(CASES, "CLOCK-3", "jump-accepted-both-ways", "the target's clock file moved a day "
      "forward; at once a Hello stamped on the new clock, then one stamped on the old",
      ("Welcome, then Welcome",), roles=REQUEST_REPLY_ROLES)  # fmt: skip
async def jump_both_ways(ctx: Context) -> Judgement:
    old = _file_spec(ctx)
    if old is None or ctx.config.clock_file is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --clock-file (docs/CONFORMANCE.md)")
    real = time.time()
    new = ClockSpec(start=old.at(real) + DAY, anchor=real, speed=old.speed)
    write_clock_file(str(ctx.config.clock_file), new)
    ctx.transcript.event("moved the target's clock file a day forward")
    seen = []
    for label, spec in (("new", new), ("old", old)):
        frame = await send_hello(ctx, hello_body(ctx), timestamp=spec.at(time.time()))
        seen.append(f"{label} clock: {frame.label() if frame else 'nothing'}")
        if frame is None or frame.name != "Welcome":
            await ctx.sync_clock()
            return Judgement(Verdict.FAIL, "; ".join(seen))
    await ctx.sync_clock()
    return Judgement(Verdict.PASS, "; ".join(seen))


@case(CASES, "CLOCK-2", "never-backwards", "the target's clock file rewritten a day back",
      ("the target's time does not go back",), roles=REQUEST_REPLY_ROLES)  # fmt: skip
async def never_backwards(ctx: Context) -> Judgement:
    old = _file_spec(ctx)
    path = ctx.config.clock_file
    if old is None or path is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --clock-file (docs/CONFORMANCE.md)")
    before = ctx.now()
    real = time.time()
    write_clock_file(str(path), ClockSpec(start=old.at(real) - DAY, anchor=real, speed=old.speed))
    try:
        await trio.sleep(0.3)  # several polls of the target
        frame = await send_hello(ctx, hello_body(ctx))
    finally:
        write_clock_file(str(path), old)  # the spec it follows, unchanged
    welcome = frame.body if frame is not None and frame.name == "Welcome" else None
    if welcome is None:
        return Judgement(Verdict.FAIL, frame.label() if frame else "no answer")
    server_time = int(welcome.get("server_time", 0))
    verdict = Verdict.PASS if server_time >= before - 60_000 else Verdict.FAIL
    return Judgement(verdict, f"target time {format_date(server_time)} (was {format_date(before)})")
