"""MS-RDPELE licensing cryptography (ELE §5.1.2-§5.1.5).

Contract:
- `decrypt_premaster(blob, key)` recovers the 48-byte premaster secret from the client's
  EncryptedPreMasterSecret with the server's RSA key (raw little-endian RSA, as for the client
  random of MS-RDPBCGR §5.3.4.1). An all-zero buffer (rdesktop) decrypts to zeros.
- `derive_licensing_keys(premaster, client_random, server_random)` is §5.1.2: the master
  secret, the session key blob (with the randoms swapped), the MAC salt key and the licensing
  encryption key.
- `licensing_mac(salt_key, data)` is §5.1.5 (16 bytes). `LicensingKeys.seal(plain)` returns
  (RC4 ciphertext, MAC over the plaintext) and `open(cipher, mac)` reverses it, raising
  `RemoteProtocolError` (BAD_SIGNATURE) on a MAC mismatch. RC4 restarts for each blob.
"""

from __future__ import annotations

import dataclasses
import hashlib

from ..errors import ErrorCode, RemoteProtocolError
from ._wire import invalid, local, malformed, u32le
from .keys import PAD1, PAD2, RsaKey, salted_hash
from .security import rc4_once

PREMASTER_LENGTH = 48


def decrypt_premaster(encrypted: bytes, key: RsaKey) -> bytes:
    if not key.size <= len(encrypted) <= key.size + 8:
        raise malformed("EncryptedPreMasterSecret", f"{len(encrypted)} bytes")
    clear = key.raw_private(encrypted[: key.size])
    if any(clear[PREMASTER_LENGTH:]):
        raise invalid("EncryptedPreMasterSecret", "does not decrypt to 48 bytes")
    return clear[:PREMASTER_LENGTH]


def encrypt_premaster(premaster: bytes, key: RsaKey) -> bytes:
    """What a client sends (tests and client drivers)."""
    if len(premaster) != PREMASTER_LENGTH:
        raise local("premaster secret", "is 48 bytes")
    return key.raw_public(premaster) + bytes(8)


def licensing_mac(salt_key: bytes, data: bytes) -> bytes:
    inner = hashlib.sha1(salt_key + PAD1 + u32le(len(data)) + data).digest()
    return hashlib.md5(salt_key + PAD2 + inner).digest()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LicensingKeys:
    mac_salt_key: bytes
    encryption_key: bytes

    def seal(self, plaintext: bytes) -> tuple[bytes, bytes]:
        return rc4_once(self.encryption_key, plaintext), licensing_mac(self.mac_salt_key, plaintext)

    def decrypt(self, ciphertext: bytes) -> bytes:
        return rc4_once(self.encryption_key, ciphertext)

    def check_mac(self, plaintext: bytes, mac: bytes) -> None:
        if licensing_mac(self.mac_salt_key, plaintext) != mac:
            raise RemoteProtocolError(
                "licensing: MACData does not match the decrypted data (ERR_INVALID_MAC)",
                code=ErrorCode.BAD_SIGNATURE,
            )

    def open(self, ciphertext: bytes, mac: bytes) -> bytes:
        plaintext = self.decrypt(ciphertext)
        self.check_mac(plaintext, mac)
        return plaintext


def derive_licensing_keys(
    premaster: bytes, client_random: bytes, server_random: bytes
) -> LicensingKeys:
    if len(premaster) != PREMASTER_LENGTH or len(client_random) != 32 or len(server_random) != 32:
        raise local("licensing keys", "premaster is 48 bytes, randoms 32")
    labels = (b"A", b"BB", b"CCC")
    master = b"".join(salted_hash(premaster, x, client_random, server_random) for x in labels)
    blob = b"".join(salted_hash(master, x, server_random, client_random) for x in labels)
    key = hashlib.md5(blob[16:32] + client_random + server_random).digest()
    return LicensingKeys(mac_salt_key=blob[:16], encryption_key=key)
