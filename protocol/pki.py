"""X.509 certificates of the emulated licensing hierarchy: building, reading, validating.

Contract:
- Trust runs Clearinghouse root (self-signed CA) -> license-server certificate (issued on
  activation; CA, path length 0) -> terminal-server certificate (end entity, issued by its
  license server) (MS-RDPBCGR 5.3.3.2). An unactivated license server holds a *temporary*
  self-signed certificate (TLS_W_TEMP_SELFSIGN_CERT, 4009) that chains to no root but may
  still issue terminal-server certificates, which inherit the temporary mark.
- Keys are Ed25519. Role and attributes travel in one non-critical extension,
  `OID_TSLIC_IDENTITY`: a msgpack map with exactly the keys "role", "version", "temporary",
  "license_server_id", "name". Subjects are CN=<computer name>, O=`ORGANIZATION`.
- Sans-IO and pure: the clock (`now`, timezone-aware), serial numbers and keys are passed in.
- A certificate we were given that is unacceptable raises `CertificateError` (a
  `RemoteProtocolError`): UNTRUSTED_CERTIFICATE, or CERTIFICATE_EXPIRED only when the chain
  is otherwise trustworthy. Bad arguments from our own side (naive datetimes, a key that does
  not match its certificate) raise `LocalProtocolError(INVALID_FIELD)`. No cryptography or
  msgpack exception escapes a public function.
- This module builds certificates (`make_root`, `make_temporary_license_server_cert`,
  `issue_license_server_cert`, `issue_terminal_server_cert`) and is the one import point of
  the PKI: it re-exports (`__all__`) the vocabulary and reading from certs.py and
  `validate_chain` from chain.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import msgpack
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from .certs import (
    OID_TSLIC_IDENTITY,
    ORGANIZATION,
    PARSE_ERRORS,
    ROLE_VERSIONS,
    CertIdentity,
    CertificateError,
    CertRole,
    as_utc,
    bad_argument,
    cert_from_der,
    cert_to_der,
    identity_of,
    key_id,
    raw_public_key,
)
from .chain import MAX_CHAIN_LENGTH, validate_chain

__all__ = [
    "MAX_CHAIN_LENGTH",
    "OID_TSLIC_IDENTITY",
    "ORGANIZATION",
    "CertIdentity",
    "CertRole",
    "CertificateError",
    "cert_from_der",
    "cert_to_der",
    "identity_of",
    "issue_license_server_cert",
    "issue_terminal_server_cert",
    "key_id",
    "make_root",
    "make_temporary_license_server_cert",
    "raw_public_key",
    "validate_chain",
]


class _Claim(NamedTuple):
    role: CertRole
    name: str
    version: int
    temporary: bool
    license_server_id: str


def _subject_of(name: str) -> x509.Name:
    if not isinstance(name, str) or not 1 <= len(name) <= 64:  # X.520 ub-common-name
        raise bad_argument(f"certificate name must be 1 to 64 characters, got {name!r}")
    common_name = x509.NameAttribute(NameOID.COMMON_NAME, name)
    return x509.Name([common_name, x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)])


def _build(
    signing_key: Ed25519PrivateKey,
    issuer: x509.Name,
    subject_public: Ed25519PublicKey,
    claim: _Claim,
    not_before: datetime,
    not_after: datetime,
    serial: int,
) -> x509.Certificate:
    # Arguments are checked here so that a caller's mistake reads as one, not as a
    # cryptography ValueError (or, worse, as a certificate every peer will refuse).
    subject = _subject_of(claim.name)
    if type(claim.version) is not int or claim.version not in ROLE_VERSIONS[claim.role]:
        raise bad_argument(f"version {claim.version!r} is not valid for a {claim.role}")
    if type(serial) is not int or not 0 < serial < 2**159:  # RFC 5280: at most 20 octets
        raise bad_argument(f"serial must be an int in [1, 2**159), got {serial!r}")
    start, end = as_utc(not_before, "not_before"), as_utc(not_after, "not_after")
    if start >= end:
        raise bad_argument(f"not_before {start.isoformat()} is not before {end.isoformat()}")
    ca = claim.role is not CertRole.TERMINAL_SERVER
    # A license server issues only end entities (path length 0); the root one level more.
    path_length = {CertRole.CLEARINGHOUSE: 1, CertRole.LICENSE_SERVER: 0}.get(claim.role)
    # digital_signature always; key_cert_sign for CAs only; no encipherment (Ed25519).
    usage = x509.KeyUsage(True, False, False, False, False, ca, False, False, False)
    identity = {**claim._asdict(), "role": str(claim.role)}
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(subject_public)
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_public), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), False
        )
        .add_extension(
            x509.UnrecognizedExtension(OID_TSLIC_IDENTITY, msgpack.packb(identity)), False
        )
    )
    try:
        return builder.sign(signing_key, algorithm=None)
    except PARSE_ERRORS as exc:
        raise bad_argument(f"cannot build certificate {claim.name!r}: {exc}") from exc


def _issuer(key: Ed25519PrivateKey, cert: x509.Certificate, role: CertRole) -> CertIdentity:
    # The issuer's certificate is our own, so a problem with it is our mistake (Local).
    try:
        ident = identity_of(cert)
    except CertificateError as exc:
        raise bad_argument(f"issuer certificate is unusable: {exc.message}") from exc
    if ident.role != role:
        raise bad_argument(f"certificate {ident.name!r} is a {ident.role}, not a {role}")
    if raw_public_key(key) != ident.public_key:
        raise bad_argument(f"the signing key does not match certificate {ident.name!r}")
    return ident


def make_root(
    key: Ed25519PrivateKey, *, name: str, not_before: datetime, not_after: datetime, serial: int
) -> x509.Certificate:
    """Build the Clearinghouse's self-signed root certificate (CA, version 0).

    Args:
        key: the Clearinghouse's private key; name: its name (subject CN).
        not_before, not_after: validity window (timezone-aware); serial: in [1, 2**159).

    Returns:
        The root certificate.

    Raises:
        LocalProtocolError: an argument is invalid.
    """
    claim = _Claim(CertRole.CLEARINGHOUSE, name, 0, False, "")
    return _build(key, _subject_of(name), key.public_key(), claim, not_before, not_after, serial)


def make_temporary_license_server_cert(
    key: Ed25519PrivateKey,
    *,
    name: str,
    version: int,
    not_before: datetime,
    not_after: datetime,
    serial: int,
) -> x509.Certificate:
    """Build the temporary self-signed certificate of an unactivated license server.

    Args:
        key: the license server's private key; name: its computer name.
        version: 2000 or 2003; not_before, not_after, serial: as for `make_root`.

    Returns:
        A self-signed CA certificate, role "license-server", marked temporary.

    Raises:
        LocalProtocolError: an argument is invalid.
    """
    claim = _Claim(CertRole.LICENSE_SERVER, name, version, True, "")
    return _build(key, _subject_of(name), key.public_key(), claim, not_before, not_after, serial)


def issue_license_server_cert(
    root_key: Ed25519PrivateKey,
    root_cert: x509.Certificate,
    subject_public: Ed25519PublicKey,
    *,
    name: str,
    version: int,
    license_server_id: str,
    not_before: datetime,
    not_after: datetime,
    serial: int,
) -> x509.Certificate:
    """Issue a license server's certificate on activation, signed by the Clearinghouse.

    Args:
        root_key, root_cert: the Clearinghouse's key and root certificate.
        subject_public: the license server's public key; name: its computer name.
        version: 2000 or 2003; license_server_id: the ID the Clearinghouse assigned.
        not_before, not_after, serial: as for `make_root`.

    Returns:
        A CA certificate (path length 0) with role "license-server".

    Raises:
        LocalProtocolError: an argument is invalid, or `root_key`/`root_cert` is not a
            matching Clearinghouse key and certificate.
    """
    _issuer(root_key, root_cert, CertRole.CLEARINGHOUSE)
    if not isinstance(license_server_id, str):
        raise bad_argument(f"license_server_id must be a str, got {license_server_id!r}")
    claim = _Claim(CertRole.LICENSE_SERVER, name, version, False, license_server_id)
    return _build(root_key, root_cert.subject, subject_public, claim, not_before, not_after, serial)


def issue_terminal_server_cert(
    ls_key: Ed25519PrivateKey,
    ls_cert: x509.Certificate,
    subject_public: Ed25519PublicKey,
    *,
    name: str,
    version: int,
    not_before: datetime,
    not_after: datetime,
    serial: int,
) -> x509.Certificate:
    """Issue a terminal server's certificate, signed by its license server.

    The certificate copies the issuer's License Server ID and temporary mark, so one issued
    by an unactivated license server says it is temporary.

    Args:
        ls_key, ls_cert: the license server's key and certificate (activated or temporary).
        subject_public: the terminal server's public key; name: its computer name.
        version: 2000 or 2003; not_before, not_after, serial: as for `make_root`.

    Returns:
        An end-entity certificate with role "terminal-server".

    Raises:
        LocalProtocolError: an argument is invalid, or `ls_key`/`ls_cert` is not a
            matching license-server key and certificate.
    """
    issuer = _issuer(ls_key, ls_cert, CertRole.LICENSE_SERVER)
    lsid = issuer.license_server_id
    claim = _Claim(CertRole.TERMINAL_SERVER, name, version, issuer.temporary, lsid)
    return _build(ls_key, ls_cert.subject, subject_public, claim, not_before, not_after, serial)
