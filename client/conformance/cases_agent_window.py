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

from .cases_window import judge_replay, judge_window
from .context import Context
from .model import Case, Judgement, Role, case
from .wire import Frame

CASES: list[Case] = []
AGENT = frozenset({Role.AGENT})


def _answered(frame: Frame | None) -> bool:
    return frame is not None and not frame.problem and frame.error_code is None


@case(CASES, "LIMIT-6", "agent-window-follows-speed", "after the greeting, two "
      "NewLicenseRequests stamped 0.8 and 1.2 freshness windows in the past, the window being "
      "300 s × max(1, speed of the agent's clock file)", ("the first answered, the second "
      "Error STALE_TIMESTAMP (1009)",), roles=AGENT)  # fmt: skip
async def agent_window(ctx: Context) -> Judgement:
    return await judge_window(ctx, "NewLicenseRequest", _answered, "answered")


@case(CASES, "ENV-12", "agent-replay-after-half-a-window", "a NewLicenseRequest is answered; "
      "the suite moves the agent's clock forward half a freshness window and replays it byte "
      "for byte on a new connection", ("Error REPLAYED_MESSAGE (1008)",), roles=AGENT,
      negative=True)  # fmt: skip
async def agent_replay_later(ctx: Context) -> Judgement:
    return await judge_replay(ctx, "NewLicenseRequest", _answered, "answered")
