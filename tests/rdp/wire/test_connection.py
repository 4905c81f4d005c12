"""The server state machine driven through the whole sequence by the test client (peer.py).

- Standard RDP Security, 128/56/40-bit: X.224 -> MCS -> channel joins -> Security Exchange ->
  Client Info (decrypted, MAC-checked) -> licensing both ways (encrypted when the client set
  0x0200, clear otherwise) -> Set Error Info -> DPUM.
- No RDP encryption (level NONE, the TLS case): Client Info with a basic header.
- Byte-at-a-time feeding gives the same events; EOF inside a PDU is MALFORMED_FRAME.
- Out-of-order PDUs raise ILLEGAL_STATE and the connection stays failed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tslic.protocol.connection import NEED_DATA, PEER_CLOSED
from tslic.protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from tslic.protocol.rdp import (
    AcceptSettings,
    ClientConnect,
    ClientInfoReceived,
    LicensingReceived,
    RdpServerConnection,
    SecurityEstablished,
    SendErrorInfo,
    SendLicensing,
    State,
    mcs,
    x224,
)
from tslic.protocol.rdp.connection import SEND
from tslic.protocol.rdp.info import ClientInfo, SetErrorInfo
from tslic.protocol.rdp.keys import RsaKey, generate_rsa_key
from tslic.protocol.rdp.licensing import (
    Blob,
    BlobType,
    LicenseError,
    LicenseRequest,
    NewLicenseRequest,
    StateTransition,
)
from tslic.protocol.rdp.security import EncryptionLevel, SecFlags

from tests.rdp.wire.peer import (
    SERVER_RANDOM,
    ClientPeer,
    connect_initial,
    domain,
    parse_connect_response,
)


def _det_random(seed: int) -> Callable[[int], bytes]:
    state = [seed]

    def random_bytes(n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            state[0] = (state[0] * 6364136223846793005 + 1442695040888963407) % 2**64
            out += state[0].to_bytes(8, "big")
        return bytes(out[:n])

    return random_bytes


SERVER_KEY: RsaKey = generate_rsa_key(_det_random(7))


def _feed(conn: RdpServerConnection, data: bytes) -> object:
    conn.receive_data(data)
    event = conn.next_event()
    assert conn.next_event() is NEED_DATA
    return event


def _connect(
    conn: RdpServerConnection,
    *,
    methods: int = 0x1B,
    level: EncryptionLevel = EncryptionLevel.CLIENT_COMPATIBLE,
) -> ClientPeer:
    request = x224.ConnectionRequest(cookie=b"alice", requested_protocols=0)
    assert _feed(conn, request.build()) == request
    confirm = conn.send(x224.ConnectionConfirm(selected_protocol=0))
    assert x224.parse_confirm(confirm) == x224.ConnectionConfirm(selected_protocol=0)
    event = _feed(conn, connect_initial(methods=methods))
    assert isinstance(event, ClientConnect)
    assert event.settings.core.client_name == "TESTHOST"
    settings = parse_connect_response(
        conn.send(AcceptSettings(server_random=SERVER_RANDOM, encryption_level=level))
    )
    assert isinstance(_feed(conn, domain(mcs.ErectDomainRequest())), mcs.ErectDomainRequest)
    assert isinstance(_feed(conn, domain(mcs.AttachUserRequest())), mcs.AttachUserRequest)
    confirm_frame = conn.send(mcs.AttachUserConfirm())
    confirm_pdu = mcs.parse_domain_pdu(x224.unwrap_data(confirm_frame))
    assert confirm_pdu == mcs.AttachUserConfirm(initiator=1007)
    for channel in (1007, 1003, 1004, 1005, 1006):
        join = mcs.ChannelJoinRequest(initiator=1007, channel_id=channel)
        assert _feed(conn, domain(join)) == join
        conn.send(mcs.ChannelJoinConfirm(initiator=1007, requested=channel, channel_id=channel))
    assert settings.channel_ids == (1004, 1005, 1006)
    return ClientPeer(settings, 1007)


@pytest.mark.parametrize(("methods", "chosen"), [(0x1B, 0x02), (0x09, 0x08), (0x01, 0x01)])
def test_standard_security_through_licensing(methods: int, chosen: int) -> None:
    conn = RdpServerConnection(server_key=SERVER_KEY)
    peer = _connect(conn, methods=methods)
    assert peer.settings.encryption_method == chosen
    event = _feed(conn, peer.security_exchange())
    assert isinstance(event, SecurityEstablished)
    assert event.client_random == bytes(range(32))
    info = ClientInfo(domain="CORP", user_name="alice", password="pw")
    received = _feed(conn, peer.client_info(info, salted=True))
    assert isinstance(received, ClientInfoReceived)
    assert received.info == info
    assert conn.state is State.LICENSING

    request = LicenseRequest(server_random=SERVER_RANDOM)
    got = peer.read_licensing(conn.send(SendLicensing(message=request)))
    assert got == request
    reply = NewLicenseRequest(
        client_random=bytes(32),
        encrypted_premaster=Blob(kind=BlobType.RANDOM, data=bytes(72)),
        user_name=Blob(kind=BlobType.CLIENT_USER_NAME, data=b"alice\x00"),
        machine_name=Blob(kind=BlobType.CLIENT_MACHINE_NAME, data=b"TESTHOST\x00"),
    )
    for encrypt in (True, False):  # xfreerdp encrypts its licensing PDUs, rdesktop does not
        event = _feed(conn, peer.licensing(reply, encrypt=encrypt))
        assert isinstance(event, LicensingReceived)
        assert event.message == reply
        assert event.encrypted is encrypt
    flags, body = peer.read_indication(conn.send(SendErrorInfo(error_info=0x102)))
    assert flags & SecFlags.ENCRYPT
    assert SetErrorInfo.parse(body).error_info == 0x102
    conn.send(mcs.DisconnectProviderUltimatum(reason=1))
    assert conn.state.name == "CLOSED"


def test_no_rdp_encryption_client_info_and_valid_client() -> None:
    conn = RdpServerConnection(server_key=SERVER_KEY)
    peer = _connect(conn, level=EncryptionLevel.NONE)
    assert peer.settings.encryption_method == 0
    assert peer.settings.server_certificate == b""
    event = _feed(conn, peer.client_info(ClientInfo(user_name="bob")))
    assert isinstance(event, ClientInfoReceived)
    assert event.info.user_name == "bob"
    valid = LicenseError(error_code=7, state_transition=StateTransition.ST_NO_TRANSITION)
    frame = conn.send(SendLicensing(message=valid))
    assert peer.read_licensing(frame) == valid
    assert frame.hex().endswith("ff03100007000000020000000400 0000".replace(" ", ""))


def test_byte_at_a_time_gives_the_same_event() -> None:
    conn = RdpServerConnection(server_key=SERVER_KEY)
    frame = x224.ConnectionRequest(cookie=b"alice", requested_protocols=3).build()
    for byte in frame[:-1]:
        conn.receive_data(bytes([byte]))
        assert conn.next_event() is NEED_DATA
    conn.receive_data(frame[-1:])
    event = conn.next_event()
    assert isinstance(event, x224.ConnectionRequest)
    assert event.requested_protocols == 3


def test_eof_between_and_inside_pdus() -> None:
    conn = RdpServerConnection(server_key=SERVER_KEY)
    conn.receive_data(b"")
    assert conn.next_event() is PEER_CLOSED
    conn = RdpServerConnection(server_key=SERVER_KEY)
    conn.receive_data(b"\x03\x00\x00\x2c\x27")
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.code is ErrorCode.MALFORMED_FRAME


def test_out_of_order_pdu_is_illegal_state_and_sticks() -> None:
    conn = RdpServerConnection(server_key=SERVER_KEY)
    _feed(conn, x224.ConnectionRequest(requested_protocols=0).build())
    conn.send(x224.ConnectionConfirm(selected_protocol=0))
    conn.receive_data(domain(mcs.AttachUserRequest()))
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.code is ErrorCode.ILLEGAL_STATE
    assert conn.state is State.ERROR
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_sending_out_of_turn_is_a_local_error() -> None:
    conn = RdpServerConnection(server_key=SERVER_KEY)
    with pytest.raises(LocalProtocolError) as info:
        conn.send(x224.ConnectionConfirm(selected_protocol=0))
    assert info.value.code is ErrorCode.ILLEGAL_STATE


def test_tampered_mac_is_bad_signature() -> None:
    conn = RdpServerConnection(server_key=SERVER_KEY)
    peer = _connect(conn)
    _feed(conn, peer.security_exchange())
    frame = bytearray(peer.client_info(ClientInfo(user_name="eve")))
    frame[-1] ^= 0x01  # flip a ciphertext bit: the MAC no longer matches
    conn.receive_data(bytes(frame))
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.code is ErrorCode.BAD_SIGNATURE


def test_clear_client_info_under_standard_security_is_refused() -> None:
    conn = RdpServerConnection(server_key=SERVER_KEY)
    peer = _connect(conn)
    _feed(conn, peer.security_exchange())
    peer.secure = None  # send it without encryption
    conn.receive_data(peer.client_info(ClientInfo(user_name="eve")))
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.code is ErrorCode.INVALID_FIELD


def test_level_low_encrypts_only_client_to_server() -> None:
    conn = RdpServerConnection(server_key=SERVER_KEY)
    peer = _connect(conn, level=EncryptionLevel.LOW)
    assert peer.settings.encryption_level == EncryptionLevel.LOW
    _feed(conn, peer.security_exchange())
    event = _feed(conn, peer.client_info(ClientInfo(user_name="lo")))
    assert isinstance(event, ClientInfoReceived)
    flags, body = peer.read_indication(conn.send(SendErrorInfo(error_info=0x101)))
    assert not flags & SecFlags.ENCRYPT
    assert SetErrorInfo.parse(body).error_info == 0x101


def test_fips_level_is_refused_locally() -> None:
    conn = RdpServerConnection(server_key=SERVER_KEY)
    _feed(conn, x224.ConnectionRequest(requested_protocols=0).build())
    conn.send(x224.ConnectionConfirm(selected_protocol=0))
    _feed(conn, connect_initial())
    with pytest.raises(LocalProtocolError):
        conn.send(
            AcceptSettings(server_random=SERVER_RANDOM, encryption_level=EncryptionLevel.FIPS)
        )


@pytest.mark.parametrize("state", list(State))
def test_every_send_outside_the_table_is_refused(state: State) -> None:
    samples: list[object] = [
        x224.ConnectionConfirm(selected_protocol=0),
        x224.NegotiationFailure(code=2),
        AcceptSettings(server_random=SERVER_RANDOM),
        mcs.AttachUserConfirm(),
        mcs.ChannelJoinConfirm(initiator=1007, requested=1003, channel_id=1003),
        SendLicensing(message=LicenseError(error_code=7, state_transition=2)),
        SendErrorInfo(error_info=0x102),
        mcs.DisconnectProviderUltimatum(),
    ]
    for event in samples:
        conn = RdpServerConnection(server_key=SERVER_KEY)
        conn.state = state
        allowed = (state, type(event)) in SEND
        if not allowed:
            with pytest.raises(LocalProtocolError) as info:
                conn.send(event)
            assert info.value.code is ErrorCode.ILLEGAL_STATE
