"""The codes administrators type: license codes, program numbers, telephone/web codes
(Win32_TSLicenseKeyPack, TechNet cc740046, KB 814593).

Contract:
- Pure string work; `make_retail_code` hashes its input (deterministic, no randomness).
- Codes are typed by people, so input is normalized first (`normalize_code`: hyphens and
  white space dropped, upper case) and every check either returns the normalized value or
  raises `ServiceError` with a message saying what is wrong and where.
- The alphabet is the 24 characters of Windows product keys, `BCDFGHJKMPQRTVWXY2346789`
  (the MadLicense write-up; the alphabet of Windows product keys): no vowels, and no 0, 1 or
  5, which people confuse with O, I/L and S.

Formats (Win32_TSLicenseKeyPack):
- Retail license code: 25 characters (5 groups of 5). Ours are 24 characters derived from the
  Clearinghouse's serial bytes plus one check character (Luhn mod 24), so the wizard catches
  every single-character typo and most swaps of neighbours before contacting anybody. A bad
  code gets the wizard's message 0x13A7 (KB839878; reusing it for malformed codes is our
  choice, after KB 839878) followed by the specific reason.
- Open License: license number 8 digits, authorization number 15 letters/digits.
- Select / Enterprise / Campus / School agreement or enrollment number: 7 digits.
- Windows XP product key (transition offer, KB 823313): 25 characters of the alphabet, hyphens
  optional; not checksummed here (real keys carried their own check, which we do not model).
- Telephone/web codes (`encode_b24` / `decode_b24`): the bytes as one base-24 number, left
  padded to whole groups of five, followed by one check group of five characters. The length
  follows from the byte count (`b24_length`): 16 bytes -> 35 characters, 21 bytes -> 45.
  (the MadLicense write-up reports 35 characters decoded into a 21-byte buffer; 35 base-24
  characters carry at
  most 160 bits, so 21 arbitrary bytes need 37 characters plus padding.) The check group holds
  S0 = sum(v_i) and S1 = sum(i * v_i) modulo the prime 2819: every single-character typo and
  every swap of two payload characters is detected, and a single typo in the payload is
  located to its group (a swap and a typo in the check group look alike and are not).
"""

from __future__ import annotations

import hashlib
from typing import NoReturn

from .errors import ErrorCode, ServiceError

ALPHABET = "BCDFGHJKMPQRTVWXY2346789"
_BASE = len(ALPHABET)  # 24
_INDEX = {ch: i for i, ch in enumerate(ALPHABET)}

RETAIL_CODE_LENGTH = 25
OPEN_LICENSE_NUMBER_DIGITS = 8
OPEN_AUTHORIZATION_LENGTH = 15
AGREEMENT_NUMBER_DIGITS = 7
XP_PRODUCT_KEY_LENGTH = 25

# KB 839878: the wizard's message number and text when a key pack cannot be
# installed.
WIZARD_MESSAGE_NUMBER = "0x13A7"
WIZARD_MESSAGE = (
    "Licensing Wizard was unable to install the client license key pack. Please verify your"
    f" entry and try this operation again. (Message Number {WIZARD_MESSAGE_NUMBER})"
)

GROUP = 5
_CHECK_PRIME = 2819  # largest prime with p * p <= 24**5, so (S0, S1) fits one group
MAX_B24_BYTES = 1024  # keeps every position below the prime (the locator needs that)


def normalize_code(text: str) -> str:
    """Drop hyphens and white space and upper-case the rest.

    Args:
        text: what the administrator typed.

    Returns:
        The normalized code (not yet validated).
    """
    return "".join(text.split()).replace("-", "").upper()


def group5(code: str) -> str:
    """Format a code as groups of five separated by hyphens (XXXXX-XXXXX-...).

    Args:
        code: a code, normalized or not.

    Returns:
        The normalized code in groups of five (the last group may be shorter).
    """
    c = normalize_code(code)
    return "-".join(c[i : i + GROUP] for i in range(0, len(c), GROUP))


def _fail(code: ErrorCode, message: str, reason: str, **detail: object) -> NoReturn:
    raise ServiceError(
        f"{message} {reason}".strip(), code=code, detail={"reason": reason, **detail}
    )


def _where(index: int) -> str:
    return f"group {index // GROUP + 1}, character {index % GROUP + 1}"


