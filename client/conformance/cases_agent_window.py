"""The freshness window and the replay memory of an agent (docs/PROTOCOL.md §3.6, §9: LIMIT-6,
ENV-12), as cases_window.py checks them for request/response targets.

Contract: the probe is the client's first message after the agent's LicenseRequest greeting,
a NewLicenseRequest. LIMIT-6 reads the speed `s` of the agent's clock file (the manifest's)
and checks the window is 300 000 × max(1, s) ms: one stamped 0.8 window in the past is
answered (anything but an Error), one stamped 1.2 window in the past is refused
STALE_TIMESTAMP. ENV-12 has one answered, moves the agent's clock forward half a window and
replays it byte for byte on a new connection: the agent must still remember the nonce
(REPLAYED_MESSAGE). Without a clock file, `unsupported`.
"""

from __future__ import annotations

from tslic.protocol import ErrorCode
from tslic.protocol.codec import to_wire

from .cases_envelope import opening
from .cases_window import WINDOW_MS, _speed
from .context import Context
from .lsclient import move_clock
from .model import Case, Judgement, Role, Verdict, case
from .wire import Frame

CASES: list[Case] = []
E = ErrorCode
AGENT = frozenset({Role.AGENT})


def _answered(frame: Frame | None) -> bool:
    return frame is not None and not frame.problem and frame.error_code is None


@case(CASES, "LIMIT-6", "agent-window-follows-speed", "after the greeting, two "
      "NewLicenseRequests stamped 0.8 and 1.2 freshness windows in the past, the window being "
      "300 s × max(1, speed of the agent's clock file)", ("the first answered, the second "
      "Error STALE_TIMESTAMP (1009)",), roles=AGENT)  # fmt: skip
async def agent_window(ctx: Context) -> Judgement:
    speed = _speed(ctx)
    if speed is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --clock-file (the clock's speed)")
    window = int(WINDOW_MS * max(1.0, speed))
    for share, answered in ((0.8, True), (1.2, False)):
        crafter = ctx.crafter()
        msg = opening(ctx)
        inner = crafter.inner(int(msg.TYPE), to_wire(msg),
                              timestamp=max(0, ctx.now() - int(window * share)))  # fmt: skip
        client = await ctx.open_raw()
        await client.send(crafter.frame(crafter.envelope(inner)), f"{share} window old")
        if answered:
            reply = await client.read_frame(ctx.timeout)
            if not _answered(reply):
                return Judgement(
                    Verdict.FAIL,
                    f"a NewLicenseRequest {share} window ({window} "
                    f"ms) old was refused: {reply.label() if reply else 'nothing'}",
                )
            await client.aclose()
            continue
        judged = ctx.reject(await client.observe(ctx.timeout), {E.STALE_TIMESTAMP})
        if judged.verdict.failing:
            judged.actual = f"a NewLicenseRequest 1.2 window ({window} ms) old: {judged.actual}"
            return judged
    return Judgement(Verdict.PASS, f"window {window} ms (speed {speed}): 0.8 window answered, "
                     "1.2 window refused")  # fmt: skip


@case(CASES, "ENV-12", "agent-replay-after-half-a-window", "a NewLicenseRequest is answered; "
      "the suite moves the agent's clock forward half a freshness window and replays it byte "
      "for byte on a new connection", ("Error REPLAYED_MESSAGE (1008)",), roles=AGENT,
      negative=True)  # fmt: skip
async def agent_replay_later(ctx: Context) -> Judgement:
    speed = _speed(ctx)
    if speed is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --clock-file (the suite moves the clock)")
    frame = ctx.crafter().message(opening(ctx))
    first = await ctx.open_raw()
    await first.send(frame, "original")
    reply = await first.read_frame(ctx.timeout)
    if not _answered(reply):
        return Judgement(Verdict.FAIL, "the original NewLicenseRequest was refused: "
                         + (reply.label() if reply else "no reply"))  # fmt: skip
    await first.aclose()
    await move_clock(ctx, int(WINDOW_MS * max(1.0, speed)) // 2)
    second = await ctx.open_raw()
    await second.send(frame, "replay")
    return ctx.reject(await second.observe(ctx.timeout), {E.REPLAYED_MESSAGE})
