"""Standard RDP Security key material: the server's RSA key, its proprietary certificate, the
client random, the session keys (MS-RDPBCGR §2.2.1.4.3.1, §5.3.3-§5.3.5).

Contract:
- RSA here is textbook RSA on little-endian integers with no padding, as §5.3.3.1.2 (signing)
  and §5.3.4.1 (client random) require; it is therefore computed with `pow()` on ints. The
  `cryptography` library's RSA API only offers padded operations, which these formats forbid.
- `TS_SIGNING_KEY` is the Terminal Services signing key that §5.3.3.1.1 publishes for exactly
  this purpose; `proprietary_certificate(key)` signs a server key with it and
  `parse_proprietary_certificate` checks the signature (§5.3.3.1.3).
- `generate_rsa_key(random_bytes)` makes a 512-bit key from caller-supplied randomness (this
  module draws none itself); key sizes are limited to 512..2048 bits.
- `derive_session_keys(client_random, server_random, method)` implements §5.3.5.1 for 40-,
  56- and 128-bit methods and returns the server's view (`encrypt` = server-to-client).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

from ._wire import Reader, invalid, local, malformed, u16le, u32le

RSA1_MAGIC = 0x31415352
BB_RSA_KEY_BLOB = 0x0006
BB_RSA_SIGNATURE_BLOB = 0x0008
CERT_CHAIN_VERSION_1 = 1
CERT_TEMPORARY = 0x80000000
MIN_KEY_BITS = 512
MAX_KEY_BITS = 2048

ENCRYPTION_METHOD_40BIT = 0x01
ENCRYPTION_METHOD_128BIT = 0x02
ENCRYPTION_METHOD_56BIT = 0x08
ENCRYPTION_METHOD_FIPS = 0x10


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RsaKey:
    """An RSA key as integers; `private_exponent` is 0 for a public key."""

    modulus: int
    public_exponent: int
    private_exponent: int = 0

    def __post_init__(self) -> None:
        if not MIN_KEY_BITS <= self.modulus.bit_length() <= MAX_KEY_BITS:
            raise local("RSA key", f"modulus of {self.modulus.bit_length()} bits")

    @property
    def size(self) -> int:
        """Modulus length in bytes (64 for a 512-bit key)."""
        return (self.modulus.bit_length() + 7) // 8

    def public(self) -> RsaKey:
        return RsaKey(modulus=self.modulus, public_exponent=self.public_exponent)

    def raw_private(self, data: bytes) -> bytes:
        """m^d mod n on a little-endian integer; the result is `size` bytes little-endian."""
        if not self.private_exponent:
            raise local("RSA key", "no private exponent")
        value = pow(int.from_bytes(data, "little"), self.private_exponent, self.modulus)
        return value.to_bytes(self.size, "little")

    def raw_public(self, data: bytes) -> bytes:
        value = pow(int.from_bytes(data, "little"), self.public_exponent, self.modulus)
        return value.to_bytes(self.size, "little")


def _le(hexbytes: str) -> int:
    return int.from_bytes(bytes.fromhex(hexbytes), "little")


# [MS-RDPBCGR] §5.3.3.1.1 Terminal Services Signing Key (all values little-endian as published)
TS_SIGNING_KEY = RsaKey(
    modulus=_le(
        "3d3a5ebd72433ec94dbbc11e4aba5fcb3e882087eff5c1e2d7b76b9af2524595"
        "ce63656b583afeef7ce7bffe3df65c7d6c5e06091af561bb2093095f056dea87"
    ),
    public_exponent=_le("5b7b88c0"),
    private_exponent=_le(
        "87a71932da11875558001616256568f8243ee6fae9674994cf92cc3399e80860"
        "179a129f24ddb12499c73ab80a7b0ddd350779170b519bb3c7100113e73ff35f"
    ),
)


def _is_probable_prime(n: int, bases: bytes) -> bool:
    if n < 4:
        return n in (2, 3)
    if n % 2 == 0:
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in bases:
        x = pow(a % (n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def generate_rsa_key(random_bytes: Callable[[int], bytes], bits: int = 512) -> RsaKey:
    """A fresh RSA key with e = 65537, from the caller's randomness (e.g. `secrets.token_bytes`).

    512 bits is what Standard RDP Security and licensing use (MS-RDPELE §2.2.2.2); the
    `cryptography` library refuses to generate keys that small, hence this function.
    """
    e = 65537
    half = bits // 2
    while True:
        primes: list[int] = []
        while len(primes) < 2:
            c = int.from_bytes(random_bytes(half // 8), "big") | (3 << (half - 2)) | 1
            if c % e != 1 and _is_probable_prime(c, random_bytes(40)):
                primes.append(c)
        p, q = primes
        n = p * q
        if p != q and n.bit_length() == bits:
            d = pow(e, -1, (p - 1) * (q - 1))
            return RsaKey(modulus=n, public_exponent=e, private_exponent=d)


def rsa_public_key_blob(key: RsaKey) -> bytes:
    """RSA_PUBLIC_KEY (§2.2.1.4.3.1.1.1): keylen counts 8 zero pad bytes after the modulus."""
    n = key.size
    return (
        u32le(RSA1_MAGIC)
        + u32le(n + 8)
        + u32le(n * 8)
        + u32le(n - 1)
        + u32le(key.public_exponent)
        + key.modulus.to_bytes(n, "little")
        + bytes(8)
    )


def parse_rsa_public_key_blob(blob: bytes) -> RsaKey:
    r = Reader(blob, "RSA_PUBLIC_KEY")
    if r.u32le("magic") != RSA1_MAGIC:
        raise invalid(r.what, "magic is not RSA1")
    keylen = r.u32le("keylen")
    bitlen = r.u32le("bitlen")
    r.u32le("datalen")
    exponent = r.u32le("pubExp")
    if keylen - 8 != bitlen // 8 or not MIN_KEY_BITS <= bitlen <= MAX_KEY_BITS:
        raise invalid(r.what, f"keylen {keylen} and bitlen {bitlen} disagree or are unsupported")
    modulus = int.from_bytes(r.take(keylen, "modulus"), "little")
    r.end()
    try:
        return RsaKey(modulus=modulus, public_exponent=exponent)
    except Exception as exc:  # LocalProtocolError from validation: the peer's fault here
        raise invalid(r.what, str(exc)) from None


def _signature_block(digest: bytes, size: int) -> bytes:
    # §5.3.3.1.2: hash, 0x00, 0xFF up to byte size-2, then 0x01 (size-1 = 63 bytes for 512 bits)
    return digest + b"\x00" + b"\xff" * (size - 1 - len(digest) - 2) + b"\x01"


def proprietary_certificate(key: RsaKey, *, signer: RsaKey = TS_SIGNING_KEY) -> bytes:
    """SERVER_CERTIFICATE with a PROPRIETARYSERVERCERTIFICATE, signed as §5.3.3.1.2 says."""
    blob = rsa_public_key_blob(key.public())
    head = u32le(CERT_CHAIN_VERSION_1) + u32le(1) + u32le(1)
    body = u16le(BB_RSA_KEY_BLOB) + u16le(len(blob)) + blob
    digest = hashlib.md5(head + body).digest()
    signature = signer.raw_private(_signature_block(digest, signer.size)) + bytes(8)
    return head + body + u16le(BB_RSA_SIGNATURE_BLOB) + u16le(len(signature)) + signature


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ProprietaryCertificate:
    key: RsaKey
    signature_valid: bool
    temporary: bool


def parse_proprietary_certificate(
    data: bytes, *, signer: RsaKey = TS_SIGNING_KEY
) -> ProprietaryCertificate:
    """Read a SERVER_CERTIFICATE holding a proprietary certificate and check its signature."""
    r = Reader(data, "SERVER_CERTIFICATE")
    version = r.u32le("dwVersion")
    if version & 0x7FFFFFFF != CERT_CHAIN_VERSION_1:
        raise invalid(r.what, f"certificate chain version {version & 0x7FFFFFFF} (only 1)")
    if r.u32le("dwSigAlgId") != 1 or r.u32le("dwKeyAlgId") != 1:
        raise invalid(r.what, "signature or key algorithm is not RSA")
    if r.u16le("wPublicKeyBlobType") != BB_RSA_KEY_BLOB:
        raise invalid(r.what, "public key blob type is not 0x0006")
    blob = r.take(r.u16le("wPublicKeyBlobLen"), "PublicKeyBlob")
    signed_end = r.position
    if r.u16le("wSignatureBlobType") != BB_RSA_SIGNATURE_BLOB:
        raise invalid(r.what, "signature blob type is not 0x0008")
    signature = r.take(r.u16le("wSignatureBlobLen"), "SignatureBlob")
    r.end()
    key = parse_rsa_public_key_blob(blob)
    digest = hashlib.md5(data[:signed_end]).digest()
    if len(signature) != signer.size + 8:
        raise invalid(r.what, f"signature of {len(signature)} bytes")
    clear = signer.raw_public(signature[: signer.size])[: signer.size - 1]
    valid = clear == _signature_block(digest, signer.size)
    return ProprietaryCertificate(key=key, signature_valid=valid, temporary=bool(version >> 31))


def encrypt_client_random(random: bytes, key: RsaKey) -> bytes:
    """What a client sends (§5.3.4.1): r^e mod n little-endian, plus 8 zero bytes."""
    if len(random) != 32:
        raise local("client random", "is 32 bytes")
    return key.raw_public(random) + bytes(8)


def decrypt_client_random(encrypted: bytes, key: RsaKey) -> bytes:
    """The 32-byte client random from the Security Exchange (§5.3.4.1).

    Raises:
        RemoteProtocolError: the buffer is shorter than the modulus, or decrypts to more than
            32 bytes (a value a client could not have produced).
    """
    if len(encrypted) > key.size + 8 or len(encrypted) < key.size:
        raise malformed("Security Exchange", f"encrypted random of {len(encrypted)} bytes")
    clear = key.raw_private(encrypted[: key.size])
    if any(clear[32:]):
        raise invalid("Security Exchange", "client random does not decrypt to 32 bytes")
    return clear[:32]


PAD1 = b"\x36" * 40
PAD2 = b"\x5c" * 48


def salted_hash(secret: bytes, label: bytes, first: bytes, second: bytes) -> bytes:
    """SaltedHash(S, I) = MD5(S + SHA1(I + S + first + second)) (§5.3.5.1)."""
    return hashlib.md5(secret + hashlib.sha1(label + secret + first + second).digest()).digest()


def _abc(secret: bytes, first: bytes, second: bytes, labels: tuple[bytes, ...]) -> bytes:
    return b"".join(salted_hash(secret, label, first, second) for label in labels)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SessionKeys:
    """Server's view: `encrypt_key` protects server-to-client, `decrypt_key` client-to-server."""

    mac_key: bytes
    encrypt_key: bytes
    decrypt_key: bytes
    method: int


