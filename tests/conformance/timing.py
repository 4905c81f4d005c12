"""The Hello deadline of the targets the tests of the tester run in-process, and the figure
the suite is told (`SuiteConfig.handshake_timeout`), in one place.

Why 3 s: every case opens connections whose first message must reach the target within this
deadline, while the suite and (in-process) the target share one Trio loop on a machine that
`make test` may load far beyond its two cores. Helpers saw honest Hellos cut off at 0.5 s and
1 s with load 12-24 ("no Hello in time" in ACT-1, HANDSHAKE_TIMEOUT in FRAME-5:slow-sender).
The deadline costs run time only in the cases that wait it out (LIMIT-2:stalled-handshake, once
per run that selects it), and FRAME-5:slow-sender paces its pieces by it (cases_limits.py).
"""

from __future__ import annotations

from tslic.runtime.service import Limits

HANDSHAKE = 3.0
TARGET_LIMITS = Limits(handshake_timeout=HANDSHAKE)
