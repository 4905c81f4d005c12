"""The error taxonomy of tslic, with the wire error codes.

Contract:
- Every error that crosses a connection is an `ErrorCode` (an `IntEnum` whose values are the
  numbers in the `Error` message and in docs/PROTOCOL.md §9). Codes never change meaning.
- `ProtocolError` is abstract. `LocalProtocolError` means *we* tried to do something the
  protocol forbids (build an invalid message, send in the wrong state); `RemoteProtocolError`
  means the *peer* did. The core raises `LocalProtocolError` internally and the receive path
  re-raises it as `RemoteProtocolError`, so the class says who was at fault (as in h11).
- `ServiceError` is a refusal by a service that understood the request (a code used twice, a
  terminal server outside the security group). It is not a protocol violation: the connection
  stays usable.
- Nothing else escapes the decoder: msgpack, cryptography and UTF-8 errors are translated here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class ErrorCode(enum.IntEnum):
    """Wire error codes. Ranges: 1xxx framing and protocol, 2xxx trust and access,
    3xxx licensing, 4xxx Clearinghouse, 5xxx directory, 9xxx the service itself."""

    # 1xxx: framing, encoding, envelope, state (the connection is closed after these)
    MALFORMED_FRAME = 1001
    FRAME_TOO_LARGE = 1002
    BAD_ENCODING = 1003
    UNSUPPORTED_VERSION = 1004
    UNKNOWN_MESSAGE_TYPE = 1005
    INVALID_FIELD = 1006
    BAD_SIGNATURE = 1007
    REPLAYED_MESSAGE = 1008
    STALE_TIMESTAMP = 1009
    FUTURE_TIMESTAMP = 1010
    ILLEGAL_STATE = 1011
    WRONG_SENDER = 1012
    HANDSHAKE_TIMEOUT = 1013
    IDLE_TIMEOUT = 1014
    SERVER_BUSY = 1016
    SHUTTING_DOWN = 1017
    CONNECTION_LOST = 1018
    UNSUPPORTED_CONVERSATION = 1019
    # 2xxx: trust and access
    UNTRUSTED_CERTIFICATE = 2001
    CERTIFICATE_EXPIRED = 2002
    ACCESS_DENIED = 2003
    NOT_IN_SECURITY_GROUP = 2004
    CERTIFICATE_REVOKED = 2005
    WRONG_TERMINAL_SERVER = 2006
    HWID_MISMATCH = 2007
    # 3xxx: licensing
    LOWER_VERSION = 3001
    NO_LICENSE_AVAILABLE = 3002
    KEYPACK_NOT_SUPPORTED = 3003
    NOT_ACTIVATED = 3004
    TEMPORARY_ALREADY_ISSUED = 3005
    REFERRAL = 3006
    LICENSE_NOT_FOUND = 3007
    LICENSE_EXPIRED = 3008
    MODE_NOT_SUPPORTED = 3009
    INVALID_LICENSE = 3010
    # 4xxx: Clearinghouse
    INVALID_LICENSE_CODE = 4001
    ENTITLEMENT_EXHAUSTED = 4002
    MISSING_REQUIRED_INFO = 4003
    TRANSITION_NOT_ELIGIBLE = 4004
    TRANSITION_OFFER_ENDED = 4005
    ALREADY_REDEEMED = 4006
    METHOD_NOT_ALLOWED = 4007
    REASON_REQUIRED = 4008
    UNKNOWN_LICENSE_SERVER = 4009
    INVALID_CONFIRMATION_CODE = 4010
    # 5xxx: directory
    NOT_FOUND = 5001
    PUBLISH_DENIED = 5002
    # 9xxx: the service itself
    INTERNAL_ERROR = 9001
    STORAGE_ERROR = 9002
    RATE_LIMITED = 9003
    INVALID_REQUEST = 9004

    @property
    def closes_connection(self) -> bool:
        """True for the 1xxx codes: after them the sender closes the connection."""
        return 1000 <= self.value < 2000


class TslicError(Exception):
    """Base of every exception tslic raises on purpose. Carries a wire code and a message a
    person can act on."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.detail: dict[str, object] = dict(detail or {})  # str() of each on the wire

    def __str__(self) -> str:
        return f"{self.message} [{self.code.name} {int(self.code)}]"


class ProtocolError(TslicError):
    """A violation of the wire protocol. Abstract: raise one of the two subclasses."""

    code = ErrorCode.INVALID_FIELD

    def __new__(cls, *args: object, **kwargs: object) -> ProtocolError:
        if cls is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise LocalProtocolError or a Remote one")
        return super().__new__(cls)


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer did something the protocol forbids."""


class ConnectionLost(TslicError):
    """The transport closed or broke (the Trio adapter translates trio's errors to this)."""

    code = ErrorCode.CONNECTION_LOST


class Timeout(TslicError):
    """A peer did not answer in time (translated from `trio.TooSlowError` at the boundary)."""

    code = ErrorCode.IDLE_TIMEOUT


class ServiceError(TslicError):
    """A service understood the request and refuses it; the connection stays usable."""


class StorageError(ServiceError):
    """The service's database could not commit (disk full, read-only data directory)."""

    code = ErrorCode.STORAGE_ERROR
