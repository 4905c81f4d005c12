"""The generator's floor: the bare CPU cost of signing a request and verifying its reply.

Contract: `bare_cost_per_request(n, issuance=...)` runs `protocol.Connection` send and
receive for `n` request/reply pairs without any I/O and returns the CPU seconds the client
side spends per pair (sign the request, verify and decode the reply): MarkLicense and
LicenseMarked (the signed echo's pair) or IssueLicense and a LicenseGranted that carries a
real temporary license of the bench license server's shape (the load runs' pair).
bench/load_vs_baseline.py divides the generator's CPU per request by it. A benchmark
helper: figures, never assertions.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Connection, Conversation, Direction, Message
from tslic.protocol.domain import CalProduct, ClientOS, LicenseKind, LicensingMode, PeerRole
from tslic.protocol.licenses import sign_license
from tslic.protocol.messages import Hello, Welcome
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    LicenseMarked,
    MarkLicense,
)
from tslic.protocol.messages.records import LicenseBody
from tslic.protocol.pki import cert_to_der, make_temporary_license_server_cert


def _connection_pair() -> tuple[Connection, Connection, int]:
    """A client and a server `Connection` past Hello/Welcome, wired by hand (no I/O)."""
    ck, sk = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    client = Connection(
        conversation=Conversation.LICENSING,
        our_role=Direction.CLIENT,
        key=ck,
        nonce_source=lambda: os.urandom(16),
    )
    server = Connection(
        conversation=Conversation.LICENSING,
        our_role=Direction.SERVER,
        key=sk,
        nonce_source=lambda: os.urandom(16),
    )
    now = int(time.time() * 1000)
    hello = Hello(
        role=PeerRole.TERMINAL_SERVER, name="B", version=2003, conversation=Conversation.LICENSING
    )
    server.receive_data(client.send(hello, now=now))
    server.next_event(now=now)
    client.receive_data(
        server.send(Welcome(role=PeerRole.LICENSE_SERVER, name="S", version=2003), now=now)
    )
    client.next_event(now=now)
    return client, server, now


def _temporary_license(now: int) -> bytes:
    """A 90-day temporary license as the bench's unactivated license server signs it (its
    one-certificate temporary chain), so the bare reply has the real reply's size."""
    key = Ed25519PrivateKey.generate()
    start = datetime.fromtimestamp(now / 1000, UTC)
    cert = make_temporary_license_server_cert(
        key,
        name="BENCHLS",
        version=2003,
        not_before=start - timedelta(days=1),
        not_after=start + timedelta(days=365 * 30),
        serial=1,
    )
    body = LicenseBody(
        license_id=1,
        kind=LicenseKind.TEMPORARY,
        product=CalProduct.W2003_DEVICE_CAL,
        hwid=bytes(32),
        machine="DEV00000001",
        user="user0001",
        client_os=ClientOS.XP_PRO,
        mode=LicensingMode.PER_DEVICE,
        issuer="BENCHLS",
        license_server_id="",
        issued_at=now,
        expires_at=now + 90 * 86_400_000,
    )
    return sign_license(key, (cert_to_der(cert),), body)


def bare_cost_per_request(n: int = 2000, *, issuance: bool = False) -> float:
    """CPU seconds to sign one request and verify one reply, `protocol.Connection` send and
    receive without I/O: the generator's floor. `issuance=False`: MarkLicense and its
    LicenseMarked (the signed echo's pair); `issuance=True`: IssueLicense and a
    LicenseGranted carrying a real temporary license (the pair of the runs below)."""
    client, server, now = _connection_pair()
    license = _temporary_license(now)
    spent = 0.0
    for i in range(n):
        request: Message
        reply: Message
        if issuance:
            request = IssueLicense(
                hwid=os.urandom(32),
                machine=f"DEV{i:08d}",
                user="user0001",
                client_os=ClientOS.XP_PRO,
                mode=LicensingMode.PER_DEVICE,
            )
            reply = LicenseGranted(
                license=license,
                license_id=i + 1,
                kind=LicenseKind.TEMPORARY,
                product=CalProduct.W2003_DEVICE_CAL,
                expires_at=now + 90 * 86_400_000,
                upgraded=False,
            )
        else:
            request = MarkLicense(license_id=i, hwid=bytes(32))
            reply = LicenseMarked(license_id=i, validated=True)
        t0 = time.process_time()
        frame = client.send(request, now=now)
        spent += time.process_time() - t0
        server.receive_data(frame)
        server.next_event(now=now)
        answer = server.send(reply, now=now)
        t0 = time.process_time()
        client.receive_data(answer)
        client.next_event(now=now)
        spent += time.process_time() - t0
    return spent / n
