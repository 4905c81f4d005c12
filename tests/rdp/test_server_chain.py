"""SEC-7 on the RDP side: the chain a terminal server presents in its LicenseRequest is its
own, so its last certificate must be for the key signing the LicenseRequest; an RDP client
aborts with ERR_INVALID_SERVER_CERTIFICATE otherwise (even with no trust root to check the
chain against)."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.client.rdp.client import connect
from tslic.client.rdp.store import LicenseStore
from tslic.protocol import Connection, Conversation, Direction
from tslic.protocol.clock import to_datetime
from tslic.protocol.domain import ClientOS, LicensingMode
from tslic.protocol.messages.rdp import ErrorAlert, LicenseRequest
from tslic.protocol.messages.records import ProductInfo
from tslic.protocol.pki import (
    cert_to_der,
    issue_terminal_server_cert,
    make_temporary_license_server_cert,
)
from tslic.runtime.clock import TrioClock
from tslic.runtime.stream import MessageStream

NOW = 1_051_747_200_000


def chain_for(leaf_key: Ed25519PrivateKey) -> tuple[bytes, ...]:
    when = to_datetime(NOW)
    nb, na = when - timedelta(days=1), when + timedelta(days=30)
    issuer_key = Ed25519PrivateKey.generate()
    issuer = make_temporary_license_server_cert(
        issuer_key, name="LS1", version=2003, not_before=nb, not_after=na, serial=1
    )
    leaf = issue_terminal_server_cert(
        issuer_key, issuer, leaf_key.public_key(), name="TS1", version=2003,
        not_before=nb, not_after=na, serial=2,
    )  # fmt: skip
    return cert_to_der(issuer), cert_to_der(leaf)


@pytest.mark.parametrize("own", [True, False])
async def test_client_aborts_when_the_leaf_is_not_the_signer(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, own: bool
) -> None:
    signer = Ed25519PrivateKey.generate()
    chain = chain_for(signer if own else Ed25519PrivateKey.generate())
    clock = TrioClock(NOW)
    answers: list[object] = []

    async def terminal_server(tcp: trio.SocketStream) -> None:
        conn = Connection(conversation=Conversation.RDP, our_role=Direction.SERVER, key=signer,
                          nonce_source=lambda: os.urandom(16))  # fmt: skip
        stream = MessageStream(tcp, conn, clock.now)
        await stream.send(LicenseRequest(
            server_random=bytes(32),
            product=ProductInfo(version=0x00050002, company="Microsoft Corporation",
                                product_id="A02"),
            cert_chain=chain, scopes=("microsoft.com",), mode=LicensingMode.PER_DEVICE,
        ))  # fmt: skip
        answers.append(await stream.receive())
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, terminal_server, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        outcome = await connect(f"127.0.0.1:{port}", store=LicenseStore(tmp_path / "pc"),
                                device="PC1", user="u", client_os=ClientOS.XP_PRO, clock=clock,
                                timeout=5)  # fmt: skip
        nursery.cancel_scope.cancel()
    (answer,) = answers
    if own:
        assert not isinstance(answer, ErrorAlert)  # it went on: a NewLicenseRequest
    else:
        assert isinstance(answer, ErrorAlert)
        assert answer.error_code.name == "ERR_INVALID_SERVER_CERTIFICATE"
        assert outcome.status == "aborted"
        assert "not for the key signing" in outcome.text
