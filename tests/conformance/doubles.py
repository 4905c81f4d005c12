"""Targets for testing the conformance suite: one well-behaved, several deliberately broken.

Contract: `serve_double(behaviour, conversation, ...)` runs a small request/response server
on 127.0.0.1 port 0 (use with `nursery.start`; it reports "host:port"). It speaks the real
protocol through `Connection` except where `behaviour` breaks it on purpose:
- "good": correct (Error with the right code, then close);
- "bad-signature": accepts frames whose signature does not verify;
- "wrong-code": answers protocol errors with a different 1xxx code than documented;
- "hang": accepts connections and never sends a byte;
- "abrupt": resets the connection (RST) instead of sending an Error;
- "ls-2000-welcomes-2003": a Windows 2000 license server that welcomes a 2003 terminal server
  and issues it a Windows 2000 CAL;
- "ls-2003-issues-2000-cal": a 2003 license server issuing a 2000 CAL to a 2003 TS;
- "version-first": checks the protocol version before the signature (ENV-14);
- "rehello": welcomes a second Hello on a connection already in conversation (STATE-1);
- "unordered-fields": writes its Welcome's fields in reverse table order (ENV-16).
Licensing doubles answer RequestTermServCert with a chain from their own throwaway root and
IssueLicense with a license blob signed by their own key.
"""

from __future__ import annotations

import os
import random
import socket
import struct
from datetime import UTC, datetime, timedelta

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.client.conformance.crafter import Crafter
from tslic.protocol import Connection, Conversation, Direction, ErrorCode, ProtocolError
from tslic.protocol import connection as connection_module
from tslic.protocol.codec import from_wire
from tslic.protocol.domain import (
    CalProduct,
    LicenseKind,
    PeerRole,
)
from tslic.protocol.envelope import Sealed, open_envelope
from tslic.protocol.errors import RemoteProtocolError, ServiceError
from tslic.protocol.messages import Error, Goodbye, Hello, Message, Welcome
from tslic.protocol.messages.directory import DirQueryEnterprise, DirServers
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    RequestTermServCert,
    ReturnLicense,
    TermServCert,
)
from tslic.runtime.clock import Clock
from tslic.runtime.stream import MessageStream

BEHAVIOURS = (
    "good",
    "bad-signature",
    "wrong-code",
    "hang",
    "abrupt",
    "ls-2000-welcomes-2003",
    "ls-2003-issues-2000-cal",
    "rehello",
    "unordered-fields",
    "version-first",
)


def _lax_open(frame: bytes) -> Sealed:
    """open_envelope, but a signature that does not verify is let through (the bug)."""
    try:
        return open_envelope(frame)
    except RemoteProtocolError as exc:
        if exc.code is not ErrorCode.BAD_SIGNATURE:
            raise
    from tslic.protocol.codec import unpack_untrusted

    outer = unpack_untrusted(frame)
    header = unpack_untrusted(outer[1])
    version, type_, msg_id, reply_to, nonce, timestamp, body = header
    return Sealed(outer[0], version, type_, msg_id, reply_to, nonce, timestamp, body, outer[1])


class LaxConnection(Connection):
    def _accept(self, frame: bytes, now: int) -> Message:
        # open_envelope is the name connection.py imported (not an export): swap it in the
        # module's namespace for this one call.
        namespace = vars(connection_module)
        original = namespace["open_envelope"]
        namespace["open_envelope"] = _lax_open
        try:
            return super()._accept(frame, now)
        finally:
            namespace["open_envelope"] = original


class VersionFirstConnection(Connection):
    """Reads the inner header's version before verifying the signature (the bug)."""

    def _accept(self, frame: bytes, now: int) -> Message:
        from tslic.protocol.codec import unpack_untrusted

        try:
            version = unpack_untrusted(unpack_untrusted(frame)[1])[0]
        except (ProtocolError, IndexError, TypeError, KeyError):
            version = 1
        if version != 1:
            raise RemoteProtocolError("unsupported version", code=ErrorCode.UNSUPPORTED_VERSION)
        return super()._accept(frame, now)


class RehelloConnection(Connection):
    """A Hello in READY is let through (the bug): the state stays READY."""

    def _accept(self, frame: bytes, now: int) -> Message:
        try:
            return super()._accept(frame, now)
        except RemoteProtocolError as exc:
            sealed = open_envelope(frame)
            if exc.code is not ErrorCode.ILLEGAL_STATE or sealed.type != int(Hello.TYPE):
                raise
            return from_wire(Hello, sealed.body)


