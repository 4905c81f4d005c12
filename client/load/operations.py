"""What each request asks for: request k as a message, and the books of licensed devices.

Contract:
- `Operations.plan(k, agent)` turns request number k into a message: the kind is drawn from
  the mix by a hash of (seed, k), so a run split over workers or machines asks for the same
  things as one process. New licenses are for new synthetic devices (hardware id = 32 bytes
  derived from the seed and k); upgrades, marks and returns use licenses the same agent
  obtained earlier (a license server marks and takes back only the licenses of the terminal
  server that holds them), kept in a bounded book per agent so memory stays flat. With no
  such license yet the operation is a new license instead.
- `Operations.settle` updates the books from the reply (or refusal) and names the outcome.
Pure bookkeeping: no I/O, no clock.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections import deque
from dataclasses import dataclass

from tslic.protocol import ErrorCode, Message, TslicError
from tslic.protocol.domain import ClientOS, LicensingMode
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    MarkLicense,
    Referral,
    ReturnLicense,
    UpgradeLicenseRequest,
)

from .config import LoadConfig
from .fleet import Agent, pick, unit


def device_hwid(seed: int | None, k: int) -> bytes:
    """The 32-byte hardware id of request k's new device: from the seed, or random.

    A real client's hardware id is a hash of its hardware (MS-RDPELE's CLIENT_HARDWARE_ID),
    not a key, so a keyed digest of k is as good an identity as any and costs a microsecond,
    where a key pair per device cost the generator ~40 us per new license."""
    if seed is None:
        return os.urandom(32)
    return hashlib.blake2b(
        k.to_bytes(8, "big"), digest_size=32, key=_seed_key(seed), person=b"tslic-hwid"
    ).digest()


@functools.lru_cache(maxsize=16)
def _seed_key(seed: int) -> bytes:
    return hashlib.sha256(repr(seed).encode()).digest()


@dataclass(slots=True)
class Device:
    """A synthetic client device that holds a license."""

    hwid: bytes
    machine: str
    user: str
    client_os: ClientOS
    license: bytes
    license_id: int


@dataclass(slots=True)
class Planned:
    """One operation about to be sent."""

    op: str
    message: Message
    device: Device | None
    book: deque[Device] | None


# A refusal with these codes means the license is gone: forget the device.
_FORGET = frozenset(
    {
        ErrorCode.LICENSE_NOT_FOUND,
        ErrorCode.LICENSE_EXPIRED,
        ErrorCode.INVALID_LICENSE,
        ErrorCode.HWID_MISMATCH,
    }
)


class Operations:
    """Builds request k for an agent and keeps the books of licensed devices."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.seed = config.seed or 0
        self._books: dict[int, deque[Device]] = {}  # agent index -> its licensed devices

    def plan(self, k: int, agent: Agent) -> Planned:
        """The operation for request k, sent by `agent`."""
        profile = agent.profile
        book = self._books.setdefault(profile.index, deque())
        op = pick(self.config.mix, unit(self.seed, k, 3))
        if op != "new" and book:
            device = book.popleft()
            return Planned(op, self._message(op, device, profile.mode), device, book)
        client_os = ClientOS(pick(self.config.clients, unit(self.seed, k, 4)))
        hwid = device_hwid(self.config.seed, k)
        user = f"user{int(unit(self.seed, k, 5) * 10_000):04d}"
        message = IssueLicense(
            hwid=hwid, machine=f"DEV{k:08d}", user=user, client_os=client_os, mode=profile.mode
        )
        return Planned("new", message, None, book)

    def _message(self, op: str, device: Device, mode: LicensingMode) -> Message:
        if op == "upgrade":
            return UpgradeLicenseRequest(
                license=device.license,
                hwid=device.hwid,
                machine=device.machine,
                user=device.user,
                client_os=device.client_os,
                mode=mode,
            )
        if op == "mark":
            return MarkLicense(license_id=device.license_id, hwid=device.hwid)
        return ReturnLicense(license_id=device.license_id, hwid=device.hwid)

    def settle(self, planned: Planned, reply: Message | None, error: TslicError | None) -> str:
        """Update the books after the reply (or error); return the outcome label."""
        book = planned.book
        keep = self.config.devices_kept
        if isinstance(reply, Referral):
            return f"{planned.op}:referred"
        if isinstance(reply, LicenseGranted) and book is not None:
            message = planned.message
            assert isinstance(message, IssueLicense | UpgradeLicenseRequest)
            device = Device(
                message.hwid,
                message.machine,
                message.user,
                message.client_os,
                reply.license,
                reply.license_id,
            )
            book.append(device)
            while len(book) > keep:
                book.popleft()
            return planned.op
        if planned.device is not None and book is not None:
            returned = planned.op == "return" and error is None
            if not returned and not (error is not None and error.code in _FORGET):
                book.append(planned.device)
        return planned.op
