"""Tests for tslic.protocol.pki: building, reading and validating the certificate chain."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import msgpack
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from tslic.protocol import pki
from tslic.protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable

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
    identity: dict[str, Any] | None,
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


def ident_map(role: str, name: str, **changes: Any) -> dict[str, Any]:
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
        ident_map(["role"], "LS09"),  # type: ignore[arg-type]
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


# --- refused chains ---------------------------------------------------------------------


def test_empty_and_overlong_chains() -> None:
    w = world()
    assert "empty" in refused(UNTRUSTED, [])
    assert "longer" in refused(UNTRUSTED, [w.root, w.ls, w.ts, w.ts])


def test_wrong_root() -> None:
    w = world()
    other = pki.make_root(key(20), name="Clearinghouse", not_before=T0, not_after=T1, serial=1)
    other_ls = issue_ls(key(20), other)
    other_ts = issue_ts(key(2), other_ls)
    # Same names, different root key: only the signature can tell them apart.
    assert "bad signature" in refused(UNTRUSTED, [other_ls, other_ts])
    assert "bad signature" in refused(UNTRUSTED, [other, other_ls, other_ts])
    # And the other way round, our chain against their root.
    with pytest.raises(pki.CertificateError) as info:
        pki.validate_chain([w.ls, w.ts], other, NOW)
    assert info.value.code is UNTRUSTED


def test_root_of_another_name() -> None:
    w = world()
    other = pki.make_root(key(21), name="Elsewhere", not_before=T0, not_after=T1, serial=1)
    message = refused(UNTRUSTED, [w.ls, w.ts], root=other)
    assert message == "certificate 'LS01' was not issued by 'Elsewhere'"


SECOND = timedelta(seconds=1)


@pytest.mark.parametrize("which", ["root", "ls", "ts"])
@pytest.mark.parametrize(
    ("start", "end", "word"), [(T0, NOW - SECOND, "expired"), (NOW + SECOND, T1, "not valid until")]
)
def test_certificate_outside_validity(
    which: str, start: datetime, end: datetime, word: str
) -> None:
    v = {"root": FULL, "ls": FULL, "ts": FULL} | {which: (start, end)}
    (root_start, root_end) = v["root"]
    root = pki.make_root(
        key(1), name="Clearinghouse", not_before=root_start, not_after=root_end, serial=1
    )
    ls = issue_ls(key(1), root, window=v["ls"])
    ts = issue_ts(key(2), ls, window=v["ts"])
    name = {"root": "Clearinghouse", "ls": "LS01", "ts": "TS01"}[which]
    message = refused(EXPIRED, [root, ls, ts], root=root)
    assert message.startswith(f"certificate {name!r}")
    assert word in message


def test_trust_is_judged_before_time() -> None:
    w = world()
    later = T1 + timedelta(days=1)
    other = pki.make_root(key(20), name="Clearinghouse", not_before=T0, not_after=T1, serial=1)
    with pytest.raises(pki.CertificateError) as info:
        pki.validate_chain([w.ls, w.ts], other, later)
    assert info.value.code is UNTRUSTED


def test_terminal_server_signed_by_another_license_server_key() -> None:
    w = world()
    # An impostor LS01 with its own key, genuinely certified, issues TS01; presented under
    # the real LS01 certificate, the signature does not verify.
    impostor = issue_ls(key(1), w.root, seed=30)
    ts = issue_ts(key(30), impostor)
    pki.validate_chain([impostor, ts], w.root, NOW)
    message = refused(UNTRUSTED, [w.ls, ts])
    assert message == "certificate 'TS01' was not issued by 'LS01' (bad signature)"


def test_wrong_issuer_name() -> None:
    w = world()
    assert refused(UNTRUSTED, [w.ls, w.temp_ts], allow_temporary_issuer=True) == (
        "certificate 'TS02' was not issued by 'LS01'"
    )


def test_tampered_signature_byte() -> None:
    w = world()
    der = bytearray(pki.cert_to_der(w.ts))
    der[-1] ^= 0x01
    tampered = pki.cert_from_der(bytes(der))
    assert "bad signature" in refused(UNTRUSTED, [w.ls, tampered])


def test_tampered_public_key_byte() -> None:
    w = world()
    der = bytearray(pki.cert_to_der(w.ts))
    at = bytes(der).index(pki.raw_public_key(key(3)))
    der[at] ^= 0x40
    assert "bad signature" in refused(UNTRUSTED, [w.ls, pki.cert_from_der(bytes(der))])


def test_signature_bit_string_with_unused_bits() -> None:
    # DER allows a BIT STRING to claim unused (zero) bits; cryptography then reports the
    # same signature bytes. Refused, so that a certificate has exactly one encoding.
    w = world()
    der = bytearray(pki.cert_to_der(w.ts))
    assert der[-67:-64] == b"\x03\x41\x00"
    # The keys are deterministic, so this signature always ends in a clear bit (which the
    # forged encoding claims as padding); a changed fixture must keep that true.
    assert not der[-1] & 1, "fixture changed: choose keys whose signature ends in a 0 bit"
    der[-65] = 1
    assert "not signed with Ed25519" in refused(UNTRUSTED, [w.ls, pki.cert_from_der(bytes(der))])


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_is_refused(data: st.DataObject) -> None:
    w = world()
    der = bytearray(pki.cert_to_der(w.ts))
    position = data.draw(st.integers(0, len(der) - 1), label="position")
    der[position] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(pki.CertificateError) as info:
        pki.validate_chain([w.ls, pki.cert_from_der(bytes(der))], w.root, NOW)
    assert info.value.code is UNTRUSTED


def test_wrong_leaf_role() -> None:
    w = world()
    message = refused(UNTRUSTED, [w.ls], leaf_role="terminal-server")
    assert message == (
        "certificate 'LS01' is a license-server certificate, expected a terminal-server certificate"
    )
    refused(UNTRUSTED, [w.ls, w.ts], leaf_role="license-server")


def test_license_server_claiming_to_be_issued_by_a_terminal_server() -> None:
    w = world()
    forged = forge(
        key(3), w.ts.subject, name="LS66", ca=True, identity=ident_map("license-server", "LS66")
    )
    message = refused(UNTRUSTED, [w.ls, w.ts, forged])
    assert message == (
        "certificate 'LS66' claims to be a license-server issued by 'TS01', a terminal-server"
    )


def test_terminal_server_issued_directly_by_the_root() -> None:
    w = world()
    forged = forge(
        key(1), w.root.subject, name="TS66", ca=False, identity=ident_map("terminal-server", "TS66")
    )
    assert "issued by 'Clearinghouse', a clearinghouse" in refused(UNTRUSTED, [forged])


def test_terminal_server_certificate_that_claims_to_be_a_ca() -> None:
    w = world()
    forged = forge(
        key(2),
        w.ls.subject,
        name="TS66",
        ca=True,
        identity=ident_map("terminal-server", "TS66", license_server_id="LSID-0001"),
    )
    assert "constraints wrong for a terminal-server" in refused(UNTRUSTED, [w.ls, forged])


def test_unknown_critical_extension() -> None:
    w = world()
    forged = forge(
        key(2),
        w.ls.subject,
        name="TS66",
        ca=False,
        identity=ident_map("terminal-server", "TS66"),
        extra=x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
    )
    assert "unknown critical extension" in refused(UNTRUSTED, [w.ls, forged])


def test_trusted_root_must_be_a_clearinghouse() -> None:
    w = world()
    assert "not a Clearinghouse root" in refused(UNTRUSTED, [w.ts], root=w.ls)


# --- temporary certificates -------------------------------------------------------------


def test_temporary_chain_needs_the_flag() -> None:
    w = world()
    message = refused(UNTRUSTED, [w.temp_ls, w.temp_ts])
    assert "temporary self-signed certificate of an unactivated license server" in message
    refused(UNTRUSTED, [w.temp_ls])


def test_temporary_chain_accepted_with_the_flag() -> None:
    w = world()
    result = pki.validate_chain(
        [w.temp_ls, w.temp_ts],
        w.root,
        NOW,
        leaf_role="terminal-server",
        allow_temporary_issuer=True,
    )
    assert (result.name, result.temporary, result.issuer_name) == ("TS02", True, "LS02")
    alone = pki.validate_chain([w.temp_ls], w.root, NOW, allow_temporary_issuer=True)
    assert alone.temporary
    # The flag changes nothing for a chain that reaches the real root.
    assert not pki.validate_chain([w.ls, w.ts], w.root, NOW, allow_temporary_issuer=True).temporary


def test_temporary_chain_still_checks_signatures_and_time() -> None:
    w = world()
    other_temp = pki.make_temporary_license_server_cert(
        key(40), name="LS02", version=2000, not_before=T0, not_after=T1, serial=4
    )
    assert "bad signature" in refused(
        UNTRUSTED, [other_temp, w.temp_ts], allow_temporary_issuer=True
    )
    refused(
        EXPIRED, [w.temp_ls, w.temp_ts], now=T1 + timedelta(days=1), allow_temporary_issuer=True
    )


def test_temporary_mark_cannot_appear_below_the_root() -> None:
    w = world()
    forged = forge(
        key(2),
        w.ls.subject,
        name="TS66",
        ca=False,
        identity=ident_map("terminal-server", "TS66", temporary=True),
    )
    assert "temporary mark" in refused(UNTRUSTED, [w.ls, forged])


def test_non_self_signed_temporary_top_is_refused() -> None:
    w = world()
    forged = forge(
        key(1),
        w.root.subject,
        name="LS66",
        ca=True,
        identity=ident_map("license-server", "LS66", temporary=True),
    )
    assert "not self-signed" in refused(UNTRUSTED, [forged], allow_temporary_issuer=True)


# --- arguments --------------------------------------------------------------------------


def test_builders_refuse_bad_arguments() -> None:
    w = world()
    naive = datetime(2003, 1, 1)
    calls: list[Callable[[], object]] = [
        lambda: pki.make_root(key(1), name="CH", not_before=naive, not_after=T1, serial=1),
        lambda: pki.make_root(key(1), name="CH", not_before=T1, not_after=T0, serial=1),
        lambda: pki.make_root(key(1), name="CH", not_before=T0, not_after=T1, serial=0),
        lambda: pki.make_root(key(1), name="CH", not_before=T0, not_after=T1, serial=2**159),
        lambda: pki.make_root(key(1), name="", not_before=T0, not_after=T1, serial=1),
        lambda: pki.make_root(key(1), name="x" * 65, not_before=T0, not_after=T1, serial=1),
        lambda: pki.make_temporary_license_server_cert(
            key(4), name="LS", version=2008, not_before=T0, not_after=T1, serial=1
        ),
        # Wrong issuer key, and an issuer certificate of the wrong role.
        lambda: pki.issue_license_server_cert(
            key(2),
            w.root,
            key(2).public_key(),
            name="LS",
            version=2003,
            license_server_id="",
            not_before=T0,
            not_after=T1,
            serial=1,
        ),
        lambda: pki.issue_terminal_server_cert(
            key(1),
            w.root,
            key(3).public_key(),
            name="TS",
            version=2003,
            not_before=T0,
            not_after=T1,
            serial=1,
        ),
    ]
    for call in calls:
        with pytest.raises(LocalProtocolError) as info:
            call()
        assert info.value.code is ErrorCode.INVALID_FIELD


def test_validate_chain_refuses_bad_arguments() -> None:
    w = world()
    with pytest.raises(LocalProtocolError, match="timezone-aware"):
        pki.validate_chain([w.ls], w.root, datetime(2004, 1, 1))
    with pytest.raises(LocalProtocolError, match="not a certificate role"):
        pki.validate_chain([w.ls], w.root, NOW, leaf_role="domain-controller")


def test_now_in_another_timezone() -> None:
    w = world()
    eastern = timezone(timedelta(hours=-5))
    assert pki.validate_chain([w.ls, w.ts], w.root, T0.astimezone(eastern)).name == "TS01"
