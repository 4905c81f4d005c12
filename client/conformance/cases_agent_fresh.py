"""Cases on a second, fresh terminal server in a workgroup that the suite starts itself
(docs/PROTOCOL.md §7.11, §7.12: DISC-2, DISC-4, GRACE-4).

Contract: the manifest of `tslic conformance prepare --role agent` carries
`fresh_agent_command`: a command line that starts another terminal server of the
implementation under test, of the same version, in a workgroup, with CONF-LS1 as its
preferred server (LicenseServers on 2003, DefaultLicenseServer on 2000) and CONF-LS2, CONF-ENT,
CONF-DC and CONF-MEMBER as the license servers answering its broadcast, on the run's clock
file, named prepare.FRESH_NAME. Each case runs it with every `{data}` replaced by a fresh
directory, reads its readiness line (the first line on stdout, a JSON object with
`address`), points the suite's RDP clients at it for the case, and stops it (SIGTERM, then
SIGKILL after 5 s). Without the command the cases are `unsupported`. The doubles log every
contact with the caller's Hello name (peers.Peers.contacts), so the fresh agent's probes are
told from the main target's. The cases run last of the agent cases (they set the doubles)
and leave every double denying.
- DISC-2 (2003) and DISC-4 (2000): every double denies, so each discovery tries every
  source in order. The start-up discovery and `ORDER_ROUNDS - 1` more (the clock moves 16
  minutes each time, past the 15-minute retry while none is found, DISC-10) must each try
  CONF-LS1 first, then the four broadcast answers (a move that lands while the agent is
  finishing a discovery only restarts its retry interval, so up to `MOVES` moves are made for
  one discovery). Random order is judged weakly but
  honestly: the four answers must not come in the same order in every round. An agent
  choosing uniformly at random fails that with probability 24^-5 < 1.3e-7.
- GRACE-4, the default of the documented switch `GraceEnd` (first-permanent-cal): a first
  client in the grace period gets STATUS_VALID_CLIENT; CONF-LS1 becomes valid and a device
  gets a temporary license and logs on (the double marks it validated); with no license
  server again a new client is still in grace (neither a license server found nor a
  temporary license ends it); CONF-LS1 valid again upgrades the device's temporary to a
  permanent CAL; then, with no license server, a new client must be refused
  ERR_NO_LICENSE_SERVER although hours of the 90 or 120 days have passed. An agent started
  with the alternative `first-license-server` fails at the third step.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import trio
from tslic.protocol.domain import LicenseKind
from tslic.protocol.licenses import open_license

from .cases_agent import Exchange
from .cases_agent_env import NO_LS, REDISCOVER, Unprepared, _need_peers, _outcome, _until
from .cases_agent_env import _valid_client as valid_client
from .cases_agent_env import _version as agent_version
from .cases_agent_lic import _session
from .context import Context
from .lsclient import move_clock
from .model import Case, Judgement, Role, Verdict, case
from .peers import LsMode
from .prepare import FRESH_NAME

CASES: list[Case] = []
AGENT = frozenset({Role.AGENT})
PREFERRED = "CONF-LS1"
BROADCAST = frozenset({"CONF-LS2", "CONF-ENT", "CONF-DC", "CONF-MEMBER"})
ORDER_ROUNDS = 6  # 24 orders of 4 answers: a random agent repeats one 6 times w.p. 24^-5
RETRY = 16 * 60_000  # past the 15-minute retry while no license server is found (DISC-10)
MOVES = 3  # clock moves tried for one discovery (see _next_round)
SETTLE = 0.1  # real seconds after a discovery's last Hello before the clock moves again


def _argv(command: list[str], data: str) -> list[str]:
    """The manifest's command with `{data}` filled in; "tslic" is the suite's own tslic."""
    argv = [str(arg).replace("{data}", data) for arg in command]
    if argv and argv[0] == "tslic":
        argv = [sys.executable, "-m", "tslic.cli", *argv[1:]]
    return argv


async def _readline(stream: trio.abc.ReceiveStream, budget: float) -> bytes:
    line = b""
    with trio.move_on_after(budget):
        while b"\n" not in line:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            line += chunk
    return line.split(b"\n", 1)[0]


@contextlib.asynccontextmanager
async def fresh_agent(ctx: Context) -> AsyncIterator[str]:
    """Start the manifest's fresh terminal server; the suite's clients talk to it inside."""
    _need_peers(ctx)
    command = ctx.manifest.get("fresh_agent_command")
    if not command:
        raise Unprepared("needs the manifest's fresh_agent_command (prepare again)")
    with tempfile.TemporaryDirectory(prefix="tslic-conformance-") as tmp:
        errors = Path(tmp) / "stderr.txt"
        with errors.open("wb") as err:
            try:
                process = await trio.lowlevel.open_process(
                    _argv(command, str(Path(tmp) / "data")),
                    stdout=subprocess.PIPE,
                    stderr=err,
                )
            except OSError as exc:
                raise Unprepared(f"cannot start fresh_agent_command: {exc}") from None
        target = ctx.config.target
        try:
            assert process.stdout is not None
            line = await _readline(process.stdout, max(ctx.timeout * 3, 15.0))
            try:
                address = str(json.loads(line)["address"])
            except (ValueError, KeyError, TypeError):
                tail = errors.read_text(errors="replace")[-400:]
                raise Unprepared(f"fresh_agent_command printed no readiness line: {tail}") from None
            ctx.transcript.event(f"started the fresh terminal server at {address}")
            ctx.config.target = address
            yield address
        finally:
            ctx.config.target = target
            await ctx.close_clients()
            process.terminate()
            with trio.move_on_after(5):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            if process.stdout is not None:
                await process.stdout.aclose()
            assert ctx.peers is not None
            ctx.peers.set_all(LsMode.DENY)


def _hellos(ctx: Context, since: int) -> list[str]:
    assert ctx.peers is not None
    return [double for who, double, what in ctx.peers.contacts[since:]
            if who == FRESH_NAME and what == "Hello"]  # fmt: skip


async def _round(ctx: Context, since: int, budget: float | None = None) -> list[str]:
    """The doubles the fresh agent said Hello to since `since`, once it tried all five, or
    when `budget` (default 2 x --timeout) ran out; an empty list if it tried none."""
    with trio.move_on_after(ctx.timeout * 2 if budget is None else budget):
        while True:
            tried = _hellos(ctx, since)
            if len(tried) >= 1 + len(BROADCAST):
                await trio.sleep(SETTLE)  # let it finish the discovery before the clock moves
                return tried
            await trio.sleep(0.02)
    return _hellos(ctx, since)


async def _next_round(ctx: Context) -> list[str]:
    """Move the clock past the retry interval and return the next discovery's Hellos. A move
    that lands while the agent is still finishing a discovery only delays its next retry
    (the 15 minutes then count from the moved time): if no Hello follows, move again."""
    assert ctx.peers is not None
    for _ in range(MOVES):
        since = len(ctx.peers.contacts)
        await move_clock(ctx, RETRY)
        if await _round(ctx, since, budget=min(ctx.timeout, 3.0)):
            return await _round(ctx, since)
    return []


def _order_case(rule: str, version: int) -> None:
    @case(CASES, rule, f"workgroup-order-{version}", "a fresh terminal server in a workgroup "
          "(the suite starts it) with CONF-LS1 preferred and four license servers answering "
          f"its broadcast, every one denying; the start-up discovery and {ORDER_ROUNDS - 1} "
          "more (the clock moves 16 minutes each time)", (f"a {version} agent: CONF-LS1 "
          "first, then the four broadcast answers, not in the same order every time",
          "an agent of the other version: unsupported"), roles=AGENT)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        rounds: list[list[str]] = []
        try:
            _need_peers(ctx)
            assert ctx.peers is not None
            ctx.peers.set_all(LsMode.DENY)
            since = len(ctx.peers.contacts)
            async with fresh_agent(ctx):
                await ctx.open_raw()
                if agent_version(ctx) != version:
                    return Judgement(Verdict.UNSUPPORTED, f"a rule for {version} terminal servers")
                for i in range(ORDER_ROUNDS):
                    rounds.append(await (_next_round(ctx) if i else _round(ctx, since)))
                    tried = rounds[-1]
                    if not tried:
                        return Judgement(Verdict.UNSUPPORTED, f"discovery {i + 1} did not come: "
                                         f"no Hello within {MOVES} moves of 16 minutes past the "
                                         "15-minute retry (DISC-10)")  # fmt: skip
                    if tried[:1] != [PREFERRED] or set(tried[1:]) != BROADCAST \
                            or len(tried) != 1 + len(BROADCAST):  # fmt: skip
                        return Judgement(Verdict.FAIL, f"discovery {i + 1} tried {tried} "
                                         f"(expected {PREFERRED}, then each of "
                                         f"{sorted(BROADCAST)} once)")  # fmt: skip
        except Unprepared as why:
            return Judgement(Verdict.UNSUPPORTED, str(why))
        orders = {tuple(r[1:]) for r in rounds}
        seen = "; ".join(" ".join(r) for r in rounds)
        if len(orders) == 1:
            return Judgement(Verdict.FAIL, f"the broadcast answers came in the same order in "
                             f"all {ORDER_ROUNDS} discoveries: {seen}")  # fmt: skip
        return Judgement(Verdict.PASS, f"{len(orders)} orders in {ORDER_ROUNDS} discoveries: "
                         f"{seen}")  # fmt: skip


_order_case("DISC-2", 2003)
_order_case("DISC-4", 2000)


def _only(ctx: Context, valid: str | None) -> None:
    assert ctx.peers is not None
    ctx.peers.set_all(LsMode.DENY)
    if valid is not None:
        ctx.peers.license_servers[valid].mode = LsMode.VALID


def _last(ex: Exchange, name: str) -> bool:
    return ex.last is not None and ex.last.name == name and ex.last.body is not None


@case(CASES, "GRACE-4", "first-permanent-cal-ends-grace", "a fresh terminal server (the suite "
      "starts it, with the default GraceEnd first-permanent-cal) in its grace period: a device "
      "gets a temporary license through CONF-LS1 and logs on; with no license server a new "
      "client is still in grace; CONF-LS1 then upgrades the device's temporary to a permanent "
      "CAL; with no license server again a new client asks", ("STATUS_VALID_CLIENT while "
      "only a temporary was issued; ErrorAlert ERR_NO_LICENSE_SERVER / ST_TOTAL_ABORT after "
      "the first permanent CAL, hours into the grace period",), roles=AGENT)  # fmt: skip
async def first_permanent(ctx: Context) -> Judgement:
    steps: list[str] = []
    try:
        _need_peers(ctx)
        assert ctx.peers is not None
        ls1 = ctx.peers.license_servers[PREFERRED]
        _only(ctx, None)
        since = len(ctx.peers.contacts)
        async with fresh_agent(ctx):
            await _round(ctx, since)  # its start-up discovery: none found
            ex, alert = await _until(ctx, valid_client)
            if not valid_client(ex, alert):
                return Judgement(Verdict.FAIL, f"the first client is not in grace: {_outcome(ex)}")
            steps.append("first client in grace")
            _only(ctx, PREFERRED)
            await move_clock(ctx, REDISCOVER)
            device = ctx.key()
            marked = ls1.requests["MarkLicense"]
            with trio.move_on_after(ctx.timeout * 2):
                while True:
                    ex, done = await _session(ctx, logon=True, key=device)
                    if _last(ex, "NewLicense") and ls1.requests["MarkLicense"] > marked:
                        break
                    await trio.sleep(0.05)
            if not _last(ex, "NewLicense") or ls1.requests["MarkLicense"] == marked:
                raise Unprepared(f"the device got no temporary license marked at {PREFERRED} "
                                 f"(TEMP-4, TEMP-5): {_outcome(ex)}, {done}")  # fmt: skip
            assert ex.last is not None
            assert ex.last.body is not None
            temporary = bytes(ex.last.body["license"])
            steps.append(f"a temporary through {PREFERRED}, marked after the logon")
            _only(ctx, None)
            await move_clock(ctx, REDISCOVER)
            ex, alert = await _until(ctx, valid_client)
            if not valid_client(ex, alert):
                return Judgement(Verdict.FAIL, f"{'; '.join(steps)}; then with no license "
                                 f"server a new client got {_outcome(ex)}: the grace period "
                                 "ended before any permanent CAL (GraceEnd default "
                                 "first-permanent-cal)")  # fmt: skip
            steps.append("no license server: still in grace")
            _only(ctx, PREFERRED)
            await move_clock(ctx, REDISCOVER)

            def permanent(ex: Exchange, alert: object) -> bool:
                if not _last(ex, "UpgradeLicense"):
                    return False
                assert ex.last is not None
                assert ex.last.body is not None
                body = open_license(bytes(ex.last.body["license"])).body
                return body.kind is LicenseKind.PERMANENT

            ex, _ = await _until(ctx, permanent, key=device, license=temporary)
            if not permanent(ex, None):
                raise Unprepared(f"the device's validated temporary was not upgraded to a "
                                 f"permanent CAL (TEMP-7): {_outcome(ex)}")  # fmt: skip
            steps.append("its temporary upgraded to a permanent CAL")
            _only(ctx, None)
            await move_clock(ctx, REDISCOVER)
            ex, alert = await _until(ctx, lambda ex, alert: alert == NO_LS)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, "; ".join([*steps, str(why)]))
    if alert == NO_LS:
        return Judgement(Verdict.PASS, "; ".join([*steps, f"then {_outcome(ex)}"]))
    return Judgement(Verdict.FAIL, f"{'; '.join(steps)}; then with no license server a new "
                     f"client got {_outcome(ex)}: the first permanent CAL did not end the "
                     "grace period")  # fmt: skip