def _check_alphabet(code: str, what: str, message: str, error: ErrorCode) -> None:
    """Reject characters outside the alphabet, naming the first one and where it is."""
    for i, ch in enumerate(code):
        if ch not in _INDEX:
            _fail(
                error,
                message,
                f"{what} cannot contain {ch!r} ({_where(i)}); only the characters"
                f" {ALPHABET} are used.",
                groups=[i // GROUP + 1],
            )


# --- retail license codes -------------------------------------------------------------------


def _luhn_sum(digits: list[int], *, with_check: bool) -> int:
    """Luhn mod 24: from the right, every second digit is doubled and folded (v // 24 + v % 24);
    doubling-and-folding permutes 0..23, so any single substitution changes the sum."""
    total = 0
    for k, v in enumerate(reversed(digits)):
        doubled = (k % 2 == 0) != with_check
        if doubled:
            v = 2 * v // _BASE + 2 * v % _BASE
        total += v
    return total % _BASE


def make_retail_code(serial_bytes: bytes) -> str:
    """Derive a 25-character retail license code from serial bytes (deterministic).

    Args:
        serial_bytes: the Clearinghouse's serial for the code (any length).

    Returns:
        25 characters of the alphabet, without hyphens; the last is the check character.
    """
    digest = hashlib.blake2b(serial_bytes, digest_size=16, person=b"tslic-retail").digest()
    payload = _to_digits(int.from_bytes(digest, "big") % _BASE**24, 24)
    check = (-_luhn_sum(payload, with_check=False)) % _BASE
    return "".join(ALPHABET[v] for v in [*payload, check])


def check_retail_code(text: str, *, what: str = "license code") -> str:
    """Validate a typed retail license code locally, as the wizard does
    (Win32_TSLicenseKeyPack, KB 839878).

    Args:
        text: the code as typed (hyphens and spaces allowed).
        what: what the code is called in the refusal ("license token" for the transition
            offer's tokens, which have the same form).

    Returns:
        The normalized 25-character code.

    Raises:
        ServiceError: INVALID_LICENSE_CODE with the wizard's 0x13A7 message and the reason.
    """
    code = normalize_code(text)
    err = ErrorCode.INVALID_LICENSE_CODE
    _check_alphabet(code, f"A {what}", WIZARD_MESSAGE, err)
    if len(code) != RETAIL_CODE_LENGTH:
        _fail(
            err,
            WIZARD_MESSAGE,
            f"A {what} has {RETAIL_CODE_LENGTH} characters (5 groups of 5); the entry"
            f" has {len(code)}.",
        )
    if _luhn_sum([_INDEX[ch] for ch in code], with_check=True) != 0:
        _fail(
            err,
            WIZARD_MESSAGE,
            f"The {what} does not check out: a character is mistyped or two neighbouring"
            " characters are swapped.",
        )
    return code


# --- program numbers and product keys --------------------------------------------------------


def _digits(text: str, count: int, what: str) -> str:
    value = normalize_code(text)
    if not (len(value) == count and value.isascii() and value.isdigit()):
        _fail(
            ErrorCode.INVALID_LICENSE_CODE,
            WIZARD_MESSAGE,
            f"{what} must be exactly {count} digits; the entry {value!r} is not.",
            field=what,
        )
    return value


def check_open_license(number: str, authorization: str) -> tuple[str, str]:
    """Validate the Open License program numbers (Win32_TSLicenseKeyPack).

    Args:
        number: the license number (8 digits).
        authorization: the authorization number (15 letters or digits).

    Returns:
        The normalized (number, authorization).

    Raises:
        ServiceError: INVALID_LICENSE_CODE naming the field that is wrong.
    """
    license_number = _digits(number, OPEN_LICENSE_NUMBER_DIGITS, "The Open License number")
    auth = normalize_code(authorization)
    if not (len(auth) == OPEN_AUTHORIZATION_LENGTH and auth.isascii() and auth.isalnum()):
        _fail(
            ErrorCode.INVALID_LICENSE_CODE,
            WIZARD_MESSAGE,
            f"The authorization number must be exactly {OPEN_AUTHORIZATION_LENGTH} letters or"
            f" digits; the entry {auth!r} is not.",
            field="The authorization number",
        )
    return license_number, auth


def check_agreement_number(text: str) -> str:
    """Validate a Select / Enterprise / Campus / School agreement or enrollment number
    (Win32_TSLicenseKeyPack).

    Args:
        text: the number as typed.

    Returns:
        The 7 digits.

    Raises:
        ServiceError: INVALID_LICENSE_CODE if it is not 7 digits.
    """
    return _digits(text, AGREEMENT_NUMBER_DIGITS, "The agreement or enrollment number")


def check_xp_product_key(text: str) -> str:
    """Validate the format of a Windows XP Professional product key (transition offer, KB 823313).

    Args:
        text: the key as typed; hyphens are optional (KB823313).

    Returns:
        The normalized 25-character key, without hyphens.

    Raises:
        ServiceError: INVALID_LICENSE_CODE saying what is wrong.
    """
    key = normalize_code(text)
    message = "The product key is not valid."
    _check_alphabet(key, "A product key", message, ErrorCode.INVALID_LICENSE_CODE)
    if len(key) != XP_PRODUCT_KEY_LENGTH:
        _fail(
            ErrorCode.INVALID_LICENSE_CODE,
            message,
            f"A Windows XP product key has {XP_PRODUCT_KEY_LENGTH} characters (5 groups of 5,"
            f" hyphens optional); the entry has {len(key)}.",
        )
    return key


# --- base-24 telephone / web codes -----------------------------------------------------------


def _to_digits(value: int, count: int) -> list[int]:
    out = [0] * count
    for i in range(count - 1, -1, -1):
        value, out[i] = divmod(value, _BASE)
    return out


def _from_digits(digits: list[int]) -> int:
    value = 0
    for v in digits:
        value = value * _BASE + v
    return value


def _payload_chars(nbytes: int) -> int:
    if not 0 <= nbytes <= MAX_B24_BYTES:
        raise ValueError(f"byte length must be 0..{MAX_B24_BYTES}, got {nbytes}")
    needed, reach, limit = 0, 1, 256**nbytes
    while reach < limit:
        needed, reach = needed + 1, reach * _BASE
    return -(-needed // GROUP) * GROUP


def b24_length(nbytes: int) -> int:
    """Number of characters (without hyphens) of the code carrying `nbytes` bytes.

    Args:
        nbytes: 0..MAX_B24_BYTES.

    Returns:
        A multiple of five: the payload groups plus one check group.

    Raises:
        ValueError: if `nbytes` is out of range.
    """
    return _payload_chars(nbytes) + GROUP


def _checks(payload: list[int]) -> tuple[int, int]:
    s0 = sum(payload) % _CHECK_PRIME
    s1 = sum((i + 1) * v for i, v in enumerate(payload)) % _CHECK_PRIME
    return s0, s1


def encode_b24(data: bytes) -> str:
    """Encode bytes as a base-24 code in groups of five, ending with a check group (MadLicense
    write-up).

    Args:
        data: up to MAX_B24_BYTES bytes.

    Returns:
        The code, grouped with hyphens, `b24_length(len(data))` characters without them.

    Raises:
        ValueError: if `data` is too long.
    """
    payload = _to_digits(int.from_bytes(data, "big"), _payload_chars(len(data)))
    s0, s1 = _checks(payload)
    check = _to_digits(s0 * _CHECK_PRIME + s1, GROUP)
    return group5("".join(ALPHABET[v] for v in payload + check))


def decode_b24(text: str, length: int) -> bytes:
    """Decode a typed base-24 code back to `length` bytes, catching typos (MadLicense write-up).

    Args:
        text: the code as typed (hyphens and spaces allowed, any case).
        length: the number of bytes the code carries.

    Returns:
        The bytes.

    Raises:
        ServiceError: INVALID_CONFIRMATION_CODE saying what is wrong and, for a single typo,
            in which group (`detail["groups"]`).
        ValueError: if `length` is out of range (a programming error, not a typo).
    """
    expected = b24_length(length)
    code = normalize_code(text)
    err = ErrorCode.INVALID_CONFIRMATION_CODE
    lead = "The code you typed is not valid."
    _check_alphabet(code, "The code", lead, err)
    if len(code) != expected:
        _fail(
            err,
            lead,
            f"It must have {expected} characters ({expected // GROUP} groups of five); the"
            f" entry has {len(code)}.",
        )
    values = [_INDEX[ch] for ch in code]
    payload, typed_check = values[:-GROUP], values[-GROUP:]
    s0, s1 = _checks(payload)
    right_check = _to_digits(s0 * _CHECK_PRIME + s1, GROUP)
    if typed_check != right_check:
        reason, groups = _diagnose(group5(code).split("-"), payload, typed_check)
        _fail(err, lead, reason, groups=groups)
    value = _from_digits(payload)
    if value >= 256**length:
        _fail(err, lead, "It is too large for this field; check the first group.", groups=[1])
    return value.to_bytes(length, "big")


def _diagnose(
    groups: list[str], payload: list[int], typed_check: list[int]
) -> tuple[str, list[int]]:
    """Explain a check mismatch: (reason, the 1-based groups a single typo would be in)."""
    s0, s1 = _checks(payload)
    last = len(groups)
    stored = _from_digits(typed_check)
    t0, t1 = divmod(stored, _CHECK_PRIME)
    if stored < _CHECK_PRIME * _CHECK_PRIME and s0 == t0:
        # Same digit sum: two characters swapped (S1 shifts by (a - b) * distance), or a typo
        # in the check group that left S0 alone; the two cannot be told apart.
        return (
            f"Two characters may be swapped, or group {last} ({groups[-1]}) is mistyped;"
            " check every group.",
            [],
        )
    found: list[int] = []
    if stored < _CHECK_PRIME * _CHECK_PRIME:
        # A typo e at payload position i (1-based) shifts S0 by e and S1 by i*e (mod p).
        d0, d1 = (s0 - t0) % _CHECK_PRIME, (s1 - t1) % _CHECK_PRIME
        pos = d1 * pow(d0, -1, _CHECK_PRIME) % _CHECK_PRIME
        e = d0 if d0 <= _CHECK_PRIME // 2 else d0 - _CHECK_PRIME
        if 1 <= pos <= len(payload) and 0 <= payload[pos - 1] - e < _BASE:
            found.append((pos - 1) // GROUP + 1)
    right_check = _to_digits(s0 * _CHECK_PRIME + s1, GROUP)
    if sum(a != b for a, b in zip(typed_check, right_check, strict=True)) == 1:
        found.append(last)  # a typo in the check group itself
    if not found:
        return "It does not check out: several characters are wrong; check every group.", []
    where = " or ".join(f"group {g} ({groups[g - 1]})" for g in found)
    return f"{where[0].upper()}{where[1:]} looks mistyped; check it and type it again.", found
