#!/usr/bin/env bash
# The local stack: installs (into .local/ and local/idp/node_modules) and starts on 127.0.0.1 the
# moto server (DynamoDB, S3, SSM), redis-server, localstripe, the Auth0 stand-in and our own
# ElevenLabs and Stripe-gaps stand-ins, then creates the tables and bucket from template.yaml,
# Stripe's local catalogue, and writes .local/stack.env.
#
#   local/stack.sh up       install what is missing, start what is not running (idempotent)
#   local/stack.sh down     stop what `up` started, nothing else
#   local/stack.sh status   what is running, on which port
#   local/stack.sh tools    install the Python tools only (cfn-lint, cargo-lambda, aws-sam-cli)
#   local/stack.sh test-tools   install the API and browser test tools (schemathesis, Playwright, chromium)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.local"
run="$state/run"
logs="$state/logs"
venv="$state/venv"
mkdir -p "$run" "$logs"

: "${MOTO_PORT:=5055}" "${REDIS_PORT:=6390}" "${STRIPE_PORT:=8420}" "${IDP_PORT:=4400}" "${API_PORT:=3001}"
: "${ELEVENLABS_PORT:=8430}" "${STRIPE_GAPS_PORT:=8440}" "${CDN_PORT:=8450}" "${API_TEST_PORT:=3002}"
export MOTO_PORT REDIS_PORT STRIPE_PORT IDP_PORT API_PORT ELEVENLABS_PORT STRIPE_GAPS_PORT CDN_PORT API_TEST_PORT

say() { printf '%s\n' "$*"; }

# An install is redone only when its inputs changed: NAME.stamp holds their checksum.
checksum() { cat "$@" | sha256sum | cut -d' ' -f1; }
up_to_date() { [ -f "$state/$1.stamp" ] && [ "$(cat "$state/$1.stamp")" = "$2" ]; }

# install_venv NAME REQUIREMENTS: a project-local venv at .local/NAME.
install_venv() {
    local name=$1 requirements=$2 sum; sum=$(checksum "$requirements")
    [ -x "$state/$name/bin/python" ] && up_to_date "$name" "$sum" && return
    say "installing $(basename "$requirements") into .local/$name"
    python3 -m venv "$state/$name"
    "$state/$name/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$sum" >"$state/$name.stamp"
}

install_python() { install_venv venv "$root/local/requirements.txt"; }
# aws-sam-cli pins its own boto3, so it gets a venv of its own.
install_sam() { install_venv sam-venv "$root/local/requirements-sam.txt"; }

# apt_install COMMAND PACKAGE...: Debian packages, unless COMMAND is already on PATH.
apt_install() {
    local command=$1; shift
    command -v "$command" >/dev/null && return
    say "installing $* (Debian packages)"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Keep the package's own service from starting (it would listen on every interface).
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && made_policy=1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
    [ -z "$made_policy" ] || $sudo rm -f "$policy"
}

install_redis() { apt_install redis-server redis-server; }

# The API and browser tests: schemathesis, Playwright (driving Debian's chromium; it never
# downloads a browser) and boto3, in a venv of their own.
install_test_tools() {
    install_venv test-venv "$root/local/requirements-test.txt"
    apt_install chromium chromium
    # axe-core, the accessibility checker the browser tests run inside each page (from npm,
    # pinned in tests/browser/package-lock.json; nothing is loaded from a CDN).
    install_npm axe-core "$root/tests/browser"
}

# install_npm NAME DIR: `npm ci` in DIR, redone only when its package-lock.json changed.
install_npm() {
    local name=$1 dir=$2 sum; sum=$(checksum "$dir/package-lock.json")
    [ -d "$dir/node_modules" ] && up_to_date "$name" "$sum" && return
    say "installing $name (npm ci in ${dir#"$root"/})"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$sum" >"$state/$name.stamp"
}

install_idp() { install_npm idp "$root/local/idp"; }

alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME PORT COMMAND...: runs COMMAND in the background unless NAME is already up.
start() {
    local name=$1 port=$2; shift 2
    if alive "$name"; then
        say "  $name already running on 127.0.0.1:$port"
        return
    fi
    if listening "$port"; then
        say "error: port $port (for $name) is taken by a process this script did not start" >&2
        exit 1
    fi
    nohup "$@" >"$logs/$name.log" 2>&1 &
    echo $! >"$run/$name.pid"
    for _ in $(seq 1 150); do
        if listening "$port"; then
            say "  $name started on 127.0.0.1:$port (log: .local/logs/$name.log)"
            return
        fi
        if ! alive "$name"; then break; fi
        sleep 0.2
    done
    say "error: $name did not start; last lines of .local/logs/$name.log:" >&2
    tail -n 20 "$logs/$name.log" >&2
    exit 1
}