def _salt(key: bytes, method: int) -> bytes:
    if method == ENCRYPTION_METHOD_40BIT:
        return b"\xd1\x26\x9e" + key[3:8]
    if method == ENCRYPTION_METHOD_56BIT:
        return b"\xd1" + key[1:8]
    return key


def derive_session_keys(client_random: bytes, server_random: bytes, method: int) -> SessionKeys:
    """§5.3.5.1 non-FIPS session keys for the given ENCRYPTION_METHOD_*."""
    if method not in (ENCRYPTION_METHOD_40BIT, ENCRYPTION_METHOD_56BIT, ENCRYPTION_METHOD_128BIT):
        raise local("session keys", f"encryption method 0x{method:x} is not supported")
    if len(client_random) != 32 or len(server_random) != 32:
        raise local("session keys", "randoms are 32 bytes")
    pre_master = client_random[:24] + server_random[:24]
    labels = (b"A", b"BB", b"CCC")
    master = _abc(pre_master, client_random, server_random, labels)
    blob = _abc(master, client_random, server_random, (b"X", b"YY", b"ZZZ"))

    def final(k: bytes) -> bytes:
        return hashlib.md5(k + client_random + server_random).digest()

    mac, enc, dec = blob[:16], final(blob[16:32]), final(blob[32:48])
    if method != ENCRYPTION_METHOD_128BIT:
        mac, enc, dec = (_salt(k[:8], method) for k in (mac, enc, dec))
    return SessionKeys(mac_key=mac, encrypt_key=enc, decrypt_key=dec, method=method)
