"""Licenses an agent (terminal server) target must check before it hands them to a client
(docs/PROTOCOL.md §7.13 SEC-12, §10.3), with the suite playing its license servers.

Contract: they need the manifest of `tslic conformance prepare --role agent`, whose agent trusts
the suite's Clearinghouse root (`--trust-root`); the license servers the suite plays are
activated under that root. They run after cases_agent_lic, which leaves the agent using
CONF-LS2 (CONF-DC for a 2000 agent) as a valid license server. That double then issues a new
client a permanent CAL at once:
- a good one, chained to the root: the agent hands it to the client (the control: an agent
  that refuses every license cannot pass the rule);
- one whose signature does not verify with the enclosed issuer certificate, one whose issuer
  was activated by another Clearinghouse root, one from a temporary (unactivated) issuer: the
  agent must not hand the client any of them (a NewLicense or UpgradeLicense carrying a license
  that does not verify against the root at the suite's `now` fails the case); it treats it as
  no license (an ErrorAlert, or STATUS_VALID_CLIENT during its grace period; a client left
  without an answer is `non-strict`).
Each case leaves the double as it found it, with no fault.
"""

from __future__ import annotations

from cryptography import x509
from tslic.protocol.clock import to_datetime
from tslic.protocol.errors import ProtocolError
from tslic.protocol.licenses import verify_license

from .cases_agent import Exchange
from .cases_agent_env import REDISCOVER, Unprepared, _outcome, _until, pair
from .context import Context
from .lsclient import move_clock
from .model import Case, Judgement, Role, Verdict, case
from .peers import LicenseFault, LsDouble, LsMode

CASES: list[Case] = []
AGENT = frozenset({Role.AGENT})
_LICENSES = ("NewLicense", "UpgradeLicense")


def _passed_on(ex: Exchange) -> bytes | None:
    """The license the agent handed the client, if it did."""
    last = ex.last
    if last is None or last.name not in _LICENSES or last.body is None:
        return None
    return bytes(last.body.get("license") or b"")


def _check(ctx: Context, root: x509.Certificate, blob: bytes) -> str:
    """'' if `blob` verifies against the root at the suite's now (SEC-12), else why not."""
    try:
        verify_license(blob, root, to_datetime(ctx.now()))
    except ProtocolError as exc:
        return exc.message
    return ""


async def _in_use(ctx: Context) -> tuple[LsDouble, x509.Certificate]:
    """The agent's second license server, valid (re-discovered if it was not)."""
    _, ls = pair(ctx)
    assert ctx.peers is not None
    if ctx.peers.root is None:
        raise Unprepared("the manifest has no Clearinghouse root (prepare it again)")
    if ls.mode is not LsMode.VALID:
        ls.mode = LsMode.VALID
        await move_clock(ctx, REDISCOVER)
    return ls, ctx.peers.root[1]


@case(CASES, "SEC-12", "agent-passes-on-chained-license", "the agent's license server (activated "
      "under the suite's Clearinghouse root, which the agent trusts) issues a new client a "
      "permanent CAL", ("NewLicense carrying that license, which verifies against the root",),
      roles=AGENT)  # fmt: skip
async def chained(ctx: Context) -> Judgement:
    try:
        ls, root = await _in_use(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    ls.issue_permanent = True
    try:
        ex, _ = await _until(ctx, lambda ex, alert: _passed_on(ex) is not None)
    finally:
        ls.issue_permanent = False
    blob = _passed_on(ex)
    if blob is None:
        return Judgement(Verdict.FAIL, f"answered {_outcome(ex)}: a good license was not passed on")
    bad = _check(ctx, root, blob)
    if bad:
        return Judgement(Verdict.FAIL, f"{_outcome(ex)} with a license that does not verify: {bad}")
    return Judgement(Verdict.PASS, f"{_outcome(ex)}: the license verifies against the root")


def _refused(fault: LicenseFault, slug: str, what: str) -> None:
    @case(CASES, "SEC-12", slug, f"the agent's license server issues a new client a permanent "
          f"CAL {what}", ("no NewLicense or UpgradeLicense carrying it: an ErrorAlert (no "
          "license), or STATUS_VALID_CLIENT during grace",), roles=AGENT)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        try:
            ls, root = await _in_use(ctx)
        except Unprepared as why:
            return Judgement(Verdict.UNSUPPORTED, str(why))
        before = ls.requests["IssueLicense"]
        ls.fault = fault
        try:
            # the agent may still be re-discovering (the clock moved): ask until it asks the double
            ex, _ = await _until(ctx, lambda ex, alert: ls.requests["IssueLicense"] > before)
        finally:
            ls.fault = LicenseFault.NONE
        blob = _passed_on(ex)
        if ls.requests["IssueLicense"] == before:
            return Judgement(Verdict.FAIL, f"answered {_outcome(ex)} without asking {ls.name}, "
                             "the valid license server in use")  # fmt: skip
        if blob is not None:
            bad = _check(ctx, root, blob)
            if bad or blob == ls.last_issued:
                return Judgement(Verdict.FAIL, f"{_outcome(ex)} with {ls.name}'s license, "
                                 f"which does not verify: {bad or fault}")  # fmt: skip
            return Judgement(Verdict.PASS, f"{_outcome(ex)} with another license, which verifies")
        if ex.last is None or ex.last.name != "ErrorAlert":
            # not passed on, but the client was left without an answer
            return Judgement(Verdict.NON_STRICT, f"{_outcome(ex)}: no license, and no answer")
        return Judgement(Verdict.PASS, f"{_outcome(ex)}: the license was not passed on")


_refused(LicenseFault.BAD_SIGNATURE, "agent-refuses-bad-signature",
         "whose signature does not verify with its enclosed issuer certificate")  # fmt: skip
_refused(LicenseFault.FOREIGN_ROOT, "agent-refuses-foreign-root",
         "whose issuer was activated by another Clearinghouse root")  # fmt: skip
_refused(LicenseFault.UNACTIVATED, "agent-refuses-unactivated-permanent",
         "from a temporary (unactivated, self-signed) issuer")  # fmt: skip
