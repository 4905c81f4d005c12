"""Names and identifiers as the emulated Windows spells them, checked in one place (sans-IO).

Contract:
- `problem(kind, value)` returns None for a valid value, else the rule it breaks in plain
  words (one sentence, no field name). Kinds and their public sources (docs/SOURCES.md):
  * COMPUTER: a NetBIOS computer name, 1 to 15 characters; letters, digits and
    - _ . ! @ # $ % ^ & ' ( ) { } ~ only (no spaces); not starting with a period; not digits
    only (KB 909264 "Naming conventions in Active Directory for computers, domains, sites,
    and OUs"; KB 244412 for all-numeric names).
  * USER: a user logon name (pre-Windows 2000, the SAM account name), 1 to 20 characters,
    none of " / \\ [ ] : ; | = , + * ? < >, not only periods and spaces (Windows Server 2003
    help, "User and computer accounts": user logon names).
  * GROUP: a group name, 1 to 256 characters, the same forbidden characters, not only
    periods and spaces (Windows Server 2003 help, "Create a local group").
  * SITE: an Active Directory site name, 1 to 63 characters of letters, digits and hyphens
    (KB 909264: site names follow DNS labels).
  * DOMAIN: a NetBIOS domain name (1 to 15 characters) or a DNS domain name (at most 255
    characters, labels of letters, digits and hyphens) (KB 909264).
  * MEMBER / QUALIFIED_GROUP: a COMPUTER or GROUP, optionally after DOMAIN\\ (a scope).
  * PRODUCT_ID: a Windows product ID in its 5-3-7-5 digit form, e.g. 69712-640-1234567-12345.
  Every kind also refuses control and formatting characters (C0, C1, bidirectional overrides).
- `text_problem(value, limit, required=...)`: free text (contact fields, reasons, codes): at
  most `limit` characters, one line, no control characters.
- `check(kind, value, field)` / `check_text(...)`: the same as a `ServiceError`
  (INVALID_FIELD, detail {"field", "rule"}) whose message names the field and the rule once;
  the message dataclasses use `problem` through `messages.base.require_name`.
- `shown(value)`: a peer-chosen string made safe for a terminal: control and formatting
  characters (and so every escape sequence) become visible `\\xNN` / `\\uNNNN` escapes.
- `product_id_for(public_key)` / `activation_request_code(public_key)`: the product ID a
  license server shows and the request code its wizard prints, both derived from its public
  key, so the Clearinghouse can tell which server a code was issued for.
"""

from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
from collections.abc import Callable

from . import codes
from .errors import ErrorCode, ServiceError

_Rule = Callable[[str], "str | None"]


class Kind(enum.StrEnum):
    COMPUTER = "computer name"
    USER = "user name"
    GROUP = "group name"
    SITE = "site name"
    DOMAIN = "domain name"
    PRODUCT_ID = "product ID"
    MEMBER = "computer name"  # a group member: COMPUTER or DOMAIN\\COMPUTER
    QUALIFIED_GROUP = "group name"  # GROUP or SCOPE\\GROUP (a computer or domain scope)


COMPUTER_MAX = 15
USER_MAX = 20
GROUP_MAX = 256
SITE_MAX = 63
DNS_DOMAIN_MAX = 255
TEXT_MAX = 256  # any other operator-typed field unless a tighter limit is given
# Names a remote peer sends in the licensing exchange (a client's machine and user name): the
# terminal server takes what the client sends, so these are bounded and free of control
# characters, not held to the NetBIOS rules; the utility shows them escaped anyway.
REMOTE_NAME_MAX = 64
# A client's user name: RDP 5.1 and later carry up to 512 bytes of UTF-16 with its terminating
# null (MS-RDPBCGR 2.2.1.11.1.1 TS_INFO_PACKET, cbUserName), so 255 characters.
REMOTE_USER_MAX = 255
_COMPUTER_EXTRA = set("-_.!@#$%^&'(){}~")
_ACCOUNT_FORBIDDEN = set('"/\\[]:;|=,+*?<>')
_PRODUCT_ID = re.compile(r"[0-9]{5}-[0-9]{3}-[0-9]{7}-[0-9]{5}")
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _unprintable(value: str) -> str | None:
    """The first control or formatting character, as the user would name it."""
    # str.isprintable() is False for every category refused below (and for spaces other
    # than U+0020), so a printable string needs no per-character lookup: the common case,
    # and the one on every license request's path (machine and user names).
    if value.isprintable():
        return None
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            return f"U+{ord(ch):04X}"
    return None


def _length(value: str, what: str, lo: int, hi: int) -> str | None:
    if not value:
        return f"a {what} cannot be empty"
    if not lo <= len(value) <= hi:
        return f"a {what} has at most {hi} characters, not {len(value)}"
    return None


def problem(kind: Kind, value: str) -> str | None:
    """None when `value` is a valid `kind`, else the rule it breaks."""
    if not isinstance(value, str):
        return f"a {kind} must be text"
    bad = _unprintable(value)
    if bad is not None:
        return f"a {kind} cannot contain control characters ({bad})"
    return _RULES[kind](value)


