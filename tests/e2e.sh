#!/usr/bin/env bash
# The API and browser tests (`make test` runs them after the Rust tests; the stack must be up):
# the local API, built from this checkout, on API_TEST_PORT (3002, so a `make run` on 3001 is
# left alone), then
#   1. the web client's whole journey in headless Chromium, checking the page and the backend
#      (tests/browser/), with a screenshot of each step in .local/screenshots/;
#   2. schemathesis: every operation of openapi.yaml against it, signed in (tests/api/), with an
#      API key and a cloned voice made through the API (tests/api/prepare.py). It runs second:
#      its burst of sign-ins spends the per-address sign-in limit for a minute.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
: "${API_TEST_PORT:=3002}"
export API_TEST_PORT
venv=.local/test-venv/bin
logs=.local/logs
mkdir -p "$logs" .local/screenshots

local/stack.sh test-tools
cargo build --quiet -p local-api --bins
# Wherever cargo puts its builds (CARGO_TARGET_DIR, a shared target dir, …).
bin=$(cargo metadata --format-version 1 --no-deps | "$venv/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if listening "$API_TEST_PORT"; then
    echo "error: port $API_TEST_PORT is taken; the API and browser tests need it (API_TEST_PORT=… picks another)" >&2
    exit 1
fi
base="http://127.0.0.1:$API_TEST_PORT"
# The local API as `make run` starts it, addressed by its own port: sign-in comes back to it and
# the web client it serves is the app. (local/provision.py lets this origin in.) Every function's
# environment says so, as a second deployment's would.
functions=.local/functions-e2e.json
"$venv/python" - "$base" "$functions" <<'PY'
import json, sys
base, out = sys.argv[1], sys.argv[2]
functions = json.load(open(".local/functions.json"))
for entry in functions.values():
    entry["environment"].update({"APP_URL": base, "AUTH_CALLBACK_URL": f"{base}/auth/callback"})
json.dump(functions, open(out, "w"), indent=2)
PY
local/with-env.sh env API_PORT="$API_TEST_PORT" APP_URL="$base" AUTH_CALLBACK_URL="$base/auth/callback" \
    LOCAL_FUNCTIONS="$functions" "$bin"/local-api >"$logs/local-api-tests.log" 2>&1 &
api=$!
trap 'kill $api 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do listening "$API_TEST_PORT" && break; sleep 0.1; done
listening "$API_TEST_PORT" || { echo "error: the local API did not start:" >&2; tail -20 "$logs/local-api-tests.log" >&2; exit 1; }

echo "== the web client in headless Chromium"
API_BASE="$base" local/with-env.sh "$venv/pytest" -q tests/browser "$@"

echo "== schemathesis: openapi.yaml against $base"
users=.local/api-test-users.jsonl
# Signed-in PREMIUM users with the admin role, so every operation is reachable; requests take
# them in turn (tests/api/hooks.py).
local/with-env.sh "$bin"/bench-users 8 --admin >"$users"
# A voice of the first user's, for the routes about one voice (tests/api/schemathesis.toml).
prepare() { "$venv/python" tests/api/prepare.py "$1" "$base" "$users" >"$users.made" && mv "$users.made" "$users"; }
voice_of_first() { "$venv/python" -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["voiceId"])' "$users"; }
prepare voice
API_TEST_VOICE=$(voice_of_first)
export API_TEST_VOICE
# The user the admin routes act on (tests/api/schemathesis.toml).
API_TEST_TARGET=$(local/with-env.sh "$bin"/bench-users 1 | "$venv/python" -c \
    'import json, sys, urllib.parse; print(urllib.parse.quote(json.load(sys.stdin)["userId"], safe=""))')
export API_TEST_TARGET
run_schemathesis() {
    API_TEST_USERS="$users" SCHEMATHESIS_HOOKS=tests.api.hooks \
        "$venv/schemathesis" --config-file tests/api/schemathesis.toml run openapi.yaml --url "$base" \
        --seed 20261201 --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" --no-color "$@"
}
run_schemathesis --exclude-operation-id logout --exclude-operation-id eraseAccount --exclude-operation-id deleteVoice
# The routes that take an API key, with keys alone (no cookie, no CSRF token): fresh users each
# make one through the API.
local/with-env.sh "$bin"/bench-users 8 >"$users"
prepare keys
bearer_operations=$("$venv/python" -c '
import yaml
spec = yaml.safe_load(open("openapi.yaml"))
for item in spec["paths"].values():
    for method, operation in item.items():
        if method in ("get", "post", "patch", "delete") and any("bearerKey" in r for r in operation.get("security", spec["security"])):
            print("--include-operation-id", operation["operationId"])')
# shellcheck disable=SC2086
API_TEST_AUTH=bearer run_schemathesis $bearer_operations
# Signing out, erasing the account and deleting a voice end what they are made with: each runs
# last, with users (and a voice) of its own; after the first cases, the rest are signed out (401)
# or find no voice (404), as documented.
for operation in logout eraseAccount deleteVoice; do
    local/with-env.sh "$bin"/bench-users 8 >"$users"
    if [ "$operation" = deleteVoice ]; then
        prepare voice
        API_TEST_VOICE=$(voice_of_first)
    fi
    run_schemathesis --include-operation-id "$operation" --phases examples,coverage,fuzzing
done

