"""`tslic connect`: connect emulated RDP clients to a terminal-server agent.

Contract: one device (`--device NAME`, store `--store DIR`) or, with `--count N`, N distinct
devices NAME-1..NAME-N, each with its own store `DIR/NAME-i`. Prints what the user saw (the
texts of docs/PROTOCOL.md §8.3) and, with --json, the outcomes including the license received
(type, product, version, issuer, expiry). Exit status 0 if every device got a session, 1 if
licensing refused any, 2 for an error of the tool itself (a bad option, an unusable store).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import trio
from tslic.protocol.clock import format_date
from tslic.protocol.domain import ClientOS
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.runtime.args import add_clock_arguments, clock_from_args
from tslic.runtime.files import read_certs
from tslic.runtime.peer import split_address

from .client import Outcome, connect
from .store import LicenseStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", required=True, metavar="HOST:PORT", help="the terminal server")
    parser.add_argument("--device", required=True, help="the client computer's name")
    parser.add_argument("--user", default="user", help="the user who logs on")
    parser.add_argument("--domain", default="", help="the user's domain")
    parser.add_argument("--os", choices=[o.value for o in ClientOS], default=ClientOS.XP_PRO.value)
    parser.add_argument("--store", type=Path, required=True, help="the license store (MSLicensing)")
    parser.add_argument("--reset-store", action="store_true", help="delete the store first")
    parser.add_argument("--count", type=int, default=1, help="connect N distinct devices")
    parser.add_argument("--wrong-password", action="store_true", help="the logon fails")
    parser.add_argument(
        "--trust-root", type=Path, help="Clearinghouse root (PEM) to check the server"
    )
    add_clock_arguments(parser, daemon=False)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per connection")
    parser.add_argument("--json", action="store_true")


def describe(outcome: Outcome) -> list[str]:
    """What the user saw, line by line."""
    lines = []
    if outcome.presented_stored:
        lines.append(f"{outcome.device}: presented the license stored on this computer")
    lic = outcome.license
    if outcome.status == "licensed" and lic is not None:
        expires = "never" if not lic.expires_at else format_date(lic.expires_at)
        verb = {"new": "received", "upgrade": "received an upgraded"}.get(
            outcome.received, "kept its"
        )
        lines.append(
            f"{outcome.device}: {verb} {lic.kind} license: {lic.product_label} "
            f"(issued by {lic.issuer}, expires {expires})"
        )
    elif outcome.status == "valid-client":
        lines.append(f"{outcome.device}: connected; the terminal server issued no license")
    lines += [f"{outcome.device}: {w}" for w in outcome.warnings]
    if outcome.status in ("disconnected", "aborted", "error"):
        lines.append(f"{outcome.device}: {outcome.text}")
    elif outcome.logged_on:
        lines.append(f"{outcome.device}: logged on")
    return lines


def run(args: argparse.Namespace) -> int:
    split_address(args.agent)
    if not 1 <= args.count <= 10_000:
        raise ServiceError("--count must be between 1 and 10000", code=ErrorCode.INVALID_FIELD)
    trust_root = read_certs(args.trust_root)[0] if args.trust_root is not None else None
    clock = clock_from_args(args)
    if args.count == 1:
        devices = [(args.device, args.store)]
    else:
        devices = [
            (f"{args.device}-{i}", args.store / f"{args.device}-{i}")
            for i in range(1, args.count + 1)
        ]
    if args.reset_store:
        for _, path in devices:
            LicenseStore(path).reset()

    async def main() -> list[Outcome]:
        outcomes = []
        for device, path in devices:
            outcomes.append(
                await connect(
                    args.agent,
                    store=LicenseStore(path),
                    device=device,
                    user=args.user,
                    domain=args.domain,
                    client_os=ClientOS(args.os),
                    clock=clock,
                    trust_root=trust_root,
                    password_ok=not args.wrong_password,
                    timeout=args.timeout,
                )
            )
        return outcomes

    outcomes = trio.run(main)
    if args.json:
        doc: object = (
            outcomes[0].to_json()
            if args.count == 1
            else {
                "devices": [o.to_json() for o in outcomes],
                "summary": summary(outcomes),
            }
        )
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        for outcome in outcomes:
            print("\n".join(describe(outcome)))
        if args.count > 1:
            counts = summary(outcomes)
            print("Summary: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0 if all(o.connected for o in outcomes) else 1


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        key = o.status
        if o.status == "licensed" and o.license is not None:
            key = f"licensed ({o.license.kind})"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
