"""Standard RDP Security on the wire: security headers, RC4 with MACs and key updates, the
Security Exchange PDU (MS-RDPBCGR §2.2.1.10, §2.2.8.1.1.2, §5.3.6, §5.3.7).

Contract:
- `Rc4` wraps `cryptography`'s ARC4 (hazmat.decrepit, present in cryptography 50) as a
  running keystream.
- `mac_signature(mac_key, data, salt=None)` is §5.3.6.1 (salt None) or the salted MAC of
  §5.3.6.1.1 (salt = the encryption count, SEC_SECURE_CHECKSUM).
- `CipherDirection` is one direction of a connection: `encrypt(data)` / `decrypt(data)` use
  and advance its RC4 stream and, before the 4097th use, update the key as §5.3.7.1 says.
- `SecureChannel(keys)` pairs the two directions of the server and turns a plaintext payload
  into the bytes after the MCS header (`protect`) and back (`unprotect`); a MAC that does not
  match raises `RemoteProtocolError` (BAD_SIGNATURE).
- `SecurityExchange` is the client's TS_SECURITY_PACKET; its length field counts the 8 pad
  bytes and is limited to the 2048-bit key size plus padding.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

from ..errors import ErrorCode, RemoteProtocolError
from ._wire import Reader, invalid, too_large, u16le, u32le
from .keys import ENCRYPTION_METHOD_128BIT, PAD1, PAD2, SessionKeys, _salt

KEY_UPDATE_INTERVAL = 4096
MAX_EXCHANGE_LENGTH = 2048 // 8 + 8


class SecFlags(enum.IntFlag):
    """TS_SECURITY_HEADER flags (§2.2.8.1.1.2.1)."""

    EXCHANGE_PKT = 0x0001
    TRANSPORT_REQ = 0x0002
    TRANSPORT_RSP = 0x0004
    ENCRYPT = 0x0008
    RESET_SEQNO = 0x0010
    IGNORE_SEQNO = 0x0020
    INFO_PKT = 0x0040
    LICENSE_PKT = 0x0080
    LICENSE_ENCRYPT = 0x0200
    REDIRECTION_PKT = 0x0400
    SECURE_CHECKSUM = 0x0800
    AUTODETECT_REQ = 0x1000
    AUTODETECT_RSP = 0x2000
    HEARTBEAT = 0x4000
    FLAGSHI_VALID = 0x8000


class EncryptionLevel(enum.IntEnum):
    """encryptionLevel of SC_SECURITY (§2.2.1.4.3, §5.3.1)."""

    NONE = 0
    LOW = 1
    CLIENT_COMPATIBLE = 2
    HIGH = 3
    FIPS = 4


class Rc4:
    """A running RC4 keystream."""

    __slots__ = ("_ctx",)

    def __init__(self, key: bytes) -> None:
        self._ctx = Cipher(ARC4(key), mode=None).encryptor()

    def process(self, data: bytes) -> bytes:
        return self._ctx.update(data)


def rc4_once(key: bytes, data: bytes) -> bytes:
    """RC4 with a fresh state (licensing blobs restart the stream for each blob)."""
    return Rc4(key).process(data)


def mac_signature(mac_key: bytes, data: bytes, salt: int | None = None) -> bytes:
    """The 8-byte dataSignature of §5.3.6.1 (or §5.3.6.1.1 when `salt` is the count)."""
    extra = u32le(salt) if salt is not None else b""
    inner = hashlib.sha1(mac_key + PAD1 + u32le(len(data)) + data + extra).digest()
    return hashlib.md5(mac_key + PAD2 + inner).digest()[:8]


def update_key(initial: bytes, current: bytes, method: int) -> bytes:
    """§5.3.7.1: the next RC4 key after 4096 packets."""
    n = len(initial)
    temp = hashlib.md5(initial + PAD2 + hashlib.sha1(initial + PAD1 + current).digest()).digest()[
        :n
    ]
    new = rc4_once(temp, temp)
    return new if method == ENCRYPTION_METHOD_128BIT else _salt(new, method)


class CipherDirection:
    """One direction's RC4 state with its use counter."""

    __slots__ = ("_current", "_initial", "_method", "_rc4", "count", "uses")

    def __init__(self, key: bytes, method: int) -> None:
        self._initial = key
        self._current = key
        self._method = method
        self._rc4 = Rc4(key)
        self.uses = 0  # since the last key update
        self.count = 0  # total, for the salted MAC

    def process(self, data: bytes) -> bytes:
        if self.uses == KEY_UPDATE_INTERVAL:
            self._current = update_key(self._initial, self._current, self._method)
            self._rc4 = Rc4(self._current)
            self.uses = 0
        self.uses += 1
        self.count += 1
        return self._rc4.process(data)


