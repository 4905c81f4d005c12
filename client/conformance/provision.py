"""Preparing a license-server target for the permanent-CAL cases: activation and key packs.

Contract: `provision(ctx)` runs once before the cases when `--clearinghouse HOST:PORT` is given
for a license-server target. Through the licensing utility's conversation (the credential of
`--admin-credential`) it
- sets the Required Information and the automatic method (AdminSetProperties) and activates
  the target by the automatic method (AdminActivate), unless it is already activated;
- installs the licenses of every `--retail-code` (AdminInstallKeyPack, retail program, all the
  code's remaining licenses). The suite does not know which product a code was bought for, so
  it offers the Per Device products in turn and moves on when the target (or the Clearinghouse
  behind it) says the code is for another product (INVALID_LICENSE_CODE) or the product does
  not fit the server (KEYPACK_NOT_SUPPORTED).
It returns one line per step for the report. Anything that stops the preparation raises
`ServiceError` with a sentence naming the step, so `tslic conformance` exits 2 (a usage
error: the target was not what the options said) instead of reporting cases it never ran.
"""

from __future__ import annotations

from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.domain import ActivationMethod, ActivationState, CalProduct, Program
from tslic.protocol.messages.admin import (
    ActivationAction,
    AdminActivate,
    AdminGetStatus,
    AdminInstallKeyPack,
    AdminKeyPackInstalled,
    AdminSetProperties,
    AdminStatus,
)
from tslic.protocol.messages.records import ContactInfo
from tslic.runtime.peer import PeerStream

from .context import Context
from .lsclient import administrator, call

# Per Device first: LEASE-1 and LEASE-4 need a Per Device CAL for the suite's terminal server.
# A code for User CALs is held back (Context.deferred_codes) until the cases that need a
# server without a User CAL pack have run (CAL-8, TEMP-9); CAL-7 installs it
# (`install_deferred`).
PRODUCTS = (CalProduct.W2003_DEVICE_CAL, CalProduct.W2000_TS_CAL)
USER_PRODUCTS = (CalProduct.W2003_USER_CAL,)
CONTACT = ContactInfo(first_name="Conformance", last_name="Suite", company="tslic conformance",
                      country="United States", email="conformance@example.invalid")  # fmt: skip
# A code for another product, or a product the server cannot hold: try the next product.
_OTHER_PRODUCT = (ErrorCode.INVALID_LICENSE_CODE, ErrorCode.KEYPACK_NOT_SUPPORTED)


async def provision(ctx: Context) -> list[str]:
    """Activate the target and install the retail codes; return what was done.

    Raises:
        ServiceError: no --admin-credential, or a step was refused (the message names it).
    """
    if ctx.config.admin_credential is None:
        raise ServiceError(
            "--clearinghouse needs --admin-credential: the suite activates the target through"
            " the licensing utility's conversation",
            code=ErrorCode.INVALID_FIELD,
        )
    done: list[str] = []
    try:
        async with administrator(ctx) as admin:
            state = await _status(ctx, admin)
            if state.may_issue_permanent:
                done.append(f"the target is already {state}")
            else:
                await _activate(ctx, admin)
                done.append(f"activated through {ctx.config.clearinghouse} (automatic method)")
            for code in ctx.config.retail_codes:
                done.append(await _install(ctx, admin, code, PRODUCTS, defer=True))
    except ServiceError as exc:
        raise ServiceError(
            f"cannot prepare the target with --clearinghouse: {exc.message} ({exc.code.name})",
            code=exc.code,
        ) from None
    return done


async def _status(ctx: Context, admin: PeerStream) -> ActivationState:
    reply = await call(ctx, admin, AdminGetStatus())
    if not isinstance(reply, AdminStatus):
        raise ServiceError(f"AdminGetStatus was answered by {type(reply).__name__}")
    return reply.status.activation


async def _activate(ctx: Context, admin: PeerStream) -> None:
    method = ActivationMethod.AUTOMATIC
    await call(ctx, admin, AdminSetProperties(contact=CONTACT, method=method))
    await call(ctx, admin, AdminActivate(action=ActivationAction.ACTIVATE, method=method))
    state = await _status(ctx, admin)
    if not state.may_issue_permanent:
        raise ServiceError(f"after AdminActivate the target says it is {state}")


async def install_deferred(ctx: Context) -> list[str]:
    """Install the User CAL codes provisioning held back; return what was done.

    Raises:
        ServiceError: a code was refused (the message names it).
    """
    done = []
    async with administrator(ctx) as admin:
        while ctx.deferred_codes:
            code = ctx.deferred_codes.pop(0)
            done.append(await _install(ctx, admin, code, USER_PRODUCTS, defer=False))
    return done


async def _install(
    ctx: Context, admin: PeerStream, code: str, products: tuple[CalProduct, ...], *, defer: bool
) -> str:
    refusals = []
    for product in products:
        request = AdminInstallKeyPack(program=Program.RETAIL, product=product, count=0,
                                      method=ActivationMethod.AUTOMATIC,
                                      retail_code=code)  # fmt: skip
        try:
            reply = await call(ctx, admin, request)
        except ServiceError as exc:
            if exc.code is ErrorCode.ALREADY_REDEEMED:  # a rerun of the same preparation
                return f"retail code {code}: already redeemed, nothing installed"
            if exc.code not in _OTHER_PRODUCT:
                raise ServiceError(f"retail code {code}: {exc.message}", code=exc.code) from None
            refusals.append(f"{product}: {exc.message}")
            continue
        if not isinstance(reply, AdminKeyPackInstalled):
            raise ServiceError(f"AdminInstallKeyPack was answered by {type(reply).__name__}")
        pack = reply.keypack
        return f"retail code {code}: installed {pack.total} x {pack.product}"
    if defer:
        ctx.deferred_codes.append(code)
        return f"retail code {code}: not for a Per Device product; held back for CAL-7 (User CALs)"
    raise ServiceError(f"retail code {code} was refused for every product: {'; '.join(refusals)}",
                       code=ErrorCode.INVALID_LICENSE_CODE)  # fmt: skip
