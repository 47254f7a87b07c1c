#!/usr/bin/env bash
# Runs the SDK conformance suite: the unmodified official Python SDK against a real
# `certbind serve`. Extra arguments go to pytest (e.g. -k terraform, -x).
# When pytest passes, every recorded response is checked against the JSON types the Go
# SDK declares (tests/sdk/check_go_types.py, tests/sdk/go_types.json).
# Env: CERTBIND_BIN=<path> tests that binary instead of building target/debug/certbind.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

python="$(scripts/sdk-venv.sh | tail -n 1)"

if [[ -z "${CERTBIND_BIN:-}" ]]; then
    echo "run.sh: cargo build" >&2
    cargo build --quiet --bin certbind
fi

# A recording left by an earlier run must never be what the Go-type check passes.
recorded=tests/sdk/.recorded/responses.jsonl
rm -f "$recorded"

set +e
# -rs: a skipped test always says why.
"$python" -m pytest tests/sdk -q -rs "$@"
status=$?
set -e
if [[ "$status" -ne 0 ]]; then
    exit "$status"
fi

"$python" tests/sdk/check_go_types.py "$recorded"
