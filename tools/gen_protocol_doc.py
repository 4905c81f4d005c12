"""Regenerate the generated parts of docs/PROTOCOL.md from the code.

Contract:
- The document holds blocks between `<!-- BEGIN GENERATED <name> -->` and
  `<!-- END GENERATED -->`; `render_blocks()` renders every block from the code (state tables,
  error codes, enumerations, limits, test vectors) and `apply(text)` replaces each block's
  contents, refusing a document whose markers do not match the known blocks.
- `python tools/gen_protocol_doc.py` rewrites the file; `--check` only compares and exits 1
  (naming the stale blocks) if the document is out of date. tests/protocol/test_spec.py runs
  the same comparison.
- `wire_type(annotation)` is the msgpack type column of §4/§5 tables, shared with the test.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import msgpack
from tslic.protocol import codec, envelope, framing, states
from tslic.protocol.envelope import SIGNATURE_CONTEXT
from tslic.protocol.errors import ErrorCode
from tslic.protocol.messages import REGISTRY, Conversation, rdp, records
from tslic.protocol.messages.admin import ActivationAction
from tslic.protocol.vector_doc import render_vectors
from tslic.protocol.vectors import build_vectors
from tslic.runtime.service import Limits

DOC = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"
BLOCK = re.compile(
    r"(<!-- BEGIN GENERATED (?P<name>[\w:-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED -->)",
    re.DOTALL,
)

# Meaning and the usual sender of every wire error code (§8). A code without an entry here
# fails generation, so a new code cannot go undocumented.
# fmt: off
ERROR_NOTES: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.MALFORMED_FRAME: ("frame or envelope has the wrong shape", "zero length prefix; EOF inside a frame; outer not a 3-array; sender not 32 bytes; inner not bin; inner not a 7-array"),  # noqa: E501
    ErrorCode.FRAME_TOO_LARGE: ("length prefix above the receiver's maximum", "as soon as the 4 prefix bytes arrive"),  # noqa: E501
    ErrorCode.BAD_ENCODING: ("bytes are not exactly one valid msgpack object within the limits", "trailing bytes, ext types, invalid UTF-8, non-str map keys, over-long items, nesting deeper than 16"),  # noqa: E501
    ErrorCode.UNSUPPORTED_VERSION: ("inner header version is not 1", "after the signature verified"),  # noqa: E501
    ErrorCode.UNKNOWN_MESSAGE_TYPE: ("type number is not in the catalogue", "after freshness and replay checks"),  # noqa: E501
    ErrorCode.INVALID_FIELD: ("a header field or a body field is missing, extra, of the wrong type or out of range", "decoding the body; the detail names the field"),  # noqa: E501
    ErrorCode.BAD_SIGNATURE: ("the signature does not verify, is not 64 bytes, or the sender is not a valid Ed25519 key", "before the inner bytes are decoded"),  # noqa: E501
    ErrorCode.REPLAYED_MESSAGE: ("the (sender, nonce) pair was already seen within the window", "replay guard, shared by all connections of a daemon"),  # noqa: E501
    ErrorCode.STALE_TIMESTAMP: ("timestamp older than now − window", "freshness check"),
    ErrorCode.FUTURE_TIMESTAMP: ("timestamp later than now + window", "freshness check"),
    ErrorCode.ILLEGAL_STATE: ("message not allowed in the conversation's current state, or not part of this conversation", "state table check (§6)"),  # noqa: E501
    ErrorCode.WRONG_SENDER: ("a frame signed by another key than the one that signed the connection's first frame", "sender binding"),  # noqa: E501
    ErrorCode.HANDSHAKE_TIMEOUT: ("no Hello within the handshake timeout", "server, then it closes"),  # noqa: E501
    ErrorCode.IDLE_TIMEOUT: ("no request within the idle timeout", "server, then it closes"),
    ErrorCode.SERVER_BUSY: ("too many connections, or the server is shutting down", "server, instead of Welcome, then it closes"),  # noqa: E501
    ErrorCode.SHUTTING_DOWN: ("the service is stopping", "server; Goodbye is normally used instead"),  # noqa: E501
    ErrorCode.CONNECTION_LOST: ("the transport broke", "never sent; local report only"),
    ErrorCode.UNSUPPORTED_CONVERSATION: ("the Hello names a conversation this port does not serve", "server, instead of Welcome, then it closes; `detail.served` lists the port's conversations (MSG-11)"),  # noqa: E501
    ErrorCode.UNTRUSTED_CERTIFICATE: ("a certificate chain does not lead to the Clearinghouse root, or is malformed", "Hello/Welcome chains, TermServCert, licenses"),  # noqa: E501
    ErrorCode.CERTIFICATE_EXPIRED: ("an otherwise trustworthy chain is outside its validity at now", "as above"),  # noqa: E501
    ErrorCode.ACCESS_DENIED: ("the sender's key is not allowed to make this request", "Hello of a wrong role; admin key not the credential; license request without a TS certificate"),  # noqa: E501
    ErrorCode.NOT_IN_SECURITY_GROUP: ("License Server Security Group is enabled and the terminal server is not a member", "license server to terminal server (termsrv event 1043)"),  # noqa: E501
    ErrorCode.CERTIFICATE_REVOKED: ("the presented certificate was revoked", "reserved"),
    ErrorCode.WRONG_TERMINAL_SERVER: ("a terminal server marks or returns a license issued through another terminal server", "license server"),  # noqa: E501
    ErrorCode.HWID_MISMATCH: ("a license or challenge response is bound to another hardware id", "terminal server or license server"),  # noqa: E501
    ErrorCode.LOWER_VERSION: ("a Windows 2000 license server cannot serve a Windows Server 2003 terminal server", "in reply to Hello (conversation ends)"),  # noqa: E501
    ErrorCode.NO_LICENSE_AVAILABLE: ("no license can be issued (no CAL, temporary already used and expired)", "IssueLicense / UpgradeLicenseRequest"),  # noqa: E501
    ErrorCode.KEYPACK_NOT_SUPPORTED: ("this key pack cannot be installed on this license server version", "AdminInstallKeyPack (wizard 0x13A7, event 41)"),  # noqa: E501
    ErrorCode.NOT_ACTIVATED: ("the license server is not activated, so it issues no permanent license", "license requests, renewals"),  # noqa: E501
    ErrorCode.TEMPORARY_ALREADY_ISSUED: ("the device already had its one temporary license", "IssueLicense"),  # noqa: E501
    ErrorCode.REFERRAL: ("this server has no CAL of the needed type; another one has", "alongside a Referral"),  # noqa: E501
    ErrorCode.LICENSE_NOT_FOUND: ("no issued license with this id and hardware id", "MarkLicense, ReturnLicense"),  # noqa: E501
    ErrorCode.LICENSE_EXPIRED: ("the presented license has expired", "UpgradeLicenseRequest"),
    ErrorCode.MODE_NOT_SUPPORTED: ("the licensing mode is not supported by this terminal server version (Per User on 2000)", "license requests"),  # noqa: E501
    ErrorCode.INVALID_LICENSE: ("a license or grant document is malformed or forged", "license and grant checks (§10)"),  # noqa: E501
    ErrorCode.INVALID_LICENSE_CODE: ("a typed license code or program number is malformed or unknown", "Clearinghouse, utility (wizard message 0x13A7)"),  # noqa: E501
    ErrorCode.ENTITLEMENT_EXHAUSTED: ("the purchase does not cover the requested count", "Clearinghouse"),  # noqa: E501
    ErrorCode.MISSING_REQUIRED_INFO: ("Required Information is incomplete (first/last name, company, country; e-mail for web)", "Clearinghouse, license server"),  # noqa: E501
    ErrorCode.TRANSITION_NOT_ELIGIBLE: ("the XP Professional licence was not owned before 2003-04-24", "Clearinghouse"),  # noqa: E501
    ErrorCode.TRANSITION_OFFER_ENDED: ("the transition offer ended on 2007-06-30", "Clearinghouse"),
    ErrorCode.ALREADY_REDEEMED: ("the code or product key was already used", "Clearinghouse"),
    ErrorCode.METHOD_NOT_ALLOWED: ("the connection method is not allowed for this action (deactivation by web)", "Clearinghouse, license server"),  # noqa: E501
    ErrorCode.REASON_REQUIRED: ("reactivation without a reason", "Clearinghouse, license server"),
    ErrorCode.UNKNOWN_LICENSE_SERVER: ("the License Server ID is unknown to the Clearinghouse", "Clearinghouse"),  # noqa: E501
    ErrorCode.INVALID_CONFIRMATION_CODE: ("a typed License Server ID, key pack code or confirmation code does not decode or check out", "license server, Clearinghouse"),  # noqa: E501
    ErrorCode.NOT_FOUND: ("no such directory object (site, domain, computer, group)", "directory"),
    ErrorCode.PUBLISH_DENIED: ("the enterprise-admin credential is wrong", "directory writes"),
    ErrorCode.INTERNAL_ERROR: ("the service failed unexpectedly (logged) or a handler took too long", "any server"),  # noqa: E501
    ErrorCode.STORAGE_ERROR: ("the service could not commit to its database", "any server"),
    ErrorCode.RATE_LIMITED: ("too many requests from this key per second", "any server"),
    ErrorCode.INVALID_REQUEST: (
        "a request's values are well-formed but not acceptable to the service "
        "(the conversation goes on)",
        "any server, instead of a 1xxx code, when a handler judges a request",
    ),
}
# fmt: on


def wire_type(annotation: Any) -> str:
    """The msgpack type of a field annotation, as written in the §4/§5 tables."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return f"{wire_type(inner)} or nil"
    if origin is tuple:
        return f"array of {wire_type(args[0])}"
    if origin is dict:
        return f"map str → {wire_type(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        base = "int" if issubclass(annotation, int) else "str"
        return f"{base} ({annotation.__name__})"
    if annotation is bytes:
        return "bin"
    if annotation in (int, bool, str):
        return str(annotation.__name__)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return f"map ({annotation.__name__})"
    raise TypeError(f"no wire type for {annotation!r}")


