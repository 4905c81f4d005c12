"""`tslic` with one rule of the agent broken, for the conformance cases that start a second
terminal server themselves (the manifest's fresh_agent_command, cases_agent_fresh): the test
rewrites that command to `python -m tests.conformance.broken_agent BREAK tslic-arguments...`.

The daemons have no test hooks; like the in-process tests of the tester (test_agent_env.py),
the break is a monkeypatch, applied here before the tslic command line runs in this process.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest


def _grace_never_ends_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent whose grace period is not ended by the first permanent CAL (GRACE-4)."""
    from tslic.protocol.grace import GracePeriod

    monkeypatch.setattr(GracePeriod, "end", lambda self, now, reason: self)


def _fixed_broadcast_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent that tries the broadcast answers always in the same order (DISC-2, DISC-4)."""
    from tslic.client.agent import discovery

    monkeypatch.setattr(discovery, "_random_shuffle", lambda names: sorted(names))


BREAKS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "grace-never-ends-early": _grace_never_ends_early,
    "fixed-broadcast-order": _fixed_broadcast_order,
}


# Not a break but the documented alternative of a switch: the case tests the default.
SWITCHES: dict[str, list[str]] = {
    "alternative-grace-end": ["--grace-ends", "first-license-server"],
}


def main(argv: list[str]) -> int:
    """Apply the break (or switch) `argv[0]`, then run `tslic argv[1:]`."""
    from tslic.cli.main import main as tslic

    if argv[0] in SWITCHES:
        return tslic([*argv[1:], *SWITCHES[argv[0]]])
    BREAKS[argv[0]](pytest.MonkeyPatch())
    return tslic(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
