"""Hostile input to every RDP parser and to the server connection.

- Truncated, bit-flipped, byte-inserted and random inputs derived from valid PDUs (the spec
  vectors and PDUs built by the test client) make each parser either return or raise
  `RemoteProtocolError` with a 1xxx code; never another exception.
- Lengths of 4 GB (LE32 fields) and the largest BER/TPKT lengths are refused with
  FRAME_TOO_LARGE or MALFORMED_FRAME before anything is allocated or read.
- The server connection fed random chunks of a mutated conversation only produces events,
  NEED_DATA, PEER_CLOSED or a RemoteProtocolError, and a wrong MAC is BAD_SIGNATURE.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tslic.protocol.connection import NEED_DATA, PEER_CLOSED
from tslic.protocol.errors import ErrorCode, RemoteProtocolError
from tslic.protocol.rdp import AcceptSettings, RdpServerConnection, mcs, x224
from tslic.protocol.rdp.gcc import CCRSP_HEADER, T124_KEY, ClientSettings, ServerSettings
from tslic.protocol.rdp.info import ClientInfo, SetErrorInfo
from tslic.protocol.rdp.keys import (
    decrypt_client_random,
    generate_rsa_key,
    parse_proprietary_certificate,
    parse_rsa_public_key_blob,
    proprietary_certificate,
)
from tslic.protocol.rdp.license_crypto import decrypt_premaster
from tslic.protocol.rdp.license_data import ChallengeResponseData, HardwareId, NewLicenseInfo
from tslic.protocol.rdp.licensing import (
    Blob,
    BlobType,
    LicenseInformation,
    LicenseRequest,
    NewLicenseRequest,
    decode_licensing,
    encode_licensing,
)
from tslic.protocol.rdp.security import SecurityExchange, SecurityHeader, split_security_header

from tests.rdp.wire.peer import (
    SERVER_RANDOM,
    ClientPeer,
    connect_initial,
    domain,
    parse_connect_response,
)

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VECTORS: dict[str, Any] = tomllib.loads(
    (Path(__file__).parents[1] / "vectors" / "spec_examples.toml").read_text(encoding="utf-8")
)


def _vector(name: str) -> bytes:
    return bytes.fromhex("".join(str(VECTORS[name]["hex"]).split()))


def _det(n: int, _state: list[int] = [0]) -> bytes:  # noqa: B006 - deterministic randomness
    _state[0] += 1
    return (_state[0].to_bytes(4, "big") * (n // 4 + 1))[:n]


KEY = generate_rsa_key(__import__("secrets").token_bytes)
CERT = proprietary_certificate(KEY)
SETTINGS_BYTES = mcs.ConnectInitial.parse(x224.unwrap_data(connect_initial())).user_data
SERVER_SETTINGS = ServerSettings(
    client_requested_protocols=3,
    encryption_method=2,
    encryption_level=2,
    server_random=SERVER_RANDOM,
    server_certificate=CERT,
    channel_ids=(1004, 1005, 1006),
).build()
LICENSE_SAMPLES = [
    encode_licensing(LicenseRequest(server_random=SERVER_RANDOM)),
    encode_licensing(
        NewLicenseRequest(
            client_random=bytes(32),
            encrypted_premaster=Blob(kind=BlobType.RANDOM, data=bytes(72)),
            user_name=Blob(kind=BlobType.CLIENT_USER_NAME, data=b"alice\x00"),
            machine_name=Blob(kind=BlobType.CLIENT_MACHINE_NAME, data=b"HOST\x00"),
        )
    ),
    encode_licensing(
        LicenseInformation(
            client_random=bytes(32),
            encrypted_premaster=Blob(kind=BlobType.RANDOM, data=bytes(72)),
            license_info=Blob(kind=BlobType.DATA, data=b"cal" * 10),
            encrypted_hwid=Blob(kind=BlobType.ENCRYPTED_DATA, data=bytes(20)),
            mac=bytes(16),
        )
    ),
    bytes.fromhex("ff03100007000000020000000400 0000".replace(" ", "")),
]


def _exchange(data: bytes) -> object:
    header, rest = split_security_header(data)
    return SecurityExchange.parse(header, rest)


PARSERS: dict[str, tuple[Callable[[bytes], object], list[bytes]]] = {
    "x224_cr": (x224.ConnectionRequest.parse, [_vector("bcgr_4_1_1")]),
    "x224_cc": (x224.parse_confirm, [_vector("bcgr_4_1_2")]),
    "x224_data": (x224.unwrap_data, [_vector("bcgr_4_1_5")]),
    "mcs_ci": (mcs.ConnectInitial.parse, [x224.unwrap_data(connect_initial())]),
    "mcs_cr": (
        mcs.ConnectResponse.parse,
        [mcs.ConnectResponse(user_data=SERVER_SETTINGS).build()],
    ),
    "mcs_domain": (
        mcs.parse_domain_pdu,
        [x224.unwrap_data(_vector(n)) for n in ("bcgr_4_1_7", "bcgr_4_1_11", "bcgr_4_2_3")],
    ),
    "gcc_client": (ClientSettings.parse, [SETTINGS_BYTES]),
    "gcc_server": (ServerSettings.parse, [SERVER_SETTINGS]),
    "rsa_blob": (parse_rsa_public_key_blob, [_vector("bcgr_5_3_3_1_2_public_key")]),
    "certificate": (parse_proprietary_certificate, [CERT]),
    "client_random": (lambda b: decrypt_client_random(b, KEY), [bytes(72)]),
    "premaster": (lambda b: decrypt_premaster(b, KEY), [bytes(72)]),
    "security_exchange": (_exchange, [SecurityExchange(encrypted_client_random=bytes(72)).build()]),
    "client_info": (ClientInfo.parse, [ClientInfo(user_name="alice", password="pw").build()]),
    "set_error_info": (SetErrorInfo.parse, [SetErrorInfo(error_info=0x102).build()]),
    "licensing": (decode_licensing, [*LICENSE_SAMPLES, _vector("ele_4_4")]),
    "new_license_info": (
        NewLicenseInfo.parse,
        [
            NewLicenseInfo(
                version=1, scope=b"s\0", company_name=b"c\0", product_id=b"p\0", license_info=b"x"
            ).build()
        ],
    ),
    "challenge_response": (
        ChallengeResponseData.parse,
        [ChallengeResponseData(challenge=b"T" * 10).build()],
    ),
    "hwid": (HardwareId.parse, [HardwareId(platform_id=2, data=(1, 2, 3, 4)).build()]),
}


def _refusal(action: Callable[[], object]) -> RemoteProtocolError | None:
    """Run `action`; return the RemoteProtocolError it raised, if any. Any other exception
    propagates and fails the test."""
    try:
        action()
    except RemoteProtocolError as exc:
        return exc
    return None


def _check(parser: Callable[[bytes], object], data: bytes) -> None:
    error = _refusal(lambda: parser(data))
    if error is not None:
        assert error.code.closes_connection, error
        assert error.message


@st.composite
def _mutated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            data[pos] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0x82, 0x84, 0xFF]))
    return bytes(data)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_samples_parse(name: str) -> None:
    parser, samples = PARSERS[name]
    for sample in samples:
        parser(sample)  # the valid inputs really are valid


@pytest.mark.parametrize("name", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_mutated_input_only_raises_protocol_errors(name: str, data: st.DataObject) -> None:
    parser, samples = PARSERS[name]
    _check(parser, data.draw(_mutated(samples)))


@pytest.mark.parametrize("name", sorted(PARSERS))
@FUZZ
@given(raw=st.binary(max_size=300))
def test_random_input_only_raises_protocol_errors(name: str, raw: bytes) -> None:
    _check(PARSERS[name][0], raw)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_truncation_is_refused_cleanly(name: str) -> None:
    parser, samples = PARSERS[name]
    for sample in samples:
        for cut in range(len(sample)):
            _check(parser, sample[:cut])


FOUR_GB = b"\xff\xff\xff\xff"


@pytest.mark.parametrize(
    ("parser", "data", "code"),
    [
        # NEW_LICENSE_INFO.cbScope = 4 GB
        (NewLicenseInfo.parse, b"\x01\x00\x00\x00" + FOUR_GB + b"x", ErrorCode.FRAME_TOO_LARGE),
        # Security Exchange length = 4 GB
        (_exchange, b"\x01\x00\x00\x00" + FOUR_GB + bytes(72), ErrorCode.FRAME_TOO_LARGE),
        # PRODUCT_INFO.cbCompanyName = 4 GB inside a License Request
        (
            decode_licensing,
            b"\x01\x03\x30\x00" + bytes(32) + b"\x00\x00\x05\x00" + FOUR_GB + bytes(4),
            ErrorCode.FRAME_TOO_LARGE,
        ),
        # BER length 0x84 ffffffff in a Connect-Initial
        (mcs.ConnectInitial.parse, b"\x7f\x65\x84" + FOUR_GB, ErrorCode.FRAME_TOO_LARGE),
        # CS_NET channelCount = 4 G
        (
            ClientSettings.parse,
            SETTINGS_BYTES[:-40] + FOUR_GB + SETTINGS_BYTES[-36:],
            ErrorCode.FRAME_TOO_LARGE,
        ),
        # a blob claiming 65535 bytes with 3 present
        (
            decode_licensing,
            b"\xff\x03\x11\x00" + bytes(8) + b"\x04\x00\xff\xff" + b"abc",
            ErrorCode.MALFORMED_FRAME,
        ),
    ],
)
def test_huge_lengths_are_refused_without_reading(
    parser: Callable[[bytes], object], data: bytes, code: ErrorCode
) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parser(data)
    assert info.value.code is code


def test_tpkt_length_is_checked_from_the_header_alone() -> None:
    assert x224.tpkt_length(b"\x03\x00\xff\xff") == 0xFFFF
    with pytest.raises(RemoteProtocolError) as info:
        x224.tpkt_length(b"\x03\x00\x00\x03")
    assert info.value.code is ErrorCode.MALFORMED_FRAME
    with pytest.raises(RemoteProtocolError) as info:
        x224.tpkt_length(b"\x44\x00\x00\x10")  # fast-path or garbage
    assert info.value.code is ErrorCode.INVALID_FIELD


def _conversation() -> list[bytes]:
    """Client frames of a full sequence up to Client Info (the server answers are built on
    the fly by the connection under test)."""
    server = RdpServerConnection(server_key=KEY)
    frames = [x224.ConnectionRequest(cookie=b"u", requested_protocols=0).build(), connect_initial()]
    server.receive_data(frames[0])
    server.next_event()
    server.send(x224.ConnectionConfirm(selected_protocol=0))
    server.receive_data(frames[1])
    server.next_event()
    peer = ClientPeer(
        parse_connect_response(server.send(AcceptSettings(server_random=SERVER_RANDOM))), 1007
    )
    frames += [domain(mcs.ErectDomainRequest()), domain(mcs.AttachUserRequest())]
    frames += [domain(mcs.ChannelJoinRequest(initiator=1007, channel_id=c)) for c in (1007, 1003)]
    frames.append(peer.security_exchange())
    frames.append(peer.client_info(ClientInfo(user_name="alice")))
    return frames


CONVERSATION = _conversation()


def _drive(chunks: list[bytes]) -> None:
    error = _refusal(lambda: _run(chunks))
    if error is not None:
        assert error.code.closes_connection


def _run(chunks: list[bytes]) -> None:
    conn = RdpServerConnection(server_key=KEY)
    answers: dict[str, object] = {
        "ConnectionRequest": x224.ConnectionConfirm(selected_protocol=0),
        "ClientConnect": AcceptSettings(server_random=SERVER_RANDOM),
        "AttachUserRequest": mcs.AttachUserConfirm(),
    }
    for chunk in [*chunks, b""]:
        conn.receive_data(chunk)
        for _ in range(len(chunk) + 2):
            event = conn.next_event()
            if event is NEED_DATA or event is PEER_CLOSED:
                break
            reply = answers.get(type(event).__name__)
            if isinstance(event, mcs.ChannelJoinRequest):
                reply = mcs.ChannelJoinConfirm(
                    initiator=1007, requested=event.channel_id, channel_id=event.channel_id
                )
            if reply is not None:
                conn.send(reply)
        else:
            raise AssertionError("next_event kept producing events")


@FUZZ
@given(data=st.data())
def test_connection_survives_a_mutated_conversation(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(CONVERSATION) - 1))
    frames = list(CONVERSATION)
    frames[index] = data.draw(_mutated([frames[index]]))
    stream = b"".join(frames)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=6))))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    _drive([c for c in chunks if c])


def test_unmutated_conversation_reaches_licensing() -> None:
    _drive([b"".join(CONVERSATION)])


def test_a_bad_mac_in_the_conversation_is_bad_signature() -> None:
    frames = list(CONVERSATION)
    last = bytearray(frames[-1])
    last[20] ^= 0xFF  # inside the 8-byte dataSignature
    error = _refusal(lambda: _run([*frames[:-1], bytes(last)]))
    assert error is not None
    assert error.code is ErrorCode.BAD_SIGNATURE


def test_security_header_alone() -> None:
    header, rest = split_security_header(b"\x08\x00\x00\x00" + bytes(8) + b"xy")
    assert header == SecurityHeader(flags=8, flags_hi=0, signature=bytes(8))
    assert rest == b"xy"


def test_values_our_constructors_reject_are_remote_errors() -> None:
    # SC_SECURITY with 128-bit encryption but an empty server random
    sec = bytes.fromhex("020c1400") + bytes.fromhex("02000000 02000000 00000000 00000000")
    data = T124_KEY + CCRSP_HEADER + bytes([len(sec)]) + sec
    error = _refusal(lambda: ServerSettings.parse(data))
    assert error is not None
    assert error.code is ErrorCode.INVALID_FIELD
