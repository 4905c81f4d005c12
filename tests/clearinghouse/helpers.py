"""Constants and helpers the Clearinghouse tests share; the `h` fixture of conftest.py
hands them to a test as `h` (`h.activate(ch)`, `h.NOW`)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol.clock import parse_date
from tslic.protocol.messages.records import ContactInfo
from tslic.server.clearinghouse.core import Clearinghouse

NOW = parse_date("2005-03-01")
CONTACT = ContactInfo(first_name="Ada", last_name="Lovelace", company="Contoso", country="GB")
WEB_CONTACT = ContactInfo(
    first_name="Ada", last_name="Lovelace", company="Contoso", country="GB", email="ada@contoso.com"
)


def public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def activate(ch: Clearinghouse, *, version: int = 2003, name: str = "LS1") -> str:
    """Activate a fresh license server by the automatic method; return its ID."""
    key = Ed25519PrivateKey.generate()
    done = ch.activate(
        public_key=public(key),
        name=name,
        version=version,
        product_id="69712-640-1234567-12345",
        contact=CONTACT,
        now=NOW,
    )
    return done.license_server_id


class Helpers:
    """The constants and helpers above, as one value for the `h` fixture."""

    NOW = NOW
    CONTACT = CONTACT
    WEB_CONTACT = WEB_CONTACT
    public = staticmethod(public)
    activate = staticmethod(activate)