def _computer(value: str) -> str | None:
    too = _length(value, "computer name", 1, COMPUTER_MAX)
    if too:
        return too
    for ch in value:
        if not (ch.isalnum() or ch in _COMPUTER_EXTRA):
            what = "spaces" if ch == " " else repr(ch)
            return (
                f"a computer name cannot contain {what}: letters, digits and"
                " - _ . ! @ # $ % ^ & ' ( ) { } ~ only (NetBIOS)"
            )
    if value.startswith("."):
        return "a computer name cannot start with a period"
    if value.isdigit():
        return "a computer name cannot be only digits"
    return None


def _account(what: str, limit: int) -> _Rule:
    def rule(value: str) -> str | None:
        too = _length(value, what, 1, limit)
        if too:
            return too
        forbidden = sorted({ch for ch in value if ch in _ACCOUNT_FORBIDDEN})
        if forbidden:
            return (
                f"a {what} cannot contain {' '.join(forbidden)}"
                ' (none of " / \\ [ ] : ; | = , + * ? < >)'
            )
        if not value.strip(". "):
            return f"a {what} cannot be only periods and spaces"
        return None

    return rule


def _site(value: str) -> str | None:
    too = _length(value, "site name", 1, SITE_MAX)
    if too:
        return too
    if not _DNS_LABEL.fullmatch(value):
        return "a site name has letters, digits and hyphens only, not at either end"
    return None


def _domain(value: str) -> str | None:
    too = _length(value, "domain name", 1, DNS_DOMAIN_MAX)
    if too:
        return too
    if "." not in value:
        if len(value) > COMPUTER_MAX:
            return f"a NetBIOS domain name has at most {COMPUTER_MAX} characters"
        rule = _computer(value)
        return rule.replace("a computer name", "a NetBIOS domain name") if rule else None
    if not all(_DNS_LABEL.fullmatch(label) for label in value.rstrip(".").split(".")):
        return "a DNS domain name is labels of letters, digits and hyphens, joined by periods"
    return None


def _product_id(value: str) -> str | None:
    if not value:
        return "a product ID cannot be empty"
    if not _PRODUCT_ID.fullmatch(value):
        return "a product ID is 5-3-7-5 digits, e.g. 69712-640-1234567-12345"
    return None


def _qualified(inner: _Rule) -> _Rule:
    def rule(value: str) -> str | None:
        scope, sep, name = value.rpartition("\\")
        if sep:
            return _domain(scope) or inner(name)
        return inner(value)

    return rule


_RULES = {
    Kind.COMPUTER: _computer,
    Kind.USER: _account("user name", USER_MAX),
    Kind.GROUP: _account("group name", GROUP_MAX),
    Kind.SITE: _site,
    Kind.DOMAIN: _domain,
    Kind.PRODUCT_ID: _product_id,
    Kind.MEMBER: _qualified(_computer),
    Kind.QUALIFIED_GROUP: _qualified(_account("group name", GROUP_MAX)),
}


def text_problem(value: str, limit: int = TEXT_MAX, *, required: bool = False) -> str | None:
    """None for acceptable free text, else the rule it breaks."""
    if not isinstance(value, str):
        return "it must be text"
    if required and not value.strip():
        return "it cannot be empty"
    if len(value) > limit:
        return f"it has at most {limit} characters, not {len(value)}"
    bad = _unprintable(value)
    if bad is not None:
        return f"it cannot contain control characters ({bad})"
    return None


def _refuse(field: str, value: object, rule: str) -> ServiceError:
    text = value if isinstance(value, str) else repr(value)
    return ServiceError(
        f"{field} {shown(text, 40)} is refused: {rule}",
        code=ErrorCode.INVALID_FIELD,
        detail={"field": field, "rule": rule},
    )


def check(kind: Kind, value: str, field: str) -> str:
    """`value` if it is a valid `kind`; else ServiceError naming `field` and the rule."""
    rule = problem(kind, value)
    if rule is not None:
        raise _refuse(field, value, rule)
    return value


def check_text(value: str, field: str, limit: int = TEXT_MAX, *, required: bool = False) -> str:
    rule = text_problem(value, limit, required=required)
    if rule is not None:
        raise _refuse(field, value, rule)
    return value


def shown(value: str, limit: int | None = None) -> str:
    """`value` safe for a terminal: unprintable characters escaped, optionally shortened."""
    out = []
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            n = ord(ch)
            out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}")
        else:
            out.append(ch)
    text = "".join(out)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'" if limit is not None else text


def product_id_for(public_key: bytes) -> str:
    """A stable product ID in the 5-3-7-5 digit shape the licensing wizard shows."""
    digest = hashlib.sha256(b"tslic-product-id\x00" + public_key).digest()
    digits = f"{int.from_bytes(digest[:12], 'big'):030d}"[-20:]
    return f"{digits[:5]}-{digits[5:8]}-{digits[8:15]}-{digits[15:20]}"


def activation_request_code(public_key: bytes) -> str:
    """The request code a web or telephone activation takes to the Clearinghouse."""
    digest = hashlib.sha256(b"tslic-activation-request\x00" + public_key).digest()
    return codes.encode_b24(digest[:16])
