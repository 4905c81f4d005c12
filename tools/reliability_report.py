"""The reliability report: figures gathered by tests/reliability, written as JSON and Markdown.

Contract: `Figures` is a plain accumulator (counters by name, refusals by attack kind, and
free-form notes per test). `write(figures, directory)` writes `reliability.json` and
`reliability.md` there and returns both paths. Run as a script with a JSON file to print the
Markdown again: `python tools/reliability_report.py reports/reliability.json`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HEADLINES = (
    ("crash_cycles", "SIGKILL crash cycles survived (license server)"),
    ("licenses_acknowledged", "licenses acknowledged to clients during crash cycles"),
    ("licenses_lost", "acknowledged licenses lost"),
    ("licenses_double", "licenses issued twice"),
    ("crash_cycles_clearinghouse", "SIGKILL crash cycles survived (Clearinghouse)"),
    ("redemptions_acknowledged", "retail redemptions acknowledged during those cycles"),
    ("redemptions_lost", "acknowledged redemptions lost or doubled"),
    ("crash_cycles_agent", "SIGKILL crash cycles survived (agent)"),
    ("agent_licenses_acknowledged", "licenses stored by RDP clients during those cycles"),
    ("frames_fuzzed", "random and mutated frames sent to live daemons"),
    ("fuzz_rss_growth_kib", "license server RSS growth during fuzzing (KiB)"),
    ("fuzz_agent_rss_growth_kib", "agent RSS growth during fuzzing (KiB)"),
    ("honest_requests_served_under_flood", "well-behaved client requests answered under a flood"),
    ("newcomer_busy_refusals", "SERVER_BUSY refusals before a newcomer got in past slow senders"),
    ("shutdown_requests", "requests in flight at SIGTERM, all answered or refused cleanly"),
    ("shutdown_resets", "connections reset without a documented error at SIGTERM"),
    ("storage_refusals", "requests refused with STORAGE_ERROR under storage faults"),
)


@dataclass
class Figures:
    counters: dict[str, float] = field(default_factory=dict)
    attacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.counters[name] = self.counters.get(name, 0) + value

    def set(self, name: str, value: float) -> None:
        self.counters[name] = value

    def attack(self, kind: str, *, code: str, refused: int, counted: bool) -> None:
        """One kind of attack: the code it was refused with, how often, and whether the
        daemon's metrics counted it."""
        self.attacks[kind] = {"code": code, "refused": refused, "counted_in_metrics": counted}

    def note(self, test: str, text: str) -> None:
        self.notes[test] = text


def render(data: dict[str, Any]) -> str:
    counters = data.get("counters", {})
    lines = ["# tslic reliability report", "", "| figure | value |", "|---|---|"]
    for key, label in HEADLINES:
        if key in counters:
            lines.append(f"| {label} | {_fmt(counters[key])} |")
    for key in sorted(set(counters) - {k for k, _ in HEADLINES}):
        lines.append(f"| {key} | {_fmt(counters[key])} |")
    attacks = data.get("attacks", {})
    if attacks:
        lines += ["", "## Attacks refused", "", "| attack | code | refused | in metrics |"]
        lines.append("|---|---|---|---|")
        for kind, row in sorted(attacks.items()):
            counted = "yes" if row["counted_in_metrics"] else "no"
            lines.append(f"| {kind} | {row['code']} | {row['refused']} | {counted} |")
    notes = data.get("notes", {})
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- **{test}**: {text}" for test, text in sorted(notes.items())]
    return "\n".join(lines) + "\n"


def _fmt(value: float) -> str:
    return f"{value:.3g}" if isinstance(value, float) and not value.is_integer() else f"{value:g}"


def write(figures: Figures, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    data = asdict(figures)
    json_path = directory / "reliability.json"
    md_path = directory / "reliability.md"
    json_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    md_path.write_text(render(data))
    return [json_path, md_path]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: reliability_report.py REPORT.json", file=sys.stderr)
        sys.exit(2)
    print(render(json.loads(Path(sys.argv[1]).read_text())), end="")
