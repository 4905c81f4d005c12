"""`make bench` / `python -m bench [signed-echo | issuance | full-stack | listing |
flood-latency | crash-cycles | rdp | steps | tail | commit-cost | load] ...`.

Contract: runs bench/signed_echo.py (`signed-echo`), bench/issuance.py (`issuance`),
bench/full_stack.py (`full-stack`), bench/listing.py (`listing`, see bench/LISTING.md),
bench/flood_latency.py (`flood-latency`), bench/crash_cycles.py (`crash-cycles`),
bench/rdp_connections.py (`rdp`, see bench/RDP.md), bench/steps.py (`steps`), bench/tail.py
(`tail`), bench/commit_cost.py (`commit-cost`) or
bench/load_vs_baseline.py (`load`, the default) with the remaining arguments; see
bench/README.md and bench/FULL_STACK.md.
"""

from __future__ import annotations

import sys

from bench import (
    commit_cost,
    crash_cycles,
    flood_latency,
    full_stack,
    issuance,
    listing,
    load_vs_baseline,
    rdp_connections,
    signed_echo,
    steps,
    tail,
)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "signed-echo":
        return signed_echo.main(argv[1:])
    if argv and argv[0] == "issuance":
        return issuance.main(argv[1:])
    if argv and argv[0] == "full-stack":
        return full_stack.main(argv[1:])
    if argv and argv[0] == "listing":
        return listing.main(argv[1:])
    if argv and argv[0] == "flood-latency":
        return flood_latency.main(argv[1:])
    if argv and argv[0] == "crash-cycles":
        return crash_cycles.main(argv[1:])
    if argv and argv[0] == "rdp":
        return rdp_connections.main(argv[1:])
    if argv and argv[0] == "steps":
        return steps.main(argv[1:])
    if argv and argv[0] == "tail":
        return tail.main(argv[1:])
    if argv and argv[0] == "commit-cost":
        return commit_cost.main(argv[1:])
    if argv and argv[0] == "load":
        argv = argv[1:]
    return load_vs_baseline.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
