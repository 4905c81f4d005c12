"""MS-RDPELE licensing PDUs (ELE §2.2.2; MS-RDPBCGR §2.2.1.12).

Contract:
- `encode_licensing(message, flags)` returns LICENSE_PREAMBLE + message; wMsgSize counts the
  4-byte preamble (the BCGR §4.1.11 example). `decode_licensing(data)` checks that wMsgSize
  matches the data and returns `(message, preamble_flags)`.
- Every LICENSE_BINARY_BLOB is a `Blob(kind, data)`; blob types are kept as received so a
  parsed message rebuilds to the same bytes. LE32 lengths inside NEW_LICENSE_INFO are refused
  above `MAX_LICENSE_FIELD` before anything is read.
- Message classes: server `LicenseRequest`, `PlatformChallenge`, `NewLicense` (with
  `upgrade=True` for UPGRADE_LICENSE) and client `NewLicenseRequest`, `LicenseInformation`,
  `PlatformChallengeResponse`; `LicenseError` goes either way. The plaintext structures
  inside the encrypted blobs are in license_data.py, the cryptography in license_crypto.py;
  these classes carry ciphertext.
"""

from __future__ import annotations

import dataclasses
import enum

from ._wire import Reader, encode_utf16z, invalid, local, malformed, too_large, u16le, u32le, utf16z

MAX_LICENSE_FIELD = 0xFFFF  # a licensing PDU travels in one TPKT
MAX_SCOPES = 16


class MsgType(enum.IntEnum):
    LICENSE_REQUEST = 0x01
    PLATFORM_CHALLENGE = 0x02
    NEW_LICENSE = 0x03
    UPGRADE_LICENSE = 0x04
    LICENSE_INFO = 0x12
    NEW_LICENSE_REQUEST = 0x13
    PLATFORM_CHALLENGE_RESPONSE = 0x15
    ERROR_ALERT = 0xFF


class BlobType(enum.IntEnum):
    DATA = 0x0001
    RANDOM = 0x0002
    CERTIFICATE = 0x0003
    ERROR = 0x0004
    ENCRYPTED_DATA = 0x0009
    KEY_EXCHG_ALG = 0x000D
    SCOPE = 0x000E
    CLIENT_USER_NAME = 0x000F
    CLIENT_MACHINE_NAME = 0x0010


class LicenseErrorCode(enum.IntEnum):
    ERR_INVALID_SERVER_CERTIFICATE = 0x01
    ERR_NO_LICENSE = 0x02
    ERR_INVALID_MAC = 0x03
    ERR_INVALID_SCOPE = 0x04
    ERR_NO_LICENSE_SERVER = 0x06
    STATUS_VALID_CLIENT = 0x07
    ERR_INVALID_CLIENT = 0x08
    ERR_INVALID_PRODUCTID = 0x0B
    ERR_INVALID_MESSAGE_LEN = 0x0C


class StateTransition(enum.IntEnum):
    ST_TOTAL_ABORT = 0x1
    ST_NO_TRANSITION = 0x2
    ST_RESET_PHASE_TO_START = 0x3
    ST_RESEND_LAST_MESSAGE = 0x4


PREAMBLE_VERSION_3_0 = 0x03
KEY_EXCHANGE_ALG_RSA = 1


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Blob:
    kind: int
    data: bytes = b""

    def build(self) -> bytes:
        if len(self.data) > 0xFFFF:
            raise local("license blob", f"{len(self.data)} bytes")
        return u16le(self.kind) + u16le(len(self.data)) + self.data

    @classmethod
    def read(cls, r: Reader, field: str) -> Blob:
        kind = r.u16le(f"{field} wBlobType")
        return cls(kind=kind, data=r.take(r.u16le(f"{field} wBlobLen"), field))


