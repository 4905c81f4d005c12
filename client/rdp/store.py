"""The client's license store, after the MSLicensing registry key (docs/PROTOCOL.md §8.3).

Contract:
- A store is a directory with `HardwareID/` (the client's own Ed25519 key, created on first
  use with mode 0600: its public half is the hardware id, so a license copied to another
  device is useless there) and `Store/` (the licenses received, one file per product and
  scope, written atomically).
- `reset()` deletes the whole store, as administrators deleted MSLicensing; the next
  connection creates a new hardware id and presents no license.
- Every failure is a `StorageError` naming the path, never an OSError.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol.errors import StorageError
from tslic.protocol.messages.records import ProductInfo
from tslic.protocol.pki import raw_public_key
from tslic.runtime.files import ensure_dir, load_or_create_key, read_bytes, write_atomic

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class LicenseStore:
    """One device's MSLicensing-like store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._key: Ed25519PrivateKey | None = None

    @property
    def _key_path(self) -> Path:
        return self.root / "HardwareID" / "key.pem"

    def key(self) -> Ed25519PrivateKey:
        """The device key (created on first use)."""
        if self._key is None:
            ensure_dir(self._key_path.parent)
            self._key = load_or_create_key(self._key_path)
        return self._key

    def hwid(self) -> bytes:
        """The hardware id: the raw 32-byte public key."""
        return raw_public_key(self.key())

    def _license_path(self, product: ProductInfo, scope: str) -> Path:
        name = _UNSAFE.sub("_", f"{product.company}-{product.product_id}-{scope}")
        return self.root / "Store" / f"{name}.lic"

    def load(self, product: ProductInfo, scope: str) -> bytes | None:
        """The stored license for this product and scope, if any."""
        path = self._license_path(product, scope)
        if not path.exists():
            return None
        data = read_bytes(path)
        return data or None

    def save(self, product: ProductInfo, scope: str, blob: bytes) -> None:
        """Store (or replace) the license for this product and scope, atomically."""
        path = self._license_path(product, scope)
        ensure_dir(path.parent)
        write_atomic(path, blob)

    def licenses(self) -> list[Path]:
        folder = self.root / "Store"
        return sorted(folder.glob("*.lic")) if folder.exists() else []

    def reset(self) -> bool:
        """Delete the store (hardware id and licenses). Returns True if there was one."""
        self._key = None
        if not self.root.exists():
            return False
        try:
            shutil.rmtree(self.root)
        except OSError as exc:
            raise StorageError(
                f"cannot delete the license store {self.root}: {exc.strerror}"
            ) from None
        return True
