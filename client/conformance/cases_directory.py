"""Cases for a directory target (docs/PROTOCOL.md §7 DIR, SEC-6): open queries, guarded writes,
NOT_FOUND for unknown names, case-insensitive names, domain controllers only.

Contract: the suite never changes the target's data: writes are attempted only with a wrong
credential, which must be refused.
"""

from __future__ import annotations

from tslic.protocol import ErrorCode, ServiceError, TslicError
from tslic.protocol.messages.directory import (
    DirComputer,
    DirGroup,
    DirGroupMembers,
    DirLookupComputer,
    DirPublish,
    DirQueryDomainControllers,
    DirQueryEnterprise,
    DirServers,
)

from .context import Context
from .lsclient import call, refused_with, session
from .model import Case, Judgement, Role, Verdict, case

CASES: list[Case] = []
DIRECTORY = frozenset({Role.DIRECTORY})
E = ErrorCode
GROUP = "Terminal Services Computers"


def _group(ctx: Context) -> str:
    return ctx.config.names.get("group", GROUP)


def _site(ctx: Context) -> str:
    return ctx.config.names.get("site", "Default-First-Site-Name")


NAMES_HINT = "give the target's names with --name site=SITE --name group=DOMAIN\\GROUP"


@case(CASES, "DIR-4", "unknown-site", "DirQueryEnterprise for a site that does not exist",
      ("refusal NOT_FOUND (5001)",), roles=DIRECTORY, negative=True)  # fmt: skip
async def unknown_site(ctx: Context) -> Judgement:
    async with session(ctx) as s:
        ok, text = await refused_with(ctx, s, DirQueryEnterprise(site="NO-SUCH-SITE-0X"),
                                      E.NOT_FOUND)  # fmt: skip
    verdict = Verdict.PASS if ok else (Verdict.WRONG_CODE if ok is False else Verdict.FAIL)
    return Judgement(verdict, text)


@case(CASES, "SEC-6", "publish-wrong-credential", "DirPublish with a wrong enterprise-admin "
      "credential", ("refusal PUBLISH_DENIED (5002)",), roles=DIRECTORY, negative=True)  # fmt: skip
async def wrong_credential(ctx: Context) -> Judgement:
    async with session(ctx) as s:
        request = DirPublish(site="Default-First-Site-Name", computer="CONF-LS",
                             credential=f"wrong-{ctx.rng.randrange(10**9)}")  # fmt: skip
        ok, text = await refused_with(ctx, s, request, E.PUBLISH_DENIED)
    verdict = Verdict.PASS if ok else (Verdict.WRONG_CODE if ok is False else Verdict.FAIL)
    return Judgement(verdict, text)


async def _members(ctx: Context, group: str) -> DirGroup | TslicError:
    try:
        async with session(ctx) as s:
            reply = await call(ctx, s, DirGroupMembers(group=group))
    except TslicError as exc:  # a refusal, or a fatal Error for an ambiguous name
        ctx.transcript.event(f"<- {exc}")
        return exc
    assert isinstance(reply, DirGroup)
    return reply


@case(CASES, "DIR-7", "case-insensitive-names", "DirGroupMembers for the terminal-server group "
      "(--name group=...) as written, in lower case and in upper case",
      ("the same members all three times",), roles=DIRECTORY)  # fmt: skip
async def case_insensitive(ctx: Context) -> Judgement:
    group = _group(ctx)
    answers = [await _members(ctx, g) for g in (group, group.lower(), group.upper())]
    first = answers[0]
    if not isinstance(first, DirGroup):
        return Judgement(Verdict.UNSUPPORTED, f"{group!r}: {first}; {NAMES_HINT}")
    texts = [
        f"refusal {a.code.name}" if isinstance(a, TslicError) else
        f"{len(a.members)} members" for a in answers
    ]  # fmt: skip
    wanted = sorted(m.upper() for m in first.members)
    same = all(
        isinstance(a, DirGroup) and sorted(m.upper() for m in a.members) == wanted for a in answers
    )
    return Judgement(Verdict.PASS if same else Verdict.FAIL, ", ".join(texts))


@case(CASES, "DIR-2", "queries-open", "queries from a key the directory has never seen",
      ("answers (or NOT_FOUND), never ACCESS_DENIED",), roles=DIRECTORY)  # fmt: skip
async def queries_open(ctx: Context) -> Judgement:
    answers = []
    async with session(ctx) as s:
        for request in (DirQueryEnterprise(site=_site(ctx)),
                        DirQueryDomainControllers(domain="NO-SUCH-DOMAIN")):  # fmt: skip
            try:
                answers.append(type(await call(ctx, s, request)).__name__)
            except ServiceError as exc:
                if exc.code is not E.NOT_FOUND:
                    return Judgement(Verdict.FAIL, f"refusal {exc.code.name} to a query")
                answers.append("NOT_FOUND")
    return Judgement(Verdict.PASS, ", ".join(answers))


@case(CASES, "DIR-5", "domain-controllers-only", "find a terminal server through the group, look "
      "up its domain, and ask for that domain's controllers",
      ("every server returned is a domain controller of the domain",),
      roles=DIRECTORY)  # fmt: skip
async def dcs_only(ctx: Context) -> Judgement:
    group = await _members(ctx, _group(ctx))
    if not isinstance(group, DirGroup) or not group.members:
        return Judgement(Verdict.UNSUPPORTED, f"no members of {_group(ctx)!r}; {NAMES_HINT}")
    async with session(ctx) as s:
        computer = await call(ctx, s, DirLookupComputer(name=group.members[0]))
        assert isinstance(computer, DirComputer)
        domain = computer.computer.domain
        servers = await call(ctx, s, DirQueryDomainControllers(domain=domain))
    assert isinstance(servers, DirServers)
    wrong = [sv.name for sv in servers.servers if not sv.is_domain_controller]
    if wrong or not servers.servers:
        return Judgement(Verdict.FAIL, f"domain {domain}: non-DCs {wrong or 'none found'}")
    return Judgement(Verdict.PASS, f"domain {domain}: {len(servers.servers)} DC(s)")
