"""Every case of the suite, and the rules of docs/PROTOCOL.md they cite.

Contract: `all_cases()` returns fresh `Case` objects of every module in a stable order
(framing, envelope, state, limits, then the per-role licensing cases); `load_spec(path)`
reads the specification (default: docs/PROTOCOL.md, shipped in the package as
tslic/PROTOCOL.md, which in a checkout is a symlink to docs/PROTOCOL.md) and
returns its rules by id, or raises `ServiceError` (INVALID_FIELD) naming the file when it
cannot be read.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path

from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.rules import Rule, rules_by_id

from . import (
    cases_admin_paging,
    cases_agent,
    cases_agent_disc,
    cases_agent_env,
    cases_agent_first,
    cases_agent_fresh,
    cases_agent_lic,
    cases_agent_sec,
    cases_agent_sources,
    cases_agent_window,
    cases_ch_rules,
    cases_clearinghouse,
    cases_clock,
    cases_declared,
    cases_dir_writes,
    cases_directory,
    cases_envelope,
    cases_framing,
    cases_habits,
    cases_license_server,
    cases_limits,
    cases_ls_activation,
    cases_ls_cal,
    cases_ls_packs,
    cases_ls_time,
    cases_ls_wire,
    cases_names,
    cases_observe,
    cases_order,
    cases_replay,
    cases_should,
    cases_spec16,
    cases_state,
    cases_window,
)
from .model import Case, bind_rules

DEFAULT_SPEC = Path(str(resources.files("tslic") / "PROTOCOL.md"))

_MODULES = (
    cases_agent_first,  # first: GRACE-2 needs an agent no client has spoken to yet
    cases_framing,
    cases_envelope,
    cases_replay,
    cases_state,
    cases_limits,
    cases_observe,
    cases_window,
    cases_license_server,
    cases_ls_wire,
    cases_ls_cal,  # before cases_ls_time, whose last case moves the clock years ahead
    cases_ls_packs,
    cases_ls_activation,  # deactivates and reactivates the target
    cases_ls_time,
    cases_admin_paging,
    cases_agent_env,  # moves the agent's clock past its grace, ends with a valid server
    cases_agent_sources,  # GRACE-9 after the grace period; DISC-5, DISC-6
    cases_agent_lic,  # after cases_agent_env, which leaves a valid license server in use
    cases_agent_sec,  # SEC-12: uses the license server cases_agent_lic leaves valid
    cases_agent_disc,  # discovery order; leaves CONF-LS1 valid
    cases_agent,  # the challenge cases want a license server in use (the manifest's, or one)
    cases_clearinghouse,
    cases_names,  # MSG-12 for every role, ACT-14
    cases_ch_rules,  # after cases_clearinghouse; its last case moves the clock to 2007
    cases_directory,
    cases_dir_writes,
    cases_spec16,
    cases_clock,  # CLOCK-2..4, split from cases_spec16 and run right after it
    cases_order,  # ENV-14, STATE-1: stateless
    cases_agent_window,  # LIMIT-6 first: no small clock move in the 5 s before it (CLOCK-3)
    cases_habits,  # STATE-4 moves an agent's clock; CLOCK-1 after the CLOCK cases
    cases_should,  # CAL-5 (an unactivated target), EVT-12 (after the events of the grace cases)
    # a second agent the suite starts: it moves the clock and leaves every double denying, so
    # after every other agent case (cases_agent_window wants no clock move just before it)
    cases_agent_fresh,
    cases_declared,
)


def all_cases(rules: dict[str, Rule] | None = None) -> list[Case]:
    """Every case (copies, so a run may bind rule text without touching the originals)."""
    cases = [copy.copy(c) for module in _MODULES for c in module.CASES]
    if rules is not None:
        bind_rules(cases, rules)
    return cases


def load_spec(path: Path | None = None) -> dict[str, Rule]:
    """The rules of the protocol specification, keyed by id."""
    spec = path or DEFAULT_SPEC
    try:
        text = spec.read_text(encoding="utf-8")
    except OSError as exc:
        raise ServiceError(
            f"cannot read the protocol specification {spec}: {exc.strerror or exc}"
            " (pass --spec FILE)",
            code=ErrorCode.INVALID_FIELD,
        ) from None
    return rules_by_id(text)
