"""Requests from the terminal server to its license servers, with issuer-first routing and
referrals (TS licensing FAQ, KB 287687).

Every request travels on the agent's kept connection to that server (client/agent/links.py:
one connection and one Hello per license server, not per request).

Contract: `ask` sends a request to the server that issued the license concerned if it is
usable, else to the server in use (with failover, `LicenseServers.call`). `ask_license` does
the same for license requests and follows one `Referral` to a server that has the CALs,
probing a listed server again when the cache last saw it unable to serve, and forwarding the
referrer's statement that the presented temporary was validated; its result is always a
`LicenseGranted`. Refusals are `ServiceError`; no usable server is `NoLicenseServer`.
"""

from __future__ import annotations

from dataclasses import replace

from tslic.protocol import ErrorCode, Message, ServiceError
from tslic.protocol.messages.licensing import LicenseGranted, Referral, UpgradeLicenseRequest

from .discovery import LicenseServers
from .links import Unusable


async def ask(servers: LicenseServers, request: Message, issuer: str | None) -> Message:
    """Send `request` to `issuer` if it is usable, else to the server in use."""
    entry = servers.state.entry(issuer) if issuer else None
    if entry is not None and entry.issuing:
        try:
            return await servers.call_at(entry, request)
        except Unusable:
            pass
    return (await servers.call(request))[1]


async def ask_license(
    servers: LicenseServers, request: Message, *, issuer: str | None
) -> LicenseGranted:
    """`ask`, then follow one referral (TS licensing FAQ: a server without CALs refers to one
    with them).

    Raises:
        ServiceError: refused (NO_LICENSE_AVAILABLE if no referral target could help).
        NoLicenseServer: no server can be used.
    """
    reply = await ask(servers, request, issuer)
    if isinstance(reply, Referral):
        if isinstance(request, UpgradeLicenseRequest) and reply.temporary_validated:
            # The target did not issue the presented temporary and cannot know a logon
            # validated it; the referring server says so, and we pass that on (CAL-12).
            request = replace(request, temporary_validated=True)
        for ref in reply.servers:
            target = await servers.resolve(ref)
            if not target.issuing:
                # The referral is fresher news than our cache, which may have seen this server
                # while it could not serve us (it denied access, or was down): ask it again
                # before passing over it (CAL-12: ask one of the listed servers).
                await servers.probe(target)
            if not target.issuing:
                continue
            try:
                reply = await servers.call_at(target, request)
            except Unusable:
                continue
            break
    if not isinstance(reply, LicenseGranted):
        raise ServiceError(
            "no license server could give this client a license",
            code=ErrorCode.NO_LICENSE_AVAILABLE,
        )
    return reply
