"""Rules the suite cannot check black-box, declared as cases that say why (and never fail).

Contract: every MUST and SHOULD rule of docs/PROTOCOL.md has at least one case. Where a rule
is about a peer's private behaviour (its logs, its discovery of other servers, a client's own
store), or needs an environment the suite cannot build from one `--target` (an outage of the
license server behind an agent, months of a terminal server's grace period, purchases
registered at the Clearinghouse), the case here reports `unsupported` with the reason and the
place where tslic checks the rule instead. The list is data; docs/CONFORMANCE.md reproduces it.
"""

from __future__ import annotations

from .context import Context
from .model import ALL_ROLES, Case, Judgement, Role, Verdict, case

CASES: list[Case] = []

LS, AG, CH, DIR = Role.LICENSE_SERVER, Role.AGENT, Role.CLEARINGHOUSE, Role.DIRECTORY
_LOGS = "events are written to the target's own log, which the wire does not carry"
_LAB = ("it needs a deployment around the target (directory, several license servers, "
        "network outages); `tslic lab` scenarios check it")  # fmt: skip
_GRACE = "it needs a terminal server in its grace period with no license server, over months"
_CH_DATA = "it needs purchases registered at the Clearinghouse (tslic clearinghouse add-*)"
_ACTIVATED = "it needs an activated target with installed key packs and a fast clock"

DECLARED: dict[str, tuple[frozenset[Role], str]] = {
    "ENV-12": (ALL_ROLES, "the replay memory's lifetime is only observable across a window"),
    "ENV-14": (ALL_ROLES, "each check's code is tested by its own case; the order of checks is "
               "covered where two faults are combined (signed-other-bytes)"),
    "ENV-16": (ALL_ROLES, "encoding choices of the target are not distinguishable from outside "
               "once its frames decode (target-framing)"),
    "MSG-10": (ALL_ROLES, "a property of the specification's history, not of a running peer"),
    "STATE-1": (ALL_ROLES, "one conversation per connection is how every case connects"),
    "STATE-4": (ALL_ROLES, "a rule for clients; the suite never pipelines requests"),
    "ERR-5": (ALL_ROLES, "a property of the specification's history, not of a running peer"),
    "ERR-6": (ALL_ROLES, "an unexpected handler failure cannot be provoked from outside"),
    "LIMIT-4": (ALL_ROLES, "a handler slower than 30 s cannot be provoked from outside"),
    "LIMIT-5": (ALL_ROLES, "needs 4 000 requests a second from one key; use `tslic load`"),
    "LIMIT-6": (ALL_ROLES, "the window in virtual time depends on the target's clock speed; "
                "stale/future cases use --window"),
    "LIMIT-7": (ALL_ROLES, "needs the target to be shut down during the run"),
    "CAL-5": (frozenset({LS}), "observed by built-in-for-w2k-pro (informational)"),
    "CAL-11": (frozenset({LS}), _ACTIVATED),
    "TEMP-11": (frozenset({AG}), "needs a client whose temporary license is 15 days from expiry"),
    "LEASE-8": (frozenset({LS}), _ACTIVATED),
    **{f"GRACE-{i}": (frozenset({AG}), _GRACE) for i in (4, 9)},
    **{f"DISC-{i}": (frozenset({AG}), _LAB) for i in (2, 4, 5, 6, 10)},
    "SEC-3": (frozenset({LS}), "needs a group member of the other spelling in the directory"),
    "SEC-12": (frozenset({AG}), "needs a license signed under another root for the agent's "
               "client; forged-license checks the forged case"),
    "CH-11": (frozenset({CH}), "records are internal"),
    "DIR-1": (frozenset({DIR}), "needs a published enterprise license server (a write)"),
    "DIR-3": (frozenset({DIR}), "needs writes with the enterprise-admin credential"),
    "DIR-6": (frozenset({DIR}), "needs a write (DirRegister) to a known computer"),
    "DIR-8": (frozenset({LS}), _LAB),
    "RDP-2": (frozenset({AG}), "a rule for clients; the suite is the client"),
    "RDP-10": (frozenset({AG}), "a rule for clients; the suite is the client"),
    "EVT-12": (frozenset({AG}), _LOGS),
}  # fmt: skip


def _declare(rule: str, roles: frozenset[Role], reason: str) -> None:
    @case(CASES, rule, "not-black-box", f"not testable black-box: {reason}",
          ("unsupported (declared)",), roles=roles, untestable=True)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        return Judgement(Verdict.UNSUPPORTED, f"not testable black-box: {reason}")


for _rule, (_roles, _reason) in DECLARED.items():
    _declare(_rule, _roles, _reason)