def field_types(cls: type) -> list[tuple[str, str]]:
    """(field name, wire type) of a message or record, in wire order."""
    hints = typing.get_type_hints(cls)
    return [(f.name, wire_type(hints[f.name])) for f in dataclasses.fields(cls)]


def _errors() -> str:
    rows = ["| Code | Name | Class | Meaning | Sent when / by |", "|---|---|---|---|---|"]
    for code in ErrorCode:
        meaning, when = ERROR_NOTES[code]
        kind = "fatal" if code.closes_connection else "refusal"
        rows.append(f"| {int(code)} | `{code.name}` | {kind} | {meaning} | {when} |")
    return "\n".join(rows)


def _enum_types() -> list[type[enum.Enum]]:
    found: dict[str, type[enum.Enum]] = {}

    def visit(annotation: Any) -> None:
        for arg in typing.get_args(annotation):
            visit(arg)
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            found[annotation.__name__] = annotation

    classes = [*REGISTRY.values(), *_record_classes()]
    for cls in classes:
        for hint in typing.get_type_hints(cls).values():
            visit(hint)
    for extra in (rdp.DisconnectReason, ActivationAction):
        found[extra.__name__] = extra
    return [found[name] for name in sorted(found)]


def _record_classes() -> list[type]:
    return sorted(
        (
            obj
            for obj in vars(records).values()
            if isinstance(obj, type)
            and dataclasses.is_dataclass(obj)
            and obj.__module__ == records.__name__
        ),
        key=lambda c: c.__name__,
    )


