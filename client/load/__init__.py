"""tslic load: an honest load generator for license servers (issue 7, docs/LOAD.md).

Contract: `cli.run` is the `tslic load` entry point. The pieces are importable on their own:
`schedule` (pure workload models), `histograms` (mergeable HdrHistogram intervals), `fleet`
(emulated terminal servers), `worker` (one generator process), `coordinator` (N processes,
shards, merging), `report` (console, JSON, CSV, HTML) and `thresholds` (SLOs and exit codes).
"""

from __future__ import annotations
