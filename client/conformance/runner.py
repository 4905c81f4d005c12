"""Running cases against a target: selection, the per-case context, liveness checks, evidence.

Contract:
- `select(cases, config)` keeps the cases for the target's role that match `--only` (any of:
  exact case id, rule id, or a glob over either; repeatable) and no `--exclude` glob.
- `run_suite(config, cases, on_result)` syncs with the target's clock, runs each case under
  a hard time cap, and after EVERY case checks that a well-behaved client is still served (a
  Hello and one simple request, or for an agent the LicenseRequest greeting). A case after
  which the target no longer serves anyone fails, whatever its own verdict.
- SHOULD and MAY rules count towards the exit status only with `--strict`; a case listed with
  `--expect-fail` is "xfail" when it fails and "xpass" (which fails the run) when it passes.
- For every failing case an evidence bundle is written under `--evidence DIR`: the transcript
  both ways (hex and decoded), timings, the result, and a one-line command that reruns it.
- No trio, OS or msgpack exception escapes: a case that breaks is a `fail` with the reason.
- With `--clearinghouse` (license-server targets) the target is first activated and given the
  `--retail-code` key packs (provision.py); a preparation that fails raises ServiceError.
"""

from __future__ import annotations

import fnmatch
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio
from tslic.protocol import ConnectionLost, ServiceError, TslicError
from tslic.protocol.codec import Unvalidated
from tslic.protocol.domain import CalProduct
from tslic.protocol.rules import Level
from tslic.runtime.clock import Clock, FileClock, WallClock
from tslic.runtime.files import load_key, read_certs

from .basics import CONVERSATION as CONVERSATION
from .basics import OffsetClock as OffsetClock
from .basics import Role, SuiteConfig, Verdict
from .chdouble import ChDouble
from .context import Context, judge_rejection
from .dirdouble import DirDouble
from .evidence import write_evidence
from .model import Case, Judgement, Result
from .peers import Peers, Root
from .prepare import load_manifest
from .provision import provision
from .wire import Transcript

# Re-exported: case modules and tests written before context.py import these from here.
__all__ = ["CONVERSATION", "Context", "OffsetClock", "SuiteConfig", "SuiteReport",
           "judge_rejection", "run_case", "run_suite", "select"]  # fmt: skip

log = logging.getLogger(__name__)


