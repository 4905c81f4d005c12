"""The server side of an RDP connection up to and through licensing, sans-IO (h11 style).

Contract:
- `RdpServerConnection(server_key=...)`: `receive_data(bytes)` buffers (b"" = EOF),
  `next_event()` returns one event, `NEED_DATA` or `PEER_CLOSED`, and `send(event)` returns
  the bytes to write. The caller owns the socket, the clock and the randomness (the RSA key
  and the server random are passed in).
- Phases are the tables `RECEIVE` and `SEND` below, keyed by (state, event type); anything
  else raises `LocalProtocolError` (send) or `RemoteProtocolError` (receive, ILLEGAL_STATE),
  and the connection moves to ERROR, where every later call raises again.
- Every received PDU is bounded by its TPKT length (at most 65535 bytes); at most
  `MAX_BUFFER` bytes are buffered. Parse errors are `RemoteProtocolError`s with codes from
  the project's taxonomy (errors.py); nothing else escapes `next_event`.
- Standard RDP Security (MS-RDPBCGR §5.3): after `AcceptSettings` with a level above NONE the
  Security Exchange is decrypted with the server key, session keys derived, and every later
  PDU is MAC-checked and decrypted; sent PDUs are encrypted (licensing PDUs only if the client
  set 0x0200 in its Security Exchange, as xfreerdp does; rdesktop never does).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import NoReturn

from ..connection import NEED_DATA, PEER_CLOSED, Sentinel
from ..errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from . import mcs, x224
from ._wire import local
from .events import (
    AcceptSettings,
    ClientConnect,
    ClientInfoReceived,
    DataReceived,
    LicensingReceived,
    SecurityEstablished,
    SendErrorInfo,
    SendLicensing,
    SendSharePdu,
)
from .gcc import IO_CHANNEL, ClientSettings, ServerSettings
from .info import ClientInfo, SetErrorInfo
from .keys import (
    ENCRYPTION_METHOD_40BIT,
    ENCRYPTION_METHOD_56BIT,
    ENCRYPTION_METHOD_128BIT,
    RsaKey,
    decrypt_client_random,
    derive_session_keys,
    proprietary_certificate,
)
from .licensing import decode_licensing, encode_licensing
from .security import (
    EncryptionLevel,
    SecFlags,
    SecureChannel,
    SecurityExchange,
    SecurityHeader,
    basic_header,
    split_security_header,
)

MAX_BUFFER = 2 * x224.MAX_TPKT
SERVER_CHANNEL = 1002  # the initiator of server Send Data Indications (§4.1.11)


class State(enum.Enum):
    WAIT_CONNECTION_REQUEST = "wait_connection_request"
    SEND_CONNECTION_CONFIRM = "send_connection_confirm"
    WAIT_CONNECT_INITIAL = "wait_connect_initial"
    SEND_CONNECT_RESPONSE = "send_connect_response"
    WAIT_ERECT_DOMAIN = "wait_erect_domain"
    WAIT_ATTACH_USER = "wait_attach_user"
    SEND_ATTACH_CONFIRM = "send_attach_confirm"
    CHANNEL_JOIN = "channel_join"
    SEND_JOIN_CONFIRM = "send_join_confirm"
    WAIT_CLIENT_INFO = "wait_client_info"
    LICENSING = "licensing"
    SESSION = "session"
    CLOSED = "closed"
    ERROR = "error"


S = State
RECEIVE: dict[tuple[State, type], State] = {
    (S.WAIT_CONNECTION_REQUEST, x224.ConnectionRequest): S.SEND_CONNECTION_CONFIRM,
    (S.WAIT_CONNECT_INITIAL, ClientConnect): S.SEND_CONNECT_RESPONSE,
    (S.WAIT_ERECT_DOMAIN, mcs.ErectDomainRequest): S.WAIT_ATTACH_USER,
    (S.WAIT_ATTACH_USER, mcs.AttachUserRequest): S.SEND_ATTACH_CONFIRM,
    (S.CHANNEL_JOIN, mcs.ChannelJoinRequest): S.SEND_JOIN_CONFIRM,
    (S.CHANNEL_JOIN, SecurityEstablished): S.WAIT_CLIENT_INFO,
    (S.CHANNEL_JOIN, ClientInfoReceived): S.LICENSING,  # no RDP encryption (TLS)
    (S.WAIT_CLIENT_INFO, ClientInfoReceived): S.LICENSING,
    (S.LICENSING, LicensingReceived): S.LICENSING,
    (S.LICENSING, DataReceived): S.LICENSING,
    (S.SESSION, DataReceived): S.SESSION,
}
SEND: dict[tuple[State, type], State] = {
    (S.SEND_CONNECTION_CONFIRM, x224.ConnectionConfirm): S.WAIT_CONNECT_INITIAL,
    (S.SEND_CONNECTION_CONFIRM, x224.NegotiationFailure): S.CLOSED,
    (S.SEND_CONNECT_RESPONSE, AcceptSettings): S.WAIT_ERECT_DOMAIN,
    (S.SEND_ATTACH_CONFIRM, mcs.AttachUserConfirm): S.CHANNEL_JOIN,
    (S.SEND_JOIN_CONFIRM, mcs.ChannelJoinConfirm): S.CHANNEL_JOIN,
    (S.LICENSING, SendLicensing): S.LICENSING,
    (S.LICENSING, SendErrorInfo): S.LICENSING,
    (S.LICENSING, SendSharePdu): S.SESSION,  # the Demand Active ends licensing
    (S.SESSION, SendSharePdu): S.SESSION,
    (S.SESSION, SendErrorInfo): S.SESSION,
}
# A Disconnect Provider Ultimatum may be sent or received in any open state.
_OPEN = [s for s in State if s not in (S.CLOSED, S.ERROR)]
for _state in _OPEN:
    RECEIVE[(_state, mcs.DisconnectProviderUltimatum)] = S.CLOSED
    SEND[(_state, mcs.DisconnectProviderUltimatum)] = S.CLOSED

METHOD_PREFERENCE = (ENCRYPTION_METHOD_128BIT, ENCRYPTION_METHOD_56BIT, ENCRYPTION_METHOD_40BIT)


class RdpServerConnection:
    """One RDP connection, server role. See the module docstring for the contract."""

    def __init__(self, *, server_key: RsaKey) -> None:
        self.state = S.WAIT_CONNECTION_REQUEST
        self.server_key = server_key
        self._buf = bytearray()
        self._eof = False
        self.request: x224.ConnectionRequest | None = None
        self.client_settings: ClientSettings | None = None
        self.server_settings: ServerSettings | None = None
        self.secure: SecureChannel | None = None
        self.exchange_flags = 0
        self.user_channel = 0
        self.error: RemoteProtocolError | LocalProtocolError | None = None

    # ---- receiving -------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer received bytes; `b""` means the peer closed its side."""
        if not data:
            self._eof = True
            return
        if len(self._buf) + len(data) > MAX_BUFFER:
            self._fail(
                RemoteProtocolError(
                    f"RDP: more than {MAX_BUFFER} bytes buffered", code=ErrorCode.FRAME_TOO_LARGE
                )
            )
        self._buf += data

    def next_event(self) -> object | Sentinel:
        """The next received event, `NEED_DATA` or `PEER_CLOSED`.

        Raises:
            RemoteProtocolError: the client sent something malformed or out of order.
        """
        if self.error is not None:
            raise self.error
        try:
            length = x224.tpkt_length(self._buf)
            if length is None or len(self._buf) < length:
                if self._eof:
                    if self._buf:
                        raise RemoteProtocolError(
                            "RDP: the connection closed inside a PDU",
                            code=ErrorCode.MALFORMED_FRAME,
                        )
                    return PEER_CLOSED
                return NEED_DATA
            frame = bytes(self._buf[:length])
            del self._buf[:length]
            event = self._decode(frame)
            self._transition(RECEIVE, event, remote=True)
            return event
        except LocalProtocolError as exc:
            self._fail(RemoteProtocolError(exc.message, code=exc.code))
        except RemoteProtocolError as exc:
            self._fail(exc)

    def _fail(self, exc: RemoteProtocolError) -> NoReturn:
        self.state = S.ERROR
        self.error = exc
        raise exc

    def _transition(
        self, table: dict[tuple[State, type], State], event: object, remote: bool
    ) -> None:
        key = (self.state, type(event))
        if key not in table:
            message = f"RDP: {type(event).__name__} is not allowed in state {self.state.value}"
            if remote:
                raise RemoteProtocolError(message, code=ErrorCode.ILLEGAL_STATE)
            raise LocalProtocolError(message, code=ErrorCode.ILLEGAL_STATE)
        self.state = table[key]

    def _decode(self, frame: bytes) -> object:
        if not x224.is_data(frame):
            request = x224.ConnectionRequest.parse(frame)
            if self.state is S.WAIT_CONNECTION_REQUEST:
                self.request = request
            return request
        payload = x224.unwrap_data(frame)
        if payload[:2] == mcs.CONNECT_INITIAL_TAG:
            ci = mcs.ConnectInitial.parse(payload)
            self.client_settings = ClientSettings.parse(ci.user_data)
            return ClientConnect(mcs=ci, settings=self.client_settings)
        pdu = mcs.parse_domain_pdu(payload)
        if not isinstance(pdu, mcs.SendData):
            return pdu
        if pdu.indication or pdu.initiator != self.user_channel:
            raise RemoteProtocolError(
                f"RDP: Send Data from initiator {pdu.initiator} (expected {self.user_channel})",
                code=ErrorCode.WRONG_SENDER,
            )
        return self._slow_path(pdu.channel_id, pdu.data)

    def _slow_path(self, channel: int, data: bytes) -> object:
        settings = self.server_settings
        standard = settings is not None and settings.encryption_method != 0
        before_licensing_end = self.state in (S.CHANNEL_JOIN, S.WAIT_CLIENT_INFO, S.LICENSING)
        if not standard and not before_licensing_end:
            return DataReceived(channel_id=channel, flags=0, data=data)
        header, rest = split_security_header(data)
        if header.flags & SecFlags.EXCHANGE_PKT:
            return self._security_exchange(header, rest)
        encrypted = bool(header.flags & SecFlags.ENCRYPT)
        if encrypted:
            if self.secure is None or header.signature is None:
                raise RemoteProtocolError(
                    "RDP: an encrypted PDU before the Security Exchange",
                    code=ErrorCode.ILLEGAL_STATE,
                )
            rest = self.secure.unprotect(header.flags, header.signature, rest)
        elif standard and not header.flags & SecFlags.LICENSE_PKT:
            # only licensing PDUs may travel in clear under Standard Security (§5.3.6)
            raise RemoteProtocolError(
                "RDP: an unencrypted PDU under Standard RDP Security",
                code=ErrorCode.INVALID_FIELD,
            )
        if header.flags & SecFlags.INFO_PKT:
            return ClientInfoReceived(info=ClientInfo.parse(rest), flags=header.flags)
        if header.flags & SecFlags.LICENSE_PKT:
            message, preamble = decode_licensing(rest)
            return LicensingReceived(message=message, preamble_flags=preamble, encrypted=encrypted)
        return DataReceived(channel_id=channel, flags=header.flags, data=rest)

    def _security_exchange(self, header: SecurityHeader, rest: bytes) -> SecurityEstablished:
        settings = self.server_settings
        if settings is None or not settings.encryption_method or self.secure is not None:
            raise RemoteProtocolError(
                "RDP: unexpected Security Exchange PDU", code=ErrorCode.ILLEGAL_STATE
            )
        exchange = SecurityExchange.parse(header, rest)
        client_random = decrypt_client_random(exchange.encrypted_client_random, self.server_key)
        keys = derive_session_keys(
            client_random, settings.server_random, settings.encryption_method
        )
        self.secure = SecureChannel(keys)
        self.exchange_flags = header.flags
        return SecurityEstablished(client_random=client_random, flags=header.flags)

    # ---- sending ---------------------------------------------------------------------

    def send(self, event: object) -> bytes:
        """The bytes that carry `event` to the client.

        Raises:
            LocalProtocolError: the event is not allowed now or is invalid.
        """
        if self.error is not None:
            raise self.error
        key = (self.state, type(event))
        if key not in SEND:
            self._transition(SEND, event, remote=False)
        data = self._encode(event)
        self.state = SEND[key]
        return data

    def _encode(self, event: object) -> bytes:
        if isinstance(event, x224.ConnectionConfirm | x224.NegotiationFailure):
            return event.build()
        if isinstance(event, AcceptSettings):
            return x224.wrap_data(self._connect_response(event))
        if isinstance(event, mcs.AttachUserConfirm):
            if event.initiator is None and event.result == 0:
                event = dataclasses.replace(event, initiator=self.user_channel)
            return x224.wrap_data(event.build())
        if isinstance(event, mcs.ChannelJoinConfirm):
            return x224.wrap_data(event.build())
        if isinstance(event, mcs.DisconnectProviderUltimatum):
            return x224.wrap_data(event.build())
        if isinstance(event, SendLicensing):
            body = encode_licensing(event.message, event.preamble_flags)
            flags = SecFlags.LICENSE_PKT
            encrypt = self.secure is not None and bool(
                self.exchange_flags & SecFlags.LICENSE_ENCRYPT
            )
            if encrypt:
                flags |= SecFlags.LICENSE_ENCRYPT
            return self._indication(flags, body, encrypt=encrypt)
        if isinstance(event, SendErrorInfo):
            body = SetErrorInfo(error_info=event.error_info).build(SERVER_CHANNEL)
            if self.secure is None:  # TLS: no security header on a non-licensing PDU
                return self._send_data(body)
            return self._indication(0, body, encrypt=True)
        if isinstance(event, SendSharePdu):
            if self.secure is None:  # TLS or level NONE: no security header (§5.4)
                return self._send_data(event.pdu)
            return self._indication(0, event.pdu, encrypt=True)
        raise local("RDP send", f"cannot send {type(event).__name__}")

    def _indication(self, flags: int, body: bytes, *, encrypt: bool) -> bytes:
        settings = self.server_settings
        # at ENCRYPTION_LEVEL_LOW only client-to-server traffic is encrypted (§5.3.1)
        server_encrypts = settings is not None and settings.encryption_level > EncryptionLevel.LOW
        if encrypt and server_encrypts and self.secure is not None:
            return self._send_data(self.secure.protect(flags, body))
        return self._send_data(basic_header(flags) + body)

    def _send_data(self, data: bytes) -> bytes:
        pdu = mcs.SendData(
            initiator=SERVER_CHANNEL, channel_id=IO_CHANNEL, data=data, indication=True
        )
        return x224.wrap_data(pdu.build())

    def _connect_response(self, event: AcceptSettings) -> bytes:
        client = self.client_settings
        assert client is not None  # the SEND table only allows this after ClientConnect
        channels = client.network.channels
        # rdesktop numbers static channels 1004, 1005, ... in request order; the user
        # channel follows them (1007 with three channels, as in the §4.1 example)
        channel_ids = tuple(IO_CHANNEL + 1 + i for i in range(len(channels)))
        self.user_channel = IO_CHANNEL + len(channels) + 1
        method = 0
        certificate = b""
        if event.encryption_level == EncryptionLevel.FIPS:
            raise local("AcceptSettings", "FIPS encryption (3DES) is not implemented")
        if event.encryption_level != EncryptionLevel.NONE:
            offered = client.security.encryption_methods
            method = next((m for m in METHOD_PREFERENCE if offered & m), 0)
            if not method:
                raise local("AcceptSettings", f"no common encryption method in 0x{offered:x}")
            certificate = proprietary_certificate(self.server_key)
        requested = self.request.requested_protocols if self.request else None
        self.server_settings = ServerSettings(
            client_requested_protocols=requested if requested is not None else 0,
            encryption_method=method,
            encryption_level=int(event.encryption_level),
            server_random=event.server_random if method else b"",
            server_certificate=certificate,
            channel_ids=channel_ids,
        )
        return mcs.ConnectResponse(user_data=self.server_settings.build()).build()


__all__ = ["NEED_DATA", "PEER_CLOSED", "RdpServerConnection", "Sentinel", "State"]
