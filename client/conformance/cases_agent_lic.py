"""Licenses through an agent (terminal server) target, with the suite playing its license
servers (docs/PROTOCOL.md §7.9, §7.10, §7.13, §7.17, §7.18: TEMP-4..6, LEASE-3, LEASE-6,
LEASE-7, RDP-7, RDP-8, SEC-4, EVT-4..7).

Contract: they need the manifest of `tslic conformance prepare --role agent` and run after
cases_agent_env, which leaves the agent past its grace period using the suite's CONF-LS2 as a
valid 2003 license server. The suite's client presents licenses the double mints as if it
had issued them earlier (bound to the client's key, which is its hardware id), and the cases
judge what the agent answers the client and what it asks the license servers (the doubles
count every request). Each case says how it leaves the doubles; the last one leaves CONF-LS2
valid for the challenge cases of cases_agent.
"""

from __future__ import annotations

from typing import Unpack

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol.connection import raw_public
from tslic.protocol.domain import CalProduct, LicenseKind
from tslic.protocol.licenses import open_license
from tslic.protocol.messages.rdp import ClientLogon, DisconnectReason, RdpError, StateTransition

from .cases_agent import Exchange, ExchangeOptions, _alert, exchange
from .cases_agent_env import (
    REDISCOVER,
    Unprepared,
    _events,
    _need_peers,
    _outcome,
    _version,
    pair,
)
from .context import Context
from .lsclient import move_clock
from .model import Case, Judgement, Role, Verdict, case
from .peers import LsDouble, LsMode

CASES: list[Case] = []
AGENT = frozenset({Role.AGENT})
DAY = 86_400_000
ABORT = int(StateTransition.ST_TOTAL_ABORT)
NO_LICENSE = int(RdpError.ERR_NO_LICENSE)


def _doubles(ctx: Context) -> tuple[LsDouble, LsDouble]:
    return pair(ctx)


async def _session(
    ctx: Context, *, logon: bool | None = None, **kw: Unpack[ExchangeOptions]
) -> (
    tuple[Exchange, str]
):  # fmt: skip
    """One client: the licensing exchange, then (if licensed and `logon` is given) a logon
    with valid or invalid credentials; returns the exchange and the LogonComplete label."""
    ex = await exchange(ctx, **kw)
    done = ""
    if ex.client is not None and ex.crafter is not None and logon is not None and ex.last \
            and ex.last.name in ("NewLicense", "UpgradeLicense"):  # fmt: skip
        logon_message = ClientLogon(user_name="conformance", domain="CONF",
                                    credentials_valid=logon)  # fmt: skip
        await ex.client.send(ex.crafter.message(logon_message), "ClientLogon")
        reply = await ex.client.read_frame(ctx.timeout)
        done = reply.label() if reply is not None else "nothing"
        if reply is not None and reply.body is not None:
            done = f"LogonComplete(logged_on={reply.body.get('logged_on')})"
    if ex.client is not None:
        await ex.client.aclose()
    return ex, done


def _cal(ctx: Context) -> CalProduct:
    return CalProduct.W2003_DEVICE_CAL if _version(ctx) == 2003 else CalProduct.W2000_TS_CAL


async def _rediscover(ctx: Context, first: LsMode, second: LsMode) -> tuple[LsDouble, LsDouble]:
    ls1, ls2 = _doubles(ctx)
    ls1.mode, ls2.mode = first, second
    await move_clock(ctx, REDISCOVER)
    return ls1, ls2


def _unsupported(why: Unprepared) -> Judgement:
    return Judgement(Verdict.UNSUPPORTED, str(why))


@case(CASES, "TEMP-4", "agent-new-device-temporary", "a new client of the agent (Per Device; "
      "the suite's CONF-LS2 issues temporary licenses on a first request) asks for a license",
      ("NewLicense carrying a temporary license",), roles=AGENT)  # fmt: skip
