"""Signed documents: client licenses (CALs) and Clearinghouse key pack grants.

Contract (docs/PROTOCOL.md §10):
- A license blob is msgpack `[body, issuer_chain, signature]`: `body` is the msgpack map of a
  `LicenseBody` as bin, `issuer_chain` the issuing license server's chain (DER, root first,
  its own certificate last), `signature` the Ed25519 signature by that certificate's key over
  `LICENSE_CONTEXT + body`. Anyone holding the Clearinghouse root can check it offline.
- A grant blob is msgpack `[body, signature]`, `body` a `KeyPackGrant` map signed by the
  Clearinghouse root key over `GRANT_CONTEXT + body`.
- `open_license` checks only the signature against the enclosed issuer certificate (what a
  client can do with what it holds); `verify_license` also validates the chain at `now`:
  a license from a temporary (unactivated) issuer is accepted only if it is itself temporary.
- Failures are `RemoteProtocolError`s: INVALID_LICENSE for a malformed or forged document,
  or the certificate error of the chain. Nothing else escapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .codec import WireValue, from_wire, pack, to_wire, unpack_untrusted
from .domain import CalProduct, ClientOS, LicenseKind, LicensingMode
from .errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from .messages.records import KeyPackGrant, LicenseBody
from .pki import CertIdentity, cert_from_der, identity_of, validate_chain

LICENSE_CONTEXT = b"tslic-license-v1\x00"
GRANT_CONTEXT = b"tslic-keypack-grant-v1\x00"


@dataclass(frozen=True, slots=True)
class SignedLicense:
    """A license whose signature has been checked."""

    body: LicenseBody
    issuer_chain: tuple[bytes, ...]
    issuer: CertIdentity


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, code=ErrorCode.INVALID_LICENSE)


def sign_license(
    key: Ed25519PrivateKey, issuer_chain: tuple[bytes, ...], body: LicenseBody
) -> bytes:
    """Sign a license body with the issuing license server's key.

    Raises:
        LocalProtocolError: INVALID_FIELD if the chain is empty.
    """
    return sign_license_wire(key, issuer_chain, to_wire(body))


def sign_license_wire(
    key: Ed25519PrivateKey, issuer_chain: tuple[bytes, ...], body: dict[str, WireValue]
) -> bytes:
    """`sign_license` for a body already in its wire form (`license_body_wire`)."""
    if not issuer_chain:
        raise LocalProtocolError("a license needs its issuer's chain", code=ErrorCode.INVALID_FIELD)
    encoded = pack(body)
    return pack([encoded, list(issuer_chain), key.sign(LICENSE_CONTEXT + encoded)])


_SCOPE = cast(str, LicenseBody.__dataclass_fields__["scope"].default)  # "microsoft.com"


def license_body_wire(
    license_id: int,
    kind: LicenseKind,
    product: CalProduct,
    hwid: bytes,
    machine: str,
    user: str,
    client_os: ClientOS,
    mode: LicensingMode,
    issuer: str,
    license_server_id: str,
    issued_at: int,
    expires_at: int,
) -> dict[str, WireValue]:
    """`to_wire(LicenseBody(...))` of these fields, for values already validated (a decoded
    request's, a license server's own), without building and re-checking the record: the
    license server signs one per license (issue 19). tests/protocol/test_licenses.py holds
    the two equal."""
    return {
        "license_id": license_id, "kind": kind._value_, "product": product._value_,
        "hwid": hwid, "machine": machine, "user": user, "client_os": client_os._value_,
        "mode": mode._value_, "issuer": issuer, "license_server_id": license_server_id,
        "issued_at": issued_at, "expires_at": expires_at, "scope": _SCOPE,
    }  # fmt: skip


def _split(blob: bytes) -> tuple[bytes, tuple[bytes, ...], bytes]:
    try:
        outer = unpack_untrusted(blob)
    except ProtocolError:
        raise _bad("license is not a valid msgpack document") from None
    if not (isinstance(outer, list) and len(outer) == 3):
        raise _bad("license must be [body, issuer_chain, signature]")
    body, chain, signature = outer
    if type(body) is not bytes or type(signature) is not bytes or not isinstance(chain, list):
        raise _bad("license fields have the wrong types")
    if not chain or not all(type(c) is bytes for c in chain):
        raise _bad("license issuer chain must be a non-empty list of certificates")
    return body, tuple(chain), signature


def _decode_body(encoded: bytes) -> LicenseBody:
    try:
        body: LicenseBody = from_wire(LicenseBody, unpack_untrusted(encoded))
    except ProtocolError as exc:
        raise _bad(f"license body is malformed: {exc.message}") from None
    return body


def open_license(blob: bytes) -> SignedLicense:
    """Check a license's signature against its enclosed issuer certificate.

    Raises:
        RemoteProtocolError: INVALID_LICENSE (malformed or forged) or a CertificateError.
    """
    encoded, chain, signature = _split(blob)
    leaf = cert_from_der(chain[-1])
    issuer = identity_of(leaf)
    try:
        Ed25519PublicKey.from_public_bytes(issuer.public_key).verify(
            signature, LICENSE_CONTEXT + encoded
        )
    except (InvalidSignature, ValueError):
        raise _bad(f"license signature does not verify with issuer {issuer.name!r}") from None
    return SignedLicense(_decode_body(encoded), chain, issuer)


def verify_license(blob: bytes, trusted_root: x509.Certificate, now: datetime) -> SignedLicense:
    """Check a license's signature and its issuer's chain at `now`.

    A temporary (unactivated) issuer is acceptable only for temporary and built-in licenses.

    Raises:
        RemoteProtocolError: INVALID_LICENSE or a CertificateError from the chain.
    """
    signed = open_license(blob)
    allow_temporary = signed.body.kind in (LicenseKind.TEMPORARY, LicenseKind.BUILT_IN)
    certs = [cert_from_der(der) for der in signed.issuer_chain]
    validate_chain(
        certs,
        trusted_root,
        now,
        leaf_role="license-server",
        allow_temporary_issuer=allow_temporary,
    )
    return signed


def sign_grant(root_key: Ed25519PrivateKey, grant: KeyPackGrant) -> bytes:
    """Sign a key pack grant with the Clearinghouse root key."""
    encoded = pack(to_wire(grant))
    return pack([encoded, root_key.sign(GRANT_CONTEXT + encoded)])


def open_grant(blob: bytes, trusted_root: x509.Certificate) -> KeyPackGrant:
    """Check a grant's signature with the trusted root's key and decode it.

    Raises:
        RemoteProtocolError: INVALID_LICENSE if malformed or not signed by the root.
    """
    try:
        outer = unpack_untrusted(blob)
    except ProtocolError:
        raise _bad("key pack grant is not a valid msgpack document") from None
    if not (isinstance(outer, list) and len(outer) == 2):
        raise _bad("key pack grant must be [body, signature]")
    encoded, signature = outer
    if type(encoded) is not bytes or type(signature) is not bytes:
        raise _bad("key pack grant fields have the wrong types")
    root_key = trusted_root.public_key()
    if not isinstance(root_key, Ed25519PublicKey):
        raise _bad("the trusted root does not hold an Ed25519 key")
    try:
        root_key.verify(signature, GRANT_CONTEXT + encoded)
    except InvalidSignature:
        raise _bad("key pack grant is not signed by the trusted Clearinghouse root") from None
    try:
        grant: KeyPackGrant = from_wire(KeyPackGrant, unpack_untrusted(encoded))
    except ProtocolError as exc:
        raise _bad(f"key pack grant is malformed: {exc.message}") from None
    return grant
