"""The test vectors' language-neutral form (docs/PROTOCOL.md §11): JSON and Markdown.

Contract: `vector_json(v)` is the JSON object §11 prints for vector `v` (bytes as
`{"$bin": hex}`), `vector_from_json` its exact inverse, and `render_vectors()` the generated
block of §11 (the test keys, the nonces, then every vector of `vectors.build_vectors`).
"""

from __future__ import annotations

import json
from typing import TypedDict

from .codec import Unvalidated, WireValue
from .errors import ErrorCode
from .messages import REGISTRY, Conversation
from .states import Direction
from .vectors import KEY_NAMES, Vector, build_vectors, nonce, seed_of, vector_public


def _json_value(value: WireValue | tuple[WireValue, ...]) -> object:
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _from_json_value(value: Unvalidated) -> Unvalidated:
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return bytes.fromhex(value["$bin"])
        return {k: _from_json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json_value(v) for v in value]
    return value


class VectorJson(TypedDict):
    """The language-neutral form of a vector (§11)."""

    name: str
    conversation: str
    receiver: str
    state: str
    now: int
    window: int
    peer_key: str | None
    setup: list[str]
    frame: str
    expect: dict[str, object]  # {error, code, state} or {message, type, state, body}


def vector_json(vector: Vector) -> VectorJson:
    """The language-neutral form of a vector, as printed in §11."""
    expect: dict[str, object]
    if vector.expect_error is not None:
        code = vector.expect_error
        expect = {"error": code.name, "code": int(code), "state": "ERROR"}
    else:
        cls = next(c for c in REGISTRY.values() if c.__name__ == vector.expect_message)
        expect = {
            "message": vector.expect_message,
            "type": f"0x{int(cls.TYPE):03X}",
            "state": vector.expect_state,
            "body": _json_value(vector.expect_body),
        }
    return VectorJson(
        name=vector.name,
        conversation=str(vector.conversation),
        receiver=str(vector.receiver),
        state=vector.state,
        now=vector.now,
        window=vector.window,
        peer_key=vector.peer_key.hex() if vector.peer_key else None,
        setup=[f.hex() for f in vector.setup],
        frame=vector.frame.hex(),
        expect=expect,
    )


def vector_from_json(data: dict[str, Unvalidated], description: str = "") -> Vector:
    """Rebuild a `Vector` from its printed form (the inverse of `vector_json`)."""
    expect = data["expect"]
    peer = data["peer_key"]
    common: dict[str, Unvalidated] = {
        "name": data["name"],
        "description": description,
        "conversation": Conversation(data["conversation"]),
        "receiver": Direction(data["receiver"]),
        "state": data["state"],
        "now": data["now"],
        "window": data["window"],
        "peer_key": bytes.fromhex(peer) if peer else None,
        "setup": tuple(bytes.fromhex(f) for f in data["setup"]),
        "frame": bytes.fromhex(data["frame"]),
    }
    if "error" in expect:
        return Vector(**common, expect_error=ErrorCode(expect["code"]))
    return Vector(
        **common,
        expect_message=expect["message"],
        expect_state=expect["state"],
        expect_body=_from_json_value(expect["body"]),
    )


def render_vectors() -> str:
    """The generated block of §11: the test keys, then each vector (Markdown)."""
    out = ["| test key | seed (sha256 of the label) | raw public key |", "|---|---|---|"]
    for name in KEY_NAMES:
        out.append(f"| `{name}` | `{seed_of(name).hex()}` | `{vector_public(name).hex()}` |")
    out += ["", "| nonce | value |", "|---|---|"]
    out += [f"| {n} | `{nonce(n).hex()}` |" for n in range(1, 18)]
    for i, vector in enumerate(build_vectors(), 1):
        data = vector_json(vector)
        expect = data["expect"]
        if "error" in expect:
            result = f"error `{expect['error']}` ({expect['code']}), state `ERROR`"
        else:
            result = f"message `{expect['message']}` ({expect['type']}), state `{expect['state']}`"
        bound = f"`{data['peer_key'][:16]}…`" if data["peer_key"] else "none"
        out += [
            "",
            f"#### V{i} `{vector.name}`",
            "",
            vector.description,
            "",
            f"- receiver: the **{vector.receiver}** side of a `{vector.conversation}`"
            f" conversation in state `{vector.state}`; bound peer key: {bound};"
            f" now = {vector.now}; window = {vector.window} ms"
            + ("; it has just accepted the setup frame(s)" if vector.setup else ""),
            f"- expected: {result}",
            f"- frame: {len(vector.frame)} bytes, length prefix included (`frame` below)",
            "",
            "```json",
            json.dumps(data, indent=1),
            "```",
        ]
    return "\n".join(out)
