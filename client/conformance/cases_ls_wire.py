"""Wire-level cases specific to a license-server target: certificate chains in a Hello
(SEC-7, LIMIT-8), a refused Hello ending the conversation (ERR-7), a field constraint of the
licensing conversation (MSG-6).

Contract: like the envelope cases, each sends one crafted frame and judges the refusal with
`Context.reject`; the chains are built from a throwaway root the target cannot trust.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tslic.protocol import ErrorCode

from .context import Context
from .lsclient import license_request
from .model import Case, Judgement, Role, Verdict, case

CASES: list[Case] = []
E = ErrorCode
LS = frozenset({Role.LICENSE_SERVER})


def _foreign_chain(ctx: Context, leaf_key: Ed25519PublicKey, extra: int = 0) -> tuple[bytes, ...]:
    """root -> license server -> terminal server from a throwaway root, plus `extra` copies."""
    from datetime import timedelta

    from tslic.protocol import pki

    from .lsclient import as_datetime

    now = as_datetime(ctx.now())
    nb, na = now - timedelta(days=1), now + timedelta(days=30)
    root_key, ls_key = ctx.key(), ctx.key()
    root = pki.make_root(root_key, name="OTHER-ROOT", not_before=nb, not_after=na, serial=1)
    ls = pki.issue_license_server_cert(root_key, root, ls_key.public_key(), name="OTHER-LS",
                                       version=2003, license_server_id="X", not_before=nb,
                                       not_after=na, serial=2)  # fmt: skip
    ts = pki.issue_terminal_server_cert(ls_key, ls, leaf_key, name="CONF-TS", version=2000,
                                        not_before=nb, not_after=na, serial=3)  # fmt: skip
    chain = tuple(pki.cert_to_der(c) for c in (root, ls, ts))
    return chain + (chain[-1],) * extra


async def _hello_with_chain(
    ctx: Context, chain: tuple[bytes, ...], signer: Ed25519PrivateKey
) -> Judgement:
    from tslic.protocol.codec import to_wire

    from .crafter import Crafter

    crafter = Crafter(key=signer, rng=ctx.rng, now=ctx.now)
    client = await ctx.open_raw()
    hello = ctx.hello(cert_chain=chain)
    await client.send(crafter.raw(int(hello.TYPE), to_wire(hello)))
    return ctx.reject(await client.observe(ctx.timeout), {E.UNTRUSTED_CERTIFICATE})


@case(CASES, "SEC-7", "chain-for-other-key", "a Hello whose certificate chain ends with a "
      "certificate for another key than the envelope's", ("Error UNTRUSTED_CERTIFICATE (2001), "
      "then close",), roles=LS, negative=True)  # fmt: skip
async def chain_other_key(ctx: Context) -> Judgement:
    signer = ctx.key()
    return await _hello_with_chain(ctx, _foreign_chain(ctx, ctx.key().public_key()), signer)


@case(CASES, "LIMIT-8", "chain-too-long", "a Hello with a chain of four certificates",
      ("Error UNTRUSTED_CERTIFICATE (2001), then close",), roles=LS, negative=True)  # fmt: skip
async def chain_too_long(ctx: Context) -> Judgement:
    signer = ctx.key()
    return await _hello_with_chain(ctx, _foreign_chain(ctx, signer.public_key(), 1), signer)


@case(CASES, "ERR-7", "refused-hello-ends", "a Hello on the licensing conversation from the "
      "administrator role", ("an Error refusing the Hello (ACCESS_DENIED), then close",),
      roles=LS, negative=True)  # fmt: skip
async def refused_hello(ctx: Context) -> Judgement:
    from tslic.protocol.domain import PeerRole

    client = await ctx.open_raw()
    await client.send(ctx.crafter().message(ctx.hello(role=PeerRole.ADMINISTRATOR, version=0)))
    obs = await client.observe(ctx.timeout)
    judgement = ctx.reject(obs, {E.ACCESS_DENIED})
    if judgement.verdict is Verdict.PASS and obs.end == "open":
        return Judgement(Verdict.FAIL, f"{obs.summary()}: the conversation was not ended")
    return judgement


@case(CASES, "MSG-6", "hwid-31-bytes", "an IssueLicense whose hardware id has 31 bytes",
      ("Error INVALID_FIELD (1006), then close",), roles=LS, negative=True)  # fmt: skip
async def short_hwid(ctx: Context) -> Judgement:
    from tslic.protocol.codec import to_wire

    client = await ctx.open_raw()
    crafter = ctx.crafter()
    welcome = await ctx.handshake(client, crafter)
    if welcome is None or welcome.name != "Welcome":
        return Judgement(Verdict.FAIL, "Hello not welcomed")
    body = {**to_wire(license_request(ctx)), "hwid": bytes(31)}
    await client.send(crafter.raw(0x203, body))
    return ctx.reject(await client.observe(ctx.timeout), {E.INVALID_FIELD})


@case(CASES, "ACT-10", "ts-certificate-chain", "RequestTermServCert, then the chain is validated "
      "against the trust root (--trust-root), or as a temporary chain",
      ("a valid chain: root -> license server -> this terminal server, or temporary self-signed "
       "license server -> this terminal server on an unactivated server",), roles=LS)  # fmt: skip
async def ts_chain(ctx: Context) -> Judgement:
    from tslic.protocol import TslicError
    from tslic.protocol.connection import raw_public
    from tslic.protocol.domain import WindowsVersion
    from tslic.protocol.messages.licensing import RequestTermServCert, TermServCert
    from tslic.protocol.pki import cert_from_der, identity_of, validate_chain
    from tslic.runtime.files import read_certs

    from .lsclient import as_datetime, call, terminal_server

    async with terminal_server(ctx, version=2000, name="CONF-CHAIN", certified=False) as (s, k):
        reply = await call(ctx, s, RequestTermServCert(
            name="CONF-CHAIN", domain="CONFORMANCE", site="Default-First-Site-Name",
            version=WindowsVersion.W2000, public_key=raw_public(k)))  # fmt: skip
    assert isinstance(reply, TermServCert)
    try:
        certs = [cert_from_der(c) for c in reply.cert_chain]
        temporary = identity_of(certs[0]).temporary
        if ctx.config.trust_root is not None:
            root = read_certs(ctx.config.trust_root)[0]
        elif temporary:
            root = certs[0]  # not consulted for a temporary anchor
        else:
            return Judgement(Verdict.UNSUPPORTED, "activated target: needs --trust-root")
        leaf = validate_chain(certs, root, as_datetime(ctx.now()), leaf_role="terminal-server",
                              allow_temporary_issuer=True)  # fmt: skip
    except TslicError as exc:
        return Judgement(Verdict.FAIL, f"the chain does not validate: {exc}")
    if leaf.name != "CONF-CHAIN":
        return Judgement(Verdict.FAIL, f"the certificate names {leaf.name}")
    kind = "temporary" if leaf.temporary else "activated"
    return Judgement(Verdict.PASS, f"{kind} chain of {len(certs)} for {leaf.name}")
