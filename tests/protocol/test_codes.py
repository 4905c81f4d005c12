"""Tests of tslic.protocol.codes: license codes, program numbers, base-24 codes."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from tslic.protocol.codes import (
    ALPHABET,
    WIZARD_MESSAGE,
    b24_length,
    check_agreement_number,
    check_open_license,
    check_retail_code,
    check_xp_product_key,
    decode_b24,
    encode_b24,
    group5,
    make_retail_code,
    normalize_code,
)
from tslic.protocol.errors import ErrorCode, ServiceError

data21 = st.binary(min_size=21, max_size=21)


def substitute(code: str, index: int, offset: int) -> str:
    """Replace the character at `index` by another letter of the alphabet."""
    new = ALPHABET[(ALPHABET.index(code[index]) + offset) % len(ALPHABET)]
    return code[:index] + new + code[index + 1 :]


def test_alphabet() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 24
    assert not set(ALPHABET) & set("AEIOU015LSZN")


def test_normalize_and_group() -> None:
    assert normalize_code(" ab-cd\tef \n") == "ABCDEF"
    assert group5("abcdefghijkl") == "ABCDE-FGHIJ-KL"
    assert group5("BCDFG-HJKMP") == "BCDFG-HJKMP"


# --- retail codes -----------------------------------------------------------------------------


def test_make_retail_code_is_deterministic_and_valid() -> None:
    code = make_retail_code(b"serial-1")
    assert code == make_retail_code(b"serial-1")
    assert code != make_retail_code(b"serial-2")
    assert len(code) == 25
    assert set(code) <= set(ALPHABET)
    assert check_retail_code(group5(code).lower()) == code
    assert check_retail_code(" ".join(group5(code).split("-"))) == code


@given(st.binary(max_size=32), st.integers(0, 24), st.integers(1, 23))
def test_retail_single_typo_caught(serial: bytes, index: int, offset: int) -> None:
    code = make_retail_code(serial)
    assert check_retail_code(code) == code
    with pytest.raises(ServiceError) as info:
        check_retail_code(substitute(code, index, offset))
    assert info.value.code is ErrorCode.INVALID_LICENSE_CODE
    assert WIZARD_MESSAGE in info.value.message
    assert "0x13A7" in info.value.message
    assert "does not check out" in info.value.message


@given(st.binary(max_size=32), st.integers(0, 23))
def test_retail_neighbour_swap_caught(serial: bytes, index: int) -> None:
    code = make_retail_code(serial)
    a, b = code[index], code[index + 1]
    # Luhn mod 24 misses only the swap of the lowest and highest characters ("B9" <-> "9B").
    assume(a != b and {a, b} != {"B", "9"})
    with pytest.raises(ServiceError):
        check_retail_code(code[:index] + b + a + code[index + 2 :])


def test_retail_wrong_length_and_characters() -> None:
    code = make_retail_code(b"x")
    with pytest.raises(ServiceError, match=r"25 characters.*has 24"):
        check_retail_code(code[:-1])
    with pytest.raises(ServiceError, match=r"'O' \(group 2, character 3\)") as info:
        check_retail_code(code[:7] + "O" + code[8:])
    assert info.value.detail["groups"] == [2]
    assert info.value.code is ErrorCode.INVALID_LICENSE_CODE


# --- program numbers and product keys ---------------------------------------------------------


def test_open_license() -> None:
    assert check_open_license("1234-5678", "ab12cd34ef56gh7") == ("12345678", "AB12CD34EF56GH7")
    with pytest.raises(ServiceError, match="8 digits") as info:
        check_open_license("1234567", "AB12CD34EF56GH7")
    assert info.value.code is ErrorCode.INVALID_LICENSE_CODE
    assert WIZARD_MESSAGE in info.value.message
    with pytest.raises(ServiceError, match="15 letters or digits"):
        check_open_license("12345678", "AB12CD34EF56GH")
    with pytest.raises(ServiceError, match="15 letters or digits"):
        check_open_license("12345678", "AB12CD34EF56G!7")
    with pytest.raises(ServiceError, match="8 digits"):
        check_open_license("1234567A", "AB12CD34EF56GH7")


@pytest.mark.parametrize("bad", ["123456", "12345678", "12345A7", "١٢٣٤٥٦٧", ""])
def test_agreement_number_rejects(bad: str) -> None:
    with pytest.raises(ServiceError, match="7 digits") as info:
        check_agreement_number(bad)
    assert info.value.code is ErrorCode.INVALID_LICENSE_CODE


def test_agreement_number_accepts() -> None:
    assert check_agreement_number(" 1234567 ") == "1234567"


def test_xp_product_key() -> None:
    key = "BCDFG-HJKMP-QRTVW-XY234-6789B"
    assert check_xp_product_key(key.lower()) == key.replace("-", "")
    assert check_xp_product_key(key.replace("-", "")) == key.replace("-", "")
    with pytest.raises(ServiceError, match="25 characters") as info:
        check_xp_product_key(key[:-1])
    assert info.value.code is ErrorCode.INVALID_LICENSE_CODE
    with pytest.raises(ServiceError, match="'A'"):
        check_xp_product_key("A" + key[1:])


# --- base-24 codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("nbytes", "chars"), [(0, 5), (1, 10), (16, 35), (20, 40), (21, 45)])
def test_b24_length(nbytes: int, chars: int) -> None:
    assert b24_length(nbytes) == chars
    assert len(normalize_code(encode_b24(bytes(nbytes)))) == chars


@given(st.integers(0, 64))
def test_b24_length_fits(nbytes: int) -> None:
    payload = b24_length(nbytes) - 5
    assert payload % 5 == 0
    assert 24**payload >= 256**nbytes
    assert 24 ** (payload - 5) < 256**nbytes or nbytes == 0


@given(st.binary(max_size=64))
def test_b24_round_trip(data: bytes) -> None:
    code = encode_b24(data)
    assert all(len(g) == 5 for g in code.split("-"))
    assert decode_b24(code, len(data)) == data
    assert decode_b24(normalize_code(code).lower(), len(data)) == data


@given(data21, st.integers(0, 44), st.integers(1, 23))
# A check-group typo whose shift also fits a payload typo in group 5: both are named.
@example(data=bytes.fromhex("85c8f9234ccf29298f26b402420b39c08c4fb0be6d"), index=44, offset=2)
def test_b24_single_typo_detected_and_located(data: bytes, index: int, offset: int) -> None:
    code = normalize_code(encode_b24(data))
    with pytest.raises(ServiceError) as info:
        decode_b24(substitute(code, index, offset), 21)
    error = info.value
    assert error.code is ErrorCode.INVALID_CONFIRMATION_CODE
    group = index // 5 + 1
    if group < 9:  # a payload typo is always located
        groups = error.detail["groups"]
        assert isinstance(groups, list | tuple)
        assert group in groups
        assert f"group {group}" in error.message.lower()
    else:  # a check-group typo is named (beside any payload group it is indistinguishable
        # from), or reported as indistinguishable from a swap
        groups = error.detail["groups"]
        assert isinstance(groups, list | tuple)
        assert 9 in groups or "swapped" in error.message


@given(data21, st.integers(0, 39), st.integers(1, 39))
def test_b24_payload_swap_detected(data: bytes, i: int, distance: int) -> None:
    code = normalize_code(encode_b24(data))
    j = i + distance
    assume(j < 40 and code[i] != code[j])
    swapped = code[:i] + code[j] + code[i + 1 : j] + code[i] + code[j + 1 :]
    with pytest.raises(ServiceError) as info:
        decode_b24(swapped, 21)
    assert info.value.code is ErrorCode.INVALID_CONFIRMATION_CODE


def test_b24_wrong_length_and_characters() -> None:
    code = encode_b24(bytes(range(21)))
    with pytest.raises(ServiceError, match=r"45 characters \(9 groups of five\).*has 40") as info:
        decode_b24(code[:-6], 21)
    assert info.value.code is ErrorCode.INVALID_CONFIRMATION_CODE
    with pytest.raises(ServiceError, match=r"'0' \(group 4, character 1\)"):
        decode_b24(code[:18] + "0" + code[19:], 21)


def test_b24_value_too_large_for_length() -> None:
    # Two bytes and one byte both take 10 characters; 256 does not fit in one byte.
    with pytest.raises(ServiceError, match="too large") as info:
        decode_b24(encode_b24(b"\x01\x00"), 1)
    assert info.value.code is ErrorCode.INVALID_CONFIRMATION_CODE


def test_b24_length_limits() -> None:
    with pytest.raises(ValueError, match="byte length"):
        encode_b24(bytes(1025))
    with pytest.raises(ValueError, match="byte length"):
        decode_b24("BBBBB", -1)
