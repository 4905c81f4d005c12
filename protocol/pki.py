"""X.509 certificates of the emulated licensing hierarchy: building, reading, validating.

Contract:
- Trust runs Clearinghouse root (self-signed CA) -> license-server certificate (issued on
  activation; CA, path length 0) -> terminal-server certificate (end entity, issued by its
  license server) (tslicensing.md §5.3). An unactivated license server holds a *temporary*
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
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import msgpack
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID
from tslic.protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

OID_TSLIC_IDENTITY = x509.ObjectIdentifier("2.25.211714364012419786516432386458720546401.1")
ORGANIZATION = "tslic emulated Terminal Services"
# The hierarchy has three levels, so a longer chain is refused before any signature work.
MAX_CHAIN_LENGTH = 3
# What cryptography raises on malformed input. It only *warns* about some defects (a
# non-positive serial, a wrongly sized country name); _strict_parsing() makes those errors.
_PARSE_ERRORS = (
    *(ValueError, TypeError, UnsupportedAlgorithm, Warning),
    *(x509.InvalidVersion, x509.DuplicateExtension, x509.UnsupportedGeneralNameType),
)
_UNPACK_ERRORS = (ValueError, TypeError, msgpack.exceptions.UnpackException)
# RFC 5280 §4.2: a certificate with a critical extension we do not understand is refused.
_KNOWN_CRITICAL = frozenset({ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE})
_IDENTITY_KEYS = frozenset({"role", "version", "temporary", "license_server_id", "name"})


class CertRole(enum.StrEnum):
    """The role of a certificate's holder, as written in the identity extension."""

    CLEARINGHOUSE = "clearinghouse"
    LICENSE_SERVER = "license-server"
    TERMINAL_SERVER = "terminal-server"


# Whom each role may issue certificates to; a terminal server issues none.
_CHILD_ROLE = {
    CertRole.CLEARINGHOUSE: CertRole.LICENSE_SERVER,
    CertRole.LICENSE_SERVER: CertRole.TERMINAL_SERVER,
}
# The root carries version 0; servers carry their product generation (WindowsVersion).
_VERSIONS: dict[str, tuple[int, ...]] = {CertRole.CLEARINGHOUSE: (0,)}
_VERSIONS |= dict.fromkeys((CertRole.LICENSE_SERVER, CertRole.TERMINAL_SERVER), (2000, 2003))


class CertificateError(RemoteProtocolError):
    """A certificate or chain from a peer is unacceptable (code set per instance)."""

    code = ErrorCode.UNTRUSTED_CERTIFICATE


@dataclass(frozen=True, slots=True, kw_only=True)
class CertIdentity:
    """What a certificate says about its holder (for `validate_chain`, about the leaf)."""

    role: str
    name: str
    version: int
    temporary: bool
    license_server_id: str
    public_key: bytes  # raw 32-byte Ed25519 public key
    not_before: datetime
    not_after: datetime
    serial: int
    issuer_name: str  # CN of the issuer


class _Claim(NamedTuple):
    role: CertRole
    name: str
    version: int
    temporary: bool
    license_server_id: str


def _untrusted(message: str) -> CertificateError:
    return CertificateError(message, code=ErrorCode.UNTRUSTED_CERTIFICATE)


def _malformed(message: str, exc: Exception) -> CertificateError:
    # The parser's own words go in `detail`, for logs; the message stays readable.
    detail = {"cause": f"{type(exc).__name__}: {exc}"}
    return CertificateError(message, code=ErrorCode.UNTRUSTED_CERTIFICATE, detail=detail)


def _bad_argument(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, code=ErrorCode.INVALID_FIELD)