async def new_device(ctx: Context) -> Judgement:
    try:
        await _rediscover(ctx, LsMode.DENY, LsMode.VALID)
    except Unprepared as why:
        return _unsupported(why)
    ex, _ = await _session(ctx)
    last = ex.last
    if last is None or last.name != "NewLicense" or last.body is None:
        return Judgement(Verdict.FAIL, f"answered {_outcome(ex)}")
    kind = open_license(bytes(last.body["license"])).body.kind
    verdict = Verdict.PASS if kind is LicenseKind.TEMPORARY else Verdict.FAIL
    return Judgement(verdict, f"NewLicense ({kind})")


@case(CASES, "TEMP-5", "agent-marks-after-logon", "a new client gets its temporary license and "
      "logs on with valid credentials", ("LogonComplete(logged_on=true), and MarkLicense sent "
      "to the license server that issued it",), roles=AGENT)  # fmt: skip
async def marks(ctx: Context) -> Judgement:
    try:
        _, ls2 = _doubles(ctx)
    except Unprepared as why:
        return _unsupported(why)
    before = ls2.requests["MarkLicense"]
    ex, done = await _session(ctx, logon=True)
    marked = ls2.requests["MarkLicense"] - before
    if "logged_on=True" in done and marked == 1:
        return Judgement(Verdict.PASS, f"{_outcome(ex)}; {done}; MarkLicense sent")
    return Judgement(Verdict.FAIL, f"{_outcome(ex)}; {done or 'no logon'}; {marked} MarkLicense")


@case(CASES, "TEMP-6", "agent-no-mark-after-failed-logon", "a new client gets its temporary "
      "license and fails to log on (wrong credentials)", ("LogonComplete(logged_on=false), and "
      "no MarkLicense sent",), roles=AGENT)  # fmt: skip
async def no_mark(ctx: Context) -> Judgement:
    try:
        _, ls2 = _doubles(ctx)
    except Unprepared as why:
        return _unsupported(why)
    before = ls2.requests["MarkLicense"]
    ex, done = await _session(ctx, logon=False)
    marked = ls2.requests["MarkLicense"] - before
    if "logged_on=False" in done and marked == 0:
        return Judgement(Verdict.PASS, f"{_outcome(ex)}; {done}; no MarkLicense")
    return Judgement(Verdict.FAIL, f"{_outcome(ex)}; {done or 'no logon'}; {marked} MarkLicense")


def _minted(
    ctx: Context, ls: LsDouble, kind: LicenseKind, expires_in: int
) -> tuple[Ed25519PrivateKey, bytes]:
    key = ctx.key()
    blob = ls.mint(hwid=raw_public(key), kind=kind, product=_cal(ctx),
                   expires_at=ctx.now() + expires_in)  # fmt: skip
    return key, blob


@case(CASES, "LEASE-3", "agent-renews-within-7-days", "a client presents a permanent CAL from "
      "CONF-LS2 with 5 days left", ("UpgradeLicenseRequest sent to CONF-LS2, and UpgradeLicense "
      "carrying the renewed license",), roles=AGENT)  # fmt: skip
async def renews(ctx: Context) -> Judgement:
    try:
        await _ensure_await(ctx)
        _, ls2 = _doubles(ctx)
    except Unprepared as why:
        return _unsupported(why)
    key, blob = _minted(ctx, ls2, LicenseKind.PERMANENT, 5 * DAY)
    before = ls2.requests["UpgradeLicenseRequest"]
    ex, _ = await _session(ctx, license=blob, key=key)
    asked = ls2.requests["UpgradeLicenseRequest"] - before
    last = ex.last
    renewed = last is not None and last.name == "UpgradeLicense" and last.body is not None \
        and bytes(last.body["license"]) != blob  # fmt: skip
    if asked and renewed:
        return Judgement(Verdict.PASS, f"{_outcome(ex)}: renewed through {ls2.name}")
    return Judgement(Verdict.FAIL, f"{_outcome(ex)}; {asked} renewal request(s) to {ls2.name}")


async def _ensure_await(ctx: Context) -> None:
    await ctx.open_raw()  # the greeting tells the agent's version (for the CAL product)


async def _outage(ctx: Context) -> tuple[LsDouble, LsDouble]:
    ls1, ls2 = _doubles(ctx)
    ls1.mode = ls2.mode = LsMode.DENY
    await ctx.open_raw()
    return ls1, ls2


