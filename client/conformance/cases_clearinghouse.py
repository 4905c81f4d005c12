"""Cases for a Clearinghouse target (docs/PROTOCOL.md §7 ACT, CH): activation preconditions and
the documented refusal codes.

Contract: the suite acts as a license server with a fresh key. It activates that key (a
harmless new activation) where a case needs a known license server, and otherwise sends
requests the Clearinghouse must refuse, checking the exact code.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

from tslic.protocol import ErrorCode
from tslic.protocol.connection import raw_public
from tslic.protocol.domain import ActivationMethod, CalProduct, Program, WindowsVersion
from tslic.protocol.messages.admin import ActivationAction
from tslic.protocol.messages.clearinghouse import (
    ChActivate,
    ChActivated,
    ChDeactivate,
    ChInstallKeyPack,
)
from tslic.protocol.messages.records import ContactInfo

from .context import Context
from .lsclient import call, refused_with, session
from .model import Case, Judgement, Role, Verdict, case

CASES: list[Case] = []
CH = frozenset({Role.CLEARINGHOUSE})
E = ErrorCode
CONTACT = ContactInfo(first_name="Conformance", last_name="Suite", company="tslic",
                      country="United States", email="suite@example.com")  # fmt: skip


class _ActivateFields(TypedDict, total=False):
    """ChActivate's fields but the key, for `_activate` overrides."""

    action: ActivationAction
    method: ActivationMethod
    product_id: str
    name: str
    version: WindowsVersion
    contact: ContactInfo
    reason: str
    license_server_id: str


def _activate(ctx: Context, key_public: bytes, **changes: Unpack[_ActivateFields]) -> ChActivate:
    values: _ActivateFields = {
        "action": ActivationAction.ACTIVATE, "method": ActivationMethod.AUTOMATIC,
        "product_id": "69712-640-0000000-00000", "name": "CONF-LS",
        "version": WindowsVersion.W2003, "contact": CONTACT,
    }  # fmt: skip
    values.update(changes)
    return ChActivate(public_key=key_public, **values)


def _judge(result: tuple[bool | None, str]) -> Judgement:
    ok, text = result
    if ok:
        return Judgement(Verdict.PASS, text)
    return Judgement(Verdict.WRONG_CODE if ok is False else Verdict.FAIL, text)


@case(CASES, "ACT-4", "ch-missing-contact", "ChActivate with an empty Required Information",
      ("refusal MISSING_REQUIRED_INFO (4003)",), roles=CH, negative=True)  # fmt: skip
async def missing_contact(ctx: Context) -> Judgement:
    key = ctx.key()
    async with session(ctx, key) as s:
        request = _activate(ctx, raw_public(key), contact=ContactInfo())
        return _judge(await refused_with(ctx, s, request, E.MISSING_REQUIRED_INFO))


@case(CASES, "ACT-6", "ch-reactivate-without-reason", "ChActivate(reactivate) without a reason",
      ("refusal REASON_REQUIRED (4008)",), roles=CH, negative=True)  # fmt: skip
async def no_reason(ctx: Context) -> Judgement:
    key = ctx.key()
    async with session(ctx, key) as s:
        request = _activate(ctx, raw_public(key), action=ActivationAction.REACTIVATE, reason="")
        return _judge(await refused_with(ctx, s, request, E.REASON_REQUIRED))


@case(CASES, "ACT-5", "ch-deactivate-by-web", "ChDeactivate by the web method for a license "
      "server the suite has just activated", ("refusal METHOD_NOT_ALLOWED (4007)",), roles=CH,
      negative=True)  # fmt: skip
async def deactivate_web(ctx: Context) -> Judgement:
    key = ctx.key()
    async with session(ctx, key) as s:
        activated = await call(ctx, s, _activate(ctx, raw_public(key)))
        assert isinstance(activated, ChActivated)
        request = ChDeactivate(license_server_id=activated.license_server_id,
                               method=ActivationMethod.WEB, contact=CONTACT)  # fmt: skip
        return _judge(await refused_with(ctx, s, request, E.METHOD_NOT_ALLOWED))


