"""Rules the suite does not check black-box, declared as cases that say why (and never fail).

Contract: every MUST and SHOULD rule of docs/PROTOCOL.md has at least one case. A rule is
declared here only when no case of the suite can fail on it: either nothing about it is
observable outside a target (a property of the specification, a rule for the client the
suite itself plays), or the suite does not yet play the surroundings it needs (the reason
says which; `--coverage` counts these as "declared untestable", per role). The case reports
`unsupported` with the reason. The list is data; docs/CONFORMANCE.md §5 reproduces it.
"""

from __future__ import annotations

from .context import Context
from .model import ALL_ROLES, Case, Judgement, Role, Verdict, case

CASES: list[Case] = []

LS, AG, CH, DIR = Role.LICENSE_SERVER, Role.AGENT, Role.CLEARINGHOUSE, Role.DIRECTORY
_LAB = ("it needs a deployment around the target (directory, several license servers, "
        "network outages); `tslic lab` scenarios check it")  # fmt: skip
_ACTIVATED = "it needs an activated target with installed key packs and a fast clock"

DECLARED: dict[str, tuple[frozenset[Role], str]] = {
    "MSG-10": (ALL_ROLES, "a property of the specification's history, not of a running peer"),
    "ERR-5": (ALL_ROLES, "a property of the specification's history, not of a running peer"),
    "ERR-6": (ALL_ROLES, "an unexpected handler failure cannot be provoked from outside"),
    "LIMIT-4": (ALL_ROLES, "a handler slower than 30 s cannot be provoked from outside"),
    "LIMIT-5": (ALL_ROLES, "a target slower than the limit never reaches it, so no outcome is "
               "required of it; `tslic load` measures it"),
    "LIMIT-7": (ALL_ROLES, "needs the target to be shut down during the run"),
    "CAL-11": (frozenset({LS}), _ACTIVATED),
    "TEMP-11": (frozenset({AG}), "the rdp state table fixes no message that must carry the warning "
                "(tslic's RDP client computes it from the license it holds)"),
    "LEASE-8": (frozenset({LS}), _ACTIVATED),
    "DISC-10": (frozenset({AG}), "the intervals are configurable; the cases move the clock "
                "past the 60-minute re-discovery and rely on it"),
    "SEC-3": (frozenset({LS}), "a member added on the wire takes effect after a restart (SEC-2), "
              "and a directory group of the other spelling is not played yet"),
    "CH-11": (frozenset({CH}), "records are internal: no interface shows them"),
    "DIR-8": (frozenset({LS}), _LAB),
    "RDP-2": (frozenset({AG}), "a rule for clients; the suite is the client"),
    "RDP-10": (frozenset({AG}), "a rule for clients; the suite is the client"),
}  # fmt: skip


def _declare(rule: str, roles: frozenset[Role], reason: str) -> None:
    @case(CASES, rule, "not-black-box", f"not testable black-box: {reason}",
          ("unsupported (declared)",), roles=roles, untestable=True)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        return Judgement(Verdict.UNSUPPORTED, f"not testable black-box: {reason}")


for _rule, (_roles, _reason) in DECLARED.items():
    _declare(_rule, _roles, _reason)