def _matches(case: Case, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        p = pattern.upper()
        for name in (case.id.upper(), case.rule.upper()):
            if name == p or fnmatch.fnmatchcase(name, p):
                return True
    return False


def select(cases: Sequence[Case], config: SuiteConfig) -> list[Case]:
    chosen = [c for c in cases if config.role in c.roles]
    if config.only:
        chosen = [c for c in chosen if _matches(c, config.only)]
    if config.exclude:
        chosen = [c for c in chosen if not _matches(c, config.exclude)]
    return chosen


@dataclass(slots=True)
class SuiteReport:
    config: SuiteConfig
    results: list[Result]
    started: float
    wall_time: float
    prepared: list[str] = field(default_factory=list)  # what provisioning did (--clearinghouse)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status in ("failed", "xpass")]

    @property
    def exit_status(self) -> int:
        return 1 if self.failed else 0


async def run_case(ctx: Context, case: Case) -> Result:
    """Run one case, then the liveness check; never raises for the target's behaviour."""
    ctx.case_id = case.id
    ctx.transcript = Transcript()
    ctx.rng = random.Random(f"{ctx.config.seed}:{case.id}")
    start = time.monotonic()
    cap = ctx.timeout * 4 + (ctx.config.handshake_timeout if case.heavy else 0) + 5
    try:
        with trio.move_on_after(cap) as scope:
            judgement = await case.run(ctx)
        if scope.cancelled_caught:
            judgement = Judgement(Verdict.TIMEOUT, f"the case did not finish within {cap:.0f} s")
    except ConnectionLost as exc:
        judgement = Judgement(Verdict.FAIL, f"transport failure: {exc.message}")
    except TslicError as exc:
        judgement = Judgement(Verdict.FAIL, f"unexpected protocol failure: {exc}")
    finally:
        await ctx.close_clients()
    duration = time.monotonic() - start
    served, detail = await ctx.served()
    verdict, notes = judgement.verdict, list(judgement.notes)
    if not served:
        notes.append(f"after this case a well-behaved client was not served: {detail}")
        if not verdict.failing:
            verdict = Verdict.FAIL
    counted = ctx.config.strict or case.level is Level.MUST
    return Result(
        case=case,
        verdict=verdict,
        actual=judgement.actual,
        duration=duration,
        time_to_reject=judgement.time_to_reject if case.negative else None,
        served_after=served,
        served_detail=detail,
        notes=notes,
        transcript=ctx.transcript,
        expected_failure=_matches(case, ctx.config.expect_fail),
        counted=counted,
    )


async def run_suite(
    config: SuiteConfig,
    cases: Sequence[Case],
    on_result: Callable[[Result], None] | None = None,
) -> SuiteReport:
    """Run the selected cases in order and collect the report. With `--manifest`, the
    target's peers it names are played by the suite for the length of the run."""
    if config.manifest is None:
        return await _run_cases(config, cases, on_result, None, {})
    manifest = load_manifest(config.manifest)
    if config.clock_file is None and manifest.get("clock_file"):
        config.clock_file = Path(manifest["clock_file"])
    servers = dict(manifest.get("license_servers", {}))
    clock_file = config.clock_file
    clock: Clock = FileClock(str(clock_file), poll=0.01) if clock_file else WallClock.starting(None)
    directory = manifest.get("directory")
    dir_double = None
    if isinstance(directory, dict) and directory.get("address"):
        double = DirDouble(str(directory["domain"]), str(directory["site"]), servers, clock)
        dir_double = (str(directory["address"]), double)
    peers = Peers(servers, clock, clearinghouse_double(manifest, config, clock), dir_double,
                  root=_agent_root(manifest, config))  # fmt: skip
    async with trio.open_nursery() as nursery:
        if isinstance(clock, FileClock):
            nursery.start_soon(clock.watch)
        try:
            await nursery.start(peers.serve)
        except OSError as exc:
            raise ServiceError(f"cannot play the peers of {config.manifest}: {exc.strerror} "
                               "(run `tslic conformance prepare` again)") from None  # fmt: skip
        report = await _run_cases(config, cases, on_result, peers, manifest)
        nursery.cancel_scope.cancel()
    return report


def _agent_root(manifest: dict[str, Unvalidated], config: SuiteConfig) -> Root | None:
    """The Clearinghouse root an agent target trusts (SEC-12): the license servers the suite
    plays for it are activated under it. None for other roles, or a manifest without one."""
    if config.role is not Role.AGENT or not manifest.get("root_key"):
        return None
    try:
        return load_key(Path(manifest["root_key"])), read_certs(Path(manifest["trust_root"]))[0]
    except (KeyError, OSError, ValueError, IndexError, ServiceError) as exc:
        raise ServiceError(f"the manifest's Clearinghouse root is unusable: {exc}") from None


def clearinghouse_double(
    manifest: dict[str, Unvalidated], config: SuiteConfig, clock: Clock
) -> tuple[str, ChDouble] | None:
    """The manifest's Clearinghouse for a license-server target, and what the run then does
    with it: activate the target through it and install its retail codes (provision.py)."""
    ch = manifest.get("clearinghouse")
    if config.role is not Role.LICENSE_SERVER or not isinstance(ch, dict):
        return None
    try:
        key = load_key(Path(ch["root_key"]))
        root = read_certs(Path(manifest["trust_root"]))[0]
        catalogue = {code: (CalProduct(p), int(n)) for code, (p, n) in ch["retail_codes"].items()}
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise ServiceError(f"the manifest's Clearinghouse is incomplete: {exc}") from None
    if not config.clearinghouse:
        config.clearinghouse = str(ch["address"])
        config.retail_codes = tuple(catalogue)
    if config.trust_root is None:
        config.trust_root = Path(manifest["trust_root"])
    if config.admin_credential is None and manifest.get("admin_credential"):
        config.admin_credential = Path(manifest["admin_credential"])
    return str(ch["address"]), ChDouble(key, root, clock, catalogue)


async def _run_cases(
    config: SuiteConfig,
    cases: Sequence[Case],
    on_result: Callable[[Result], None] | None,
    peers: Peers | None,
    manifest: dict[str, Unvalidated],
) -> SuiteReport:
    started = time.time()
    t0 = time.monotonic()
    ctx = Context(config, peers=peers, manifest=manifest)
    try:
        await ctx.sync_clock()
    except trio.TooSlowError:
        # A silent target is still tested: its cases will time out, with evidence.
        log.warning("the target %s did not answer in time; using the local clock", config.target)
    ctx.origin = ctx.now()
    prepared: list[str] = []
    if config.clearinghouse and config.role is Role.LICENSE_SERVER:
        prepared = await provision(ctx)
    results = []
    for case in select(cases, config):
        result = await run_case(ctx, case)
        if result.status in ("failed", "xpass"):
            result.evidence = write_evidence(config, result)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return SuiteReport(config, results, started, time.monotonic() - t0, prepared)
