"""Key derivations and ciphers of Standard RDP Security and licensing.

- MS-RDPELE §5.1.2 licensing keys follow the spec's formulas, computed here independently
  with hashlib (the spec publishes no worked example with its inputs; the real-client tests
  are the cross-check: xfreerdp verifies our Platform Challenge MAC); §5.1.3/§5.1.5 RC4 + MAC
  seal and open each other and a wrong MAC is BAD_SIGNATURE.
- MS-RDPBCGR §5.3.5.1 session keys: hand-checkable properties (40-bit salt D1 26 9E, 56-bit
  salt D1, 128-bit keys are 16 bytes; swapping client and server directions).
- §5.3.7.1 key update: the 4097th packet is encrypted with the updated key, and both sides
  stay in step across the update; the salted MAC (§5.3.6.1.1) depends on the count.
- RSA: the proprietary certificate verifies with the published signing key; a one-bit change
  of the public key breaks the signature; rdesktop's all-zero premaster decrypts to zeros.
"""

from __future__ import annotations

import hashlib

import pytest
from tslic.protocol.errors import ErrorCode, RemoteProtocolError
from tslic.protocol.rdp.keys import (
    ENCRYPTION_METHOD_40BIT,
    ENCRYPTION_METHOD_56BIT,
    ENCRYPTION_METHOD_128BIT,
    RsaKey,
    SessionKeys,
    derive_session_keys,
    generate_rsa_key,
    parse_proprietary_certificate,
    proprietary_certificate,
)
from tslic.protocol.rdp.license_crypto import (
    decrypt_premaster,
    derive_licensing_keys,
    encrypt_premaster,
)
from tslic.protocol.rdp.security import (
    KEY_UPDATE_INTERVAL,
    CipherDirection,
    SecureChannel,
    mac_signature,
    rc4_once,
    update_key,
)


def _counter_random(n: int, _state: list[int] = [0]) -> bytes:  # noqa: B006 - deterministic
    out = bytearray()
    while len(out) < n:
        _state[0] += 1
        out += hashlib.sha256(_state[0].to_bytes(8, "big")).digest()
    return bytes(out[:n])


KEY = generate_rsa_key(_counter_random)


def _spec_salted_hash(s: bytes, i: bytes, a: bytes, b: bytes) -> bytes:
    """MD5(S + SHA1(I + S + A + B)), written out again from the spec for an independent check."""
    inner = hashlib.sha1()
    for part in (i, s, a, b):
        inner.update(part)
    return hashlib.md5(s + inner.digest()).digest()


def test_licensing_key_derivation_follows_the_spec_formulas() -> None:
    cr, sr, pms = _counter_random(32), _counter_random(32), _counter_random(48)
    labels = (b"A", b"BB", b"CCC")
    master = b"".join(_spec_salted_hash(pms, x, cr, sr) for x in labels)
    blob = b"".join(_spec_salted_hash(master, x, sr, cr) for x in labels)
    keys = derive_licensing_keys(pms, cr, sr)
    assert keys.mac_salt_key == blob[:16]
    assert keys.encryption_key == hashlib.md5(blob[16:32] + cr + sr).digest()
    assert derive_licensing_keys(pms, sr, cr) != keys  # the randoms' order matters


def test_licensing_rc4_and_mac_seal_and_open() -> None:
    keys = derive_licensing_keys(_counter_random(48), _counter_random(32), _counter_random(32))
    challenge = b"TEST\x00\x00\x00\x00\x00\x00"
    sealed, mac = keys.seal(challenge)
    assert sealed != challenge
    assert keys.open(sealed, mac) == challenge
    with pytest.raises(RemoteProtocolError) as info:
        keys.open(sealed, bytes(16))
    assert info.value.code is ErrorCode.BAD_SIGNATURE


def test_rdesktop_all_zero_premaster_decrypts_to_zeros() -> None:
    assert decrypt_premaster(bytes(72), KEY) == bytes(48)
    secret = bytes(range(48))
    assert decrypt_premaster(encrypt_premaster(secret, KEY), KEY) == secret


