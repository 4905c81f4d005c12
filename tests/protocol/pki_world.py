"""One certificate hierarchy and the builders the certificate-chain tests share.

Contract: `world()` is a fixed hierarchy (Clearinghouse root, license server LS01, terminal
server TS01, and a temporary LS02 with its TS02), built once from deterministic keys
(`key(seed)`), valid from T0 to T1. `issue_ls`/`issue_ts` certify with other keys or
windows, `forge` builds a certificate by hand past the module's own checks, and
`refused(code, chain)` validates a chain at NOW and returns the refusal's message. Tests
import it as `tests.protocol.pki_world`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgpack
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from tslic.protocol import pki
from tslic.protocol.errors import ErrorCode

T0 = datetime(2003, 4, 1, tzinfo=UTC)
T1 = datetime(2033, 4, 1, tzinfo=UTC)
NOW = datetime(2004, 6, 15, 12, 0, tzinfo=UTC)
UNTRUSTED = ErrorCode.UNTRUSTED_CERTIFICATE
EXPIRED = ErrorCode.CERTIFICATE_EXPIRED


def key(seed: int) -> Ed25519PrivateKey:
    """A deterministic key, so failures reproduce."""
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


@dataclass(frozen=True)
class Pki:
    root: x509.Certificate
    ls: x509.Certificate
    ts: x509.Certificate
    temp_ls: x509.Certificate
    temp_ts: x509.Certificate


Window = tuple[datetime, datetime]
FULL: Window = (T0, T1)


def issue_ls(
    root_key: Ed25519PrivateKey, root: x509.Certificate, seed: int = 2, window: Window = FULL
) -> x509.Certificate:
    """License server LS01 (key `seed`), certified by `root`."""
    public, (start, end) = key(seed).public_key(), window
    return pki.issue_license_server_cert(
        root_key,
        root,
        public,
        name="LS01",
        version=2003,
        license_server_id="LSID-0001",
        not_before=start,
        not_after=end,
        serial=2,
    )


def issue_ts(
    ls_key: Ed25519PrivateKey, ls: x509.Certificate, name: str = "TS01", window: Window = FULL
) -> x509.Certificate:
    """Terminal server `name` (key 3 for TS01, 5 otherwise), certified by `ls`."""
    public, (start, end) = key(3 if name == "TS01" else 5).public_key(), window
    version = pki.identity_of(ls).version
    return pki.issue_terminal_server_cert(
        ls_key, ls, public, name=name, version=version, not_before=start, not_after=end, serial=3
    )


@functools.cache
def world() -> Pki:
    """One hierarchy shared by every test (certificates are immutable; hypothesis-safe)."""
    root = pki.make_root(key(1), name="Clearinghouse", not_before=T0, not_after=T1, serial=1)
    ls = issue_ls(key(1), root)
    temp_ls = pki.make_temporary_license_server_cert(
        key(4), name="LS02", version=2000, not_before=T0, not_after=T1, serial=4
    )
    return Pki(root, ls, issue_ts(key(2), ls), temp_ls, issue_ts(key(4), temp_ls, "TS02"))


def forge(
    signing_key: Ed25519PrivateKey,
    issuer: x509.Name,
    *,
    name: str,
    ca: bool,
    identity: dict[str, object] | None,
    seed: int = 9,
    extra: x509.ExtensionType | None = None,
) -> x509.Certificate:
    """A certificate built by hand, bypassing the checks in the module's builders."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, pki.ORGANIZATION),
        ]
    )
    usage = x509.KeyUsage(True, False, False, False, False, ca, False, False, False)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key(seed).public_key())
        .serial_number(99)
        .not_valid_before(T0)
        .not_valid_after(T1)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
        .add_extension(usage, critical=True)
    )
    if identity is not None:
        value = msgpack.packb(identity)
        builder = builder.add_extension(
            x509.UnrecognizedExtension(pki.OID_TSLIC_IDENTITY, value), critical=False
        )
    if extra is not None:
        builder = builder.add_extension(extra, critical=True)
    return builder.sign(signing_key, algorithm=None)


def ident_map(role: object, name: str, **changes: object) -> dict[str, object]:
    """An identity map for `forge`; any value may be wrong on purpose."""
    fields = {"role": role, "version": 2003, "temporary": False, "license_server_id": ""}
    return fields | {"name": name} | changes


def refused(code: ErrorCode, chain: list[x509.Certificate], **kwargs: Any) -> str:
    """Validate `chain` (against world().root at NOW), expect a refusal, return its message."""
    with pytest.raises(pki.CertificateError) as info:
        pki.validate_chain(
            chain, kwargs.pop("root", world().root), kwargs.pop("now", NOW), **kwargs
        )
    assert info.value.code is code
    return info.value.message
