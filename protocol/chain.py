"""Validating a certificate chain of the emulated licensing hierarchy (MS-RDPBCGR 5.3.3.2).

Contract:
- `validate_chain(chain, trusted_root, now, ...)` accepts a chain only if it runs Clearinghouse
  root -> license server -> terminal server (a prefix of it is fine), each link issued and
  Ed25519-signed by its parent with constraints fitting its role, and every certificate valid
  at `now`. A temporary self-signed license-server certificate may anchor the chain only when
  the caller allows it, and the temporary mark must flow down unchanged.
- Trust is judged before time: UNTRUSTED_CERTIFICATE for anything untrustworthy (including
  a chain longer than `MAX_CHAIN_LENGTH`, refused before any signature work);
  CERTIFICATE_EXPIRED only for an otherwise trustworthy chain. Bad arguments from our own
  side (a naive `now`, an unknown `leaf_role`) raise `LocalProtocolError(INVALID_FIELD)`.
- Re-exported by `tslic.protocol.pki`, the module callers import. Sans-IO and pure.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

from .certs import (
    ROLE_VERSIONS,
    CertIdentity,
    CertificateError,
    CertRole,
    as_utc,
    bad_argument,
    cert_to_der,
    identity_of,
    untrusted,
)
from .errors import ErrorCode

if TYPE_CHECKING:
    from collections.abc import Sequence

# The hierarchy has three levels, so a longer chain is refused before any signature work.
MAX_CHAIN_LENGTH = 3
# RFC 5280 §4.2: a certificate with a critical extension we do not understand is refused.
_KNOWN_CRITICAL = frozenset({ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE})
# Whom each role may issue certificates to; a terminal server issues none.
_CHILD_ROLE = {
    CertRole.CLEARINGHOUSE: CertRole.LICENSE_SERVER,
    CertRole.LICENSE_SERVER: CertRole.TERMINAL_SERVER,
}


def _check_signed_by(cert: x509.Certificate, ident: CertIdentity, parent: CertIdentity) -> None:
    # DER lets the signature BIT STRING claim zero-valued unused bits, which cryptography
    # ignores; requiring none keeps one encoding per certificate (no malleable DER).
    der = cert_to_der(cert)
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.ED25519 or not (
        len(cert.signature) == 64 and der[:-64].endswith(b"\x03\x41\x00")
    ):
        raise untrusted(f"certificate {ident.name!r} is not signed with Ed25519")
    issuer_key = Ed25519PublicKey.from_public_bytes(parent.public_key)
    try:
        issuer_key.verify(cert.signature, cert.tbs_certificate_bytes)
    except InvalidSignature:
        message = f"certificate {ident.name!r} was not issued by {parent.name!r} (bad signature)"
        raise untrusted(message) from None


def _check_shape(cert: x509.Certificate, ident: CertIdentity) -> None:
    # Constraints must fit the role: CAs sign certificates, terminal servers do not.
    try:
        critical = {e.oid for e in cert.extensions if e.critical}
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise untrusted(f"certificate {ident.name!r} lacks constraints or key usage") from None
    if critical - _KNOWN_CRITICAL:
        raise untrusted(f"certificate {ident.name!r} has an unknown critical extension")
    ca = ident.role != CertRole.TERMINAL_SERVER
    if constraints.ca != ca or usage.key_cert_sign != ca or not usage.digital_signature:
        raise untrusted(f"certificate {ident.name!r} has constraints wrong for a {ident.role}")


def _check_self_signed(cert: x509.Certificate, ident: CertIdentity) -> None:
    if cert.issuer != cert.subject:
        raise untrusted(f"certificate {ident.name!r} is not self-signed")
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
    now = as_utc(now, "now")
    if leaf_role is not None and leaf_role not in ROLE_VERSIONS:
        raise bad_argument(f"leaf_role {leaf_role!r} is not a certificate role")
    if not chain:
        raise untrusted("the certificate chain is empty")
    if len(chain) > MAX_CHAIN_LENGTH:
        raise untrusted(f"a chain of {len(chain)} certificates is longer than the hierarchy")
    path = [(cert, identity_of(cert)) for cert in chain]
    top, top_ident = path[0]
    if top_ident.role == CertRole.LICENSE_SERVER and top_ident.temporary:
        if not allow_temporary_issuer:
            raise untrusted(
                f"certificate {top_ident.name!r} is the temporary self-signed certificate of "
                "an unactivated license server and chains to no trusted root"
            )
        _check_self_signed(top, top_ident)
    else:
        root_ident = identity_of(trusted_root)
        if root_ident.role != CertRole.CLEARINGHOUSE:
            raise untrusted(f"trusted root {root_ident.name!r} is not a Clearinghouse root")
        _check_self_signed(trusted_root, root_ident)
        if cert_to_der(top) == cert_to_der(trusted_root):
            path = path[1:]
        path.insert(0, (trusted_root, root_ident))
    for (parent, parent_ident), (cert, ident) in itertools.pairwise(path):
        _check_shape(parent, parent_ident)
        if cert.issuer != parent.subject:
            raise untrusted(f"certificate {ident.name!r} was not issued by {parent_ident.name!r}")
        _check_signed_by(cert, ident, parent_ident)
        if _CHILD_ROLE.get(CertRole(parent_ident.role)) != ident.role:
            raise untrusted(
                f"certificate {ident.name!r} claims to be a {ident.role} issued by "
                f"{parent_ident.name!r}, a {parent_ident.role}"
            )
        # The temporary mark flows down from a self-signed anchor and nowhere else.
        if ident.temporary != parent_ident.temporary:
            raise untrusted(f"certificate {ident.name!r} and its issuer differ in temporary mark")
    leaf, leaf_ident = path[-1]
    _check_shape(leaf, leaf_ident)
    if leaf_role is not None and leaf_ident.role != leaf_role:
        raise untrusted(
            f"certificate {leaf_ident.name!r} is a {leaf_ident.role} certificate, "
            f"expected a {leaf_role} certificate"
        )
    for _, ident in path:
        _check_time(ident, now)
    return leaf_ident