@case(CASES, "RDP-7", "outage-echoes-valid-license", "every license server now denies the agent; "
      "a client presents a permanent CAL with 5 days left (it needs renewal)",
      ("UpgradeLicense carrying the presented license unchanged",), roles=AGENT)  # fmt: skip
async def echoes(ctx: Context) -> Judgement:
    return await _echo(ctx)


@case(CASES, "LEASE-6", "outage-unnoticed", "as RDP-7: an outage while the license is valid",
      ("UpgradeLicense with the same license: the outage goes unnoticed",),
      roles=AGENT)  # fmt: skip
async def unnoticed(ctx: Context) -> Judgement:
    return await _echo(ctx)


async def _echo(ctx: Context) -> Judgement:
    try:
        _, ls2 = await _outage(ctx)
    except Unprepared as why:
        return _unsupported(why)
    key, blob = _minted(ctx, ls2, LicenseKind.PERMANENT, 5 * DAY)
    ex, _ = await _session(ctx, license=blob, key=key)
    last = ex.last
    if last is not None and last.name == "UpgradeLicense" and last.body is not None \
            and bytes(last.body["license"]) == blob:  # fmt: skip
        return Judgement(Verdict.PASS, f"{_outcome(ex)} with the presented license")
    return Judgement(Verdict.FAIL, f"answered {_outcome(ex)}")


@case(CASES, "LEASE-7", "expired-permanent-disconnected", "every license server denies the "
      "agent; a client presents a permanent CAL that expired a day ago",
      ("ErrorAlert ERR_NO_LICENSE / ST_TOTAL_ABORT with disconnect reason 0x109",),
      roles=AGENT)  # fmt: skip
async def expired_permanent(ctx: Context) -> Judgement:
    try:
        _, ls2 = await _outage(ctx)
    except Unprepared as why:
        return _unsupported(why)
    key, blob = _minted(ctx, ls2, LicenseKind.PERMANENT, -DAY)
    ex, _ = await _session(ctx, license=blob, key=key)
    want = (NO_LICENSE, ABORT, int(DisconnectReason.LICENSE_CANT_UPGRADE_LICENSE))
    if _alert(ex.last) == want:
        return Judgement(Verdict.PASS, _outcome(ex))
    return Judgement(Verdict.FAIL, f"answered {_outcome(ex)}")


@case(CASES, "LEASE-2", "valid-until-expires-at", "every license server denies the agent; a "
      "client presents a permanent CAL with one hour left, another one that expired an hour "
      "ago", ("the first handed back unchanged (valid), the second ErrorAlert 0x109 "
      "(expired)",), roles=AGENT)  # fmt: skip
async def until_expiry(ctx: Context) -> Judgement:
    try:
        _, ls2 = await _outage(ctx)
    except Unprepared as why:
        return _unsupported(why)
    hour = 3_600_000
    key, blob = _minted(ctx, ls2, LicenseKind.PERMANENT, hour)
    ex, _ = await _session(ctx, license=blob, key=key)
    last = ex.last
    if not (last is not None and last.name == "UpgradeLicense" and last.body is not None
            and bytes(last.body["license"]) == blob):  # fmt: skip
        return Judgement(Verdict.FAIL, f"one hour before expires_at: {_outcome(ex)}")
    key, blob = _minted(ctx, ls2, LicenseKind.PERMANENT, -hour)
    ex, _ = await _session(ctx, license=blob, key=key)
    want = (NO_LICENSE, ABORT, int(DisconnectReason.LICENSE_CANT_UPGRADE_LICENSE))
    if _alert(ex.last) != want:
        return Judgement(Verdict.FAIL, f"one hour after expires_at: {_outcome(ex)}")
    return Judgement(Verdict.PASS, "valid an hour before expires_at, expired an hour after")


def _event_case(rule: str, slug: str, what: str, wanted: int) -> None:
    @case(CASES, rule, slug, f"after the previous case ({what}), the agent's events are read "
          "(--events-command)", (f"event {wanted} reported",), roles=AGENT)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        try:
            _need_peers(ctx)
            events = _events(ctx)
        except Unprepared as why:
            return _unsupported(why)
        if wanted in events:
            return Judgement(Verdict.PASS, f"event {wanted} reported")
        return Judgement(Verdict.FAIL, f"no event {wanted}: {events}")


