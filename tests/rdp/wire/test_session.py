"""The minimal session after licensing (share.py, outcome.py, the SESSION state).

- The Share PDUs the server builds have the lengths and fields of MS-RDPBCGR §2.2.1.13.1,
  §2.2.1.19-22, §2.2.3.1 and §2.2.9.1.1.3.1.2; each capability set has its fixed length.
- Under TLS (level NONE) a Share PDU travels with no security header; under Standard RDP
  Security it is encrypted and MACed; the first one ends licensing (SESSION), where client
  Data PDUs come back decrypted and parse.
- The outcome text renders into bands that each fit one Send Data, with the title's ink.
"""

from __future__ import annotations

import pytest
from tslic.protocol.errors import LocalProtocolError, RemoteProtocolError
from tslic.protocol.rdp import (
    AcceptSettings,
    ClientConnect,
    ClientInfoReceived,
    DataReceived,
    RdpServerConnection,
    SecurityEstablished,
    SendSharePdu,
    State,
    mcs,
    outcome,
    share,
    x224,
)
from tslic.protocol.rdp.info import ClientInfo
from tslic.protocol.rdp.keys import RsaKey, generate_rsa_key
from tslic.protocol.rdp.security import EncryptionLevel, SecFlags

from tests.rdp.wire.peer import ClientPeer, connect_initial, domain, parse_connect_response

_STATE = [7]


def _random(n: int) -> bytes:
    """Deterministic bytes that differ on every call (the key generator draws until prime)."""
    out = bytearray()
    while len(out) < n:
        _STATE[0] = (_STATE[0] * 6364136223846793005 + 1442695040888963407) % 2**64
        out += _STATE[0].to_bytes(8, "big")
    return bytes(out[:n])


SERVER_KEY: RsaKey = generate_rsa_key(_random)
SERVER_RANDOM = bytes(range(32))


def _state(conn: RdpServerConnection) -> State:
    return conn.state  # read afresh: the type checker narrows the attribute after asserts


def _event(conn: RdpServerConnection, data: bytes) -> object:
    conn.receive_data(data)
    return conn.next_event()


def _licensing(level: EncryptionLevel) -> tuple[RdpServerConnection, ClientPeer]:
    conn = RdpServerConnection(server_key=SERVER_KEY)
    _event(conn, x224.ConnectionRequest(requested_protocols=1).build())
    conn.send(x224.ConnectionConfirm(selected_protocol=1 if level == 0 else 0))
    assert isinstance(_event(conn, connect_initial()), ClientConnect)
    random = b"" if level == EncryptionLevel.NONE else SERVER_RANDOM
    settings = parse_connect_response(
        conn.send(AcceptSettings(server_random=random, encryption_level=level))
    )
    _event(conn, domain(mcs.ErectDomainRequest()))
    _event(conn, domain(mcs.AttachUserRequest()))
    conn.send(mcs.AttachUserConfirm())
    peer = ClientPeer(settings, conn.user_channel)
    if level != EncryptionLevel.NONE:
        assert isinstance(_event(conn, peer.security_exchange()), SecurityEstablished)
    info = _event(conn, peer.client_info(ClientInfo(user_name="alice", password="pw")))
    assert isinstance(info, ClientInfoReceived)
    assert conn.state is State.LICENSING
    return conn, peer


def _share_body(peer: ClientPeer, frame: bytes, tls: bool) -> bytes:
    if tls:  # no security header at all (§5.4)
        pdu = mcs.parse_domain_pdu(x224.unwrap_data(frame))
        assert isinstance(pdu, mcs.SendData)
        return pdu.data
    flags, body = peer.read_indication(frame)
    assert flags & SecFlags.ENCRYPT
    return body


@pytest.mark.parametrize("level", [EncryptionLevel.NONE, EncryptionLevel.CLIENT_COMPATIBLE])
def test_demand_active_ends_licensing_and_data_flows_both_ways(level: EncryptionLevel) -> None:
    conn, peer = _licensing(level)
    tls = level == EncryptionLevel.NONE
    demand = share.demand_active(share.SessionSettings(width=800, height=600))
    body = _share_body(peer, conn.send(SendSharePdu(pdu=demand)), tls)
    assert body == demand
    assert conn.state is State.SESSION
    sync = share.share_data(share.PduType2.SYNCHRONIZE, conn.user_channel, b"\x01\x00\xea\x03")
    frame = peer.send_data(sync) if tls else peer.protected(0, sync)
    event = _event(conn, frame)
    assert isinstance(event, DataReceived)
    parsed = share.parse_client_pdu(event.data)
    assert parsed.pdu_type == share.PduType.DATA
    assert parsed.pdu_type2 == share.PduType2.SYNCHRONIZE
    assert parsed.body == b"\x01\x00\xea\x03"
    # the session ends with Deactivate All and a DPUM
    _share_body(peer, conn.send(SendSharePdu(pdu=share.deactivate_all())), tls)
    conn.send(mcs.DisconnectProviderUltimatum(reason=1))
    assert _state(conn) is State.CLOSED


