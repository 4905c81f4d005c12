"""Directory writes with the enterprise-admin credential (docs/PROTOCOL.md §7.16: DIR-1,
DIR-3, DIR-6), for a directory target whose credential the operator gives the suite.

Contract: the cases need `--name credential=SECRET` (the enterprise-admin credential), a site
(`--name site=SITE`) and a computer of that site the suite may publish and register
(`--name computer=NAME`); without them they are `unsupported`. They play the daemon that
publishes itself as an enterprise license server and registers its address:
- DIR-1: after DirPublish, DirQueryEnterprise lists the computer and names the site's
  CN=TS-Enterprise-License-Server object;
- DIR-3: publishing again changes nothing, unpublishing removes only that computer;
- DIR-6: DirLookupComputer returns the address DirRegister recorded.
They restore what they change where the protocol allows: the computer is unpublished again
unless it was published before, and its address re-registered if it had one (an address
cannot be removed: give a throwaway data directory).
"""

from __future__ import annotations

from tslic.protocol import ServiceError
from tslic.protocol.messages.directory import (
    DirComputer,
    DirLookupComputer,
    DirPublish,
    DirQueryEnterprise,
    DirRegister,
    DirServers,
    DirUnpublish,
)
from tslic.runtime.peer import PeerStream

from .context import Context
from .lsclient import call, session
from .model import Case, Judgement, Role, Verdict, case

CASES: list[Case] = []
DIRECTORY = frozenset({Role.DIRECTORY})


class Unprepared(Exception):
    pass


def _names(ctx: Context) -> tuple[str, str, str]:
    names = ctx.config.names
    missing = [k for k in ("credential", "site", "computer") if not names.get(k)]
    if missing:
        raise Unprepared("needs " + ", ".join(f"--name {k}=..." for k in missing)
                         + " (a write needs the enterprise-admin credential)")  # fmt: skip
    return names["credential"], names["site"], names["computer"]


async def _published(ctx: Context, s: PeerStream, site: str) -> tuple[list[str], str]:
    reply = await call(ctx, s, DirQueryEnterprise(site=site))
    assert isinstance(reply, DirServers)
    return [ref.name for ref in reply.servers], reply.distinguished_name


def _has(names: list[str], computer: str) -> int:
    return sum(n.casefold() == computer.casefold() for n in names)


@case(CASES, "DIR-1", "published-dn", "DirPublish of the given computer as the site's enterprise "
      "license server, then DirQueryEnterprise", ("the computer listed, under CN=TS-Enterprise-"
      "License-Server,CN=<site>,CN=Sites,CN=Configuration,<forest root>",),
      roles=DIRECTORY)  # fmt: skip
async def published(ctx: Context) -> Judgement:
    try:
        credential, site, computer = _names(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    async with session(ctx) as s:
        before, _ = await _published(ctx, s, site)
        await call(ctx, s, DirPublish(site=site, computer=computer, credential=credential))
        after, dn = await _published(ctx, s, site)
        if not _has(before, computer):
            await call(ctx, s, DirUnpublish(site=site, computer=computer, credential=credential))
    want = f"CN=TS-Enterprise-License-Server,CN={site},CN=Sites,CN=Configuration,".casefold()
    if not _has(after, computer):
        return Judgement(Verdict.FAIL, f"{computer} not listed after DirPublish: {after}")
    if not dn.casefold().startswith(want) or len(dn) <= len(want):
        return Judgement(Verdict.FAIL, f"distinguished name {dn!r}")
    return Judgement(Verdict.PASS, f"{computer} listed under {dn}")


@case(CASES, "DIR-3", "multi-valued-site-server", "DirPublish of the given computer twice, then "
      "DirUnpublish", ("published once whatever the repetition; unpublishing removes only that "
      "computer",), roles=DIRECTORY)  # fmt: skip
async def multi_valued(ctx: Context) -> Judgement:
    try:
        credential, site, computer = _names(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    publish = DirPublish(site=site, computer=computer, credential=credential)
    async with session(ctx) as s:
        before, _ = await _published(ctx, s, site)
        await call(ctx, s, publish)
        once, _ = await _published(ctx, s, site)
        await call(ctx, s, publish)
        twice, _ = await _published(ctx, s, site)
        await call(ctx, s, DirUnpublish(site=site, computer=computer, credential=credential))
        after, _ = await _published(ctx, s, site)
        if _has(before, computer):
            await call(ctx, s, publish)
    others = sorted(n.casefold() for n in before if n.casefold() != computer.casefold())
    if sorted(n.casefold() for n in twice) != sorted(n.casefold() for n in once):
        return Judgement(Verdict.FAIL, f"publishing again changed {once} into {twice}")
    if _has(once, computer) != 1:
        return Judgement(Verdict.FAIL, f"{computer} listed {_has(once, computer)} times")
    if sorted(n.casefold() for n in after) != others:
        return Judgement(Verdict.FAIL, f"unpublishing left {after}, expected {others}")
    return Judgement(Verdict.PASS, f"once after two publications; the other {len(others)} kept")


@case(CASES, "DIR-6", "registered-address", "DirRegister of an address for the given computer, "
      "then DirLookupComputer", ("the registered address",), roles=DIRECTORY)  # fmt: skip
async def registered(ctx: Context) -> Judgement:
    try:
        _, _, computer = _names(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    address = f"127.0.0.1:{20000 + ctx.rng.randrange(40000)}"
    async with session(ctx) as s:
        try:
            old = await call(ctx, s, DirLookupComputer(name=computer))
        except ServiceError as exc:
            return Judgement(Verdict.UNSUPPORTED, f"{computer}: {exc.code.name}")
        assert isinstance(old, DirComputer)
        await call(ctx, s, DirRegister(computer=computer, address=address))
        new = await call(ctx, s, DirLookupComputer(name=computer.lower()))
        if old.computer.address:
            await call(ctx, s, DirRegister(computer=computer, address=old.computer.address))
    assert isinstance(new, DirComputer)
    if new.computer.address != address:
        return Judgement(Verdict.FAIL, f"registered {address}, looked up "
                         f"{new.computer.address!r}")  # fmt: skip
    return Judgement(Verdict.PASS, f"{computer} at {address}")
