#!/usr/bin/env bash
# Runs a command with the local stack's environment (.local/stack.env, written by stack.sh up).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -f "$root/.local/stack.env" ]; then
    echo "error: .local/stack.env is missing; run 'local/stack.sh up' (or 'make up') first" >&2
    exit 1
fi
set -a
# shellcheck disable=SC1091
. "$root/.local/stack.env"
set +a
exec "$@"
