"""The first case of an agent run: the grace period starts at the first client (GRACE-2).

Contract: it must run before any case sends the agent a licensing message (the catalogue puts
this module first; the greeting the suite reads to sync its clock does not start the grace
period, which begins with the client's first licensing message). With the manifest of
`tslic conformance prepare --role agent` (the suite's license servers deny the agent), it
moves the agent's clock 30 days past the length of a grace period before any client, then
asks as a new client: the agent must still be in its grace period (STATUS_VALID_CLIENT). The
moment becomes the run's origin, from which GRACE-1 counts; the client's key (its hardware id)
is kept for GRACE-9, which follows that device past the grace period.
"""

from __future__ import annotations

from .cases_agent_env import DAY, GRACE_DAYS, Unprepared, _client, _need_peers, _outcome
from .cases_agent_env import _valid_client as valid_client
from .cases_agent_env import _version as agent_version
from .context import Context
from .lsclient import move_clock
from .model import Case, Judgement, Role, Verdict, case
from .peers import LsMode

CASES: list[Case] = []


@case(CASES, "GRACE-2", "grace-starts-at-first-client", "before any client, the suite moves the "
      "agent's clock 30 days past a whole grace period (no license server: the suite's deny "
      "the agent), then a new client asks for a license",
      ("STATUS_VALID_CLIENT: the grace period starts with that first client",),
      roles=frozenset({Role.AGENT}))  # fmt: skip
async def starts_at_first_client(ctx: Context) -> Judgement:
    try:
        _need_peers(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    assert ctx.peers is not None
    ctx.peers.set_all(LsMode.DENY)
    await ctx.open_raw()
    days = GRACE_DAYS[agent_version(ctx)] + 30
    await move_clock(ctx, days * DAY)
    key = ctx.key()
    ex, alert = await _client(ctx, key=key)
    ctx.origin = ctx.now()
    ctx.shared["first_device"] = key  # GRACE-9 follows this device past its grace period
    if valid_client(ex, alert):
        return Judgement(Verdict.PASS, f"{days} days after start-up, first client: {_outcome(ex)}")
    return Judgement(Verdict.FAIL, f"{days} days after start-up the first client got "
                     f"{_outcome(ex)}: grace did not start at the first client")  # fmt: skip


@case(CASES, "GRACE-5", "days-left-at-first-client", "right after GRACE-2's first client, the "
      "agent's status (--status-command)", ("grace days left: the whole period (90 or 120), "
      "rounded up",), roles=frozenset({Role.AGENT}))  # fmt: skip
async def days_left_at_start(ctx: Context) -> Judgement:
    from .cases_agent_disc import status

    try:
        _need_peers(ctx)
        doc = status(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    await ctx.open_raw()
    days = GRACE_DAYS[agent_version(ctx)]
    left = (doc.get("grace") or {}).get("days_left")
    if left == days:
        return Judgement(Verdict.PASS, f"{left} days left")
    return Judgement(Verdict.FAIL, f"{left} days left at the first client (expected {days})")
