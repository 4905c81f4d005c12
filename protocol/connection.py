"""One conversation over one byte stream, sans-IO (the h11 shape).

Contract:
- `receive_data(bytes)` buffers received bytes (`b""` is end of stream); `next_event(now=...)`
  returns the next verified message, `NEED_DATA`, or `PEER_CLOSED`; `send(msg, now=...)`
  checks the state table, signs, and returns the bytes to write. The caller owns the socket,
  the clock (`now`, virtual ms) and the randomness (`nonce_source`).
- Receiving does, in order: framing, the signature over the exact inner bytes, the header,
  freshness and replay, the sender binding (every frame on a connection must come from the
  key of its first frame), the message type, the fields, the state table. The first failure
  raises `RemoteProtocolError` with its wire code and moves the connection to ERROR; every
  later call fails fast with the same error.
- Sending an illegal or invalid message raises `LocalProtocolError` (ILLEGAL_STATE or
  INVALID_FIELD) and moves to ERROR; `send_failed()` records that the bytes never left.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from . import messages as _catalogue  # noqa: F401  (importing registers every message)
from .clock import ClockView
from .codec import from_wire, to_wire
from .envelope import DEFAULT_WINDOW_MS, ReplayGuard, Sealed, open_envelope, seal
from .errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from .framing import DEFAULT_MAX_FRAME, FrameDecoder, encode_frame
from .messages.base import REGISTRY, Conversation, Message, MessageType
from .states import CLOSED, ERROR, START, Direction, next_state


class Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"
    PEER_CLOSED = "PEER_CLOSED"


NEED_DATA = Sentinel.NEED_DATA
PEER_CLOSED = Sentinel.PEER_CLOSED


def raw_public(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of a private key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class Connection:
    """The protocol state of one connection, for one side of it."""

    def __init__(
        self,
        *,
        conversation: Conversation,
        our_role: Direction,
        key: Ed25519PrivateKey,
        nonce_source: Callable[[], bytes],
        replay_guard: ReplayGuard | None = None,
        window: int = DEFAULT_WINDOW_MS,
        max_frame: int = DEFAULT_MAX_FRAME,
        peer_key: bytes | None = None,
        clock_view: ClockView | None = None,
    ) -> None:
        self.conversation = conversation
        self.our_role = our_role
        self.their_role = Direction.SERVER if our_role is Direction.CLIENT else Direction.CLIENT
        self._key = key
        self.our_key = raw_public(key)
        self._nonce_source = nonce_source
        self._guard = replay_guard if replay_guard is not None else ReplayGuard(window=window)
        self.max_frame = max_frame
        self._decoder = FrameDecoder(max_frame=max_frame)
        self.peer_key = peer_key
        # A clock that follows a shared clock file: timestamps are also judged against the
        # clock just left, and the file is re-read before one is refused (CLOCK-3).
        self._clock_view = clock_view
        self.state = START
        self._next_msg_id = 1
        self._last_received_id = 0
        self._error: ProtocolError | None = None
        self.last_received: Sealed | None = None
        self.frames_in = 0
        self.frames_out = 0

    def __repr__(self) -> str:
        return (
            f"<Connection {self.conversation} as {self.our_role} state={self.state} "
            f"in={self.frames_in} out={self.frames_out}>"
        )

    @property
    def error(self) -> ProtocolError | None:
        """The error that moved this connection to ERROR, if any."""
        return self._error

    # ---- sending -------------------------------------------------------------------------

    def send(self, msg: Message, *, now: int) -> bytes:
        """Check `msg` against the state table and return the signed frame to write.

        Raises:
            LocalProtocolError: ILLEGAL_STATE if `msg` may not be sent now (the connection
                moves to ERROR), or FRAME_TOO_LARGE if it does not fit in a frame.
        """
        target = next_state(self.conversation, self.state, self.our_role, msg.TYPE, msg.variant())
        if target is None or self.conversation not in msg.CONVERSATIONS:
            err = LocalProtocolError(
                f"cannot send {type(msg).__name__} as {self.our_role} in state {self.state} "
                f"of the {self.conversation} conversation",
                code=ErrorCode.ILLEGAL_STATE,
            )
            self._fail(err)
            raise err
        body = seal(
            self._key,
            self.our_key,
            type_=int(msg.TYPE),
            msg_id=self._next_msg_id,
            reply_to=self._last_received_id,
            nonce=self._nonce_source(),
            timestamp=now,
            body=to_wire(msg),
        )
        frame = encode_frame(body, max_frame=self.max_frame)
        self._next_msg_id += 1
        self.frames_out += 1
        self.state = target
        return frame

    def send_failed(self) -> None:
        """The I/O layer could not write the last frame (cancellation included)."""
        self._fail(
            LocalProtocolError("a frame could not be written", code=ErrorCode.CONNECTION_LOST)
        )

    # ---- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer received bytes; `b""` marks the end of the stream."""
        if self._error is not None:
            return
        try:
            self._decoder.feed(data)
        except ProtocolError as exc:
            self._raise_remote(exc)

    def next_event(self, *, now: int) -> Message | Sentinel:
        """Decode and verify the next message.

        Returns:
            A message; `NEED_DATA` if more bytes are needed; `PEER_CLOSED` once the peer has
            closed between frames.

        Raises:
            RemoteProtocolError: for anything the peer got wrong (the code says what).
        """
        if self._error is not None:
            raise RemoteProtocolError(
                self._error.message, code=self._error.code, detail=self._error.detail
            )
        try:
            frame = self._decoder.next_frame()
            if frame is None:
                if self._decoder.at_eof:
                    self.state = CLOSED
                    return PEER_CLOSED
                return NEED_DATA
            return self._accept(frame, now)
        except ProtocolError as exc:
            self._raise_remote(exc)

    def _accept(self, frame: bytes, now: int) -> Message:
        sealed = open_envelope(frame)
        if self.peer_key is not None and sealed.sender != self.peer_key:
            raise RemoteProtocolError(
                "frame signed by a different key than the peer's", code=ErrorCode.WRONG_SENDER
            )
        self._check_fresh(sealed, now)
        cls = REGISTRY.get(sealed.type)
        if cls is None:
            raise RemoteProtocolError(
                f"unknown message type 0x{sealed.type:03x}", code=ErrorCode.UNKNOWN_MESSAGE_TYPE
            )
        if self.conversation not in cls.CONVERSATIONS:
            raise RemoteProtocolError(
                f"{cls.__name__} is not part of the {self.conversation} conversation",
                code=ErrorCode.ILLEGAL_STATE,
            )
        msg: Message = from_wire(cls, sealed.body)
        target = next_state(
            self.conversation, self.state, self.their_role, MessageType(sealed.type), msg.variant()
        )
        if target is None:
            raise RemoteProtocolError(
                f"{cls.__name__} from the {self.their_role} is not allowed in state "
                f"{self.state} of the {self.conversation} conversation",
                code=ErrorCode.ILLEGAL_STATE,
            )
        if self.peer_key is None:
            self.peer_key = sealed.sender
        self.state = target
        self.last_received = sealed
        self._last_received_id = sealed.msg_id
        self.frames_in += 1
        return msg

    def _check_fresh(self, sealed: Sealed, now: int) -> None:
        view = self._clock_view
        if view is None:
            self._guard.check(sealed.sender, sealed.nonce, sealed.timestamp, now)
            return
        try:
            self._guard.check(
                sealed.sender, sealed.nonce, sealed.timestamp, now, also=view.recent()
            )
        except RemoteProtocolError as exc:
            if exc.code not in (ErrorCode.STALE_TIMESTAMP, ErrorCode.FUTURE_TIMESTAMP):
                raise
            # The shared clock may have moved and this process not polled it yet (CLOCK-3):
            # judge once more against the clock file as it reads now.
            fresh = view.reread()
            self._guard.check(
                sealed.sender, sealed.nonce, sealed.timestamp, fresh, also=view.recent()
            )

    def _raise_remote(self, exc: ProtocolError) -> NoReturn:
        remote = (
            exc
            if isinstance(exc, RemoteProtocolError)
            else RemoteProtocolError(exc.message, code=exc.code, detail=exc.detail)
        )
        self._fail(remote)
        raise remote from (None if remote is exc else exc)

    def _fail(self, exc: ProtocolError) -> None:
        if self._error is None:
            self._error = exc
        self.state = ERROR
