"""A seeded frame fuzzer for a live daemon's licensing port (used by test_fuzz and bench/soak).

Contract: `fuzz(address, frames=N, seed=S, workers=W, peers=...)` sends at least N frames the
daemon has to judge, over many connections, and returns `Tally` (frames sent, connections,
answers by kind). Everything random comes from `random.Random(seed + worker)`, so a run is
reproducible frame for frame (only the timestamps follow the wall clock). Two shapes:
- *raw* connections carry one hostile first frame: random bytes, a zero, huge or lying
  length prefix, a frame truncated by EOF, a signed Hello with flipped bits, or a Hello whose
  inner msgpack was mutated and then re-signed (so it gets past the signature check);
- *pipelined* connections say a valid Hello (as an enrolled terminal server, or as an unknown
  key) and then pipeline a batch of signed requests with hostile values (unknown license
  ids, random license documents, other devices' hardware ids), refused without closing, with
  a mutated frame now and then (which closes the connection).
`raw_only=True` sends only the raw shape (for daemons that speak another conversation, such
as the agent's RDP port, where the server speaks first). The daemon's answers are drained but
not judged here: the test judges the daemon (alive,
memory, a well-behaved client served).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation
from tslic.protocol.codec import pack, to_wire
from tslic.protocol.domain import ClientOS, LicensingMode, PeerRole
from tslic.protocol.envelope import seal
from tslic.protocol.framing import PREFIX, encode_frame
from tslic.protocol.messages import Hello, Message
from tslic.protocol.messages.licensing import MarkLicense, ReturnLicense, UpgradeLicenseRequest
from tslic.protocol.pki import raw_public_key
from tslic.runtime.peer import split_address


@dataclass
class Tally:
    frames: int = 0
    connections: int = 0
    kinds: Counter[str] = field(default_factory=Counter)


class Signer:
    """Seals messages as one peer (keys and nonces from the worker's seeded generator)."""

    def __init__(self, rng: random.Random, key: Ed25519PrivateKey | None = None) -> None:
        self.rng = rng
        self.key = key or Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        self.public = raw_public_key(self.key)
        self.msg_id = 0

    def body(self, msg: Message) -> tuple[int, dict[str, Any]]:
        return int(msg.TYPE), to_wire(msg)

    def seal(self, type_: int, body: Any, *, sender: bytes | None = None) -> bytes:
        self.msg_id += 1
        return encode_frame(
            seal(
                self.key,
                sender or self.public,
                type_=type_,
                msg_id=self.msg_id,
                reply_to=0,
                nonce=self.rng.randbytes(16),
                timestamp=int(time.time() * 1000),
                body=body,
            ),
            max_frame=1 << 24,
        )


def _hello(name: str, chain: tuple[bytes, ...]) -> Hello:
    return Hello(
        role=PeerRole.TERMINAL_SERVER,
        name=name,
        version=2003,
        conversation=Conversation.LICENSING,
        cert_chain=chain,
    )


def _mutate_value(rng: random.Random, value: Any) -> Any:
    """A msgpack-level mutation: another type, an extreme number, a long or odd string."""
    choices: list[Any] = [
        None,
        -1,
        2**64 - 1,
        rng.randbytes(rng.randrange(0, 200)),
        "x" * rng.randrange(0, 3000),
        [value, value],
        {"": value},
        True,
        1.5,
        "\udcff".encode("utf-8", "surrogatepass"),
    ]
    return rng.choice(choices)


def _mutated_body(rng: random.Random, body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    roll = rng.random()
    if roll < 0.5 and out:
        key = rng.choice(list(out))
        out[key] = _mutate_value(rng, out[key])
    elif roll < 0.7 and out:
        out.pop(rng.choice(list(out)))
    else:
        out[rng.choice(["zz", "role", "", "cert_chain"])] = _mutate_value(rng, None)
    return out


def raw_frame(
    rng: random.Random, signer: Signer, name: str, chain: tuple[bytes, ...]
) -> tuple[str, bytes]:
    """One hostile first frame and the name of its kind."""
    type_, body = signer.body(_hello(name, chain))
    roll = rng.random()
    if roll < 0.15:
        return "random-bytes", rng.randbytes(rng.randrange(1, 400))
    if roll < 0.25:
        return "length-zero", PREFIX.pack(0) + rng.randbytes(8)
    if roll < 0.35:
        return "length-huge", PREFIX.pack(rng.randrange(65537, 2**32)) + rng.randbytes(64)
    if roll < 0.45:
        frame = signer.seal(type_, body)
        return "truncated", frame[: rng.randrange(1, len(frame))]
    if roll < 0.55:
        frame = signer.seal(type_, body)
        return "length-lies", PREFIX.pack(rng.randrange(1, len(frame))) + frame[4:]
    if roll < 0.75:
        flipped = bytearray(signer.seal(type_, body))
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(4, len(flipped))
            flipped[pos] ^= 1 << rng.randrange(8)
        return "bit-flip", bytes(flipped)
    if roll < 0.85:
        return "wrong-type", signer.seal(rng.choice([0, 0x203, 0x999, 2**40]), body)
    if roll < 0.9:
        return "body-not-map", signer.seal(type_, [body] if rng.random() < 0.5 else pack(body))
    return "msgpack-mutation", signer.seal(type_, _mutated_body(rng, body))


def hostile_request(rng: random.Random, signer: Signer) -> tuple[str, bytes, bool]:
    """A signed request with hostile values (kind, frame, whether it should keep the
    connection open)."""
    hwid = rng.randbytes(32)
    roll = rng.random()
    if roll < 0.35:
        msg: Message = MarkLicense(license_id=rng.randrange(0, 2**62), hwid=hwid)
    elif roll < 0.6:
        msg = ReturnLicense(license_id=rng.randrange(0, 2**62), hwid=hwid)
    elif roll < 0.92:
        msg = UpgradeLicenseRequest(
            license=rng.randbytes(rng.randrange(1, 600)),
            hwid=hwid,
            machine="FUZZ",
            user="u",
            client_os=rng.choice(list(ClientOS)),
            mode=rng.choice(list(LicensingMode)),
        )
    else:
        type_, body = signer.body(MarkLicense(license_id=1, hwid=hwid))
        return "mutated-request", signer.seal(type_, _mutated_body(rng, body)), False
    type_, body = signer.body(msg)
    return type(msg).__name__, signer.seal(type_, body), True


async def _drain(stream: trio.SocketStream, deadline: float) -> None:
    with trio.move_on_after(deadline):
        try:
            while await stream.receive_some(65536):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def _one_connection(
    address: str,
    rng: random.Random,
    peers: list[tuple[str, Ed25519PrivateKey, tuple[bytes, ...]]],
    tally: Tally,
    batch: int,
    raw_only: bool = False,
) -> int:
    """One connection's worth of hostile frames; returns how many were sent."""
    sent = 0
    host, port = split_address(address)
    stream = await trio.open_tcp_stream(host, port)
    tally.connections += 1
    try:
        if raw_only or rng.random() < 0.35:
            signer = Signer(rng)
            kind, frame = raw_frame(rng, signer, "FUZZ", ())
            tally.kinds[kind] += 1
            sent += 1
            await stream.send_all(frame)
            # Half-close: an unfinished frame then fails at once (MALFORMED_FRAME) instead of
            # waiting for the handshake timeout (slow senders are test_limits' business).
            await stream.send_eof()
        else:
            if rng.random() < 0.6:
                name, key, chain = rng.choice(peers)
                signer = Signer(rng, key)
            else:
                name, chain = "STRANGER", ()
                signer = Signer(rng)
            frames = [signer.seal(*signer.body(_hello(name, chain)))]
            for _ in range(batch):
                kind, frame, keeps = hostile_request(rng, signer)
                tally.kinds[kind] += 1
                sent += 1
                frames.append(frame)
                if not keeps:
                    break  # the daemon closes after this one; the rest would be unread
            await stream.send_all(b"".join(frames))
            await stream.send_eof()
        await _drain(stream, 10)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the daemon hung up on us mid-write: what it should do to garbage
    finally:
        await stream.aclose()
        tally.frames += sent
    return sent


async def fuzz(
    address: str,
    *,
    frames: int,
    seed: int,
    workers: int = 8,
    batch: int = 40,
    peers: list[tuple[str, Ed25519PrivateKey, tuple[bytes, ...]]] | None = None,
    raw_only: bool = False,
) -> Tally:
    """Send at least `frames` hostile frames to `address` (see module)."""
    tally = Tally()
    share = -(-frames // workers)

    async def worker(index: int) -> None:
        rng = random.Random(seed * 1_000_003 + index)
        sent = 0
        while sent < share:
            sent += await _one_connection(address, rng, peers or [], tally, batch, raw_only)

    async with trio.open_nursery() as nursery:
        for index in range(workers):
            nursery.start_soon(worker, index)
    return tally


async def flood(address: str, *, seed: int, slow_senders: int, spammers: int) -> None:
    """Abusive connections until cancelled: `slow_senders` hold a slot each with half a
    length prefix (reconnecting 20 ms after being cut off), `spammers` send garbage or an
    oversized prefix back to back. Run in its own process (zygote.py, role "flood") so the
    client being measured does not share an event loop with it."""
    rng = random.Random(seed)
    host, port = split_address(address)

    async def once(payload: bytes, wait: float) -> None:
        try:
            tcp = await trio.open_tcp_stream(host, port)
        except OSError:
            await trio.sleep(0.05)
            return
        try:
            await tcp.send_all(payload)
            with trio.move_on_after(wait):
                await tcp.receive_some(4096)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # cut off: that is the point
        finally:
            await tcp.aclose()

    async def slow_sender() -> None:
        while True:
            await once(b"\x00", 2.0)
            await trio.sleep(0.02)

    async def spammer() -> None:
        while True:
            if rng.random() < 0.5:
                payload = rng.randbytes(rng.randrange(1, 64))
            else:
                payload = PREFIX.pack(rng.randrange(5000, 2**31))
            await once(payload, 1.0)

    async with trio.open_nursery() as nursery:
        for _ in range(slow_senders):
            nursery.start_soon(slow_sender)
        for _ in range(spammers):
            nursery.start_soon(spammer)
