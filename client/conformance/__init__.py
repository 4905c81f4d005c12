"""tslic conformance: a black-box suite that tests any implementation of the tslic protocol.

Pointed at a `host:port` and a role, it runs cases keyed by the stable rule ids of
docs/PROTOCOL.md §7 and reports, for every rule, whether the target keeps it, with evidence.
See docs/CONFORMANCE.md for preparing a target, the verdicts and the JSON report schema.
"""

from __future__ import annotations
