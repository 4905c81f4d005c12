"""names._unprintable's fast path: str.isprintable() is False for every character the
per-character rule refuses, so a printable string can skip the lookup (issue 19)."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from tslic.protocol import names

REFUSED = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")


def test_every_refused_character_is_not_printable() -> None:
    refused = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in REFUSED]
    assert len(refused) > 900_000  # mostly unassigned (Cn) and private use (Co)
    assert not any(ch.isprintable() for ch in refused)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("PC1-12", None),
        ("Zoë Müller", None),
        ("名前", None),
        ("a\u00a0b", None),  # a no-break space is not printable, but allowed
        ("a\tb", "U+0009"),
        ("evil\u202e", "U+202E"),
        ("x\u2028", "U+2028"),
        ("\udcff", "U+DCFF"),
    ],
)
def test_the_first_refused_character_is_named(value: str, named: str | None) -> None:
    assert names._unprintable(value) == named
