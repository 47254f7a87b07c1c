#!/usr/bin/env bash
# Creates (idempotently) the Python virtual environment the SDK conformance suite
# (tests/sdk/) runs in: .venv-sdk/ at the repo root, Python 3.11, the official
# UCloud Python SDK at a pinned version, pytest, and cryptography (test certificates).
#
# Usage: scripts/sdk-venv.sh            # prints the venv's python path on the last line
# Env:   SDK_VENV=<dir>   venv location (default <repo>/.venv-sdk)
#        PYTHON=<python>  interpreter used to create it (default python3.11, else python3)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SDK_VENV:-$repo_root/.venv-sdk}"

# Pins: the SDK is the thing under test's counterpart, so it is exact; the tools are
# pinned too so that a rerun months later behaves the same.
readonly SDK_PIN="ucloud-sdk-python3==0.11.150"
readonly PYTEST_PIN="pytest==8.3.4"
readonly CRYPTOGRAPHY_PIN="cryptography==44.0.0"
readonly PINS=("$SDK_PIN" "$PYTEST_PIN" "$CRYPTOGRAPHY_PIN")

log() { printf 'sdk-venv: %s\n' "$*" >&2; }

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        echo "$PYTHON"
        return
    fi
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then
            echo "$candidate"
            return
        fi
    done
    log "no python3 interpreter found"
    exit 1
}

# True when every pin is installed at exactly its version in the venv.
pins_satisfied() {
    [[ -x "$venv/bin/python" ]] || return 1
    "$venv/bin/python" - "${PINS[@]}" <<'EOF'
import sys
from importlib import metadata
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    try:
        if metadata.version(name) != version:
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)
EOF
}

if pins_satisfied; then
    log "$venv already has ${PINS[*]}"
    echo "$venv/bin/python"
    exit 0
fi

python="$(pick_python)"
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$version" != "3.11" ]]; then
    log "warning: $python is Python $version; the suite was written against Python 3.11"
fi

if [[ ! -x "$venv/bin/python" ]]; then
    log "creating $venv with $python (Python $version)"
    "$python" -m venv "$venv"
fi

log "installing ${PINS[*]}"
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet "${PINS[@]}"

if ! pins_satisfied; then
    log "installation finished but the pinned versions are not all present"
    exit 1
fi
log "ready: $venv"
echo "$venv/bin/python"