class Double:
    """One broken (or good) server."""

    def __init__(self, behaviour: str, conversation: Conversation, clock: Clock) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(behaviour)
        self.behaviour = behaviour
        self.conversation = conversation
        self.clock = clock
        self.key = Ed25519PrivateKey.generate()
        self.errors: list[int] = []
        from tslic.protocol.envelope import ReplayGuard

        self.guard = ReplayGuard()
        self.ls_version = 2000 if behaviour == "ls-2000-welcomes-2003" else 2003
        self._chain: tuple[bytes, ...] | None = None

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        host, port = listeners[0].socket.getsockname()[:2]
        async with trio.open_nursery() as nursery:
            task_status.started(f"{host}:{port}")
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, tcp: trio.SocketStream) -> None:
        if self.behaviour == "hang":
            try:
                while await tcp.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass
            await tcp.aclose()
            return
        cls = {
            "bad-signature": LaxConnection,
            "rehello": RehelloConnection,
            "version-first": VersionFirstConnection,
        }.get(self.behaviour, Connection)
        conn = cls(
            conversation=self.conversation,
            our_role=Direction.SERVER,
            key=self.key,
            nonce_source=lambda: os.urandom(16),
            replay_guard=self.guard,
        )
        stream = MessageStream(tcp, conn, self.clock.now)
        try:
            await self._converse(stream)
        except ProtocolError as exc:
            self.errors.append(int(exc.code))
            if self.behaviour == "abrupt":
                tcp.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                code = exc.code
                if self.behaviour == "wrong-code":
                    code = (
                        ErrorCode.BAD_ENCODING
                        if code is ErrorCode.MALFORMED_FRAME
                        else ErrorCode.MALFORMED_FRAME
                    )
                with trio.move_on_after(1):
                    await stream.send_error(code, exc.message)
        except Exception:  # ConnectionLost and friends: the peer went away
            pass
        finally:
            await stream.aclose()

    async def _converse(self, stream: MessageStream) -> None:
        with trio.fail_after(5):
            hello = await stream.receive()
        assert isinstance(hello, Hello)
        welcome = self._welcome()
        frame = stream.conn.send(welcome, now=self.clock.now())  # the state moves to READY
        if self.behaviour == "unordered-fields":
            sealed = open_envelope(frame[4:])
            body = dict(reversed(list(sealed.body.items())))
            header = [sealed.version, sealed.type, sealed.msg_id, sealed.reply_to, sealed.nonce,
                      sealed.timestamp, body]  # fmt: skip
            crafter = self._crafter()
            frame = crafter.frame(crafter.envelope(crafter.inner(0, None, header=header)))
        await stream.stream.send_all(frame)
        while True:
            request = await stream.receive()
            if isinstance(request, Goodbye):
                return
            if isinstance(request, Hello):  # only a "rehello" double gets here
                await stream.stream.send_all(self._crafter().message(self._welcome()))
                continue
            try:
                reply = self._reply(hello, request)
            except ServiceError as exc:
                reply = Error(code=int(exc.code), message=exc.message)
            await stream.send(reply)

    def _welcome(self) -> Welcome:
        licensing = self.conversation is Conversation.LICENSING
        return Welcome(
            role=PeerRole.LICENSE_SERVER if licensing else PeerRole.DIRECTORY,
            name="DOUBLE",
            version=self.ls_version if licensing else 0,
            server_time=self.clock.now(),
        )

    def _crafter(self) -> Crafter:
        """Frames written by hand, outside the connection's state (the bugs)."""
        return Crafter(key=self.key, rng=random.Random(), now=self.clock.now)

    def _reply(self, hello: Hello, request: Message) -> Message:
        if isinstance(request, DirQueryEnterprise):
            return DirServers(servers=())
        if isinstance(request, RequestTermServCert):
            return TermServCert(cert_chain=self._issue_chain(request))
        if isinstance(request, IssueLicense):
            return self._grant(hello, request)
        if isinstance(request, ReturnLicense):
            raise ServiceError("no such license", code=ErrorCode.LICENSE_NOT_FOUND)
        raise ServiceError("not supported by this double", code=ErrorCode.ACCESS_DENIED)

    def _issue_chain(self, request: RequestTermServCert) -> tuple[bytes, ...]:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from tslic.protocol import pki

        now = datetime.fromtimestamp(self.clock.now() / 1000, UTC)
        if self._chain is None:
            self._ls_cert = pki.make_temporary_license_server_cert(
                self.key, name="DOUBLE", version=self.ls_version,
                not_before=now - timedelta(days=1), not_after=now + timedelta(days=3650),
                serial=1,
            )  # fmt: skip
            self._chain = (pki.cert_to_der(self._ls_cert),)
        ts = pki.issue_terminal_server_cert(
            self.key, self._ls_cert, Ed25519PublicKey.from_public_bytes(request.public_key),
            name=request.name, version=int(request.version),
            not_before=now - timedelta(days=1), not_after=now + timedelta(days=365), serial=2,
        )  # fmt: skip
        return (*self._chain, pki.cert_to_der(ts))

    def _grant(self, hello: Hello, request: IssueLicense) -> LicenseGranted:
        from tslic.protocol.licenses import sign_license
        from tslic.protocol.messages.records import LicenseBody

        product = CalProduct.W2000_TS_CAL
        now = self.clock.now()
        body = LicenseBody(
            license_id=1, kind=LicenseKind.PERMANENT, product=product, hwid=request.hwid,
            machine=request.machine, user=request.user, client_os=request.client_os,
            mode=request.mode, issuer="DOUBLE", license_server_id="", issued_at=now,
            expires_at=now + 60 * 86_400_000,
        )  # fmt: skip
        assert self._chain is not None
        blob = sign_license(self.key, self._chain, body)
        return LicenseGranted(
            license=blob, license_id=1, kind=LicenseKind.PERMANENT, product=product,
            expires_at=now + 60 * 86_400_000,
        )  # fmt: skip
