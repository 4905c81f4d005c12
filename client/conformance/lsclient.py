"""Well-behaved protocol peers the licensing-rule cases drive: a terminal server, an
administrator, and the clock mover.

`grant_permanent` obtains a permanent CAL the way a terminal server does (temporary license
first, MarkLicense after the logon, then UpgradeLicenseRequest).

Contract: these use the real client stack (`runtime.peer.open_peer`, `MessageStream`), so
they only ever send correct messages; what they test is the *licensing* answer. Every request
and reply is noted in the case's transcript. `move_clock` rewrites the target's clock file
(runtime.clock.write_clock_file) and waits until the target reports the new time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation, ErrorCode, ServiceError, TslicError
from tslic.protocol.clock import ClockSpec
from tslic.protocol.connection import raw_public
from tslic.protocol.domain import ClientOS, LicenseKind, LicensingMode, PeerRole, WindowsVersion
from tslic.protocol.licenses import SignedLicense, open_license
from tslic.protocol.messages import Message
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    MarkLicense,
    Referral,
    RequestTermServCert,
    TermServCert,
    UpgradeLicenseRequest,
)
from tslic.runtime.clock import write_clock_file
from tslic.runtime.files import load_key
from tslic.runtime.peer import PeerStream, open_peer

from .context import Context


async def call(ctx: Context, stream: PeerStream, request: Message) -> Message:
    """One request; the reply, or raises the refusal as ServiceError (both noted)."""
    ctx.transcript.event(f"-> {type(request).__name__}")
    try:
        reply = await stream.request(request)
    except ServiceError as exc:
        ctx.transcript.event(f"<- refusal {exc.code.name}: {exc.message}")
        raise
    ctx.transcript.event(f"<- {type(reply).__name__}")
    return reply


@asynccontextmanager
async def terminal_server(
    ctx: Context, *, version: int, name: str, certified: bool = True
) -> AsyncIterator[tuple[PeerStream, Ed25519PrivateKey]]:
    """A terminal server's licensing conversation, with its certificate requested first.

    Raises:
        ServiceError: the Hello or the certificate request was refused.
    """
    key = ctx.key()
    ctx.transcript.event(f"terminal server {name} ({version}) says Hello")
    with trio.fail_after(ctx.timeout * 3):
        async with open_peer(
            ctx.config.target,
            conversation=Conversation.LICENSING,
            key=key,
            clock=ctx.clock,
            role=PeerRole.TERMINAL_SERVER,
            name=name,
            version=version,
        ) as stream:
            ctx.transcript.event(f"<- Welcome (license server version {stream.welcome.version})")
            ctx.clock.sync(stream.welcome.server_time)
            if certified:
                cert = await call(
                    ctx,
                    stream,
                    RequestTermServCert(
                        name=name, domain="CONFORMANCE", site="Default-First-Site-Name",
                        version=WindowsVersion(version), public_key=raw_public(key),
                    ),
                )  # fmt: skip
                if not isinstance(cert, TermServCert):
                    raise ServiceError(f"certificate request answered by {type(cert).__name__}")
            yield stream, key


def license_request(ctx: Context, *, mode: LicensingMode = LicensingMode.PER_DEVICE,
                    client_os: ClientOS = ClientOS.XP_PRO) -> IssueLicense:  # fmt: skip
    return IssueLicense(
        hwid=raw_public(ctx.key()),
        machine=f"CONF-{ctx.rng.randrange(10**6):06d}",
        user="conformance",
        client_os=client_os,
        mode=mode,
    )


async def grant_permanent(
    ctx: Context, version: int, *, client_os: ClientOS = ClientOS.XP_HOME,
    mode: LicensingMode = LicensingMode.PER_DEVICE, mark: bool = True,
) -> tuple[LicenseGranted | Referral | ServiceError, IssueLicense, int]:  # fmt: skip
    """A permanent Per Device CAL the way a terminal server gets one (TEMP-4, TEMP-5,
    TEMP-7): the first request may bring a temporary license; after the "logon" the suite
    marks it (MarkLicense) and presents it again (UpgradeLicenseRequest), which an activated
    server with CALs answers with the permanent CAL. A client OS without a built-in license
    is used, so a 2000 terminal server is not answered with one (CAL-4). Returns the last
    answer, the request and the target time at which it was asked for. With `mark=False`
    the logon never validates the temporary license (TEMP-8)."""
    req = license_request(ctx, client_os=client_os, mode=mode)
    async with terminal_server(ctx, version=version, name=f"CONF-TS{version}") as (stream, _):
        try:
            first = await call(ctx, stream, req)
            assert isinstance(first, LicenseGranted | Referral)
            if not isinstance(first, LicenseGranted) or first.kind is not LicenseKind.TEMPORARY:
                return first, req, ctx.now()
            if mark:
                await call(ctx, stream, MarkLicense(license_id=first.license_id, hwid=req.hwid))
            asked = ctx.now()
            second = await call(ctx, stream, UpgradeLicenseRequest(
                license=first.license, hwid=req.hwid, machine=req.machine, user=req.user,
                client_os=req.client_os, mode=req.mode))  # fmt: skip
        except ServiceError as exc:
            return exc, req, ctx.now()
    assert isinstance(second, LicenseGranted | Referral)
    return second, req, asked


def license_problems(granted: LicenseGranted, ts_version: int, hwid: bytes) -> list[str]:
    """What is wrong with a license issued to a terminal server of `ts_version` (empty if
    nothing): the product's version, the issuer's version, the binding, the signature."""
    problems = []
    if int(granted.product.version) < ts_version:
        problems.append(f"a {granted.product.label} was issued to a {ts_version} terminal server")
    try:
        signed: SignedLicense = open_license(granted.license)
    except TslicError as exc:
        return [*problems, f"the license blob does not verify: {exc}"]
    if signed.issuer.version and signed.issuer.version < ts_version:
        problems.append(
            f"the license was signed by a {signed.issuer.version} license server "
            f"({signed.issuer.name}) for a {ts_version} terminal server"
        )
    if signed.body.hwid != hwid:
        problems.append("the license is bound to another hardware id")
    if signed.body.kind != granted.kind or signed.body.product != granted.product:
        problems.append("the signed license disagrees with the LicenseGranted fields")
    return problems


@asynccontextmanager
async def administrator(ctx: Context) -> AsyncIterator[PeerStream]:
    """The licensing utility's conversation, with the credential from --admin-credential.

    Raises:
        ServiceError: no credential was given, or it cannot be read (StorageError).
    """
    path = ctx.config.admin_credential
    if path is None:
        raise ServiceError("needs --admin-credential", code=ErrorCode.ACCESS_DENIED)
    key = load_key(path)
    with trio.fail_after(ctx.timeout * 3):
        async with open_peer(
            ctx.config.target,
            conversation=Conversation.ADMIN,
            key=key,
            clock=ctx.clock,
            role=PeerRole.ADMINISTRATOR,
            name="CONFORMANCE-ADMIN",
            version=0,
        ) as stream:
            yield stream


def as_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def move_clock(ctx: Context, delta_ms: int) -> int:
    """Move the target's virtual clock forward by `delta_ms`; return the new target time.

    Raises:
        ServiceError: no --clock-file, or the target did not follow within the timeout.
    """
    path = ctx.config.clock_file
    if path is None:
        raise ServiceError("needs --clock-file", code=ErrorCode.INVALID_FIELD)
    speed = 1.0  # no file yet, or real time: keep speed 1
    with contextlib.suppress(OSError, TslicError, ValueError):
        speed = ClockSpec.from_arg(path.read_text(encoding="utf-8").strip()).speed
    target = ctx.now() + delta_ms
    try:
        write_clock_file(str(path), ClockSpec(start=target, anchor=time.time(), speed=speed))
    except OSError as exc:
        raise ServiceError(f"cannot write the clock file {path}: {exc.strerror}") from None
    ctx.transcript.event(f"moved the target's clock forward {delta_ms / 86_400_000:.1f} days")
    with trio.move_on_after(ctx.timeout):
        while True:
            await ctx.sync_clock()
            if ctx.now() >= target - 60_000:
                return ctx.now()
            await trio.sleep(0.02)
    raise ServiceError(f"the target did not follow the clock file {path} in time")


@asynccontextmanager
async def session(ctx: Context, key: Ed25519PrivateKey | None = None) -> AsyncIterator[PeerStream]:
    """A well-behaved conversation of the role's kind, opened with the suite's Hello."""
    hello = ctx.hello()
    with trio.fail_after(ctx.timeout * 3):
        async with open_peer(
            ctx.config.target,
            conversation=ctx.conversation,
            key=key or ctx.key(),
            clock=ctx.clock,
            role=hello.role,
            name=hello.name,
            version=hello.version,
        ) as stream:
            yield stream


async def refused_with(
    ctx: Context, stream: PeerStream, request: Message, code: ErrorCode
) -> tuple[bool | None, str]:
    """(True, text) if refused with `code`; (False, text) for another code; (None, text) if
    the request was answered."""
    try:
        reply = await call(ctx, stream, request)
    except ServiceError as exc:
        return exc.code is code, f"refusal {exc.code.name}: {exc.message}"
    return None, f"answered {type(reply).__name__}"
