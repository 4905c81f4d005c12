"""The hostile caller on the Clearinghouse's telephone line (`tslic clearinghouse phone`, a
real process reading its answers from a pipe): empty, huge, non-ASCII, control characters,
markup and wrong types as answers are refused with the question and the rule named, the call
goes on, and nothing is recorded. A License Server ID given for one product ID does not
activate another license server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol.clock import parse_date
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.names import product_id_for
from tslic.server.clearinghouse.core import Clearinghouse

TSLIC = [sys.executable, "-m", "tslic.cli.main"]
HANG_GUARD = 90
PRODUCT_ID = "69712-640-1234567-12345"
NOW = parse_date("2005-03-01")
NAMES = "Ada\nLovelace\nContoso\nGB\n"


def call(data: Path, answers: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TSLIC, "clearinghouse", "phone", "--data", str(data)],
        input=answers, capture_output=True, text=True, timeout=HANG_GUARD,
    )  # fmt: skip


def activations(data: Path) -> list[object]:
    done = subprocess.run(
        [*TSLIC, "clearinghouse", "activations", "--data", str(data), "--json"],
        capture_output=True, text=True, timeout=HANG_GUARD,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows: list[object] = json.loads(done.stdout)["events"]
    return rows


HOSTILE_ANSWERS = [
    # (answers for one menu action, words of the refusal)
    ("1\n\n" + NAMES, "product ID"),
    ("1\nnot-a-product-id\n" + NAMES, "5-3-7-5 digits"),
    ("1\n" + "9" * 10_000 + "\n", "at most 256 characters"),
    ("1\n<script>alert(1)</script>\n" + NAMES, "5-3-7-5 digits"),
    ("1\n" + PRODUCT_ID + "\nAda\x1b[2J\n", "control characters"),
    ("1\n" + PRODUCT_ID + "\nAda\nLovelace\n\nGB\n", "company"),
    ("2\n\x00\n", "control characters"),
    ("3\nZZZZZ-ZZZZZ\nAda\nLovelace\n", "INVALID_CONFIRMATION_CODE"),
    ("4\nABCDE\n1\n<b>\n1\n1e9\n", "quantity"),
    ("4\nABCDE\n1\n<b>\n1\n\n", "License Server ID"),
]


@pytest.fixture(scope="module")
def transcript(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    data = tmp_path_factory.mktemp("phone") / "ch"
    answers = "".join(a for a, _ in HOSTILE_ANSWERS) + "Ünïcödé\n\x1b[31m\n" + "5\n"
    return data, call(data, answers)


def test_every_hostile_answer_is_refused_and_the_call_goes_on(
    transcript: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, done = transcript
    assert done.returncode == 1, done.stderr  # some requests were refused
    assert "Traceback" not in done.stderr
    sorry = [line for line in done.stdout.splitlines() if "Sorry, that cannot be done" in line]
    assert len(sorry) == len(HOSTILE_ANSWERS), sorry
    for line, (_, words) in zip(sorry, HOSTILE_ANSWERS, strict=True):
        assert words in line, (words, line)
        assert "\x1b" not in line
        assert "\x00" not in line
    assert "Please answer with a number from 1 to 5." in done.stdout  # the unknown choices
    assert done.stdout.rstrip().endswith("Goodbye.")


def test_nothing_was_recorded(transcript: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    data, _ = transcript
    assert [e for e in activations(data) if "request" in json.dumps(e)] == []


def test_an_id_for_one_product_id_does_not_activate_another_server(tmp_path: Path) -> None:
    """The License Server ID the telephone line gives is bound to the product ID asked for:
    a license server with another product ID cannot redeem it (the whole chain, in process:
    tests/clearinghouse/test_web.py does it over TCP)."""
    data = tmp_path / "ch"
    mine = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    done = subprocess.run(
        [*TSLIC, "clearinghouse", "phone", "--data", str(data), "--json"],
        input=f"1\n{product_id_for(mine)}\n{NAMES}5\n", capture_output=True, text=True,
        timeout=HANG_GUARD,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    code = json.loads(done.stdout)["license_server_id"]
    ch = Clearinghouse(data)
    try:
        other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        with pytest.raises(ServiceError) as refused:
            ch.claim_activation(code=code, public_key=other, name="LS2", version=2003, now=NOW)
        assert refused.value.code is ErrorCode.INVALID_CONFIRMATION_CODE
        assert product_id_for(mine) in refused.value.message
        done_ok = ch.claim_activation(code=code, public_key=mine, name="LS1", version=2003, now=NOW)
        assert done_ok.license_server_id == code
    finally:
        ch.close()
