"""Replay across connections, for every role (docs/PROTOCOL.md ENV-11).

Contract: the suite's legal opening message (a Hello; for an agent, a NewLicenseRequest after
the LicenseRequest greeting) is sent on one connection and accepted there, then the same
frame, byte for byte, is sent on a second connection: the target must refuse it with
REPLAYED_MESSAGE, because a daemon keeps one replay memory for all its connections.
"""

from __future__ import annotations

from tslic.protocol import ErrorCode

from .cases_envelope import opening
from .model import Case, Judgement, Role, Verdict, case
from .runner import Context

CASES: list[Case] = []

# What shows the first copy was accepted: a Welcome, or for an agent its next licensing step
# (a PlatformChallenge, or an ErrorAlert such as STATUS_VALID_CLIENT during the grace period).
_ACCEPTED = {"Welcome", "PlatformChallenge", "ErrorAlert"}


@case(CASES, "ENV-11", "replay-new-connection", "the opening message accepted on one "
      "connection, replayed byte for byte on a second (for an agent: a NewLicenseRequest after "
      "its greeting)", ("Error REPLAYED_MESSAGE (1008), then close",), negative=True)  # fmt: skip
async def replay_other(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    frame = crafter.message(opening(ctx))
    first = await ctx.open_raw()
    await first.send(frame, "original")
    reply = await first.read_frame(ctx.timeout)
    if (
        reply is None
        or reply.name not in _ACCEPTED
        or (ctx.role is not Role.AGENT and reply.name != "Welcome")
    ):
        return Judgement(Verdict.FAIL, "the original was not accepted: "
                         + (reply.label() if reply else "no reply"))  # fmt: skip
    second = await ctx.open_raw()
    await second.send(frame, "replay")
    return ctx.reject(await second.observe(ctx.timeout), {ErrorCode.REPLAYED_MESSAGE})
