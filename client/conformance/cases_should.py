"""SHOULD rules observable from outside (docs/PROTOCOL.md CAL-5, EVT-12).

Contract:
- CAL-5: a license server that is not activated (the license it signs chains to a temporary,
  self-signed license-server certificate) is asked by a 2000 terminal server for a Windows
  2000 Professional client's license; a built-in license then fails. An activated target
  cannot show the rule: `unsupported`.
- EVT-12: every event the agent reports through its documented event interface
  (`--events-command`) is worded as the Windows of the time words it: no later product name
  ("Remote Desktop", "RD Licensing", "RD Session Host"), the words "terminal server" or
  "license server", and for the events §8.3 quotes (1011, 1043) the quoted sentence. With no
  events command or no event yet, the case is `unsupported`; it runs after the grace cases,
  which make the agent log 1008-1010.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess

from tslic.protocol import ServiceError
from tslic.protocol.codec import Unvalidated
from tslic.protocol.domain import ClientOS, LicenseKind
from tslic.protocol.licenses import open_license
from tslic.protocol.messages.licensing import LicenseGranted

from .cases_agent_env import Unprepared
from .context import Context
from .lsclient import call, license_request, terminal_server
from .model import Case, Judgement, Role, Verdict, case

CASES: list[Case] = []

# ---- CAL-5 ---------------------------------------------------------------------------------


@case(CASES, "CAL-5", "unactivated-no-built-in", "a 2000 terminal server asks a license server "
      "that is not activated for a Windows 2000 Professional client's license",
      ("not a built-in license (a temporary one, or a refusal)",),
      roles=frozenset({Role.LICENSE_SERVER}))  # fmt: skip
async def unactivated_no_built_in(ctx: Context) -> Judgement:
    request = license_request(ctx, client_os=ClientOS.W2000_PRO)
    async with terminal_server(ctx, version=2000, name="CONF-TS2000") as (stream, _):
        try:
            reply = await call(ctx, stream, request)
        except ServiceError as exc:
            return Judgement(Verdict.PASS, f"refused {exc.code.name}: {exc.message}")
    if not isinstance(reply, LicenseGranted):
        return Judgement(Verdict.PASS, f"answered {type(reply).__name__}")
    lic = open_license(reply.license)
    if not lic.issuer.temporary:
        return Judgement(Verdict.UNSUPPORTED, "the target is activated: CAL-5 shows only on a "
                         "license server that is not")  # fmt: skip
    verdict = Verdict.FAIL if reply.kind is LicenseKind.BUILT_IN else Verdict.PASS
    return Judgement(verdict, f"an unactivated server gave a {reply.kind} {reply.product}")


# ---- EVT-12 --------------------------------------------------------------------------------

_LATER = re.compile(r"Remote Desktop|RD Licensing|RD Session Host|RDS\b", re.IGNORECASE)
_QUOTED = {  # §8.3, with %1 for the inserted name
    1011: "The terminal server client %1 has been disconnected because its temporary license "
    "has expired.",
    1043: "This Terminal Server is not able to communicate with the License Server. Please make "
    "sure that this Terminal Server's computer account is a member of the \"Terminal Server "
    'Computers" group on License Server (%1).',
}


def wording_problem(event_id: int, text: str) -> str | None:
    """Why an event's text is not in the words of the time (None if it is)."""
    later = _LATER.search(text)
    if later:
        return f"uses the later product name {later.group(0)!r}"
    if "terminal server" not in text.lower() and "license server" not in text.lower():
        return "names neither the terminal server nor the license server"
    quoted = _QUOTED.get(event_id)
    if quoted is not None:
        pattern = ".+".join(re.escape(part) for part in quoted.split("%1"))
        if not re.fullmatch(pattern, text.strip(), re.DOTALL):
            return f"is not the sentence of §8.3: {quoted!r}"
    return None


def events_rows(ctx: Context) -> list[dict[str, Unvalidated]]:
    """The events the target reports (--events-command, a JSON array), oldest first."""
    command = ctx.config.events_command
    if not command:
        raise Unprepared("needs --events-command (the target's documented event interface)")
    try:
        out = subprocess.run(shlex.split(command), capture_output=True, text=True,
                             timeout=max(ctx.timeout, 10), check=True).stdout  # fmt: skip
        rows = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise Unprepared(f"--events-command failed: {exc}") from None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


@case(CASES, "EVT-12", "event-wording", "the texts of the events the agent reported so far "
      "(--events-command)", ("each in the words of the time",),
      roles=frozenset({Role.AGENT}))  # fmt: skip
async def event_wording(ctx: Context) -> Judgement:
    try:
        rows = events_rows(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    texts = [(int(r["id"]), str(r.get("message", ""))) for r in rows if "id" in r]
    if not texts:
        return Judgement(Verdict.UNSUPPORTED, "the agent reported no event yet")
    problems = [f"event {i} {p}: {t[:80]!r}" for i, t in texts
                if (p := wording_problem(i, t)) is not None]  # fmt: skip
    if problems:
        return Judgement(Verdict.FAIL, "; ".join(problems[:3]))
    ids = sorted({i for i, _ in texts})
    return Judgement(Verdict.PASS, f"{len(texts)} events ({ids}) in the words of the time")