@case(CASES, "CH-9", "unknown-license-server", "ChInstallKeyPack for a well-formed license "
      "server id the Clearinghouse never issued (same length as one it issues)",
      ("refusal UNKNOWN_LICENSE_SERVER (4009)",), roles=CH, negative=True)  # fmt: skip
async def unknown_ls(ctx: Context) -> Judgement:
    from tslic.protocol.codes import b24_length, encode_b24, group5, normalize_code

    key = ctx.key()
    async with session(ctx, key) as s:
        activated = await call(ctx, s, _activate(ctx, raw_public(key)))
        assert isinstance(activated, ChActivated)
        size = len(normalize_code(activated.license_server_id))
        nbytes = next((n for n in range(1, 64) if b24_length(n) == size), None)
        if nbytes is None:
            return Judgement(Verdict.UNSUPPORTED, "the target's license server ids are not "
                             "base-24 codes; cannot forge a well-formed unknown one")  # fmt: skip
        forged = group5(encode_b24(ctx.rng.randbytes(nbytes)))
        request = ChInstallKeyPack(license_server_id=forged, program=Program.RETAIL,
                                   product=CalProduct.W2003_DEVICE_CAL, count=1,
                                   retail_code="B" * 25)  # fmt: skip
        return _judge(await refused_with(ctx, s, request, E.UNKNOWN_LICENSE_SERVER))


@case(CASES, "CH-1", "malformed-retail-code", "ChInstallKeyPack with a retail code of 24 "
      "characters, for a license server the suite has just activated",
      ("refusal INVALID_LICENSE_CODE (4001)",), roles=CH, negative=True)  # fmt: skip
async def bad_retail(ctx: Context) -> Judgement:
    key = ctx.key()
    async with session(ctx, key) as s:
        activated = await call(ctx, s, _activate(ctx, raw_public(key)))
        assert isinstance(activated, ChActivated)
        request = ChInstallKeyPack(license_server_id=activated.license_server_id,
                                   program=Program.RETAIL, product=CalProduct.W2003_DEVICE_CAL,
                                   count=5, retail_code="BCDFG-HJKMP-QRTVW-XY234-678")  # fmt: skip
        return _judge(await refused_with(ctx, s, request, E.INVALID_LICENSE_CODE))


@case(CASES, "ACT-10", "activation-issues-chain", "ChActivate (automatic) for a fresh key",
      ("ChActivated with a chain root first whose last certificate is a license server's, "
       "not temporary, for the key",), roles=CH)  # fmt: skip
async def activation_chain(ctx: Context) -> Judgement:
    from tslic.protocol import TslicError
    from tslic.protocol.pki import cert_from_der, identity_of

    key = ctx.key()
    async with session(ctx, key) as s:
        activated = await call(ctx, s, _activate(ctx, raw_public(key)))
    assert isinstance(activated, ChActivated)
    try:
        certs = [cert_from_der(c) for c in activated.cert_chain]
        leaf = identity_of(certs[-1])
        leaf_key = leaf.public_key
    except (TslicError, IndexError) as exc:
        return Judgement(Verdict.FAIL, f"unreadable chain: {exc}")
    if str(leaf.role) != "license-server" or leaf.temporary or leaf_key != raw_public(key):
        return Judgement(Verdict.FAIL, f"leaf {leaf.name}: {leaf.role}, temporary={leaf.temporary}")
    return Judgement(Verdict.PASS, f"chain of {len(certs)}; leaf {leaf.name} for our key")


@case(CASES, "ACT-7", "ch-deactivate-without-names", "ChDeactivate (automatic) without first "
      "and last name, for a license server the suite has just activated",
      ("refusal MISSING_REQUIRED_INFO (4003)",), roles=CH, negative=True)  # fmt: skip
async def deactivate_no_names(ctx: Context) -> Judgement:
    key = ctx.key()
    async with session(ctx, key) as s:
        activated = await call(ctx, s, _activate(ctx, raw_public(key)))
        assert isinstance(activated, ChActivated)
        request = ChDeactivate(license_server_id=activated.license_server_id,
                               method=ActivationMethod.AUTOMATIC,
                               contact=ContactInfo(company="tslic", country="France"))  # fmt: skip
        return _judge(await refused_with(ctx, s, request, E.MISSING_REQUIRED_INFO))
