"""Evidence bundles for failing cases, and the one-line command that reruns a case.

Contract: `write_evidence(config, result)` writes, under `config.evidence/<case id>/`,
README.txt (the case, rule, expected and actual outcome, timings, rerun command),
transcript.txt (hex and decoded frames both ways), transcript.json, result.json and rerun.sh,
and returns the directory; it returns "" when no `--evidence` was given or the files cannot be
written (a warning is logged: a full disk must not hide the verdicts).
"""

from __future__ import annotations

import json
import logging
import shlex

from tslic.protocol import TslicError
from tslic.runtime.files import write_atomic

from .basics import SuiteConfig
from .model import Case, Result
from .wire import Transcript

log = logging.getLogger(__name__)


def rerun_command(config: SuiteConfig, case: Case) -> str:
    parts = ["tslic", "conformance", "--target", config.target, "--role", str(config.role)]
    parts += ["--only", case.id, "--seed", str(config.seed), "--timeout", str(config.timeout)]
    if config.strict:
        parts.append("--strict")
    for flag, value in (
        ("--admin-credential", config.admin_credential),
        ("--trust-root", config.trust_root),
        ("--clock-file", config.clock_file),
    ):
        if value is not None:
            parts += [flag, str(value)]
    if config.clearinghouse:  # already activated by the run; its retail codes are used up
        parts += ["--clearinghouse", config.clearinghouse]
    return shlex.join(parts)


def write_evidence(config: SuiteConfig, result: Result) -> str:
    """Write the evidence bundle of one case; return its directory ('' if not written)."""
    if config.evidence is None:
        return ""
    safe = result.case.id.replace(":", "__").replace("/", "_")
    folder = config.evidence / safe
    try:
        folder.mkdir(parents=True, exist_ok=True)
        transcript = result.transcript or Transcript()
        command = rerun_command(config, result.case)
        write_atomic(folder / "transcript.txt", transcript.render().encode())
        write_atomic(
            folder / "transcript.json",
            json.dumps(transcript.to_json(), indent=1).encode(),
        )
        write_atomic(folder / "result.json", json.dumps(result.to_json(), indent=1).encode())
        write_atomic(folder / "rerun.sh", f"#!/bin/sh\n{command}\n".encode())
        summary = [
            f"case:      {result.case.id}",
            f"rule:      {result.case.rule} ({result.case.level}) {result.case.rule_text}",
            f"sent:      {result.case.description}",
            f"expected:  {' | '.join(result.case.expected)}",
            f"actual:    {result.actual}",
            f"verdict:   {result.verdict}",
            f"duration:  {result.duration * 1000:.1f} ms",
            "time-to-reject: "
            + ("-" if result.time_to_reject is None else f"{result.time_to_reject * 1000:.1f} ms"),
            f"served after: {result.served_after} ({result.served_detail})",
            f"rerun:     {command}",
        ]
        write_atomic(folder / "README.txt", ("\n".join(summary) + "\n").encode())
    except (OSError, TslicError) as exc:
        log.warning("cannot write evidence for %s: %s", result.case.id, exc)
        return ""
    return str(folder)