def read_lp32(r: Reader, field: str) -> bytes:
    n = r.u32le(f"cb{field}")
    if n > MAX_LICENSE_FIELD:
        raise too_large(r.what, f"{field} of {n} bytes exceeds {MAX_LICENSE_FIELD}")
    return r.take(n, field)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ProductInfo:
    """PRODUCT_INFO (ELE §2.2.2.1.1): names are UTF-16LE with NUL on the wire."""

    version: int = 0x00050002  # high word major, low word minor
    company_name: str = "Microsoft Corporation"
    product_id: str = "A02"

    def build(self) -> bytes:
        company = encode_utf16z(self.company_name)
        product = encode_utf16z(self.product_id)
        return u32le(self.version) + u32le(len(company)) + company + u32le(len(product)) + product

    @classmethod
    def read(cls, r: Reader) -> ProductInfo:
        version = r.u32le("dwVersion")
        company = read_lp32(r, "CompanyName")
        product = read_lp32(r, "ProductId")
        return cls(version=version, company_name=utf16z(company), product_id=utf16z(product))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LicenseRequest:
    """SERVER_LICENSE_REQUEST (ELE §2.2.2.1)."""

    server_random: bytes
    product: ProductInfo = ProductInfo()
    key_exchange: Blob = Blob(kind=BlobType.KEY_EXCHG_ALG, data=u32le(KEY_EXCHANGE_ALG_RSA))
    certificate: Blob = Blob(kind=BlobType.CERTIFICATE)
    scopes: tuple[Blob, ...] = (Blob(kind=BlobType.SCOPE, data=b"microsoft.com\x00"),)

    def __post_init__(self) -> None:
        if len(self.server_random) != 32:
            raise local("License Request", "server random is 32 bytes")

    def body(self) -> bytes:
        out = self.server_random + self.product.build() + self.key_exchange.build()
        out += self.certificate.build() + u32le(len(self.scopes))
        return out + b"".join(s.build() for s in self.scopes)

    @classmethod
    def read(cls, r: Reader) -> LicenseRequest:
        server_random = r.take(32, "ServerRandom")
        product = ProductInfo.read(r)
        key_exchange = Blob.read(r, "KeyExchangeList")
        certificate = Blob.read(r, "ServerCertificate")
        count = r.u32le("ScopeCount")
        if count > MAX_SCOPES:
            raise too_large(r.what, f"{count} scopes exceed {MAX_SCOPES}")
        scopes = tuple(Blob.read(r, "Scope") for _ in range(count))
        return cls(
            server_random=server_random,
            product=product,
            key_exchange=key_exchange,
            certificate=certificate,
            scopes=scopes,
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PlatformChallenge:
    """SERVER_PLATFORM_CHALLENGE (ELE §2.2.2.4)."""

    encrypted_challenge: Blob
    mac: bytes
    connect_flags: int = 0

    def body(self) -> bytes:
        return u32le(self.connect_flags) + self.encrypted_challenge.build() + self.mac

    @classmethod
    def read(cls, r: Reader) -> PlatformChallenge:
        flags = r.u32le("ConnectFlags")
        blob = Blob.read(r, "EncryptedPlatformChallenge")
        return cls(connect_flags=flags, encrypted_challenge=blob, mac=r.take(16, "MACData"))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NewLicense:
    """SERVER_NEW_LICENSE / SERVER_UPGRADE_LICENSE (ELE §2.2.2.7, §2.2.2.6)."""

    encrypted_license_info: Blob
    mac: bytes
    upgrade: bool = False

    def body(self) -> bytes:
        return self.encrypted_license_info.build() + self.mac

    @classmethod
    def read(cls, r: Reader, upgrade: bool) -> NewLicense:
        blob = Blob.read(r, "EncryptedLicenseInfo")
        return cls(encrypted_license_info=blob, mac=r.take(16, "MACData"), upgrade=upgrade)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LicenseError:
    """LICENSE_ERROR_MESSAGE (MS-RDPBCGR §2.2.1.12.1.3)."""

    error_code: int
    state_transition: int
    error_info: Blob = Blob(kind=BlobType.ERROR)

    def body(self) -> bytes:
        return u32le(self.error_code) + u32le(self.state_transition) + self.error_info.build()

    @classmethod
    def read(cls, r: Reader) -> LicenseError:
        code = r.u32le("dwErrorCode")
        transition = r.u32le("dwStateTransition")
        return cls(
            error_code=code, state_transition=transition, error_info=Blob.read(r, "bbErrorInfo")
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NewLicenseRequest:
    """CLIENT_NEW_LICENSE_REQUEST (ELE §2.2.2.2)."""

    client_random: bytes
    encrypted_premaster: Blob
    user_name: Blob
    machine_name: Blob
    platform_id: int = 0
    key_exchange_alg: int = KEY_EXCHANGE_ALG_RSA

    def body(self) -> bytes:
        head = u32le(self.key_exchange_alg) + u32le(self.platform_id) + self.client_random
        return head + b"".join(
            b.build() for b in (self.encrypted_premaster, self.user_name, self.machine_name)
        )

    @classmethod
    def read(cls, r: Reader) -> NewLicenseRequest:
        return cls(
            key_exchange_alg=r.u32le("PreferredKeyExchangeAlg"),
            platform_id=r.u32le("PlatformId"),
            client_random=r.take(32, "ClientRandom"),
            encrypted_premaster=Blob.read(r, "EncryptedPreMasterSecret"),
            user_name=Blob.read(r, "ClientUserName"),
            machine_name=Blob.read(r, "ClientMachineName"),
        )

    @property
    def user(self) -> str:
        return self.user_name.data.split(b"\x00", 1)[0].decode("latin-1")

    @property
    def machine(self) -> str:
        return self.machine_name.data.split(b"\x00", 1)[0].decode("latin-1")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LicenseInformation:
    """CLIENT_LICENSE_INFO (ELE §2.2.2.3): the client presents a stored license."""

    client_random: bytes
    encrypted_premaster: Blob
    license_info: Blob
    encrypted_hwid: Blob
    mac: bytes
    platform_id: int = 0
    key_exchange_alg: int = KEY_EXCHANGE_ALG_RSA

    def body(self) -> bytes:
        head = u32le(self.key_exchange_alg) + u32le(self.platform_id) + self.client_random
        blobs = (self.encrypted_premaster, self.license_info, self.encrypted_hwid)
        return head + b"".join(b.build() for b in blobs) + self.mac

    @classmethod
    def read(cls, r: Reader) -> LicenseInformation:
        return cls(
            key_exchange_alg=r.u32le("PreferredKeyExchangeAlg"),
            platform_id=r.u32le("PlatformId"),
            client_random=r.take(32, "ClientRandom"),
            encrypted_premaster=Blob.read(r, "EncryptedPreMasterSecret"),
            license_info=Blob.read(r, "LicenseInfo"),
            encrypted_hwid=Blob.read(r, "EncryptedHWID"),
            mac=r.take(16, "MACData"),
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PlatformChallengeResponse:
    """CLIENT_PLATFORM_CHALLENGE_RESPONSE (ELE §2.2.2.5)."""

    encrypted_response: Blob
    encrypted_hwid: Blob
    mac: bytes

    def body(self) -> bytes:
        return self.encrypted_response.build() + self.encrypted_hwid.build() + self.mac

    @classmethod
    def read(cls, r: Reader) -> PlatformChallengeResponse:
        return cls(
            encrypted_response=Blob.read(r, "EncryptedPlatformChallengeResponse"),
            encrypted_hwid=Blob.read(r, "EncryptedHWID"),
            mac=r.take(16, "MACData"),
        )


LicensingMessage = (
    LicenseRequest
    | PlatformChallenge
    | NewLicense
    | LicenseError
    | NewLicenseRequest
    | LicenseInformation
    | PlatformChallengeResponse
)


def _msg_type(message: LicensingMessage) -> int:
    if isinstance(message, NewLicense):
        return MsgType.UPGRADE_LICENSE if message.upgrade else MsgType.NEW_LICENSE
    return {
        LicenseRequest: MsgType.LICENSE_REQUEST,
        PlatformChallenge: MsgType.PLATFORM_CHALLENGE,
        LicenseError: MsgType.ERROR_ALERT,
        NewLicenseRequest: MsgType.NEW_LICENSE_REQUEST,
        LicenseInformation: MsgType.LICENSE_INFO,
        PlatformChallengeResponse: MsgType.PLATFORM_CHALLENGE_RESPONSE,
    }[type(message)]


def encode_licensing(message: LicensingMessage, flags: int = PREAMBLE_VERSION_3_0) -> bytes:
    body = message.body()
    size = len(body) + 4
    if size > 0xFFFF:
        raise local("licensing PDU", f"{size} bytes do not fit wMsgSize")
    return bytes([_msg_type(message), flags]) + u16le(size) + body


def decode_licensing(data: bytes) -> tuple[LicensingMessage, int]:
    """Parse LICENSE_PREAMBLE + message (the bytes after the security header)."""
    r = Reader(data, "licensing PDU")
    kind = r.u8("bMsgType")
    flags = r.u8("flags")
    size = r.u16le("wMsgSize")
    if size != len(data):
        raise malformed(r.what, f"wMsgSize {size} does not match {len(data)} bytes")
    r.what = f"licensing PDU 0x{kind:02x}"
    message: LicensingMessage
    if kind == MsgType.LICENSE_REQUEST:
        message = LicenseRequest.read(r)
    elif kind == MsgType.PLATFORM_CHALLENGE:
        message = PlatformChallenge.read(r)
    elif kind in (MsgType.NEW_LICENSE, MsgType.UPGRADE_LICENSE):
        message = NewLicense.read(r, upgrade=kind == MsgType.UPGRADE_LICENSE)
    elif kind == MsgType.ERROR_ALERT:
        message = LicenseError.read(r)
    elif kind == MsgType.NEW_LICENSE_REQUEST:
        message = NewLicenseRequest.read(r)
    elif kind == MsgType.LICENSE_INFO:
        message = LicenseInformation.read(r)
    elif kind == MsgType.PLATFORM_CHALLENGE_RESPONSE:
        message = PlatformChallengeResponse.read(r)
    else:
        raise invalid(r.what, f"unknown licensing message type 0x{kind:02x}")
    r.end()
    return message, flags
