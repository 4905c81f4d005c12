"""Helpers of the licensing-rule cases for a license-server target: the licensing utility's
view of the target (status, pools, Prevent License Upgrade) and one-request terminal servers.

Contract: `Unprepared` means the target lacks what a case needs (not activated, no pack of
the product, no `--admin-credential`): the case reports `unsupported` with its message.
`upgrade_policy(ctx, value)` sets the policy for the body of a case and restores the target's
own setting afterwards. Every request goes through lsclient (so it is in the transcript).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tslic.protocol import ServiceError
from tslic.protocol.domain import CalProduct
from tslic.protocol.messages.admin import (
    AdminGetStatus,
    AdminKeyPacks,
    AdminListKeyPacks,
    AdminSetPolicy,
    AdminStatus,
)
from tslic.protocol.messages.licensing import IssueLicense, LicenseGranted, Referral
from tslic.protocol.messages.records import KeyPackInfo, ServerStatus

from .context import Context
from .lsclient import administrator, call, terminal_server

NO_PERMANENT_LICENSE = 21  # TLS_W_NOPERMLICENSE (§7.5)
NOT_ACTIVATED = 18
KEYPACK_REFUSED = 41


class Unprepared(Exception):
    """The target lacks what the case needs: the case is `unsupported` with this reason."""


async def get_status(ctx: Context) -> ServerStatus:
    if ctx.config.admin_credential is None:
        raise Unprepared("needs --admin-credential (docs/CONFORMANCE.md §2)")
    async with administrator(ctx) as admin:
        reply = await call(ctx, admin, AdminGetStatus())
    assert isinstance(reply, AdminStatus)
    return reply.status


async def list_packs(ctx: Context) -> list[KeyPackInfo]:
    if ctx.config.admin_credential is None:
        raise Unprepared("needs --admin-credential to read the pools")
    async with administrator(ctx) as admin:
        reply = await call(ctx, admin, AdminListKeyPacks())
    assert isinstance(reply, AdminKeyPacks)
    return list(reply.keypacks)


def free(packs: list[KeyPackInfo], product: CalProduct) -> int:
    return sum(p.available for p in packs if p.product is product and p.program is not None)


def installed(packs: list[KeyPackInfo], product: CalProduct) -> int:
    return sum(p.total for p in packs if p.product is product and p.program is not None)


async def prepared(ctx: Context, *, version: int | None = 2003, activated: bool = True) -> (
    tuple[ServerStatus, list[KeyPackInfo]]
):  # fmt: skip
    status = await get_status(ctx)
    if version is not None and int(status.version) != version:
        raise Unprepared(f"a rule of {version} license servers; the target is {status.version}")
    if activated and not status.activation.may_issue_permanent:
        raise Unprepared(f"needs an activated target (it is {status.activation}): give "
                         "--clearinghouse and --retail-code (docs/CONFORMANCE.md §2)")  # fmt: skip
    return status, await list_packs(ctx)


@asynccontextmanager
async def upgrade_policy(ctx: Context, value: bool) -> AsyncIterator[None]:
    """Set Prevent License Upgrade for the case; restore the target's setting afterwards."""
    before = (await get_status(ctx)).prevent_upgrade
    async with administrator(ctx) as admin:
        await call(ctx, admin, AdminSetPolicy(prevent_upgrade=value))
    try:
        yield
    finally:
        async with administrator(ctx) as admin:
            await call(ctx, admin, AdminSetPolicy(prevent_upgrade=before))


def label(reply: object) -> str:
    if isinstance(reply, LicenseGranted):
        return f"{reply.kind} {reply.product} (events {list(reply.event_ids)})"
    if isinstance(reply, ServiceError):
        return f"refusal {reply.code.name}"
    if isinstance(reply, Referral):
        return f"referral for {reply.product}"
    return type(reply).__name__


async def ask(ctx: Context, version: int, request: IssueLicense) -> (
    LicenseGranted | Referral | ServiceError
):  # fmt: skip
    async with terminal_server(ctx, version=version, name=f"CONF-TS{version}") as (stream, _):
        try:
            reply = await call(ctx, stream, request)
        except ServiceError as exc:
            return exc
    assert isinstance(reply, LicenseGranted | Referral)
    return reply


async def is_2003(ctx: Context) -> bool:
    try:
        async with terminal_server(ctx, version=2003, name="CONF-PROBE", certified=False) as (
            stream, _,
        ):  # fmt: skip
            return stream.welcome.version == 2003
    except ServiceError:
        return False
