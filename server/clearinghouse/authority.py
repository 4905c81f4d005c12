"""The Clearinghouse's root of trust and its records of license servers.

Contract: `Authority(data_dir)` opens (or creates, on first start) the root key `root.key`
(mode 0600) and the self-signed root certificate `root.pem` in the data directory, and the
catalogue; the root is reused on every later start, so certificates and grants stay
verifiable across restarts. It issues license-server certificates bound to a public key,
records activations and events, and answers questions (`live`, `status`,
`certificate_revoked`). The rules that decide *when* to issue are in core.py.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import TypedDict

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tslic.protocol.clock import MS_PER_DAY, to_datetime
from tslic.protocol.domain import ActivationMethod, ActivationState, WindowsVersion
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.messages.records import ContactInfo
from tslic.protocol.pki import (
    cert_from_der,
    cert_to_der,
    identity_of,
    issue_license_server_cert,
    make_root,
)
from tslic.runtime.files import ensure_dir, load_or_create_key, read_certs, write_certs

from .catalogue import Activation, Catalogue
from .ids import (
    LS_CERT_DAYS,
    ROOT_CERT,
    ROOT_KEY,
    ROOT_NAME,
    ROOT_NOT_AFTER,
    ROOT_NOT_BEFORE,
    canonical_id,
)


class ActivationStatus(TypedDict):
    """`Authority.status`: what the Clearinghouse knows about one license server."""

    license_server_id: str
    name: str
    state: str
    method: str
    cert_serial: str
    cert_revoked: bool
    revoked_serials: list[str]


class Authority:
    """Root of trust and records. Close it with `close()`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = ensure_dir(Path(data_dir))
        self.root_key: Ed25519PrivateKey = load_or_create_key(self.data_dir / ROOT_KEY)
        self.root_cert = self._load_root()
        self.root_der = cert_to_der(self.root_cert)
        self.db = Catalogue(self.data_dir)

    def _load_root(self) -> x509.Certificate:
        path = self.data_dir / ROOT_CERT
        if path.exists():
            certs = read_certs(path)
            public = certs[0].public_key() if certs else None
            if (
                not isinstance(public, Ed25519PublicKey)
                or public.public_bytes_raw() != self.root_key.public_key().public_bytes_raw()
            ):
                raise ServiceError(
                    f"{path} does not match {self.data_dir / ROOT_KEY}; restore the pair or"
                    " remove both to create a new root (every issued certificate is then lost)",
                    code=ErrorCode.UNTRUSTED_CERTIFICATE,
                )
            return certs[0]
        cert = make_root(
            self.root_key,
            name=ROOT_NAME,
            not_before=ROOT_NOT_BEFORE,
            not_after=ROOT_NOT_AFTER,
            serial=secrets.randbits(64) + 1,
        )
        write_certs(path, [cert])
        return cert

    def close(self) -> None:
        self.db.close()

    # --- certificates ---------------------------------------------------------------------

    def _issue(
        self, public_key: bytes, name: str, version: int, lsid: str, now: int
    ) -> x509.Certificate:
        # Refusals, not protocol errors: a claim takes the name and version from the Hello,
        # and a licensing utility speaking for the server may have said Hello as itself.
        if version not in (WindowsVersion.W2000, WindowsVersion.W2003):
            raise ServiceError(
                "the license server's version must be 2000 or 2003; say Hello with the license"
                f" server's name and version (got {version})",
                code=ErrorCode.MISSING_REQUIRED_INFO,
                detail={"missing": "version"},
            )
        if not 1 <= len(name.strip()) <= 64:
            raise ServiceError(
                "the license server's computer name must be 1 to 64 characters",
                code=ErrorCode.MISSING_REQUIRED_INFO,
                detail={"missing": "name"},
            )
        start = to_datetime(now) - timedelta(days=1)
        end = min(to_datetime(now + LS_CERT_DAYS * MS_PER_DAY), ROOT_NOT_AFTER)
        return issue_license_server_cert(
            self.root_key,
            self.root_cert,
            Ed25519PublicKey.from_public_bytes(public_key),
            name=name,
            version=int(version),
            license_server_id=lsid,
            not_before=max(start, ROOT_NOT_BEFORE),
            not_after=end,
            serial=secrets.randbits(64) + 1,
        )

    def chain(self, activation: Activation) -> tuple[bytes, ...]:
        """The chain a license server receives: root first, its own certificate last."""
        return (self.root_der, activation.cert)

    def _record(
        self,
        *,
        lsid: str,
        public_key: bytes,
        name: str,
        version: int,
        product_id: str,
        method: ActivationMethod,
        contact: ContactInfo,
        state: ActivationState,
        now: int,
        activated_at: int | None = None,
    ) -> Activation:
        cert = self._issue(public_key, name, version, lsid, now)
        activation = Activation(
            license_server_id=lsid,
            public_key=public_key,
            name=name,
            version=version,
            product_id=product_id,
            method=method,
            contact=contact,
            state=state,
            cert=cert_to_der(cert),
            cert_serial=str(cert.serial_number),
            activated_at=now if activated_at is None else activated_at,
            changed_at=now,
        )
        self.db.put_activation(activation)
        return activation

    def _log(
        self, lsid: str, action: str, method: ActivationMethod, now: int, **detail: object
    ) -> None:
        self.db.log(
            at=now,
            license_server_id=lsid,
            action=action,
            method=str(method),
            detail=json.dumps(detail, sort_keys=True),
        )

    # --- questions ------------------------------------------------------------------------

    def live(self, license_server_id: str) -> Activation:
        """The activation of a license server that may install CALs.

        Raises:
            ServiceError: UNKNOWN_LICENSE_SERVER if never activated or deactivated.
        """
        lsid = canonical_id(license_server_id)
        found = self.db.activation(lsid)
        if found is None:
            raise ServiceError(
                f"no license server with ID {lsid} has been activated; activate it first",
                code=ErrorCode.UNKNOWN_LICENSE_SERVER,
            )
        if not found.state.may_issue_permanent:
            raise ServiceError(
                f"license server {lsid} was deactivated; reactivate it before installing licenses",
                code=ErrorCode.UNKNOWN_LICENSE_SERVER,
            )
        return found

    def status(self, license_server_id: str) -> ActivationStatus:
        """What the Clearinghouse knows about a license server: state and certificate."""
        lsid = canonical_id(license_server_id)
        found = self.db.activation(lsid)
        if found is None:
            raise ServiceError(
                f"no license server with ID {lsid}", code=ErrorCode.UNKNOWN_LICENSE_SERVER
            )
        return {
            "license_server_id": lsid,
            "name": found.name,
            "state": str(found.state),
            "method": str(found.method),
            "cert_serial": found.cert_serial,
            "cert_revoked": self.db.is_revoked(found.cert_serial),
            "revoked_serials": [
                r["serial"] for r in self.db.revoked() if r["license_server_id"] == lsid
            ],
        }

    def certificate_revoked(self, cert_der: bytes) -> bool:
        """True if the Clearinghouse revoked this license-server certificate."""
        return self.db.is_revoked(str(identity_of(cert_from_der(cert_der)).serial))