class SecureChannel:
    """The server side of Standard RDP Security after the Security Exchange."""

    __slots__ = ("keys", "receiving", "sending")

    def __init__(self, keys: SessionKeys) -> None:
        self.keys = keys
        self.sending = CipherDirection(keys.encrypt_key, keys.method)
        self.receiving = CipherDirection(keys.decrypt_key, keys.method)

    def protect(self, flags: int, plaintext: bytes, *, salted: bool = False) -> bytes:
        """TS_SECURITY_HEADER1 + encrypted payload (flags gain SEC_ENCRYPT)."""
        flags |= SecFlags.ENCRYPT | (SecFlags.SECURE_CHECKSUM if salted else 0)
        salt = self.sending.count if salted else None
        mac = mac_signature(self.keys.mac_key, plaintext, salt)
        return u16le(flags) + b"\x00\x00" + mac + self.sending.process(plaintext)

    def unprotect(self, flags: int, signature: bytes, ciphertext: bytes) -> bytes:
        """Decrypt a received payload and check its MAC.

        Raises:
            RemoteProtocolError: BAD_SIGNATURE when the MAC does not match.
        """
        salt = self.receiving.count if flags & SecFlags.SECURE_CHECKSUM else None
        plaintext = self.receiving.process(ciphertext)
        if mac_signature(self.keys.mac_key, plaintext, salt) != signature:
            raise RemoteProtocolError(
                "RDP security: the MAC of a received PDU does not match its content",
                code=ErrorCode.BAD_SIGNATURE,
            )
        return plaintext


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SecurityHeader:
    """A parsed basic (4-byte) or non-FIPS (12-byte, with `signature`) security header."""

    flags: int
    flags_hi: int = 0
    signature: bytes | None = None


def split_security_header(data: bytes) -> tuple[SecurityHeader, bytes]:
    """Split a slow-path payload into its security header and the rest (§2.2.8.1.1.2)."""
    r = Reader(data, "security header")
    flags = r.u16le("flags")
    flags_hi = r.u16le("flagsHi")
    signature = r.take(8, "dataSignature") if flags & SecFlags.ENCRYPT else None
    return SecurityHeader(flags=flags, flags_hi=flags_hi, signature=signature), r.rest()


def basic_header(flags: int) -> bytes:
    return u16le(flags) + b"\x00\x00"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SecurityExchange:
    """TS_SECURITY_PACKET (§2.2.1.10.1); `flags` keeps extra bits such as 0x0200 that
    xfreerdp sets (it then expects encrypted licensing PDUs)."""

    encrypted_client_random: bytes
    flags: int = SecFlags.EXCHANGE_PKT

    def build(self) -> bytes:
        data = self.encrypted_client_random
        return basic_header(self.flags) + u32le(len(data)) + data

    @classmethod
    def parse(cls, header: SecurityHeader, body: bytes) -> SecurityExchange:
        r = Reader(body, "Security Exchange")
        length = r.u32le("length")
        if length > MAX_EXCHANGE_LENGTH:
            raise too_large(r.what, f"length {length} exceeds {MAX_EXCHANGE_LENGTH}")
        data = r.take(length, "encryptedClientRandom")
        r.end()
        if not header.flags & SecFlags.EXCHANGE_PKT:
            raise invalid(r.what, "SEC_EXCHANGE_PKT is not set")
        return cls(encrypted_client_random=data, flags=header.flags)
