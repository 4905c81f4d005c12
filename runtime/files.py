"""Keys, certificates and small state files in a daemon's data directory.

Contract: keys are PEM PKCS#8 files created with mode 0600 on first use and reused after;
certificates are PEM. Writes are atomic (temporary file, fsync, rename, fsync of the
directory), so a crash or power loss leaves the old file or the new one, never half of one.
Every failure is a `StorageError` naming the path and what to do, never a raw OSError.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol.codec import Unvalidated
from tslic.protocol.errors import ErrorCode, StorageError


def ensure_dir(path: Path) -> Path:
    """Create a data directory (and parents) if needed."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create data directory {path}: {exc.strerror}") from None
    return path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically and durably."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StorageError(
            f"cannot write {path}: {exc.strerror} (is the disk full or the directory read-only?)"
        ) from None
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable: until the directory itself is fsynced, a power
    loss may bring back the old entry. Best effort: some platforms and file systems refuse
    to open or fsync a directory, and the new file is already complete either way."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from None


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key at `path`, created (mode 0600) if it does not exist."""
    if path.exists():
        return load_key(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(path, pem, mode=0o600)
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    """Load an Ed25519 private key (PEM).

    Raises:
        StorageError: unreadable, or not an Ed25519 key.
    """
    data = read_bytes(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise StorageError(
            f"{path} is not a PEM private key", code=ErrorCode.INVALID_FIELD
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise StorageError(f"{path} is not an Ed25519 key", code=ErrorCode.INVALID_FIELD)
    return key


def write_certs(path: Path, certs: list[x509.Certificate] | tuple[x509.Certificate, ...]) -> None:
    """Write certificates as concatenated PEM (a chain is written root first)."""
    write_atomic(path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))


def read_certs(path: Path) -> list[x509.Certificate]:
    """Read one or more PEM certificates.

    Raises:
        StorageError: unreadable or not PEM certificates (UNTRUSTED_CERTIFICATE).
    """
    data = read_bytes(path)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise StorageError(
            f"{path} does not hold PEM certificates", code=ErrorCode.UNTRUSTED_CERTIFICATE
        ) from None


def write_json(path: Path, value: object) -> None:
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path, default: object = None) -> Unvalidated:
    """A JSON file's value (not checked: the caller validates it), or `default` if the file
    does not exist."""
    if not path.exists():
        return default
    try:
        return json.loads(read_bytes(path))
    except ValueError:
        raise StorageError(f"{path} is not valid JSON; restore it or delete it") from None