def test_demand_active_layout() -> None:
    s = share.SessionSettings(width=1024, height=768, bits_per_pixel=16)
    pdu = share.demand_active(s)
    assert int.from_bytes(pdu[0:2], "little") == len(pdu)
    assert int.from_bytes(pdu[2:4], "little") == 0x11  # DEMANDACTIVE | version 1
    assert int.from_bytes(pdu[6:10], "little") == s.share_id
    assert pdu[10:12] == b"\x04\x00"  # lengthSourceDescriptor
    combined = int.from_bytes(pdu[12:14], "little")
    assert pdu[14:18] == b"RDP\x00"
    assert len(pdu) == 18 + combined + 4  # + sessionId
    caps = pdu[18 : 18 + combined]
    count = int.from_bytes(caps[0:2], "little")
    lengths = {}
    offset = 4
    for _ in range(count):
        kind = int.from_bytes(caps[offset : offset + 2], "little")
        length = int.from_bytes(caps[offset + 2 : offset + 4], "little")
        lengths[kind] = length
        if kind == 2:  # bitmap: preferredBitsPerPixel, then desktop width and height
            body = caps[offset + 4 : offset + length]
            assert int.from_bytes(body[0:2], "little") == 16
            assert int.from_bytes(body[8:10], "little") == 1024
            assert int.from_bytes(body[10:12], "little") == 768
        offset += length
    assert offset == combined
    assert lengths == {1: 24, 2: 28, 3: 88, 8: 10, 13: 88, 20: 8, 9: 8, 14: 8, 10: 8}


def test_finalization_pdus() -> None:
    granted = share.control(share.ControlAction.GRANTED_CONTROL, grant_id=1007, control_id=1002)
    parsed = share.parse_client_pdu(granted)
    assert parsed.pdu_type2 == share.PduType2.CONTROL
    assert parsed.body == b"\x02\x00\xef\x03\xea\x03\x00\x00"
    assert share.control_action(parsed) == share.ControlAction.GRANTED_CONTROL
    fonts = share.parse_client_pdu(share.font_map())
    assert fonts.pdu_type2 == share.PduType2.FONT_MAP
    assert fonts.body == b"\x00\x00\x00\x00\x03\x00\x04\x00"
    deactivate = share.deactivate_all()
    assert len(deactivate) == 6 + 4 + 2 + 1
    assert int.from_bytes(deactivate[2:4], "little") == 0x16


def test_client_pdu_errors() -> None:
    pdu = share.synchronize(1007)
    with pytest.raises(RemoteProtocolError):
        share.parse_client_pdu(pdu[:-1])  # totalLength disagrees
    with pytest.raises(RemoteProtocolError):
        share.parse_client_pdu(share.demand_active(share.SessionSettings()))  # a server PDU
    with pytest.raises(LocalProtocolError):
        share.SessionSettings(bits_per_pixel=7)
    with pytest.raises(LocalProtocolError):
        SendSharePdu(pdu=b"\x00")


def test_outcome_bitmap_bands_fit_one_send_data_each() -> None:
    lines = ["tslic: licensed", "License: permanent (new)", "x" * 200]
    rects = outcome.render_lines(lines, left=16, top=16)
    width = rects[0].width
    assert width == outcome.MAX_COLUMNS * outcome.CELL_W + 2 * outcome.MARGIN
    assert sum(r.height for r in rects) == 3 * outcome.CELL_H + 2 * outcome.MARGIN
    assert [r.top for r in rects] == [
        16 + sum(x.height for x in rects[:i]) for i in range(len(rects))
    ]
    for rect in rects:
        update = share.bitmap_update([rect])
        assert len(update) < 16_383  # one MCS Send Data (PER length)
        assert rect.bits_per_pixel == 16
    # the title's amber ink and the body's white ink are both painted
    colours = {r.pixels[i : i + 2] for r in rects for i in range(0, len(r.pixels), 2)}
    assert outcome.TITLE_INK.to_bytes(2, "little") in colours
    assert outcome.INK.to_bytes(2, "little") in colours
    assert outcome.PAPER.to_bytes(2, "little") in colours


def test_unknown_characters_are_drawn_as_a_question_mark() -> None:
    assert outcome.glyph("é") == outcome.glyph("?")
    assert outcome.glyph("a") == outcome.glyph("A")
    assert outcome.glyph(" ") == (".....",) * 7