_HEX_ENUMS = frozenset({"MessageType", "RdpError", "DisconnectReason"})


def _enums() -> str:
    out = []
    for enum_type in _enum_types():
        if issubclass(enum_type, int):
            hexed = enum_type.__name__ in _HEX_ENUMS
            kind, values = (
                "int",
                ", ".join(
                    f"{f'0x{m.value:03X}' if hexed else m.value} `{m.name}`" for m in enum_type
                ),
            )
        else:
            kind, values = "str", ", ".join(f"`{m.value}`" for m in enum_type)
        out.append(f"- **{enum_type.__name__}** ({kind}): {values}")
    return "\n".join(out)


def _limits() -> str:
    limits = Limits()
    rows = [
        ("frame body, maximum (framing.DEFAULT_MAX_FRAME)", f"{framing.DEFAULT_MAX_FRAME} bytes"),
        ("str item, maximum (codec.MAX_STR)", f"{codec.MAX_STR} characters"),
        ("bin item, maximum (codec.MAX_BIN)", f"{codec.MAX_BIN} bytes"),
        ("array, maximum items (codec.MAX_ARRAY)", str(codec.MAX_ARRAY)),
        ("map, maximum entries (codec.MAX_MAP)", str(codec.MAX_MAP)),
        ("nesting depth, maximum (codec.MAX_DEPTH)", str(codec.MAX_DEPTH)),
        ("nonce length (envelope.NONCE_LEN)", f"{envelope.NONCE_LEN} bytes"),
        (
            "freshness window at speed 1 (envelope.DEFAULT_WINDOW_MS)",
            f"{envelope.DEFAULT_WINDOW_MS} ms",
        ),
    ]
    for f in dataclasses.fields(Limits):
        rows.append((f"Limits.{f.name}", repr(getattr(limits, f.name))))
    return "\n".join(["| Limit | Default |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def _items(data: bytes, count: int) -> list[tuple[bytes, Any]]:
    """The first `count` msgpack objects of `data` with the exact bytes of each."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
    unpacker.feed(data)
    out, start = [], 0
    for _ in range(count):
        value = unpacker.unpack()
        end = unpacker.tell()
        out.append((data[start:end], value))
        start = end
    return out


def _split(raw: bytes, value: Any) -> str:
    """`header | payload` for a bin, or the whole encoding for anything else."""
    if isinstance(value, bytes) and value:
        return f"`{raw[: len(raw) - len(value)].hex()}` `{value.hex()}`"
    return f"`{raw.hex()}`"


def _anatomy() -> str:
    """V1 taken apart byte by byte (§11.1)."""
    frame = build_vectors()[0].frame
    (length,) = framing.PREFIX.unpack_from(frame)
    rows = [
        "| Bytes (hex) | Meaning |",
        "|---|---|",
        f"| `{frame[:4].hex()}` | length prefix: {length} body bytes |",
        f"| `{frame[4:5].hex()}` | fixarray of 3 items (the outer array) |",
    ]
    (sender, s_val), (inner, i_val), (sig, g_val) = _items(frame[5:], 3)
    rows.append(f"| {_split(sender, s_val)} | `sender`: bin 8, 32 bytes: the raw public key |")
    rows.append(
        f"| `{inner[: len(inner) - len(i_val)].hex()}` | `inner`: bin 8, "
        f"{len(i_val)} bytes, taken apart below |"
    )
    rows.append(f"| {_split(sig, g_val)} | `signature`: bin 8, 64 bytes |")
    names = ("version", "type", "msg_id", "reply_to", "nonce", "timestamp", "body")
    rows += ["", "| Inner bytes (hex) | Meaning |", "|---|---|"]
    rows.append(f"| `{i_val[:1].hex()}` | fixarray of 7 items (the inner header) |")
    for name, (raw, value) in zip(names, _items(i_val[1:], 7), strict=True):
        shown = "a map of 6 fields (§5.1 Hello)" if name == "body" else repr(value)
        if isinstance(value, bytes):
            shown = f"bin 8, {len(value)} bytes"
        rows.append(f"| {_split(raw, value)} | `{name}` = {shown} |")
    signed = SIGNATURE_CONTEXT + i_val
    rows += [
        "",
        f"Signature input ({len(signed)} bytes) = context ‖ inner:",
        "",
        "```text",
        signed.hex(),
        "```",
    ]
    return "\n".join(rows)


def render_blocks() -> dict[str, str]:
    """Block name -> its generated contents (ending with a newline)."""
    blocks = {
        f"states:{conv.value}": f"```mermaid\n{states.mermaid(conv)}\n```" for conv in Conversation
    }
    blocks["errors"] = _errors()
    blocks["enums"] = _enums()
    blocks["limits"] = _limits()
    blocks["anatomy"] = _anatomy()
    blocks["vectors"] = render_vectors()
    return {name: text + "\n" for name, text in blocks.items()}


def blocks_in(text: str) -> dict[str, str]:
    """The generated blocks currently in `text`: name -> contents."""
    return {m.group("name"): m.group("body") for m in BLOCK.finditer(text)}


def apply(text: str) -> str:
    """`text` with every generated block re-rendered.

    Raises:
        ValueError: if the document lacks a block or has one the code does not know.
    """
    fresh = render_blocks()
    present = blocks_in(text)
    if set(present) != set(fresh):
        missing, unknown = sorted(set(fresh) - set(present)), sorted(set(present) - set(fresh))
        raise ValueError(f"generated blocks differ: missing {missing}, unknown {unknown}")
    return BLOCK.sub(lambda m: m.group(1) + fresh[m.group("name")] + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report stale blocks")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    text = args.doc.read_text(encoding="utf-8")
    try:
        new = apply(text)
    except ValueError as exc:
        print(f"{args.doc}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        stale = [n for n, body in blocks_in(text).items() if render_blocks()[n] != body]
        if stale:
            print(f"{args.doc}: stale generated blocks: {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    if new != text:
        args.doc.write_text(new, encoding="utf-8")
        print(f"{args.doc}: regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
