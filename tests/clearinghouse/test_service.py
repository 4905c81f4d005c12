"""The Clearinghouse conversation over TCP: activation, deactivation, reactivation, installs,
claims, bad input, and state surviving a restart."""

from __future__ import annotations

import io
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from trio.testing import MockClock
from tslic.protocol import Connection, Direction
from tslic.protocol.codes import group5
from tslic.protocol.domain import ActivationMethod, CalProduct, PeerRole, Program, WindowsVersion
from tslic.protocol.errors import (
    ErrorCode,
    LocalProtocolError,
    RemoteProtocolError,
    ServiceError,
    StorageError,
)
from tslic.protocol.licenses import open_grant
from tslic.protocol.messages import Conversation, Hello, Message, Welcome
from tslic.protocol.messages.admin import ActivationAction
from tslic.protocol.messages.clearinghouse import (
    ChActivate,
    ChActivated,
    ChClaimActivation,
    ChClaimKeyPack,
    ChDeactivate,
    ChDeactivated,
    ChInstallKeyPack,
    ChKeyPack,
)
from tslic.protocol.messages.records import ContactInfo
from tslic.protocol.names import product_id_for
from tslic.protocol.pki import cert_from_der, validate_chain
from tslic.runtime.clock import ManualClock, TrioClock
from tslic.runtime.peer import PeerStream, open_peer
from tslic.runtime.service import Server
from tslic.runtime.stream import MessageStream
from tslic.server.clearinghouse import purchases
from tslic.server.clearinghouse.phone import phone_session
from tslic.server.clearinghouse.service import ClearinghouseService

START = int(datetime(2005, 3, 1, tzinfo=UTC).timestamp() * 1000)
ISSUED = re.compile(r"License Server ID: ([A-Z0-9]{5}(?:-[A-Z0-9]{5}){6})")
CONTACT = ContactInfo(first_name="Ada", last_name="Lovelace", company="Contoso", country="GB")


@asynccontextmanager
async def running(data_dir: Path) -> AsyncIterator[tuple[ClearinghouseService, str]]:
    clock = TrioClock(START)
    service = ClearinghouseService(data_dir, clock)
    server = Server(service, key=service.ch.root_key, clock=clock)
    try:
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            yield service, address
            server.shutdown()
    finally:
        service.close()


@asynccontextmanager
async def peer(
    address: str, key: Ed25519PrivateKey, name: str = "LS1"
) -> AsyncIterator[PeerStream]:
    async with open_peer(
        address,
        conversation=Conversation.CLEARINGHOUSE,
        key=key,
        clock=TrioClock(START),
        role=PeerRole.LICENSE_SERVER,
        name=name,
        version=2003,
    ) as stream:
        yield stream


def activate_msg(
    key: Ed25519PrivateKey,
    *,
    action: ActivationAction = ActivationAction.ACTIVATE,
    method: ActivationMethod = ActivationMethod.AUTOMATIC,
    name: str = "LS1",
    version: WindowsVersion = WindowsVersion.W2003,
    contact: ContactInfo = CONTACT,
    reason: str = "",
    license_server_id: str = "",
) -> ChActivate:
    return ChActivate(
        action=action,
        method=method,
        product_id="69712-640-1234567-12345",
        name=name,
        version=version,
        public_key=key.public_key().public_bytes_raw(),
        contact=contact,
        reason=reason,
        license_server_id=license_server_id,
    )


async def refused(stream: PeerStream, request: Message, code: ErrorCode) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        await stream.request(request)
    assert info.value.code is code, info.value
    return info.value


