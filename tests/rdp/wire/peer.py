"""A minimal sans-IO RDP client for tests: builds the client side of the connection sequence
with the codecs of tslic.protocol.rdp and reads the server's answers.

It is test scaffolding (deterministic randoms passed in), not a product client.
"""

from __future__ import annotations

from tslic.protocol.rdp import mcs, x224
from tslic.protocol.rdp.gcc import (
    ChannelDef,
    ClientCoreData,
    ClientNetworkData,
    ClientSecurityData,
    ClientSettings,
    ServerSettings,
)
from tslic.protocol.rdp.info import ClientInfo
from tslic.protocol.rdp.keys import (
    SessionKeys,
    derive_session_keys,
    encrypt_client_random,
    parse_proprietary_certificate,
)
from tslic.protocol.rdp.licensing import LicensingMessage, decode_licensing, encode_licensing
from tslic.protocol.rdp.security import (
    SecFlags,
    SecureChannel,
    SecurityExchange,
    basic_header,
    split_security_header,
)

CLIENT_RANDOM = bytes(range(32))
SERVER_RANDOM = bytes(range(100, 132))
CHANNELS = (
    ChannelDef(name=b"rdpdr", options=0x80800000),
    ChannelDef(name=b"cliprdr", options=0xC0A00000),
    ChannelDef(name=b"rdpsnd", options=0xC0000000),
)


def connect_initial(
    name: str = "TESTHOST", methods: int = 0x1B, channels: tuple[ChannelDef, ...] = CHANNELS
) -> bytes:
    settings = ClientSettings(
        blocks=(
            ClientCoreData(client_name=name, optional=bytes(12) + b"\x01\x00"),
            ClientSecurityData(encryption_methods=methods),
            ClientNetworkData(channels=channels),
        )
    )
    return x224.wrap_data(mcs.ConnectInitial(user_data=settings.build()).build())


def domain(pdu: mcs.DomainMessage) -> bytes:
    return x224.wrap_data(pdu.build())


def parse_connect_response(frame: bytes) -> ServerSettings:
    response = mcs.ConnectResponse.parse(x224.unwrap_data(frame))
    return ServerSettings.parse(response.user_data)


class ClientPeer:
    """The client's half after the Connect-Response."""

    def __init__(self, settings: ServerSettings, user_channel: int) -> None:
        self.settings = settings
        self.user = user_channel
        self.secure: SecureChannel | None = None
        self.keys: SessionKeys | None = None

    def send_data(self, data: bytes, channel: int = 1003) -> bytes:
        pdu = mcs.SendData(initiator=self.user, channel_id=channel, data=data)
        return x224.wrap_data(pdu.build())

    def security_exchange(self, client_random: bytes = CLIENT_RANDOM, flags: int = 0x0201) -> bytes:
        cert = parse_proprietary_certificate(self.settings.server_certificate)
        assert cert.signature_valid
        encrypted = encrypt_client_random(client_random, cert.key)
        server = derive_session_keys(
            client_random, self.settings.server_random, self.settings.encryption_method
        )
        # the client encrypts with the server's decrypt key and vice versa
        self.keys = SessionKeys(
            mac_key=server.mac_key,
            encrypt_key=server.decrypt_key,
            decrypt_key=server.encrypt_key,
            method=server.method,
        )
        self.secure = SecureChannel(self.keys)
        exchange = SecurityExchange(encrypted_client_random=encrypted, flags=flags)
        return self.send_data(exchange.build())

    def protected(self, flags: int, body: bytes, *, salted: bool = False) -> bytes:
        if self.secure is None:
            return self.send_data(basic_header(flags) + body)
        return self.send_data(self.secure.protect(flags, body, salted=salted))

    def client_info(self, info: ClientInfo, *, salted: bool = False) -> bytes:
        return self.protected(SecFlags.INFO_PKT, info.build(), salted=salted)

    def licensing(self, message: LicensingMessage, *, encrypt: bool = True) -> bytes:
        body = encode_licensing(message)
        if encrypt:
            return self.protected(SecFlags.LICENSE_PKT | SecFlags.LICENSE_ENCRYPT, body)
        return self.send_data(basic_header(SecFlags.LICENSE_PKT) + body)

    def read_indication(self, frame: bytes) -> tuple[int, bytes]:
        """(security flags, decrypted payload) of a server Send Data Indication."""
        pdu = mcs.parse_domain_pdu(x224.unwrap_data(frame))
        assert isinstance(pdu, mcs.SendData)
        assert pdu.indication
        header, rest = split_security_header(pdu.data)
        if header.flags & SecFlags.ENCRYPT:
            assert self.secure is not None
            assert header.signature is not None
            rest = self.secure.unprotect(header.flags, header.signature, rest)
        return header.flags, rest

    def read_licensing(self, frame: bytes) -> LicensingMessage:
        flags, body = self.read_indication(frame)
        assert flags & SecFlags.LICENSE_PKT
        return decode_licensing(body)[0]
