"""Published test vectors of the wire protocol (docs/PROTOCOL.md §11), built deterministically.

Contract:
- Sans-IO and pure: every key, nonce, timestamp and message id is fixed here, and Ed25519
  signatures are deterministic, so `build_vectors()` returns the same bytes on every run. The
  private keys are derived from public seeds (`seed_of`): they are TEST keys, known to the
  world, and must never be trusted by a real deployment.
- A `Vector` says what a receiving `Connection` must do with one frame: its conversation, its
  role, the state it is in, the key it is already bound to (if any), `now` and the freshness
  window, the frames it accepted first (`setup`), and the expected result (a message and the
  state after it, or an error code; after an error the state is ERROR).
- `run_vector` feeds a vector to a fresh `Connection` and reports the `Outcome`;
  protocol/vector_doc.py gives the language-neutral form printed in the document (bin values
  as {"$bin": "<hex>"}), so another implementation can run the same checks, and renders §11.
- The admin vectors show a paged listing (PAGE-1..5): a request with filters, a cursor and a
  limit, a page with its next cursor, and a limit above the maximum refused on decoding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .codec import WireValue, pack, to_wire
from .connection import Connection, raw_public
from .domain import CalProduct, ClientOS, LicenseKind, LicenseStatus, LicensingMode, PeerRole
from .envelope import DEFAULT_WINDOW_MS, PROTOCOL_VERSION, SIGNATURE_CONTEXT, seal
from .errors import ErrorCode, ProtocolError
from .framing import PREFIX, encode_frame
from .messages import Conversation, Message
from .messages.admin import AdminLicenses, AdminListLicenses
from .messages.common import Error, Hello, Welcome
from .messages.licensing import IssueLicense
from .messages.rdp import LicenseRequest
from .messages.records import IssuedLicenseInfo, ProductInfo
from .paging import MAX_PAGE_ITEMS, Listing, make_cursor, query_digest
from .states import Direction

KEY_NAMES = ("terminal-server", "license-server", "rdp-client", "stranger", "administrator")
"""The test keys, by the role that holds them in the vectors."""

T0 = 1_051_142_400_000
"""2003-04-24T00:00:00Z in virtual ms: the `now` of every vector (Windows Server 2003's
release day, and the transition offer's cut-off date)."""


def seed_of(name: str) -> bytes:
    """The published 32-byte Ed25519 seed of a test key: sha256("tslic test vector key " + name)."""
    return hashlib.sha256(b"tslic test vector key " + name.encode()).digest()


def vector_key(name: str) -> Ed25519PrivateKey:
    """The private test key `name` (one of KEY_NAMES)."""
    return Ed25519PrivateKey.from_private_bytes(seed_of(name))


def vector_public(name: str) -> bytes:
    """The raw 32-byte public key of test key `name`."""
    return raw_public(vector_key(name))


def nonce(n: int) -> bytes:
    """Fixed nonce number `n`: the first 16 bytes of sha256("tslic test vector nonce <n>")."""
    return hashlib.sha256(f"tslic test vector nonce {n}".encode()).digest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class Vector:
    """One frame and what the receiving side must make of it."""

    name: str
    description: str
    conversation: Conversation
    receiver: Direction
    state: str
    frame: bytes
    now: int = T0
    window: int = DEFAULT_WINDOW_MS
    peer_key: bytes | None = None
    setup: tuple[bytes, ...] = ()
    expect_message: str | None = None  # class name of the decoded message
    expect_state: str | None = None  # the connection state after the message
    expect_body: dict[str, WireValue] | None = None
    expect_error: ErrorCode | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a receiving connection made of a vector's frame."""

    message: str | None
    state: str
    body: dict[str, WireValue] | None = None
    error: ErrorCode | None = None
    detail: str = field(default="", compare=False)


def _frame(key_name: str, msg: Message, *, n: int, msg_id: int, reply_to: int, ts: int) -> bytes:
    body = seal(
        vector_key(key_name),
        vector_public(key_name),
        type_=int(msg.TYPE),
        msg_id=msg_id,
        reply_to=reply_to,
        nonce=nonce(n),
        timestamp=ts,
        body=to_wire(msg),
    )
    return encode_frame(body)


def _raw_frame(key_name: str, inner: bytes, *, trailing: bytes = b"") -> bytes:
    """A frame around hand-built inner bytes (for vectors a correct sender cannot make)."""
    signature = vector_key(key_name).sign(SIGNATURE_CONTEXT + inner)
    body = pack([vector_public(key_name), inner, signature]) + trailing
    return PREFIX.pack(len(body)) + body


def _hello() -> Hello:
    return Hello(
        role=PeerRole.TERMINAL_SERVER,
        name="TS1",
        version=2003,
        conversation=Conversation.LICENSING,
    )


def _issue() -> IssueLicense:
    return IssueLicense(
        hwid=vector_public("rdp-client"),
        machine="PC042",
        user="alice",
        client_os=ClientOS.XP_PRO,
        mode=LicensingMode.PER_DEVICE,
    )


def _listing(cursor: bytes) -> AdminListLicenses:
    return AdminListLicenses(
        product=CalProduct.W2003_DEVICE_CAL, machine="PC042", cursor=cursor, limit=100
    )


def _admin_vectors() -> tuple[Vector, ...]:
    """A paged listing in the admin conversation (PAGE-1..5)."""
    adm, server, client = Conversation.ADMIN, Direction.SERVER, Direction.CLIENT
    admin_key, ls_key = vector_public("administrator"), vector_public("license-server")
    digest = query_digest(0, 0, CalProduct.W2003_DEVICE_CAL, None, None, "pc042", "")
    cursor = make_cursor(Listing.LICENSES, digest, (T0 - 1000, 41))
    ask = _frame("administrator", _listing(cursor), n=15, msg_id=3, reply_to=0, ts=T0)
    page = AdminLicenses(
        licenses=(
            IssuedLicenseInfo(
                license_id=42, keypack_id=1, product=CalProduct.W2003_DEVICE_CAL,
                kind=LicenseKind.PERMANENT, status=LicenseStatus.ACTIVE, machine="PC042",
                user="alice", hwid=vector_public("rdp-client"), terminal_server="TS1",
                issued_at=T0 - 500, expires_at=T0 + 60 * 86_400_000, validated=True,
            ),
        ),
        next_cursor=make_cursor(Listing.LICENSES, digest, (T0 - 500, 42)),
    )  # fmt: skip
    answer = _frame("license-server", page, n=16, msg_id=3, reply_to=3, ts=T0)
    too_many = {**to_wire(_listing(b"")), "limit": MAX_PAGE_ITEMS + 1}
    header = [PROTOCOL_VERSION, int(AdminListLicenses.TYPE), 4, 0, nonce(17), T0, too_many]
    over = _raw_frame("administrator", pack(header))
    return (
        Vector(name="admin-list-licenses", description="The licensing utility asks for the"
               " page after the license keyed (T0 - 1000, 41) of a listing filtered by product"
               " and device, at most 100 licenses (the cursor is the server's own).",
               conversation=adm, receiver=server, state="READY", frame=ask, peer_key=admin_key,
               expect_message="AdminListLicenses", expect_state="AWAITING_ADMIN_LIST_LICENSES",
               expect_body=to_wire(_listing(cursor))),
        Vector(name="admin-licenses-page", description="The license server answers one page"
               " and the cursor of the next (empty would end the listing).",
               conversation=adm, receiver=client, state="AWAITING_ADMIN_LIST_LICENSES",
               frame=answer, peer_key=ls_key, expect_message="AdminLicenses",
               expect_state="READY", expect_body=to_wire(page)),
        Vector(name="admin-limit-too-large", description="A listing asking for 1 025 items a"
               " page (the maximum is 1 024).", conversation=adm, receiver=server,
               state="READY", frame=over, peer_key=admin_key,
               expect_error=ErrorCode.INVALID_FIELD),
    )  # fmt: skip


def build_vectors() -> tuple[Vector, ...]:
    """Every published vector, in document order (deterministic)."""
    lic, rdp = Conversation.LICENSING, Conversation.RDP
    server, client = Direction.SERVER, Direction.CLIENT
    ts_key, ls_key = vector_public("terminal-server"), vector_public("license-server")
    hello = _frame("terminal-server", _hello(), n=1, msg_id=1, reply_to=0, ts=T0)
    welcome_msg = Welcome(role=PeerRole.LICENSE_SERVER, name="LS1", version=2003, server_time=T0)
    welcome = _frame("license-server", welcome_msg, n=2, msg_id=1, reply_to=1, ts=T0)
    issue = _frame("terminal-server", _issue(), n=3, msg_id=2, reply_to=1, ts=T0)
    refusal = Error(
        code=int(ErrorCode.NO_LICENSE_AVAILABLE),
        message="No Windows Server 2003 Terminal Server Per Device CAL is left.",
    )
    error = _frame("license-server", refusal, n=4, msg_id=2, reply_to=2, ts=T0)
    request = LicenseRequest(
        server_random=hashlib.sha256(b"tslic test vector server random").digest(),
        product=ProductInfo(version=0x00050002, company="Microsoft Corporation", product_id="A02"),
        cert_chain=(),
        scopes=("microsoft.com",),
        mode=LicensingMode.PER_DEVICE,
    )
    lic_request = _frame("terminal-server", request, n=5, msg_id=1, reply_to=0, ts=T0)

    flipped = bytearray(hello)
    flipped[-1] ^= 0x01  # the last byte of the frame is the last byte of the signature
    stale = _frame(
        "terminal-server", _hello(), n=6, msg_id=1, reply_to=0, ts=T0 - DEFAULT_WINDOW_MS - 1
    )
    future = _frame(
        "terminal-server", _hello(), n=7, msg_id=1, reply_to=0, ts=T0 + DEFAULT_WINDOW_MS + 1
    )
    hello_body = to_wire(_hello())
    unknown = _raw_frame(
        "terminal-server", pack([PROTOCOL_VERSION, 0x7FF, 1, 0, nonce(8), T0, hello_body])
    )
    missing_body = {k: v for k, v in hello_body.items() if k != "name"}
    missing = _raw_frame(
        "terminal-server", pack([PROTOCOL_VERSION, 0x001, 1, 0, nonce(9), T0, missing_body])
    )
    inner = pack([PROTOCOL_VERSION, 0x001, 1, 0, nonce(10), T0, hello_body])
    trailing_inner = _raw_frame("terminal-server", inner + b"\xc0")
    trailing_outer = _raw_frame(
        "terminal-server",
        pack([PROTOCOL_VERSION, 0x001, 1, 0, nonce(11), T0, hello_body]),
        trailing=b"\xc0",
    )
    oversize = PREFIX.pack(65537) + b"\x93"
    zero = PREFIX.pack(0)
    stranger = _frame("stranger", _issue(), n=12, msg_id=2, reply_to=1, ts=T0)
    version2 = _raw_frame("terminal-server", pack([2, 0x001, 1, 0, nonce(13), T0, hello_body]))
    early_issue = _frame("terminal-server", _issue(), n=14, msg_id=1, reply_to=0, ts=T0)

    # fmt: off
    def ok(name: str, text: str, conv: Conversation, recv: Direction, state: str,
           frame: bytes, msg: Message, after: str, *, now: int = T0,
           setup: tuple[bytes, ...] = (), peer_key: bytes | None = None) -> Vector:
        return Vector(name=name, description=text, conversation=conv, receiver=recv,
                      state=state, frame=frame, expect_message=type(msg).__name__,
                      expect_state=after, expect_body=to_wire(msg), now=now, setup=setup,
                      peer_key=peer_key)

    def bad(name: str, text: str, frame: bytes, code: ErrorCode, *, state: str = "START",
            now: int = T0, window: int = DEFAULT_WINDOW_MS, setup: tuple[bytes, ...] = (),
            peer_key: bytes | None = None) -> Vector:
        return Vector(name=name, description=text, conversation=lic, receiver=server,
                      state=state, frame=frame, expect_error=code, now=now, window=window,
                      setup=setup, peer_key=peer_key)

    return (
        ok("hello", "A Windows Server 2003 terminal server opens a licensing conversation.",
           lic, server, "START", hello, _hello(), "HELLO_SENT"),
        ok("welcome", "The license server accepts it (reply_to = the Hello's msg_id 1).",
           lic, client, "HELLO_SENT", welcome, welcome_msg, "READY"),
        ok("issue-license", "The terminal server asks a license for an XP Professional device.",
           lic, server, "READY", issue, _issue(), "AWAITING_LS_ISSUE_LICENSE", peer_key=ts_key),
        ok("error-refusal", "The license server refuses the request (3002, not fatal): the"
           " conversation goes back to READY.",
           lic, client, "AWAITING_LS_ISSUE_LICENSE", error, refusal, "READY", peer_key=ls_key),
        ok("rdp-license-request", "A terminal server opens the RDP licensing exchange"
           " (SERVER_LICENSE_REQUEST, type 0x101); `server_random` is the 32 bytes of"
           " sha256(\"tslic test vector server random\") and the chain is left empty to keep it"
           " short.",
           rdp, client, "START", lic_request, request, "LICENSE_REQUESTED"),
        bad("bad-signature", "Vector `hello` with the last byte of the frame (the last byte of"
            " the signature) XORed with 0x01, i.e. its lowest bit inverted.",
            bytes(flipped), ErrorCode.BAD_SIGNATURE),
        bad("replay", "Vector `hello` again, on a connection that has just accepted it: the"
            " (sender, nonce) pair was seen.", hello, ErrorCode.REPLAYED_MESSAGE, setup=(hello,)),
        bad("stale-timestamp", "A Hello stamped 300 001 ms before `now` (window 300 000 ms).",
            stale, ErrorCode.STALE_TIMESTAMP),
        bad("future-timestamp", "A Hello stamped 300 001 ms after `now`.",
            future, ErrorCode.FUTURE_TIMESTAMP),
        bad("unknown-type", "A correctly signed message of type 0x7FF, which is not allocated.",
            unknown, ErrorCode.UNKNOWN_MESSAGE_TYPE),
        bad("missing-field", "A Hello whose body lacks the field `name`.",
            missing, ErrorCode.INVALID_FIELD),
        bad("trailing-inner", "A signed inner array followed by one extra byte (0xC0) inside"
            " `inner`: the signature verifies, decoding the inner bytes fails.",
            trailing_inner, ErrorCode.BAD_ENCODING),
        bad("trailing-outer", "A valid envelope followed by one extra byte (0xC0) inside the"
            " frame body.", trailing_outer, ErrorCode.BAD_ENCODING),
        bad("oversize-length", "A length prefix of 65 537 (limit 65 536); refused as soon as"
            " the prefix has arrived, before any body byte is needed.",
            oversize, ErrorCode.FRAME_TOO_LARGE),
        bad("zero-length", "A length prefix of 0.", zero, ErrorCode.MALFORMED_FRAME),
        bad("wrong-sender", "An IssueLicense signed by the `stranger` key on a connection bound"
            " to the terminal server's key.", stranger, ErrorCode.WRONG_SENDER,
            state="READY", peer_key=ts_key),
        bad("unsupported-version", "A Hello whose inner header says version 2.",
            version2, ErrorCode.UNSUPPORTED_VERSION),
        bad("illegal-state", "An IssueLicense as the first message (before Hello).",
            early_issue, ErrorCode.ILLEGAL_STATE),
        *_admin_vectors(),
    )
    # fmt: on


def run_vector(vector: Vector) -> Outcome:
    """Feed `vector` to a fresh receiving `Connection` and report what it made of it.

    Raises:
        AssertionError: if a setup frame is not accepted (the vector itself is broken).
    """
    conn = Connection(
        conversation=vector.conversation,
        our_role=vector.receiver,
        key=vector_key("stranger"),  # receiving never signs; any key will do
        nonce_source=lambda: bytes(16),
        window=vector.window,
        peer_key=vector.peer_key,
    )
    conn.state = vector.state
    for frame in vector.setup:
        conn.receive_data(frame)
        accepted = conn.next_event(now=vector.now)
        assert isinstance(accepted, Message), f"setup frame not accepted: {accepted!r}"
    try:
        conn.receive_data(vector.frame)
        event = conn.next_event(now=vector.now)
    except ProtocolError as exc:
        return Outcome(None, conn.state, error=exc.code, detail=exc.message)
    if not isinstance(event, Message):
        return Outcome(None, conn.state, detail=f"no message: {event}")
    return Outcome(type(event).__name__, conn.state, body=to_wire(event))


def expected_outcome(vector: Vector) -> Outcome:
    """The outcome the document promises for `vector`."""
    if vector.expect_error is not None:
        return Outcome(None, "ERROR", error=vector.expect_error)
    assert vector.expect_state is not None
    return Outcome(vector.expect_message, vector.expect_state, body=vector.expect_body)
