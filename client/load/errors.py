"""Errors and exit codes of `tslic load`.

Contract: `UsageError` is raised for anything the user must fix in the command line or the
setup (a malformed option, an unreachable target, no agent could connect); the CLI prints
its message and exits with `EXIT_USAGE`. The four exit codes are documented in docs/LOAD.md
and never change meaning.
"""

from __future__ import annotations

from tslic.protocol.errors import ErrorCode, TslicError

EXIT_PASS = 0  # the run was valid and every threshold held
EXIT_THRESHOLDS = 1  # the run was valid and at least one threshold failed
EXIT_USAGE = 2  # bad options or a setup failure: nothing was measured
EXIT_INCONCLUSIVE = 3  # the generator fell behind or saturated: the figures are not the target's


class UsageError(TslicError):
    """The command line or the setup is wrong; the message says what to change."""

    code = ErrorCode.INVALID_FIELD
