"""The Clearinghouse by telephone: an interactive session on a text stream (§5.1, KB814593).

Contract:
- `phone_session(ch, now, inp, out)` plays the Clearinghouse agent: it prints a menu and
  prompts to `out` and reads one answer per line from `inp`, so it can be driven by a person at
  a terminal or by piping input. Actions: activate (product ID or request code + Required
  Information -> License Server ID code), reactivate (License Server ID + reason -> a new
  License Server ID code), deactivate (-> confirmation code), install licenses (-> license key
  pack code). The codes are the same claim tickets as the web pages', redeemed by the license
  server over TCP.
- A refusal prints the reason with its wire code and returns to the menu; the end of input
  ends the session. Returns the number of refused requests (0 when everything went through).
- With `results` given, each completed action is also written there as one JSON line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TextIO

from tslic.protocol.domain import ActivationMethod, CalProduct, Program
from tslic.protocol.errors import ErrorCode, ServiceError, TslicError
from tslic.protocol.messages.records import ContactInfo
from tslic.protocol.names import check_text

from .core import Clearinghouse
from .installation import Purchase, install_by_hand

PHONE = ActivationMethod.TELEPHONE
MENU = (
    "1. Activate a license server\n"
    "2. Reactivate a license server\n"
    "3. Deactivate a license server\n"
    "4. Install client access licenses\n"
    "5. End the call\n"
)
REASONS = (
    "The license server has been redeployed",
    "The license server certificate has been corrupted",
    "The license server certificate has expired",
    "Other",
)
ANSWER_MAX = 256  # characters in one answer
PRODUCTS = (CalProduct.W2000_TS_CAL, CalProduct.W2003_DEVICE_CAL, CalProduct.W2003_USER_CAL)


class _HungUp(Exception):
    """The caller hung up (end of input)."""


class _Call:
    def __init__(self, inp: TextIO, out: TextIO) -> None:
        self.inp, self.out = inp, out

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def ask(self, prompt: str) -> str:
        """One answer; over 256 characters or with control characters it is refused
        (ServiceError naming the question), as the agent would not take it down."""
        self.out.write(f"{prompt}: ")
        self.out.flush()
        line = self.inp.readline(ANSWER_MAX + 2)
        if not line:
            raise _HungUp
        if len(line) > ANSWER_MAX and not line.endswith("\n"):
            self.inp.readline()  # the rest of an over-long line
            line = line + "…"
        return check_text(line.strip(), f"the answer to {prompt!r}", ANSWER_MAX)

    def choose(self, prompt: str, options: list[str]) -> int:
        """A numbered choice; asks again until the answer is one of the numbers."""
        for n, text in enumerate(options, 1):
            self.say(f"  {n}. {text}")
        while True:
            answer = self.ask(f"{prompt} (1-{len(options)})")
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return int(answer) - 1
            self.say(f"Please answer with a number from 1 to {len(options)}.")

    def names(self) -> ContactInfo:
        return ContactInfo(first_name=self.ask("First name"), last_name=self.ask("Last name"))


def phone_session(
    ch: Clearinghouse,
    now: Callable[[], int],
    inp: TextIO,
    out: TextIO,
    *,
    results: TextIO | None = None,
) -> int:
    """Run one telephone call; return how many requests were refused."""
    call = _Call(inp, out)
    refused = 0
    call.say("Microsoft Clearinghouse (emulated): Terminal Server Licensing by telephone.")
    actions: list[Callable[[_Call, Clearinghouse, int], dict[str, str]]] = [
        _activate,
        _reactivate,
        _deactivate,
        _install,
    ]
    try:
        while True:
            call.say("")
            call.out.write(MENU)
            try:
                answer = call.ask("Choose 1-5")
            except ServiceError:
                answer = ""
            if answer == "5":
                break
            if answer not in ("1", "2", "3", "4"):
                call.say("Please answer with a number from 1 to 5.")
                continue
            try:
                result = actions[int(answer) - 1](call, ch, now())
            except TslicError as exc:
                refused += 1
                call.say(
                    f"Sorry, that cannot be done: {exc.message} [{exc.code.name} {int(exc.code)}]"
                )
                continue
            if results is not None:
                results.write(json.dumps(result, sort_keys=True) + "\n")
                results.flush()
    except _HungUp:
        call.say("")
    call.say("Thank you for calling the Microsoft Clearinghouse. Goodbye.")
    return refused


def _activate(call: _Call, ch: Clearinghouse, now: int) -> dict[str, str]:
    product_id = call.ask("Product ID or request code of the license server")
    contact = ContactInfo(
        first_name=call.ask("First name"),
        last_name=call.ask("Last name"),
        company=call.ask("Company"),
        country=call.ask("Country/Region"),
    )
    code = ch.request_activation(method=PHONE, product_id=product_id, contact=contact, now=now)
    call.say("Type this License Server ID into the licensing utility:")
    call.say(f"License Server ID: {code}")
    return {"action": "activate", "license_server_id": code}


def _reactivate(call: _Call, ch: Clearinghouse, now: int) -> dict[str, str]:
    lsid = call.ask("License Server ID")
    reason = REASONS[call.choose("Reason for reactivation", list(REASONS))]
    contact = call.names()
    code = ch.request_activation(
        method=PHONE,
        product_id="",
        contact=contact,
        now=now,
        reactivate_id=lsid,
        reason=reason,
    )
    call.say("Type this License Server ID code into the licensing utility:")
    call.say(f"License Server ID: {code}")
    return {"action": "reactivate", "license_server_id": code, "reason": reason}


def _deactivate(call: _Call, ch: Clearinghouse, now: int) -> dict[str, str]:
    lsid = call.ask("License Server ID")
    contact = call.names()
    code = ch.deactivate(license_server_id=lsid, method=PHONE, contact=contact, now=now)
    call.say("The license server is deactivated. Type this confirmation code into the utility:")
    call.say(f"Confirmation code: {code}")
    return {"action": "deactivate", "confirmation_code": code}


def _install(call: _Call, ch: Clearinghouse, now: int) -> dict[str, str]:
    lsid = call.ask("License Server ID")
    programs = list(Program)
    labels = [p.label for p in programs] + ["Transition offer license token (KB823313)"]
    choice = call.choose("License program", labels)
    fields: dict[str, str] = {}
    if choice == len(programs):
        program = Program.RETAIL
        fields["transition_token"] = call.ask("License token (25 characters)")
    elif (program := programs[choice]) is Program.RETAIL:
        fields["retail_code"] = call.ask("License code (25 characters)")
    elif program is Program.OPEN_LICENSE:
        fields["license_number"] = call.ask("License number (8 digits)")
        fields["authorization_number"] = call.ask("Authorization number (15 characters)")
    else:
        fields["agreement_number"] = call.ask("Enrollment or agreement number (7 digits)")
    product = PRODUCTS[call.choose("Product", [p.label for p in PRODUCTS])]
    count_text = call.ask("Quantity (0 or empty: the whole retail pack or token)") or "0"
    if not (count_text.isascii() and count_text.isdigit()) or int(count_text) > 1_000_000:
        raise ServiceError(
            "The quantity must be a whole number from 0 to 1,000,000.",
            code=ErrorCode.INVALID_FIELD,
        )
    purchase = Purchase(program=program, product=product, count=int(count_text), **fields)
    code, grant = install_by_hand(
        ch, license_server_id=lsid, purchase=purchase, now=now, method=PHONE
    )
    call.say(f"{grant.count} license(s): {grant.description}.")
    call.say("Type this license key pack code into the licensing utility:")
    call.say(f"License key pack code: {code}")
    return {"action": "install", "keypack_code": code, "count": str(grant.count)}
