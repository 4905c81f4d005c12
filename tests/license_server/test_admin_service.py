"""The admin conversation: credential, activation states and methods, key pack rules."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from trio.testing import MockClock
from tslic.protocol.domain import (
    ActivationMethod,
    ActivationState,
    CalProduct,
    LicenseKind,
    Program,
)
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.messages.admin import (
    ActivationAction,
    AdminActivate,
    AdminActivationStep,
    AdminCompleteActivation,
    AdminGetStatus,
    AdminInstallKeyPack,
    AdminKeyPackInstalled,
    AdminKeyPacks,
    AdminLicenses,
    AdminListKeyPacks,
    AdminListLicenses,
    AdminSetProperties,
    AdminStatus,
)
from tslic.protocol.messages.records import ContactInfo, ServerStatus
from tslic.server.clearinghouse.installation import Purchase, install, install_by_hand
from tslic.server.license_server.daemon import LicenseServer

from tests.license_server import harness as h

A, M = ActivationAction, ActivationMethod


async def refused(coro: Awaitable[object], code: ErrorCode) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        await coro
    assert info.value.code is code, info.value
    return info.value


async def status(lab: h.Lab, ls: LicenseServer) -> ServerStatus:
    async with lab.admin(ls) as adm:
        reply = await adm.request(AdminGetStatus())
    assert isinstance(reply, AdminStatus)
    return reply.status


async def test_admin_needs_the_credential_created_at_setup(
    lab: h.Lab, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    ls = await lab.start_ls(lab.config("LS3", 2003))
    assert (ls.admin_key_path.stat().st_mode & 0o777) == 0o600
    with caplog.at_level(logging.INFO), pytest.raises(ServiceError) as info:
        async with lab.admin(ls, key=Ed25519PrivateKey.generate()):
            pass
    assert info.value.code is ErrorCode.ACCESS_DENIED
    assert any(getattr(r, "event_id", None) == 5003 for r in caplog.records)
    st = await status(lab, ls)
    assert (st.activation, st.certificate_temporary) == (ActivationState.UNACTIVATED, True)


async def test_automatic_activation_deactivation_reactivation(
    lab: h.Lab, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    ls = await lab.start_ls(lab.config("LS3", 2003))
    async with lab.admin(ls) as adm:
        err = await refused(
            adm.request(AdminActivate(action=A.ACTIVATE, method=M.AUTOMATIC)),
            ErrorCode.MISSING_REQUIRED_INFO,
        )
        assert "first name" in err.message
        await adm.request(AdminSetProperties(contact=h.CONTACT, method=M.AUTOMATIC))
        with caplog.at_level(logging.INFO):
            done = await adm.request(AdminActivate(action=A.ACTIVATE, method=M.AUTOMATIC))
        assert isinstance(done, AdminStatus)
        assert done.status.activation is ActivationState.ACTIVATED
        assert not done.status.certificate_temporary
        assert done.status.license_server_id
        assert any(getattr(r, "event_id", None) == 4 for r in caplog.records)
        await refused(
            adm.request(AdminActivate(action=A.DEACTIVATE, method=M.WEB)),
            ErrorCode.METHOD_NOT_ALLOWED,
        )
        off = await adm.request(AdminActivate(action=A.DEACTIVATE, method=M.AUTOMATIC))
        assert isinstance(off, AdminStatus)
        assert off.status.activation is ActivationState.DEACTIVATED
        await refused(
            adm.request(AdminActivate(action=A.REACTIVATE, method=M.AUTOMATIC)),
            ErrorCode.REASON_REQUIRED,
        )
    # Deactivated: temporary licenses only, and no key pack installation.
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    dev = h.Device("PC")
    async with ts.connect(ls) as s:
        await dev.connect(s)
        await dev.logon(s)
        assert (await dev.connect(s)).kind is LicenseKind.TEMPORARY
    await refused(lab.install(ls, CalProduct.W2003_DEVICE_CAL, 1), ErrorCode.NOT_ACTIVATED)
    async with lab.admin(ls) as adm:
        again = await adm.request(
            AdminActivate(action=A.REACTIVATE, method=M.AUTOMATIC, reason="certificate damaged")
        )
        assert isinstance(again, AdminStatus)
    assert again.status.activation is ActivationState.REACTIVATED


async def test_web_activation_and_telephone_deactivation_by_codes(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await lab.start_ls(lab.config("LS3", 2003))
    async with lab.admin(ls) as adm:
        await adm.request(AdminSetProperties(contact=h.CONTACT, method=M.WEB))
        step = await adm.request(AdminActivate(action=A.ACTIVATE, method=M.WEB))
        assert isinstance(step, AdminActivationStep)
        assert step.product_id == ls.activation.product_id
        assert step.request_code == ""  # the web form asks for the Product ID only
        assert "/activate page" in step.instructions
        assert "microsoft.com" not in step.instructions
        # The operator takes the Product ID to the Clearinghouse web page...
        assert lab.ch is not None
        code = lab.ch.ch.request_activation(
            method=M.WEB, product_id=step.product_id, contact=h.CONTACT, now=lab.clock.now()
        )
        await refused(
            adm.request(AdminCompleteActivation(action=A.ACTIVATE, code="BCDFG-" * 6 + "BCDFG")),
            ErrorCode.INVALID_CONFIRMATION_CODE,
        )
        done = await adm.request(AdminCompleteActivation(action=A.ACTIVATE, code=code))
        assert isinstance(done, AdminStatus)
        assert done.status.activation is ActivationState.ACTIVATED
        step = await adm.request(AdminActivate(action=A.DEACTIVATE, method=M.TELEPHONE))
        assert isinstance(step, AdminActivationStep)
        assert step.request_code == done.status.license_server_id
        assert lab.ch is not None
        confirmation = lab.ch.ch.deactivate(
            license_server_id=step.request_code,
            method=M.TELEPHONE,
            contact=h.CONTACT,
            now=lab.clock.now(),
        )
        typo = "B" + confirmation[1:] if confirmation[0] != "B" else "C" + confirmation[1:]
        await refused(
            adm.request(AdminCompleteActivation(action=A.DEACTIVATE, code=typo)),
            ErrorCode.INVALID_CONFIRMATION_CODE,
        )
        off = await adm.request(AdminCompleteActivation(action=A.DEACTIVATE, code=confirmation))
        assert isinstance(off, AdminStatus)
    assert off.status.activation is ActivationState.DEACTIVATED
    # a deactivated server refusing an install asks for reactivation, not activation
    err = await refused(lab.install(ls, CalProduct.W2003_DEVICE_CAL, 1), ErrorCode.NOT_ACTIVATED)
    assert "reactivate it before installing" in err.message


async def test_2000_server_refuses_2003_packs_with_0x13a7_and_event_41(
    lab: h.Lab, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    ls = await lab.start_ls(lab.config("LS2K", 2000))
    await lab.activate(ls)
    assert lab.ch is not None
    before = len(lab.ch.ch.db.grants())
    with caplog.at_level(logging.INFO):
        err = await refused(
            lab.install(ls, CalProduct.W2003_DEVICE_CAL, 5), ErrorCode.KEYPACK_NOT_SUPPORTED
        )
    assert err.message.startswith(
        "Licensing Wizard was unable to install the client license key pack. Please verify"
        " your entry and try this operation again."
    )
    assert "Message Number 0x13A7" in err.message
    assert err.detail["event_id"] == "41"
    assert len(lab.ch.ch.db.grants()) == before  # refused before the Clearinghouse was asked
    logged = [r for r in caplog.records if getattr(r, "event_id", None) == 41]
    assert (
        "Missing Policy module registry entry for product Microsoft Corporation, company 004"
        in vars(logged[0])["event_text"]
    )
    # A Windows 2000 pack installs.
    done = await lab.install(ls, CalProduct.W2000_TS_CAL, 5)
    assert isinstance(done, AdminKeyPackInstalled)
    assert done.keypack.available == 5


async def test_install_programs_codes_and_reports(lab: h.Lab, autojump_clock: MockClock) -> None:
    ls = await lab.start_ls(lab.config("LS3", 2003))
    await lab.activate(ls)
    async with lab.admin(ls) as adm:
        bad = AdminInstallKeyPack(
            program=Program.RETAIL, product=CalProduct.W2003_DEVICE_CAL, count=1,
            retail_code="BCDFG-HJKMP-QRTVW-XY234-6789B",
        )  # fmt: skip
        err = await refused(adm.request(bad), ErrorCode.INVALID_LICENSE_CODE)
        assert "0x13A7" in err.message
        # A key pack code from the web/telephone install, typed in.
        assert lab.ch is not None
        code, _ = install_by_hand(
            lab.ch.ch,
            license_server_id=ls.activation.license_server_id,
            purchase=Purchase(
                program=Program.RETAIL,
                product=CalProduct.W2000_TS_CAL,
                count=3,
                retail_code=lab.retail_code(CalProduct.W2000_TS_CAL, 3),
            ),
            now=lab.clock.now(),
            method=M.TELEPHONE,
        )
        by_code = AdminInstallKeyPack(
            program=Program.RETAIL, product=CalProduct.W2000_TS_CAL, count=0, keypack_code=code
        )
        done = await adm.request(by_code)
        assert isinstance(done, AdminKeyPackInstalled)
        assert done.keypack.total == 3
        # the same code again installs nothing: the key pack already holding the grant
        again = await adm.request(by_code)
        assert isinstance(again, AdminKeyPackInstalled)
        assert (again.keypack, again.already_installed) == (done.keypack, True)
        packs = await adm.request(AdminListKeyPacks())
        assert isinstance(packs, AdminKeyPacks)
        assert [k.total for k in packs.keypacks if k.product is CalProduct.W2000_TS_CAL] == [3]
    ts = h.TerminalServerPeer(lab, "TS2K", 2000)
    await ts.enrol(ls)
    async with ts.connect(ls) as s:
        dev = h.Device("HOME")
        await dev.connect(s)
        await dev.logon(s)
        await dev.connect(s)
    async with lab.admin(ls) as adm:
        report = await adm.request(AdminListLicenses(since=0, until=0))
        later = await adm.request(AdminListLicenses(since=lab.clock.now() + 1))
    assert isinstance(report, AdminLicenses)
    assert isinstance(later, AdminLicenses)
    kinds = sorted((x.kind, x.machine) for x in report.licenses)
    assert kinds == [(LicenseKind.PERMANENT, "HOME"), (LicenseKind.TEMPORARY, "HOME")]
    assert later.licenses == ()


async def test_restart_keeps_everything(lab: h.Lab, autojump_clock: MockClock) -> None:
    cfg = lab.config("LS3", 2003)
    ls = await lab.start_ls(cfg)
    await lab.activate(ls)
    await lab.install(ls, CalProduct.W2003_DEVICE_CAL, 4)
    async with lab.admin(ls) as adm:
        from tslic.protocol.messages.admin import AdminSetPolicy

        await adm.request(AdminSetPolicy(prevent_upgrade=True, add_members=("TS1",)))
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    dev = h.Device("PC")
    async with ts.connect(ls) as s:
        await dev.connect(s)
        await dev.logon(s)
        first = await dev.connect(s)
    before = await status(lab, ls)
    ls.shutdown()
    await trio.sleep(10)
    again = await lab.start_ls(cfg)
    after = await status(lab, again)
    # Everything kept; the member added before the restart is enforced from it on (SEC-14).
    assert before.security_group_members == ()
    assert after == dataclasses.replace(before, security_group_members=("TS1",))
    assert after.contact == ContactInfo(**vars_of(h.CONTACT))
    assert after.prevent_upgrade
    assert after.security_group_members == ("TS1",)  # read at this start (SEC-14)
    async with ts.connect(again) as s:  # its certificate is still known
        same = await dev.connect(s)
    assert (same.license_id, same.expires_at) == (first.license_id, first.expires_at)
    async with lab.admin(again) as adm:
        report = await adm.request(AdminListLicenses())
        assert isinstance(report, AdminLicenses)
    assert len(report.licenses) == 2


def vars_of(contact: ContactInfo) -> dict[str, str]:
    return {
        f: getattr(contact, f) for f in ("first_name", "last_name", "company", "country", "email")
    }


async def test_telephone_reactivation_by_code(lab: h.Lab, autojump_clock: MockClock) -> None:
    ls = await lab.start_ls(lab.config("LS3", 2003))
    await lab.activate(ls)
    old_chain = ls.activation.chain
    async with lab.admin(ls) as adm:
        await refused(
            adm.request(AdminActivate(action=A.REACTIVATE, method=M.TELEPHONE)),
            ErrorCode.REASON_REQUIRED,
        )
        step = await adm.request(
            AdminActivate(action=A.REACTIVATE, method=M.TELEPHONE, reason="redeployed")
        )
        assert isinstance(step, AdminActivationStep)
        # The telephone operator reactivates under the same License Server ID...
        assert lab.ch is not None
        code = lab.ch.ch.request_activation(
            method=M.TELEPHONE, product_id=step.product_id, contact=h.CONTACT,
            now=lab.clock.now(), reactivate_id=ls.activation.license_server_id,
            reason="redeployed",
        )  # fmt: skip
        done = await adm.request(AdminCompleteActivation(action=A.REACTIVATE, code=code))
        assert isinstance(done, AdminStatus)
    assert done.status.activation is ActivationState.REACTIVATED
    assert ls.activation.chain != old_chain


async def test_a_lost_clearinghouse_reply_is_recovered_without_doubling(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    """The Clearinghouse committed a retail redemption but its reply never arrived."""
    ls = await lab.start_ls(lab.config("LS3", 2003))
    await lab.activate(ls)
    product = CalProduct.W2003_DEVICE_CAL
    code = lab.retail_code(product, 10)
    # what the Clearinghouse did for the request whose reply was lost
    assert lab.ch is not None
    lost, _ = install(
        lab.ch.ch,
        license_server_id=ls.activation.license_server_id,
        purchase=Purchase(program=Program.RETAIL, product=product, count=10, retail_code=code),
        now=lab.clock.now(),
    )
    request = AdminInstallKeyPack(
        program=Program.RETAIL, product=product, count=10, retail_code=code
    )
    async with lab.admin(ls) as adm:
        first = await adm.request(request)  # the administrator tries again
        assert isinstance(first, AdminKeyPackInstalled)
        assert (first.keypack.total, first.keypack.available) == (10, 10)
        second = await adm.request(request)  # and once more: nothing is doubled
        assert isinstance(second, AdminKeyPackInstalled)
        assert (second.keypack, second.already_installed) == (first.keypack, True)
        assert not first.already_installed
        packs = await adm.request(AdminListKeyPacks())
    assert isinstance(packs, AdminKeyPacks)
    mine = [k for k in packs.keypacks if k.product is product]
    assert [k.total for k in mine] == [10]
    assert lab.ch is not None
    assert len(lab.ch.ch.db.grants()) == 1
    assert lab.ch.ch.db.grants()[0]["grant_id"] == lost.grant_id