async def test_automatic_activation_then_retail_install(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    key = Ed25519PrivateKey.generate()
    async with running(tmp_path) as (service, address), peer(address, key) as s:
        assert s.welcome.cert_chain == (service.root_der,)
        reply = await s.request(activate_msg(key))
        assert isinstance(reply, ChActivated)
        root = cert_from_der(reply.cert_chain[0])
        ident = validate_chain(
            [cert_from_der(c) for c in reply.cert_chain],
            root,
            datetime(2005, 3, 2, tzinfo=UTC),
            leaf_role="license-server",
        )
        assert ident.public_key == key.public_key().public_bytes_raw()
        assert ident.license_server_id == reply.license_server_id
        assert len(reply.license_server_id) == 41
        # a retry gets the same activation back, not a second one
        again = await s.request(activate_msg(key))
        assert again == reply
        code = purchases.add_retail(
            service.ch, product=CalProduct.W2003_DEVICE_CAL, count=25, now=START
        ).retail_code
        install = ChInstallKeyPack(
            license_server_id=reply.license_server_id,
            program=Program.RETAIL,
            product=CalProduct.W2003_DEVICE_CAL,
            count=0,
            retail_code=group5(code),
        )
        kp = await s.request(install)
        assert isinstance(kp, ChKeyPack)
        assert open_grant(kp.grant, root).count == 25
        # the reply was lost (say): the retry is handed the same grant, nothing is doubled
        again = await s.request(install)
        assert isinstance(again, ChKeyPack)
        assert again.grant == kp.grant
        assert len(service.ch.db.grants()) == 1
        bad = ChInstallKeyPack(
            license_server_id=reply.license_server_id,
            program=Program.RETAIL,
            product=CalProduct.W2003_DEVICE_CAL,
            count=0,
            retail_code="XXXXX",
        )
        err = await refused(s, bad, ErrorCode.INVALID_LICENSE_CODE)
        assert "Message Number 0x13A7" in err.message
        # the conversation goes on after refusals
        assert await s.request(activate_msg(key)) == reply
        actions = [e["action"] for e in service.ch.db.events()]
        assert actions == [
            "activate",
            "activate-repeat",
            "install",
            "install-again",
            "activate-repeat",
        ]


async def test_required_information_and_methods(tmp_path: Path, autojump_clock: MockClock) -> None:
    key = Ed25519PrivateKey.generate()
    async with running(tmp_path) as (_, address), peer(address, key) as s:
        err = await refused(
            s,
            activate_msg(key, contact=ContactInfo(first_name="Ada", country="GB")),
            ErrorCode.MISSING_REQUIRED_INFO,
        )
        assert "last name, company" in err.message
        await refused(
            s, activate_msg(key, method=ActivationMethod.WEB), ErrorCode.METHOD_NOT_ALLOWED
        )
        # A name no Windows computer can have cannot even be sent (protocol/names.py).
        with pytest.raises(LocalProtocolError) as bad:
            activate_msg(key, version=WindowsVersion.W2000, name="x" * 65)
        assert "field 'name': a computer name has at most 15 characters" in bad.value.message


async def test_deactivation_and_reactivation_rules(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    key = Ed25519PrivateKey.generate()
    async with running(tmp_path) as (service, address), peer(address, key) as s:
        done = await s.request(activate_msg(key))
        assert isinstance(done, ChActivated)
        lsid = done.license_server_id
        deact = ChDeactivate(license_server_id=lsid, method=ActivationMethod.WEB, contact=CONTACT)
        err = await refused(s, deact, ErrorCode.METHOD_NOT_ALLOWED)
        assert "Web Browser" in err.message
        await refused(
            s,
            ChDeactivate(
                license_server_id=lsid, method=ActivationMethod.AUTOMATIC, contact=ContactInfo()
            ),
            ErrorCode.MISSING_REQUIRED_INFO,
        )
        ok = await s.request(
            ChDeactivate(license_server_id=lsid, method=ActivationMethod.AUTOMATIC, contact=CONTACT)
        )
        assert isinstance(ok, ChDeactivated)
        assert len(ok.confirmation_code) == 23
        status = service.status(lsid)
        assert status["state"] == "deactivated"
        assert status["cert_revoked"] is True
        assert service.ch.certificate_revoked(done.cert_chain[1])
        await refused(
            s,
            ChDeactivate(
                license_server_id=lsid, method=ActivationMethod.AUTOMATIC, contact=CONTACT
            ),
            ErrorCode.NOT_ACTIVATED,
        )
        react = activate_msg(key, action=ActivationAction.REACTIVATE, license_server_id=lsid)
        await refused(s, react, ErrorCode.REASON_REQUIRED)
        await refused(
            s,
            activate_msg(
                key,
                action=ActivationAction.REACTIVATE,
                license_server_id=lsid,
                reason="redeployed",
                method=ActivationMethod.WEB,
            ),
            ErrorCode.METHOD_NOT_ALLOWED,
        )
        unknown = activate_msg(
            key,
            action=ActivationAction.REACTIVATE,
            license_server_id="BBBBB-" * 6 + "BBBBB",
            reason="x",
        )
        await refused(s, unknown, ErrorCode.UNKNOWN_LICENSE_SERVER)
        back = await s.request(
            activate_msg(
                key,
                action=ActivationAction.REACTIVATE,
                license_server_id=lsid,
                reason="The license server has been redeployed",
            )
        )
        assert isinstance(back, ChActivated)
        assert back.license_server_id == lsid
        assert back.cert_chain[1] != done.cert_chain[1]
        assert not service.ch.certificate_revoked(back.cert_chain[1])
        assert service.status(lsid)["state"] == "reactivated"
        actions = [e["action"] for e in service.ch.db.events(lsid)]
        assert actions == ["activate", "deactivate", "reactivate"]


async def test_web_style_claim_and_phone_session(tmp_path: Path, autojump_clock: MockClock) -> None:
    key = Ed25519PrivateKey.generate()
    async with running(tmp_path) as (service, address):
        product_id = product_id_for(key.public_key().public_bytes_raw())
        answers = f"1\n{product_id}\nAda\nLovelace\nContoso\nGB\n5\n"
        out = io.StringIO()
        assert phone_session(service.ch, lambda: START, io.StringIO(answers), out) == 0
        code = ISSUED.findall(out.getvalue())[0]
        async with peer(address, key, name="PHONE-LS") as s:
            await refused(
                s,
                ChClaimActivation(
                    license_server_id_code=code[:-1] + ("B" if code[-1] != "B" else "C"),
                    public_key=key.public_key().public_bytes_raw(),
                ),
                ErrorCode.INVALID_CONFIRMATION_CODE,
            )
            done = await s.request(
                ChClaimActivation(
                    license_server_id_code=code.replace("-", ""),
                    public_key=key.public_key().public_bytes_raw(),
                )
            )
            assert isinstance(done, ChActivated)
            assert done.license_server_id == code
            assert service.status(code)["method"] == "telephone"
            thief = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
            await refused(
                s,
                ChClaimActivation(license_server_id_code=code, public_key=thief),
                ErrorCode.ALREADY_REDEEMED,
            )
            # telephone install, then the key pack code is claimed over TCP
            retail = purchases.add_retail(
                service.ch, product=CalProduct.W2003_USER_CAL, count=4, now=START
            ).retail_code
            answers = f"4\n{code}\n1\n{retail}\n3\n\n5\n"
            out = io.StringIO()
            assert phone_session(service.ch, lambda: START, io.StringIO(answers), out) == 0
            kp_code = out.getvalue().split("License key pack code: ")[1].split()[0]
            kp = await s.request(ChClaimKeyPack(license_server_id=code, keypack_code=kp_code))
            assert isinstance(kp, ChKeyPack)
            assert open_grant(kp.grant, service.ch.root_cert).count == 4
            # telephone deactivation gives a confirmation code; telephone reactivation a new code
            answers = f"3\n{code}\nAda\nLovelace\n2\n{code}\n9\n1\nAda\nLovelace\n5\n"
            out = io.StringIO()
            assert phone_session(service.ch, lambda: START, io.StringIO(answers), out) == 0
            text = out.getvalue()
            assert "Confirmation code: " in text
            assert "Please answer with a number from 1 to 4" in text
            new_code = ISSUED.findall(text)[0]
            back = await s.request(
                ChClaimActivation(
                    license_server_id_code=new_code, public_key=key.public_key().public_bytes_raw()
                )
            )
            assert isinstance(back, ChActivated)
            assert back.license_server_id == code
            assert service.status(code)["state"] == "reactivated"


async def test_phone_refusals_are_explained_and_the_call_goes_on(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    async with running(tmp_path) as (service, _):
        # ends without 5
        answers = "1\n69712-640-1234567-12345\nAda\n\n\nGB\n7\n3\nBBBBB\nAda\nLovelace\n"
        out = io.StringIO()
        assert phone_session(service.ch, lambda: START, io.StringIO(answers), out) == 2
        text = out.getvalue()
        assert "please enter last name, company. [MISSING_REQUIRED_INFO 4003]" in text
        assert "[INVALID_CONFIRMATION_CODE 4010]" in text
        assert text.rstrip().endswith("Goodbye.")


async def test_garbage_frames_get_an_error_and_the_service_stays_up(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    key = Ed25519PrivateKey.generate()
    async with running(tmp_path) as (service, address):
        host, port = address.rsplit(":", 1)
        for junk in (b"\x00\x00\x00\x05hello", b"GET / HTTP/1.1\r\n\r\n", b"\xff" * 64):
            tcp = await trio.open_tcp_stream(host, int(port))
            await tcp.send_all(junk)
            with trio.fail_after(5):
                data = await tcp.receive_some(65536)
            await tcp.aclose()
            assert data  # an Error frame came back before the close
        async with peer(address, key) as s:
            assert isinstance(await s.request(activate_msg(key)), ChActivated)
        assert len(service.ch.db.activations()) == 1


async def test_state_survives_a_restart(tmp_path: Path, autojump_clock: MockClock) -> None:
    key = Ed25519PrivateKey.generate()
    async with running(tmp_path) as (service, address), peer(address, key) as s:
        first = await s.request(activate_msg(key))
        assert isinstance(first, ChActivated)
        code = purchases.add_retail(
            service.ch, product=CalProduct.W2003_DEVICE_CAL, count=3, now=START
        ).retail_code
        install = ChInstallKeyPack(
            license_server_id=first.license_server_id,
            program=Program.RETAIL,
            product=CalProduct.W2003_DEVICE_CAL,
            count=0,
            retail_code=code,
        )
        granted = await s.request(install)
        root = service.root_der
    async with running(tmp_path) as (service, address), peer(address, key) as s:
        assert service.root_der == root
        assert await s.request(activate_msg(key)) == first
        # the redemption was kept: asking again (a lost reply) is the same grant, not a new one
        assert await s.request(install) == granted
        assert len(service.ch.db.grants()) == 1
        assert service.status(first.license_server_id)["state"] == "activated"


async def test_replayed_and_forged_frames_are_refused(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    key = Ed25519PrivateKey.generate()
    clock = TrioClock(START)

    def replay(frame: bytes) -> bytes:
        return frame

    def forge(frame: bytes) -> bytes:  # the last 64 bytes are the Ed25519 signature
        return frame[:-1] + bytes([frame[-1] ^ 1])

    async with running(tmp_path) as (service, address):
        host, port = address.rsplit(":", 1)
        for tamper, expected in (
            (replay, ErrorCode.REPLAYED_MESSAGE),
            (forge, ErrorCode.BAD_SIGNATURE),
        ):
            tcp = await trio.open_tcp_stream(host, int(port))
            conn = Connection(
                conversation=Conversation.CLEARINGHOUSE,
                our_role=Direction.CLIENT,
                key=key,
                nonce_source=lambda: os.urandom(16),
            )
            stream = MessageStream(tcp, conn, clock.now)
            await stream.send(
                Hello(
                    role=PeerRole.LICENSE_SERVER,
                    name="LS1",
                    version=2003,
                    conversation=Conversation.CLEARINGHOUSE,
                )
            )
            assert isinstance(await stream.receive(), Welcome)
            frame = conn.send(activate_msg(key), now=clock.now())
            await tcp.send_all(frame)
            assert isinstance(await stream.receive(), ChActivated)
            await tcp.send_all(tamper(frame))
            with pytest.raises(RemoteProtocolError) as info:
                await stream.receive()
            assert info.value.code is expected
            await stream.aclose()
        assert len(service.ch.db.activations()) == 1  # one activation, and still serving
        async with peer(address, key) as s:
            assert isinstance(await s.request(activate_msg(key)), ChActivated)


def test_a_damaged_database_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "clearinghouse.db").write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(StorageError) as info:
        ClearinghouseService(tmp_path, ManualClock(START))
    assert info.value.code is ErrorCode.STORAGE_ERROR
    assert "clearinghouse.db" in info.value.message
