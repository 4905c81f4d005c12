"""The RDP listener's TLS certificate and server context (MS-RDPBCGR §5.4 Enhanced RDP Security).

Contract:
- `server_context(data_dir)` returns an `ssl.SSLContext` for the server side of
  `trio.SSLStream`. Its certificate is self-signed (RSA 2048, SHA-256, CN "tslic RDP
  listener") and kept in `data_dir` as `rdp-tls-cert.pem` and `rdp-tls-key.pem` (0600); it is
  made on first use and reused afterwards, so a client that pinned it (rdesktop's
  known_certs) trusts it next time. A file that does not load is an `RdpTlsError` naming it.
- The certificate's validity uses the host's wall clock, not the agent's virtual clock: TLS
  clients compare it with theirs. Real clients are told to accept it (`xfreerdp
  /cert:ignore`, rdesktop's "yes"), as with any self-signed RDP server.
"""

from __future__ import annotations

import datetime
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CERT_FILE = "rdp-tls-cert.pem"
KEY_FILE = "rdp-tls-key.pem"
VALID_DAYS = 3650


class RdpTlsError(Exception):
    """The TLS certificate or key in the data directory cannot be used."""


def _make(cert_path: Path, key_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tslic RDP listener")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_certificate(data_dir: Path) -> tuple[Path, Path]:
    """The certificate and key paths, made if either is missing."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = data_dir / CERT_FILE, data_dir / KEY_FILE
    if not (cert_path.exists() and key_path.exists()):
        _make(cert_path, key_path)
    return cert_path, key_path


def server_context(data_dir: Path) -> ssl.SSLContext:
    cert_path, key_path = ensure_certificate(data_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # RDP clients of the 2000s era still negotiate TLS 1.0-1.2; today's ones take 1.2 or 1.3
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, OSError) as exc:
        raise RdpTlsError(f"cannot load the RDP TLS certificate {cert_path}: {exc}") from None
    return context
