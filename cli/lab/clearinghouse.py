"""The lab's Clearinghouse: the purchases it is seeded with, and its channels worked by hand.

Contract: `seed_clearinghouse` opens the Clearinghouse's data directory before its daemon
starts, records the test purchases a customer of 2003 might have made (their codes go into
the `Catalogue`), and returns the root certificate every daemon trusts. `add_xp_license`
records an XP license the same way. `web_post`/`web_activate` fill in the Clearinghouse's web
page; `phone`/`phone_activate` call its telephone line (`tslic clearinghouse phone`, with the
deployment's clock file). A page or call that yields no code raises `LabError`.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, Unpack

import trio
from cryptography import x509
from tslic.protocol.domain import CalProduct, Program
from tslic.protocol.messages.records import ContactInfo
from tslic.server.clearinghouse.core import Clearinghouse
from tslic.server.clearinghouse.purchases import add_agreement, add_retail, add_xp

from .procs import LabError

CONTACT = ContactInfo(
    first_name="Pat",
    last_name="Admin",
    company="Contoso Lab",
    country="United States",
    email="pat@contoso.example",
)
CODE = re.compile(r"\b(?:[BCDFGHJKMPQRTVWXY2346789]{5}-){4,}[BCDFGHJKMPQRTVWXY2346789]{5}\b")


@dataclass
class Catalogue:
    """Test purchases the lab seeds before the Clearinghouse starts."""

    retail: dict[str, str] = field(default_factory=dict)  # label -> 25-character code
    agreement: str = "4711001"


class XpVolume(TypedDict, total=False):
    """A volume XP license's program and numbers (`purchases.add_xp`)."""

    program: Program | None
    license_number: str
    authorization_number: str
    agreement_number: str


def seed_clearinghouse(data: Path, today: int, catalogue: Catalogue) -> x509.Certificate:
    """The catalogue of purchases a customer of 2003 might have made; returns the root."""
    ch = Clearinghouse(data)
    try:
        for label, product, count in (
            ("w2003-device-25", CalProduct.W2003_DEVICE_CAL, 25),
            ("w2003-device-5", CalProduct.W2003_DEVICE_CAL, 5),
            ("w2003-device-5b", CalProduct.W2003_DEVICE_CAL, 5),
            ("w2003-device-2b", CalProduct.W2003_DEVICE_CAL, 2),
            ("w2003-device-10b", CalProduct.W2003_DEVICE_CAL, 10),
            ("w2003-device-2", CalProduct.W2003_DEVICE_CAL, 2),
            ("w2003-device-3", CalProduct.W2003_DEVICE_CAL, 3),
            ("w2003-device-10", CalProduct.W2003_DEVICE_CAL, 10),
            ("w2003-device-20", CalProduct.W2003_DEVICE_CAL, 20),
            ("w2003-device-1", CalProduct.W2003_DEVICE_CAL, 1),
            ("w2003-user-10", CalProduct.W2003_USER_CAL, 10),
            ("w2000-cal-1", CalProduct.W2000_TS_CAL, 1),
            ("w2000-cal-5", CalProduct.W2000_TS_CAL, 5),
            ("w2003-device-web", CalProduct.W2003_DEVICE_CAL, 5),
            ("w2003-device-phone", CalProduct.W2003_DEVICE_CAL, 5),
        ):
            row = add_retail(ch, product=product, count=count, now=today)
            catalogue.retail[label] = row.reference
        add_agreement(
            ch,
            program=Program.SELECT,
            agreement_number=catalogue.agreement,
            product=CalProduct.W2003_DEVICE_CAL,
            count=50,
            now=today,
        )
        return ch.root_cert
    finally:
        ch.close()


def add_xp_license(
    data: Path, key: str, acquired: int, channel: str, **volume: Unpack[XpVolume]
) -> None:
    ch = Clearinghouse(data)
    try:
        add_xp(ch, product_key=key, acquired_at=acquired, channel=channel, **volume)
    finally:
        ch.close()


async def web_post(base_url: str, page: str, form: dict[str, str]) -> str:
    url = f"{base_url.rstrip('/')}/{page}"
    body = urllib.parse.urlencode(form).encode()

    def post() -> str:
        request = urllib.request.Request(url, data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # hang guard
                return str(response.read().decode())
        except urllib.error.HTTPError as exc:
            return str(exc.read().decode())

    return await trio.to_thread.run_sync(post)


async def web_activate(base_url: str, product_id: str) -> str:
    html = await web_post(
        base_url,
        "activate",
        {"product_id": product_id, **{k: getattr(CONTACT, k) for k in vars_of(CONTACT)}},
    )
    return first_code(html, "the activation page")


async def phone(data: Path, clock_file: Path, answers: list[str]) -> list[dict[str, str]]:
    """Call the Clearinghouse: answer its prompts in order; return its JSON results."""
    argv = [
        sys.executable,
        "-m",
        "tslic.cli",
        "clearinghouse",
        "phone",
        "--json",
        "--data",
        str(data),
        "--clock-file",
        str(clock_file),
    ]
    stdin = ("\n".join([*answers, "5"]) + "\n").encode()
    result = await trio.run_process(
        argv, stdin=stdin, capture_stdout=True, capture_stderr=True, check=False
    )
    return [json.loads(line) for line in result.stdout.decode().splitlines() if line]


async def phone_activate(data: Path, clock_file: Path, product_id: str) -> str:
    results = await phone(
        data,
        clock_file,
        [
            "1",
            product_id,
            CONTACT.first_name,
            CONTACT.last_name,
            CONTACT.company,
            CONTACT.country,
        ],
    )
    if not results:
        raise LabError("the telephone activation was refused")
    return results[0]["license_server_id"]


def vars_of(contact: ContactInfo) -> tuple[str, ...]:
    return ("first_name", "last_name", "company", "country", "email")


def first_code(html: str, where: str) -> str:
    match = CODE.search(html)
    if match is None:
        raise LabError(f"no code on {where}: {re.sub('<[^>]+>', ' ', html)[:300]}")
    return match.group(0)
