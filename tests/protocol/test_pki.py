"""Tests for tslic.protocol.pki: keys, identities, DER, and the chains it accepts
(its refusals are in test_pki_refusals.py; the shared hierarchy in pki_world.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgpack
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from tslic.protocol import pki
from tslic.protocol.errors import RemoteProtocolError

from tests.protocol.pki_world import (
    EXPIRED,
    NOW,
    T0,
    T1,
    UNTRUSTED,
    forge,
    ident_map,
    key,
    refused,
    world,
)

# --- keys and identities ----------------------------------------------------------------


def test_raw_public_key_and_key_id() -> None:
    private = key(7)
    raw = pki.raw_public_key(private)
    assert raw == pki.raw_public_key(private.public_key())
    assert len(raw) == 32
    ident = pki.key_id(raw)
    assert len(ident) == 32
    assert int(ident, 16) >= 0
    assert ident == pki.key_id(raw)
    assert ident != pki.key_id(pki.raw_public_key(key(8)))


def test_identity_round_trip_through_der() -> None:
    w = world()
    for cert in (w.root, w.ls, w.ts, w.temp_ls, w.temp_ts):
        again = pki.cert_from_der(pki.cert_to_der(cert))
        assert pki.identity_of(again) == pki.identity_of(cert)
    ts = pki.identity_of(w.ts)
    assert ts == pki.CertIdentity(
        role="terminal-server",
        name="TS01",
        version=2003,
        temporary=False,
        license_server_id="LSID-0001",
        public_key=pki.raw_public_key(key(3)),
        not_before=T0,
        not_after=T1,
        serial=3,
        issuer_name="LS01",
    )
    root = pki.identity_of(w.root)
    assert (root.role, root.version, root.issuer_name) == ("clearinghouse", 0, "Clearinghouse")
    ls = pki.identity_of(w.ls)
    assert (ls.role, ls.license_server_id, ls.temporary) == ("license-server", "LSID-0001", False)
    assert pki.identity_of(w.temp_ls).temporary
    # A terminal server's certificate inherits its issuer's temporary mark and ID.
    temp_ts = pki.identity_of(w.temp_ts)
    assert (temp_ts.temporary, temp_ts.license_server_id, temp_ts.version) == (True, "", 2000)


def test_certificate_shape() -> None:
    w = world()
    assert w.ts.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "tslic emulated Terminal Services"
    )
    ext = w.ts.extensions.get_extension_for_oid(pki.OID_TSLIC_IDENTITY)
    assert not ext.critical
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    raw = msgpack.unpackb(ext.value.value, raw=False, strict_map_key=True)
    assert raw == ident_map("terminal-server", "TS01", license_server_id="LSID-0001")
    ls_constraints = w.ls.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (ls_constraints.ca, ls_constraints.path_length) == (True, 0)
    assert not w.ts.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert w.ls.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    aki = w.ts.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = w.ls.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_identity_of_refuses_certificates_without_identity() -> None:
    plain = forge(key(1), world().root.subject, name="LS09", ca=True, identity=None)
    with pytest.raises(pki.CertificateError, match="carries no tslic identity") as info:
        pki.identity_of(plain)
    assert info.value.code is UNTRUSTED


@pytest.mark.parametrize(
    "identity",
    [
        ["not", "a", "map"],
        ident_map("license-server", "LS09", extra=1),
        ident_map("domain-controller", "LS09"),
        ident_map("license-server", "LS09", version=True),
        ident_map("license-server", "LS09", version=2008),
        ident_map("license-server", "LS09", temporary=1),
        ident_map("license-server", "LS09", license_server_id=7),
        ident_map("license-server", "another name"),
        ident_map("clearinghouse", "LS09", version=0, temporary=True),
        ident_map(["role"], "LS09"),
    ],
)
def test_identity_of_refuses_malformed_identity(identity: Any) -> None:
    cert = forge(key(1), world().root.subject, name="LS09", ca=True, identity=identity)
    with pytest.raises(pki.CertificateError, match="identity extension") as info:
        pki.identity_of(cert)
    assert info.value.code is UNTRUSTED


def test_identity_of_refuses_undecodable_msgpack() -> None:
    ext = x509.UnrecognizedExtension(pki.OID_TSLIC_IDENTITY, b"\xc1\xff")
    builder = x509.CertificateBuilder().subject_name(world().root.subject)
    cert = (
        builder.issuer_name(world().root.subject)
        .public_key(key(9).public_key())
        .serial_number(5)
        .not_valid_before(T0)
        .not_valid_after(T1)
        .add_extension(ext, critical=False)
        .sign(key(9), algorithm=None)
    )
    with pytest.raises(pki.CertificateError, match="undecodable"):
        pki.identity_of(cert)


# --- DER --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x30\x03\x02\x01\x01", b"\x30\x82\xff\xff"],
)
def test_cert_from_der_refuses_garbage(data: bytes) -> None:
    with pytest.raises(pki.CertificateError, match=r"not a DER X\.509 certificate") as info:
        pki.cert_from_der(data)
    assert info.value.code is UNTRUSTED
    assert "cause" in info.value.detail


def test_cert_from_der_refuses_truncated_and_trailing_bytes() -> None:
    der = pki.cert_to_der(world().ts)
    for data in (der[:-1], der + b"\x00", der[: len(der) // 2]):
        with pytest.raises(pki.CertificateError):
            pki.cert_from_der(data)


def test_certificate_error_is_a_remote_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        pki.cert_from_der(b"nope")
    assert "UNTRUSTED_CERTIFICATE 2001" in str(info.value)


# --- valid chains -----------------------------------------------------------------------


def test_valid_chain_with_root_included() -> None:
    w = world()
    result = pki.validate_chain([w.root, w.ls, w.ts], w.root, NOW, leaf_role="terminal-server")
    assert result == pki.identity_of(w.ts)
    assert not result.temporary


def test_valid_chain_without_root() -> None:
    w = world()
    assert pki.validate_chain((w.ls, w.ts), w.root, NOW).name == "TS01"


def test_license_server_chain_and_root_alone() -> None:
    w = world()
    ls = pki.validate_chain([w.ls], w.root, NOW, leaf_role="license-server")
    assert (ls.name, ls.license_server_id) == ("LS01", "LSID-0001")
    assert pki.validate_chain([w.root], w.root, NOW).role == "clearinghouse"


def test_validity_bounds_are_inclusive() -> None:
    w = world()
    for now in (T0, T1):
        pki.validate_chain([w.ls, w.ts], w.root, now)
    refused(EXPIRED, [w.ls, w.ts], now=T1 + timedelta(seconds=1))


def test_chain_from_der_round_trip() -> None:
    w = world()
    chain = [pki.cert_from_der(pki.cert_to_der(c)) for c in (w.root, w.ls, w.ts)]
    assert pki.validate_chain(chain, w.root, NOW).serial == 3