up() {
    install_python
    install_redis
    install_idp
    say "starting the local stack"
    mkdir -p "$state/contracts"
    # moto, with DynamoDB requests made atomic as in AWS (see the launcher's docstring).
    start moto "$MOTO_PORT" env MOTO_CALL_LOG="$state/contracts/aws.jsonl" \
        "$venv/bin/python" "$root/local/standins/moto_local.py" -H 127.0.0.1 -p "$MOTO_PORT"
    # As in AWS, the cache needs a user and password (local/provision.py stores the same password
    # where the functions look for it); the default user is off. The user gets the template's own
    # access string (its key spaces and commands), so a key or command AWS would refuse fails here.
    local access rules
    access=$(grep -o 'AccessString: "on [^"]*"' "$root/template.yaml" | sed 's/AccessString: "on //; s/"$//')
    [ -n "$access" ] || { say "error: no AccessString for the cache user in template.yaml" >&2; exit 1; }
    read -r -a rules <<<"$access"
    start redis "$REDIS_PORT" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
        --user default off --user voice-app on '>voice-local-redis' "${rules[@]}"
    start localstripe "$STRIPE_PORT" "$venv/bin/python" "$root/local/standins/localstripe_local.py" --port "$STRIPE_PORT"
    start idp "$IDP_PORT" env IDP_PORT="$IDP_PORT" \
        IDP_REDIRECT_URIS="http://127.0.0.1:$API_PORT/auth/callback,http://localhost:$API_PORT/auth/callback,http://127.0.0.1:$API_TEST_PORT/auth/callback" \
        IDP_LOGOUT_REDIRECT_URIS="http://127.0.0.1:$API_PORT,http://127.0.0.1:$API_PORT/,http://127.0.0.1:$API_TEST_PORT,http://127.0.0.1:$API_TEST_PORT/,http://localhost:5173/" \
        node "$root/local/idp/server.mjs"
    start elevenlabs "$ELEVENLABS_PORT" "$venv/bin/python" "$root/local/standins/elevenlabs.py" \
        --contract-log "$state/contracts/elevenlabs.jsonl" \
        --port "$ELEVENLABS_PORT" --api-key xi-local-key --stream-delay-ms 100 # bench/bench.py reads 100 ms as the first-chunk delay
    start stripe-gaps "$STRIPE_GAPS_PORT" "$venv/bin/python" "$root/local/standins/stripe_gaps.py" \
        --port "$STRIPE_GAPS_PORT" --localstripe "http://127.0.0.1:$STRIPE_PORT" \
        --contract-log "$state/contracts/stripe.jsonl"
    # The CloudFront key pair the functions sign audio URLs with (made once, kept in .local/).
    "$venv/bin/python" "$root/local/standins/cdn.py" --make-key "$state/cloudfront"
    say "creating tables and bucket from template.yaml"
    "$venv/bin/python" "$root/local/provision.py" "$root/template.yaml" "$state"
    local bucket
    bucket=$(sed -n 's/^AUDIO_BUCKET=//p' "$state/stack.env")
    start cdn "$CDN_PORT" "$venv/bin/python" "$root/local/standins/cdn.py" --port "$CDN_PORT" \
        --origin "http://127.0.0.1:$MOTO_PORT" --bucket "$bucket" \
        --public-key "$state/cloudfront/public.pem" --key-pair-id KLOCALAUDIOKEY \
        --credentials "$state/aws-harness.json"
    say "environment for the functions: .local/stack.env"
}

down() {
    local name
    for pidfile in "$run"/*.pid; do
        [ -e "$pidfile" ] || continue
        name=$(basename "$pidfile" .pid)
        if alive "$name"; then
            kill "$(cat "$pidfile")" && say "  stopped $name"
        fi
        rm -f "$pidfile"
    done
}

status() {
    local name port
    for pair in moto:$MOTO_PORT redis:$REDIS_PORT localstripe:$STRIPE_PORT idp:$IDP_PORT elevenlabs:$ELEVENLABS_PORT stripe-gaps:$STRIPE_GAPS_PORT cdn:$CDN_PORT; do
        name=${pair%%:*} port=${pair##*:}
        if alive "$name"; then say "  $name running on 127.0.0.1:$port"; else say "  $name not running"; fi
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    tools) install_python; install_sam ;;
    test-tools) install_test_tools ;;
    *) say "usage: $0 up|down|status|tools|test-tools" >&2; exit 2 ;;
esac
