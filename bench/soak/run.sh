#!/bin/sh
# The long reliability runs: 500 crash cycles, 100,000 fuzzed frames and more; figures in
# reports/ (reliability.json and reliability.md).
set -e
cd "$(dirname "$0")/../.."
export TSLIC_RELIABILITY_REPORT="${TSLIC_RELIABILITY_REPORT:-reports}"
export TSLIC_CRASH_CYCLES="${TSLIC_CRASH_CYCLES:-500}"
export TSLIC_FUZZ_FRAMES="${TSLIC_FUZZ_FRAMES:-100000}"
export TSLIC_AGENT_CRASH_CYCLES="${TSLIC_AGENT_CRASH_CYCLES:-300}"
export TSLIC_FUZZ_AGENT_FRAMES="${TSLIC_FUZZ_AGENT_FRAMES:-20000}"
exec .venv/bin/pytest -q -o faulthandler_timeout=0 tests/reliability "$@"