@pytest.mark.parametrize(
    ("method", "length", "salt"),
    [
        (ENCRYPTION_METHOD_40BIT, 8, b"\xd1\x26\x9e"),
        (ENCRYPTION_METHOD_56BIT, 8, b"\xd1"),
        (ENCRYPTION_METHOD_128BIT, 16, b""),
    ],
)
def test_session_key_lengths_and_salts(method: int, length: int, salt: bytes) -> None:
    keys = derive_session_keys(bytes(range(32)), bytes(range(32, 64)), method)
    full = derive_session_keys(bytes(range(32)), bytes(range(32, 64)), ENCRYPTION_METHOD_128BIT)
    for key, full_key in (
        (keys.mac_key, full.mac_key),
        (keys.encrypt_key, full.encrypt_key),
        (keys.decrypt_key, full.decrypt_key),
    ):
        assert len(key) == length
        assert key.startswith(salt)
        assert key[len(salt) :] == full_key[len(salt) : length]  # same key, salted prefix


def test_session_keys_follow_5_3_5_1_by_hand() -> None:
    cr, sr = bytes([1]) * 32, bytes([2]) * 32
    pms = cr[:24] + sr[:24]
    master = b"".join(
        hashlib.md5(pms + hashlib.sha1(x + pms + cr + sr).digest()).digest()
        for x in (b"A", b"BB", b"CCC")
    )
    blob = b"".join(
        hashlib.md5(master + hashlib.sha1(x + master + cr + sr).digest()).digest()
        for x in (b"X", b"YY", b"ZZZ")
    )
    keys = derive_session_keys(cr, sr, ENCRYPTION_METHOD_128BIT)
    assert keys.mac_key == blob[:16]
    assert keys.encrypt_key == hashlib.md5(blob[16:32] + cr + sr).digest()
    assert keys.decrypt_key == hashlib.md5(blob[32:48] + cr + sr).digest()


def _pair(method: int) -> tuple[SecureChannel, SecureChannel]:
    server = derive_session_keys(bytes(range(32)), bytes(range(32, 64)), method)
    client = SessionKeys(
        mac_key=server.mac_key,
        encrypt_key=server.decrypt_key,
        decrypt_key=server.encrypt_key,
        method=method,
    )
    return SecureChannel(server), SecureChannel(client)


@pytest.mark.parametrize("method", [ENCRYPTION_METHOD_40BIT, ENCRYPTION_METHOD_128BIT])
def test_key_update_after_4096_packets_keeps_both_sides_in_step(method: int) -> None:
    server, client = _pair(method)
    for i in range(KEY_UPDATE_INTERVAL + 3):
        body = i.to_bytes(4, "little") * 3
        wire = client.protect(0, body, salted=bool(i % 2))
        flags = int.from_bytes(wire[:2], "little")
        assert server.unprotect(flags, wire[4:12], wire[12:]) == body
    assert server.receiving.uses == 3  # updated once, then three more packets


def test_4097th_packet_uses_the_updated_key() -> None:
    key = bytes(range(16))
    direction = CipherDirection(key, ENCRYPTION_METHOD_128BIT)
    stream = b"".join(direction.process(b"\x00") for _ in range(KEY_UPDATE_INTERVAL))
    assert stream == rc4_once(key, bytes(KEY_UPDATE_INTERVAL))
    updated = update_key(key, key, ENCRYPTION_METHOD_128BIT)
    assert direction.process(b"\x00" * 4) == rc4_once(updated, bytes(4))
    temp = hashlib.md5(
        key + b"\x5c" * 48 + hashlib.sha1(key + b"\x36" * 40 + key).digest()
    ).digest()
    assert updated == rc4_once(temp, temp)


def test_salted_mac_depends_on_the_count() -> None:
    key = bytes(16)
    assert mac_signature(key, b"data", 0) != mac_signature(key, b"data", 1)
    assert mac_signature(key, b"data") != mac_signature(key, b"data", 0)
    assert len(mac_signature(key, b"data")) == 8


def test_certificate_signature_checks() -> None:
    cert = proprietary_certificate(KEY)
    parsed = parse_proprietary_certificate(cert)
    assert parsed.signature_valid
    assert parsed.key == KEY.public()
    other = RsaKey(modulus=KEY.modulus ^ (1 << 100), public_exponent=KEY.public_exponent)
    forged = proprietary_certificate(other)[:-80] + cert[-80:]  # someone else's signature
    assert not parse_proprietary_certificate(forged).signature_valid