_event_case("EVT-5", "event-1028", "an expired permanent CAL not renewed", 1028)


@case(CASES, "RDP-8", "no-license-outside-grace", "CONF-LS2 is a 2003 license server with no "
      "license to give (NO_LICENSE_AVAILABLE); a new client asks for a license",
      ("ErrorAlert ERR_NO_LICENSE / ST_TOTAL_ABORT, disconnect reason 0x102",),
      roles=AGENT)  # fmt: skip
async def no_license(ctx: Context) -> Judgement:
    try:
        await _rediscover(ctx, LsMode.DENY, LsMode.REFUSE)
    except Unprepared as why:
        return _unsupported(why)
    want = (NO_LICENSE, ABORT, int(DisconnectReason.LICENSE_NO_LICENSE))
    ex, _ = await _session(ctx)
    if _alert(ex.last) == want:
        return Judgement(Verdict.PASS, _outcome(ex))
    return Judgement(Verdict.FAIL, f"answered {_outcome(ex)}")


_event_case("EVT-6", "event-1004", "a license server refused a new client", 1004)


@case(CASES, "EVT-4", "event-1011-expired-temporary", "CONF-LS2 has no license to give; a "
      "client presents a temporary license that expired a day ago", ("ErrorAlert "
      "ERR_NO_LICENSE (0x102) and event 1011 reported",), roles=AGENT)  # fmt: skip
async def expired_temporary(ctx: Context) -> Judgement:
    try:
        _, ls2 = _doubles(ctx)
        await ctx.open_raw()
        key, blob = _minted(ctx, ls2, LicenseKind.TEMPORARY, -DAY)
        ex, _ = await _session(ctx, license=blob, key=key)
        events = _events(ctx)
    except Unprepared as why:
        return _unsupported(why)
    alert = _alert(ex.last)
    if alert is None or alert[0] != NO_LICENSE or 1011 not in events:
        return Judgement(Verdict.FAIL, f"{_outcome(ex)}; events {events}")
    return Judgement(Verdict.PASS, f"{_outcome(ex)}; event 1011 reported")


@case(CASES, "SEC-4", "not-in-group-passes-on", "CONF-LS1 refuses the agent NOT_IN_SECURITY_GROUP"
      " and CONF-LS2 is valid; after re-discovery a new client asks", ("a license through "
      "CONF-LS2, and event 1043 reported (with --events-command)",), roles=AGENT)  # fmt: skip
async def not_in_group(ctx: Context) -> Judgement:
    try:
        ls1, _ = _doubles(ctx)
        refused_before = ls1.requests["RequestTermServCert"]
        await _rediscover(ctx, LsMode.NOT_IN_GROUP, LsMode.VALID)
    except Unprepared as why:
        return _unsupported(why)
    from .cases_agent_env import _until

    def licensed(ex: Exchange, alert: object) -> bool:
        return any(f.name == "NewLicense" for f in ex.frames)

    def passed_on(ex: Exchange, alert: object) -> bool:
        # re-discovery reaches CONF-LS1 (first in order) in the background: wait for its
        # refusal of the certificate request, then for a license through CONF-LS2
        return licensed(ex, alert) and ls1.requests["RequestTermServCert"] > refused_before

    ex, _ = await _until(ctx, passed_on)
    if not licensed(ex, None):
        return Judgement(Verdict.FAIL, f"answered {_outcome(ex)}")
    try:
        events = _events(ctx)
    except Unprepared:
        return Judgement(Verdict.PASS, f"{_outcome(ex)} (events not read: no --events-command)")
    if 1043 not in events:
        return Judgement(Verdict.FAIL, f"{_outcome(ex)} but no event 1043: {events}")
    return Judgement(Verdict.PASS, f"{_outcome(ex)}; event 1043 reported")


_event_case("EVT-7", "event-1043", "a license server's security group refused the agent", 1043)