def raw_public_key(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The raw 32-byte form of an Ed25519 public key.

    Args:
        key: a public key, or a private key whose public half is wanted.

    Returns:
        The 32 raw public-key bytes (RFC 8032 encoding).
    """
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes_raw()


def key_id(raw_public: bytes) -> str:
    """A short stable name for a public key, for logs and tables.

    Args:
        raw_public: the raw public-key bytes.

    Returns:
        The hex of the first 16 bytes of SHA-256 over them (32 characters).
    """
    return hashlib.sha256(raw_public).digest()[:16].hex()


@contextmanager
def _strict_parsing() -> Iterator[None]:
    # A peer must not be able to make us print warnings; a warning here means bad input.
    # catch_warnings is process-global, but the block never awaits, so no task interleaves.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise _bad_argument(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _subject_of(name: str) -> x509.Name:
    if not isinstance(name, str) or not 1 <= len(name) <= 64:  # X.520 ub-common-name
        raise _bad_argument(f"certificate name must be 1 to 64 characters, got {name!r}")
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
    if type(claim.version) is not int or claim.version not in _VERSIONS[claim.role]:
        raise _bad_argument(f"version {claim.version!r} is not valid for a {claim.role}")
    if type(serial) is not int or not 0 < serial < 2**159:  # RFC 5280: at most 20 octets
        raise _bad_argument(f"serial must be an int in [1, 2**159), got {serial!r}")
    start, end = _utc(not_before, "not_before"), _utc(not_after, "not_after")
    if start >= end:
        raise _bad_argument(f"not_before {start.isoformat()} is not before {end.isoformat()}")
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
    except _PARSE_ERRORS as exc:
        raise _bad_argument(f"cannot build certificate {claim.name!r}: {exc}") from exc


def _issuer(key: Ed25519PrivateKey, cert: x509.Certificate, role: CertRole) -> CertIdentity:
    # The issuer's certificate is our own, so a problem with it is our mistake (Local).
    try:
        ident = identity_of(cert)
    except CertificateError as exc:
        raise _bad_argument(f"issuer certificate is unusable: {exc.message}") from exc
    if ident.role != role:
        raise _bad_argument(f"certificate {ident.name!r} is a {ident.role}, not a {role}")
    if raw_public_key(key) != ident.public_key:
        raise _bad_argument(f"the signing key does not match certificate {ident.name!r}")
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
        raise _bad_argument(f"license_server_id must be a str, got {license_server_id!r}")
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


def _common_name(name: x509.Name) -> str:
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(attributes) != 1 or not isinstance(attributes[0].value, str):
        raise _untrusted(f"name {name.rfc4514_string()!r} does not have exactly one CN")
    return attributes[0].value


def _decode_identity(data: bytes, cn: str) -> dict[str, Any]:
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except _UNPACK_ERRORS as exc:
        raise _untrusted(f"certificate {cn!r} has an undecodable identity extension") from exc
    if not isinstance(fields, dict) or set(fields) != _IDENTITY_KEYS:
        raise _untrusted(f"certificate {cn!r} has a malformed identity extension")
    role, version, temporary = fields["role"], fields["version"], fields["temporary"]
    # type() rather than isinstance(): msgpack's True must not pass for an int version.
    if (
        not isinstance(role, str)
        or role not in _VERSIONS
        or type(version) is not int
        or version not in _VERSIONS[role]
        or type(temporary) is not bool
        or (temporary and role == CertRole.CLEARINGHOUSE)  # only servers are ever temporary
        or type(fields["license_server_id"]) is not str
        or fields["name"] != cn
    ):
        raise _untrusted(f"certificate {cn!r} has an invalid identity extension")
    return fields


def _read_identity(cert: x509.Certificate) -> CertIdentity:
    cn, issuer_cn = _common_name(cert.subject), _common_name(cert.issuer)
    try:
        ext = cert.extensions.get_extension_for_oid(OID_TSLIC_IDENTITY).value
    except x509.ExtensionNotFound:
        raise _untrusted(f"certificate {cn!r} carries no tslic identity") from None
    if not isinstance(ext, x509.UnrecognizedExtension):
        raise _untrusted(f"certificate {cn!r} has a malformed identity extension")
    fields = _decode_identity(ext.value, cn)
    public = cert.public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise _untrusted(f"certificate {cn!r} does not hold an Ed25519 key")
    return CertIdentity(
        role=CertRole(fields["role"]),
        name=cn,
        version=fields["version"],
        temporary=fields["temporary"],
        license_server_id=fields["license_server_id"],
        public_key=public.public_bytes_raw(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
        issuer_name=issuer_cn,
    )


def identity_of(cert: x509.Certificate) -> CertIdentity:
    """Read what a certificate says about its holder, without validating anything else.

    Args:
        cert: a parsed certificate.

    Returns:
        Its identity; `issuer_name` is the issuer's CN.

    Raises:
        CertificateError: (UNTRUSTED_CERTIFICATE) the identity extension is absent or
            malformed, a name lacks a single CN, or the key is not Ed25519.
    """
    # cryptography parses names, extensions and keys lazily, so malformed DER can surface
    # here rather than in cert_from_der (and a caller may have loaded the certificate).
    try:
        with _strict_parsing():
            return _read_identity(cert)
    except _PARSE_ERRORS as exc:
        raise _malformed("certificate has malformed fields", exc) from exc


def cert_to_der(cert: x509.Certificate) -> bytes:
    """Encode a certificate as DER.

    Args:
        cert: the certificate.

    Returns:
        Its DER bytes.
    """
    return cert.public_bytes(Encoding.DER)


def cert_from_der(data: bytes) -> x509.Certificate:
    """Parse a DER certificate received from a peer (not yet validated).

    Args:
        data: the DER bytes.

    Returns:
        The certificate.

    Raises:
        CertificateError: (UNTRUSTED_CERTIFICATE) the bytes are not one DER certificate.
    """
    try:
        with _strict_parsing():
            cert = x509.load_der_x509_certificate(bytes(data))
            # Touch the lazily parsed parts so garbage is reported here, at the boundary.
            _ = (cert.subject, cert.issuer, cert.extensions, cert.serial_number)
    except _PARSE_ERRORS as exc:
        raise _malformed(f"{len(data)} bytes are not a DER X.509 certificate", exc) from exc
    return cert


def _check_signed_by(cert: x509.Certificate, ident: CertIdentity, parent: CertIdentity) -> None:
    # DER lets the signature BIT STRING claim zero-valued unused bits, which cryptography
    # ignores; requiring none keeps one encoding per certificate (no malleable DER).
    der = cert_to_der(cert)
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.ED25519 or not (
        len(cert.signature) == 64 and der[:-64].endswith(b"\x03\x41\x00")
    ):
        raise _untrusted(f"certificate {ident.name!r} is not signed with Ed25519")
    issuer_key = Ed25519PublicKey.from_public_bytes(parent.public_key)
    try:
        issuer_key.verify(cert.signature, cert.tbs_certificate_bytes)
    except InvalidSignature:
        message = f"certificate {ident.name!r} was not issued by {parent.name!r} (bad signature)"
        raise _untrusted(message) from None


def _check_shape(cert: x509.Certificate, ident: CertIdentity) -> None:
    # Constraints must fit the role: CAs sign certificates, terminal servers do not.
    try:
        critical = {e.oid for e in cert.extensions if e.critical}
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise _untrusted(f"certificate {ident.name!r} lacks constraints or key usage") from None
    if critical - _KNOWN_CRITICAL:
        raise _untrusted(f"certificate {ident.name!r} has an unknown critical extension")
    ca = ident.role != CertRole.TERMINAL_SERVER
    if constraints.ca != ca or usage.key_cert_sign != ca or not usage.digital_signature:
        raise _untrusted(f"certificate {ident.name!r} has constraints wrong for a {ident.role}")


def _check_self_signed(cert: x509.Certificate, ident: CertIdentity) -> None:
    if cert.issuer != cert.subject:
        raise _untrusted(f"certificate {ident.name!r} is not self-signed")
    _check_signed_by(cert, ident, ident)


def _check_time(ident: CertIdentity, now: datetime) -> None:
    # RFC 5280 §4.1.2.5: the validity period includes both ends.
    if now < ident.not_before:
        message = f"certificate {ident.name!r} is not valid until {ident.not_before.isoformat()}"
    elif now > ident.not_after:
        message = f"certificate {ident.name!r} expired on {ident.not_after.isoformat()}"
    else:
        return
    raise CertificateError(message, code=ErrorCode.CERTIFICATE_EXPIRED)


def validate_chain(
    chain: Sequence[x509.Certificate],
    trusted_root: x509.Certificate,
    now: datetime,
    *,
    leaf_role: str | None = None,
    allow_temporary_issuer: bool = False,
) -> CertIdentity:
    """Validate a certificate chain against the Clearinghouse root at time `now`.

    Each link's issuer is its parent's subject and its signature verifies with the parent's
    key; roles follow root -> license server -> terminal server, with matching constraints;
    every certificate is valid at `now`. Trust is judged before time, so CERTIFICATE_EXPIRED
    means an otherwise trustworthy chain. A chain topped by a temporary self-signed
    license-server certificate is accepted only with `allow_temporary_issuer=True`: anyone
    can make one, so the caller must treat such a result (`temporary=True`) accordingly.

    Args:
        chain: certificates root-first, leaf last (MS-RDPBCGR 5.3.3.2); it may start with
            `trusted_root` itself or with the certificate the root issued.
        trusted_root: the Clearinghouse root certificate.
        now: the current time (timezone-aware).
        leaf_role: if given, the role the leaf must have.
        allow_temporary_issuer: accept a temporary self-signed license server as anchor.

    Returns:
        The leaf's identity; `temporary` is True when the anchor is a temporary certificate.

    Raises:
        CertificateError: UNTRUSTED_CERTIFICATE if the chain is empty, too long, malformed,
            wrongly signed or shaped, or anchored elsewhere; CERTIFICATE_EXPIRED if a
            certificate is outside its validity at `now`.
        LocalProtocolError: `now` is naive or `leaf_role` is not a role.
    """
    now = _utc(now, "now")
    if leaf_role is not None and leaf_role not in _VERSIONS:
        raise _bad_argument(f"leaf_role {leaf_role!r} is not a certificate role")
    if not chain:
        raise _untrusted("the certificate chain is empty")
    if len(chain) > MAX_CHAIN_LENGTH:
        raise _untrusted(f"a chain of {len(chain)} certificates is longer than the hierarchy")
    path = [(cert, identity_of(cert)) for cert in chain]
    top, top_ident = path[0]
    if top_ident.role == CertRole.LICENSE_SERVER and top_ident.temporary:
        if not allow_temporary_issuer:
            raise _untrusted(
                f"certificate {top_ident.name!r} is the temporary self-signed certificate of "
                "an unactivated license server and chains to no trusted root"
            )
        _check_self_signed(top, top_ident)
    else:
        root_ident = identity_of(trusted_root)
        if root_ident.role != CertRole.CLEARINGHOUSE:
            raise _untrusted(f"trusted root {root_ident.name!r} is not a Clearinghouse root")
        _check_self_signed(trusted_root, root_ident)
        if cert_to_der(top) == cert_to_der(trusted_root):
            path = path[1:]
        path.insert(0, (trusted_root, root_ident))
    for (parent, parent_ident), (cert, ident) in itertools.pairwise(path):
        _check_shape(parent, parent_ident)
        if cert.issuer != parent.subject:
            raise _untrusted(f"certificate {ident.name!r} was not issued by {parent_ident.name!r}")
        _check_signed_by(cert, ident, parent_ident)
        if _CHILD_ROLE.get(CertRole(parent_ident.role)) != ident.role:
            raise _untrusted(
                f"certificate {ident.name!r} claims to be a {ident.role} issued by "
                f"{parent_ident.name!r}, a {parent_ident.role}"
            )
        # The temporary mark flows down from a self-signed anchor and nowhere else.
        if ident.temporary != parent_ident.temporary:
            raise _untrusted(f"certificate {ident.name!r} and its issuer differ in temporary mark")
    leaf, leaf_ident = path[-1]
    _check_shape(leaf, leaf_ident)
    if leaf_role is not None and leaf_ident.role != leaf_role:
        raise _untrusted(
            f"certificate {leaf_ident.name!r} is a {leaf_ident.role} certificate, "
            f"expected a {leaf_role} certificate"
        )
    for _, ident in path:
        _check_time(ident, now)
    return leaf_ident
