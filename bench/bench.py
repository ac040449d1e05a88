"""`make bench`: every function's real release binary under a Lambda Runtime API emulator of our
own, on the local stack, beside an empty lambda_http function built with the same profile; then
a load test of the local API's hot path. Prints tables and writes bench/results.json.

Per function: init (process start to its first `next` call), the first request, warm p50/p99,
peak RSS (VmHWM), binary and zip size, and ratios to the empty function. Rounds alternate the
functions (round 1: all functions, round 2: all again, ...) and the figures are medians over the
rounds (warm percentiles over all warm invocations). It prints figures and never fails on a time.

Usage: bench.py [--rounds N] [--warm N] [--load-requests N] [--only f1,f2]

`--only` runs just those functions (and the empty one) and skips the load test; its figures are
printed, not written to bench/results.json.
"""

import argparse
import contextlib
import http.server
import json
import os
import pathlib
import platform
import queue
import random
import socket
import socketserver
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "local"))
from sizes import zipped_size  # noqa: E402

TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
LAMBDA = TARGET / "lambda"
HOST_BIN = TARGET / "x86_64-unknown-linux-gnu" / "release"
BASE_EVENT = json.loads((REPO / "events" / "usage-get.json").read_text())
VOICE = "21m00Tcm4TlvDq8ikWAM"  # a premade voice of the ElevenLabs stand-in

# What each function is asked in the benchmark: a representative request of a signed-in PREMIUM
# user (fresh per function and round, so no per-minute limit is reached), or its real event.
SUBJECTS = {
    "empty": {"http": ("GET", "/", "/")},
    "login": {"http": ("GET", "/auth/login", "/auth/login")},
    "callback": {"http": ("GET", "/auth/callback", "/auth/callback"), "query": "code=bench&state=bench"},
    "session": {"http": ("GET", "/auth/session", "/auth/session")},
    "usage": {"http": ("GET", "/usage", "/usage")},
    "checkout": {"http": ("GET", "/billing/plans", "/billing/plans")},
    "portal": {"http": ("GET", "/billing/invoices", "/billing/invoices")},
    "webhook": {"http": ("POST", "/billing/webhook", "/billing/webhook"), "body": "{}"},
    # New text every time (ElevenLabs is called), and the same request again and again (served
    # from the generation cache): the voice ids are the run's own, so the stand-in's log counts
    # each subject's upstream calls.
    "tts": {"http": ("POST", "/tts", "/tts"), "speech": "fresh"},
    "tts-repeat": {"http": ("POST", "/tts", "/tts"), "speech": "repeat", "binary": "tts"},
    # Streamed: each answer lasts as long as the stand-in's stream (8 x 100 ms), so few warm runs.
    "tts-stream": {"http": ("POST", "/tts/stream", "/tts/stream"), "speech": "fresh", "warm": 5},
    "voices": {"http": ("GET", "/voices", "/voices")},
    "presets": {"http": ("GET", "/presets", "/presets")},
    "recordings": {"http": ("GET", "/recordings", "/recordings")},
    "account": {"http": ("GET", "/api-keys", "/api-keys")},
    "admin": {"http": ("GET", "/admin/users/{id}", None), "admin": True},
    "health": {"http": ("GET", "/health", "/health")},
    "ttl-cleanup": {"event": "stream-session-ttl.json"},
    # A $connect whose ticket was never issued: refused after one Redis GETDEL.
    "push": {"event": "push-connect.json"},
    "sweep": {"event": "sweep-schedule.json", "warm": 3},
    "reset": {"event": "reset-schedule.json", "warm": 3},
    "reconcile": {"event": "reconcile-schedule.json", "warm": 0},
}


def stack_env():
    path = REPO / ".local" / "stack.env"
    if not path.exists():
        sys.exit("no .local/stack.env: run `make up` first")
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    return env


def function_env(binary, overrides=None):
    """The environment `binary` runs with, as template.yaml gives it (.local/functions.json);
    the empty bench function gets the stack's."""
    functions = json.loads((REPO / ".local" / "functions.json").read_text())
    return {**(functions[binary]["environment"] if binary in functions else stack_env()), **(overrides or {})}


def functions_with(overrides, name):
    """A copy of .local/functions.json with `overrides` in every function's environment (a local
    API in front of counting proxies); its path."""
    functions = json.loads((REPO / ".local" / "functions.json").read_text())
    for entry in functions.values():
        entry["environment"].update(overrides)
    path = REPO / ".local" / f"functions-{name}.json"
    path.write_text(json.dumps(functions))
    return str(path)


def http_event(method, route, path, user, query="", body=None):
    event = json.loads(json.dumps(BASE_EVENT))
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {route}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["requestId"] = uuid.uuid4().hex
    # A different address each time: sign-in routes are limited per client IP.
    ip = f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"
    event["requestContext"]["http"]["sourceIp"] = ip
    event["headers"]["x-forwarded-for"] = ip
    event["headers"].pop("origin", None)
    event["rawQueryString"] = query
    if query:
        event["queryStringParameters"] = dict(pair.split("=", 1) for pair in query.split("&"))
    if user:
        event["cookies"] = [user["cookie"]]
        event["headers"]["x-csrf-token"] = user["csrf"]
    else:
        event.pop("cookies", None)
    if "{id}" in route:
        event["pathParameters"] = {"id": user["userId"]}
    if body is not None:
        event["body"] = body
        event["headers"]["content-type"] = "application/json"
    return json.dumps(event)


class Runtime:
    """A Lambda Runtime API on 127.0.0.1: hands out one event per `next`, records the answers."""

    def __init__(self):
        self.events = queue.Queue()
        self.answers = queue.Queue()
        self.first_next = threading.Event()
        self.first_next_at = None
        runtime = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    return self.reply(404, b"{}")
                if runtime.first_next_at is None:
                    runtime.first_next_at = time.perf_counter()
                    runtime.first_next.set()
                event = runtime.events.get()
                if event is None:
                    return self.reply(410, b"{}")
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", uuid.uuid4().hex)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Length", str(len(event)))
                self.end_headers()
                self.wfile.write(event)

            def do_POST(self):
                body = self.read_body()
                self.reply(202, b"{}")
                if "/invocation/" in self.path:
                    runtime.answers.put((time.perf_counter(), self.path.rsplit("/", 1)[1], body))
                elif self.path.endswith("/init/error"):
                    runtime.answers.put((time.perf_counter(), "init-error", body))

            def read_body(self):
                """The whole body: a streamed answer comes chunked (ending with trailers)."""
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    length = int(self.headers.get("Content-Length") or 0)
                    return self.rfile.read(length) if length else b""
                body = b""
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline().strip():
                    pass  # trailers
                return body

            def reply(self, status, body):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # the function's process was killed mid-poll at the end of a run

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"

    def invoke(self, event):
        sent = time.perf_counter()
        self.events.put(event.encode())
        answered, kind, body = self.answers.get(timeout=60)
        if kind != "response":
            raise RuntimeError(f"the function answered {kind}: {body[:300]!r}")
        return answered - sent, body

    def close(self):
        self.events.put(None)
        self.server.shutdown()


def peak_rss_mb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_function(name, binary, env, make_event, warm):
    """One cold start and `warm` warm invocations; the figures of this run."""
    runtime = Runtime()
    child_env = dict(env)
    child_env.update({
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
    })
    started = time.perf_counter()
    process = subprocess.Popen([str(binary)], env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not runtime.first_next.wait(timeout=30):
            raise RuntimeError(f"{name} never asked for an event: {process.stderr.read1(2000)!r}")
        init = runtime.first_next_at - started
        first, answer = runtime.invoke(make_event())
        # An HTTP function's status code; any other answered without an error. A streamed answer
        # starts with its JSON prelude, then eight NUL bytes, then the body.
        head = answer.split(b"\0" * 8, 1)[0]
        status = (json.loads(head).get("statusCode") if head.startswith(b"{") else None) or "ok"
        timings = [runtime.invoke(make_event())[0] for _ in range(warm)]
        rss = peak_rss_mb(process.pid)
    finally:
        runtime.close()
        process.kill()
        process.wait()
    return {"init": init * 1000, "first": first * 1000, "warm": [t * 1000 for t in timings], "rss": rss, "status": status}


def users(count, admin=False, tier=None):
    """`count` signed-in users (PREMIUM, or `tier`, which each then carries)."""
    command = [str(HOST_BIN / "bench-users"), str(count)] + (["--admin"] if admin else []) + (["--tier", tier] if tier else [])
    out = subprocess.run(command, env={**os.environ, **stack_env()}, check=True, capture_output=True, text=True).stdout
    return [dict(json.loads(line), **({"tier": tier} if tier else {})) for line in out.splitlines() if line.strip()]


@contextlib.contextmanager
def local_api(env, port):
    """The host build of the local API on `port` with `env`, stopped on leaving. Its output
    (logs, metric lines) is not read: a pipe nobody drains would stall it."""
    api = subprocess.Popen([str(HOST_BIN / "local-api")], cwd=REPO, env={**env, "API_PORT": str(port)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        api.kill()
        api.wait()


def upstream_calls(env, voice):
    """Generations the ElevenLabs stand-in served for `voice` (its per-voice request log)."""
    base = env["ELEVENLABS_API_BASE"].rstrip("/")
    with urllib.request.urlopen(f"{base}/_test/requests/{voice}", timeout=10) as response:
        return len(json.loads(response.read()))


def percentile(values, p):
    ordered = sorted(values)
    return ordered[round((len(ordered) - 1) * p)] if ordered else float("nan")


def bench_functions(rounds, warm, only=None):
    env = {**stack_env(), "RUST_LOG": "info"}
    names = [n for n in SUBJECTS if (LAMBDA / SUBJECTS[n].get("binary", n) / "bootstrap").exists()]
    if only:
        names = [n for n in names if n == "empty" or n in only]
    missing = sorted((set(only) | {"empty"} if only else set(SUBJECTS)) - set(names))
    if missing:
        sys.exit(f"missing release binaries for {missing}: the bench builds them first (make bench)")
    plain = iter(users(rounds * len(names)))
    admins = iter(users(rounds, admin=True))
    runs = {name: [] for name in names}
    for round_number in range(rounds):
        for name in names:
            spec = SUBJECTS[name]
            user = next(admins) if spec.get("admin") else next(plain)
            voice = f"bench{spec.get('speech', '')}{round_number}{uuid.uuid4().hex[:8]}"
            if "http" in spec:
                method, route, path = spec["http"]
                path = path or route.replace("{id}", user["userId"].replace("|", "%7C"))
                body = spec.get("body")
                if spec.get("speech") == "repeat":
                    body = lambda v=voice: json.dumps({"text": "The same words again.", "voiceId": v})
                elif spec.get("speech") == "fresh":
                    body = lambda v=voice: json.dumps({"text": f"New words {uuid.uuid4().hex}.", "voiceId": v})
                make = lambda m=method, r=route, p=path, u=user, s=spec, b=body: http_event(
                    m, r, p, u, s.get("query", ""), b() if callable(b) else b)
            else:
                text = (REPO / "events" / spec["event"]).read_text()
                make = lambda t=text: t
            count = spec.get("warm", warm)
            binary = LAMBDA / spec.get("binary", name) / "bootstrap"
            own = {**function_env(spec.get("binary", name)), "RUST_LOG": "info"}
            runs[name].append(run_function(name, binary, own, make, count))
            if "speech" in spec:
                runs[name][-1]["upstream"] = upstream_calls(env, voice)
            print(f"  round {round_number + 1}: {name:<11} init {runs[name][-1]['init']:7.1f} ms", file=sys.stderr)
    empty_init = statistics.median(r["init"] for r in runs["empty"])
    rows = []
    for name in names:
        binary = LAMBDA / SUBJECTS[name].get("binary", name) / "bootstrap"
        warm_all = [t for r in runs[name] for t in r["warm"]]
        init = statistics.median(r["init"] for r in runs[name])
        rows.append({
            "function": name,
            "initMs": init,
            "initRatio": init / empty_init,
            "firstRequestMs": statistics.median(r["first"] for r in runs[name]),
            "warmP50Ms": percentile(warm_all, 0.5) if warm_all else None,
            "warmP99Ms": percentile(warm_all, 0.99) if warm_all else None,
            "warmInvocations": len(warm_all),
            "peakRssMb": max(r["rss"] for r in runs[name]),
            "binaryMb": binary.stat().st_size / 1e6,
            "zipMb": zipped_size(binary) / 1e6,
            "answered": sorted({str(r["status"]) for r in runs[name]}),
        })
        if "upstream" in runs[name][0]:
            invocations = sum(1 + len(r["warm"]) for r in runs[name])
            rows[-1]["upstreamCallsPerInvocation"] = sum(r["upstream"] for r in runs[name]) / invocations
    return rows


def bench_load(requests):
    env = {**os.environ, **stack_env(), "RUST_LOG": "warn"}
    with local_api(env, 3099) as base:
        people = users(100)
        lines = "".join(json.dumps(u) + "\n" for u in people)
        command = [str(HOST_BIN / "bench-load"), base, str(requests), "1", "16", "64"]
        out = subprocess.run(command, env=env, input=lines, check=True, capture_output=True, text=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


class CountingProxy:
    """A TCP proxy on 127.0.0.1 that counts round trips: a client's bytes that follow the
    server's answer (or open a connection) start one, so a pipeline or a script is one."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.round_trips = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            state = {"server_spoke": True}
            threading.Thread(target=self.pump, args=(client, upstream, state, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client, state, False), daemon=True).start()

    def pump(self, source, sink, state, from_client):
        try:
            while data := source.recv(65536):
                if not from_client:
                    state["server_spoke"] = True
                elif state["server_spoke"]:
                    state["server_spoke"] = False
                    with self.lock:
                        self.round_trips += 1
                sink.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        self.server.close()


def bench_calls(samples=50):
    """Redis round trips and DynamoDB/S3 requests per hot-path request: the local API runs with
    both behind counting proxies (SSM goes direct: its secrets are fetched once per process) and
    is asked `samples` times in a row per route, after one warm-up request."""
    stack = stack_env()
    redis_url, aws_url = urllib.parse.urlsplit(stack["REDIS_URL"]), urllib.parse.urlsplit(stack["AWS_ENDPOINT_URL"])
    redis, aws = CountingProxy(redis_url.port), CountingProxy(aws_url.port)
    proxied = {
        "REDIS_URL": redis_url._replace(netloc=redis_url.netloc.replace(str(redis_url.port), str(redis.port))).geturl(),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{aws.port}",
        "AWS_ENDPOINT_URL_SSM": stack["AWS_ENDPOINT_URL"],
    }
    env = {**os.environ, **stack, "RUST_LOG": "warn", "LOCAL_FUNCTIONS": functions_with(proxied, "counted")}
    try:
        with local_api(env, 3098) as base:
            cookie = users(1)[0]["cookie"]
            rows = []
            for route in ("/usage", "/auth/session"):
                def get():
                    request = urllib.request.Request(f"{base}{route}", headers={"cookie": cookie})
                    with urllib.request.urlopen(request, timeout=10) as response:
                        response.read()
                get()
                redis_before, aws_before = redis.round_trips, aws.round_trips
                for _ in range(samples):
                    get()
                rows.append({
                    "route": f"GET {route}",
                    "requests": samples,
                    "redisRoundTrips": (redis.round_trips - redis_before) / samples,
                    "dynamodbRequests": (aws.round_trips - aws_before) / samples,
                })
            return rows
    finally:
        redis.close()
        aws.close()


def bench_stream(samples=10):
    """Time to the first audio byte of POST /tts/stream through the local API (a real HTTP
    client and server), against the time to the stream's end and the ElevenLabs stand-in's own
    first-chunk delay (`--stream-delay-ms`, 100 ms in the local stack)."""
    env = {**os.environ, **stack_env(), "RUST_LOG": "warn"}
    with local_api(env, 3097) as base:
        firsts, totals = [], []
        for person in users(samples):
            body = json.dumps({"voiceId": VOICE, "text": f"Streamed {uuid.uuid4().hex}"}).encode()
            request = urllib.request.Request(
                f"{base}/tts/stream", data=body, method="POST",
                headers={"cookie": person["cookie"], "x-csrf-token": person["csrf"], "content-type": "application/json"},
            )
            sent = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read(1)
                firsts.append((time.perf_counter() - sent) * 1000)
                response.read()
                totals.append((time.perf_counter() - sent) * 1000)
        return {"requests": samples, "firstByteP50Ms": statistics.median(firsts), "firstByteMaxMs": max(firsts),
                "endP50Ms": statistics.median(totals), "standInFirstChunkMs": 100}


BURST_TIERS = ("PREMIUM", "BASIC", "FREE")


def bench_burst(total=200, concurrency=10, latency_ms=300):
    """`total` generations (POST /tts) sent at once by FREE, BASIC and PREMIUM users (a third
    each, one per user), through the local API, against an ElevenLabs stand-in account that
    takes `concurrency` at once and answers each in `latency_ms`: once with the admission gate
    sized to the account, once with the gate out of the way (sized far past it)."""
    env = {**os.environ, **stack_env()}
    base = env["ELEVENLABS_API_BASE"].rstrip("/")
    harness = json.loads((REPO / ".local" / "aws-harness.json").read_text())
    import boto3  # the stack's own venv has it (local/requirements.txt)

    ssm = boto3.client(
        "ssm", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
        aws_access_key_id=harness["AccessKeyId"], aws_secret_access_key=harness["SecretAccessKey"],
    )
    runs = []
    for gated in (True, False):
        account = f"bench-burst-{uuid.uuid4().hex[:8]}"
        limits = json.dumps({"concurrency": concurrency, "latencyMs": latency_ms}).encode()
        urllib.request.urlopen(urllib.request.Request(
            f"{base}/_test/accounts/{account}", data=limits, method="POST", headers={"content-type": "application/json"},
        ), timeout=10).close()
        parameter = f"/voice-local/elevenlabs-api-key/{account}"  # beside the primary key, as the template grants
        ssm.put_parameter(Name=parameter, Value=f"xi-local-key:{account}", Type="SecureString", Overwrite=True)
        overrides = {"ELEVENLABS_ACCOUNT": account, "ELEVENLABS_API_KEY_PARAM": parameter,
                     "ELEVENLABS_CONCURRENCY": str(concurrency if gated else 100_000)}
        api_env = {**env, "RUST_LOG": "warn", "LOCAL_FUNCTIONS": functions_with(overrides, "burst")}
        with local_api(api_env, 3096) as api:
            people = [p for i, tier in enumerate(BURST_TIERS) for p in users(total // 3 + (i < total % 3), tier=tier)]
            random.shuffle(people)
            start = threading.Barrier(len(people))
            answers = [None] * len(people)

            def generate(n, person):
                body = json.dumps({"voiceId": VOICE, "text": f"Burst {uuid.uuid4().hex}"}).encode()
                request = urllib.request.Request(
                    f"{api}/tts", data=body, method="POST",
                    headers={"cookie": person["cookie"], "x-csrf-token": person["csrf"], "content-type": "application/json"},
                )
                start.wait()
                sent = time.perf_counter()
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status = response.status
                except urllib.error.HTTPError as error:
                    status = error.code
                answers[n] = (person, status, sent, time.perf_counter())

            threads = [threading.Thread(target=generate, args=(n, p)) for n, p in enumerate(people)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            with urllib.request.urlopen(f"{base}/_test/accounts/{account}/speech", timeout=10) as response:
                speech = json.loads(response.read())
            used = 0
            for person in people:
                usage = urllib.request.Request(f"{api}/usage", headers={"cookie": person["cookie"]})
                with urllib.request.urlopen(usage, timeout=10) as response:
                    used += json.loads(response.read())["used"]
        first = min(a[2] for a in answers)
        made = [a for a in answers if a[1] == 201]
        span = max(a[3] for a in made) - first if made else float("nan")
        tiers = {}
        for tier in BURST_TIERS:
            # The wait: the answer's time less the stand-in's own time for the speech.
            waits = [(a[3] - a[2]) * 1000 - latency_ms for a in made if a[0]["tier"] == tier]
            tiers[tier] = {"made": len(waits), "waitP50Ms": percentile(waits, 0.5), "waitP99Ms": percentile(waits, 0.99)}
        runs.append({
            "gate": "on" if gated else "off", "requests": len(answers), "made": len(made),
            "refused": sorted({a[1] for a in answers if a[1] != 201}),
            "upstream429s": speech["refusedBusy"], "peakInFlight": speech["peakBusy"],
            "perSecond": len(made) / span if made else 0.0, "limitPerSecond": concurrency / (latency_ms / 1000),
            # How busy the account was kept: speech answered per second while it was in use.
            "upstreamPerSecond": speech["served"] / speech["busySeconds"] if speech["busySeconds"] else 0.0,
            # Units counted against users beyond the generations they got.
            "unitsLost": used - len(made), "tiers": tiers,
        })
    return {"concurrency": concurrency, "latencyMs": latency_ms, "runs": runs}


def wait_for_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on port {port}")


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=100)
    parser.add_argument("--load-requests", type=int, default=2000)
    parser.add_argument("--only", type=lambda text: set(text.split(",")), help="comma-separated functions")
    parser.add_argument("--burst", action="store_true", help="only the generation burst (printed, not written)")
    args = parser.parse_args()
    if args.burst:
        print_burst(bench_burst())
        return

    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    rows = bench_functions(args.rounds, args.warm, args.only)
    if args.only:
        print_functions(rows, machine, args)
        return
    load = bench_load(args.load_requests)
    calls = bench_calls()
    stream = bench_stream()
    burst = bench_burst()
    results = {"machine": machine, "date": time.strftime("%Y-%m-%d"), "rounds": args.rounds, "functions": rows,
               "load": load, "calls": calls, "stream": stream, "burst": burst}
    (REPO / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_functions(rows, machine, args)
    print_rest(load, calls, stream, args)
    print_burst(burst)


def print_functions(rows, machine, args):
    print(f"\nLambda functions ({machine}; {args.rounds} rounds, {args.warm} warm invocations each; medians)\n")
    print("| function | init ms | × empty | first request ms | warm p50 ms | warm p99 ms | peak RSS MB | binary MB | zip MB | answered |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['function']} | {fmt(r['initMs'])} | {fmt(r['initRatio'])} | {fmt(r['firstRequestMs'])} | "
              f"{fmt(r['warmP50Ms'], 2)} | {fmt(r['warmP99Ms'], 2)} | {fmt(r['peakRssMb'])} | {fmt(r['binaryMb'], 2)} | "
              f"{fmt(r['zipMb'], 2)} | {', '.join(r['answered'])} |")
    cached = [r for r in rows if "upstreamCallsPerInvocation" in r]
    if cached:
        print("\nGeneration cache: ElevenLabs calls per invocation: " + ", ".join(
            f"{r['function']} {r['upstreamCallsPerInvocation']:.2f} (warm p50 {fmt(r['warmP50Ms'], 2)} ms)" for r in cached))


def print_rest(load, calls, stream, args):
    print(f"\nLocal API hot path ({args.load_requests} requests per level; bare Redis GET p50 {fmt(load[0]['redisGetP50Ms'], 3)} ms)\n")
    print("| route | clients | p50 ms | p99 ms | requests/s | failures |")
    print("|---|---|---|---|---|---|")
    for l in load:
        print(f"| {l['route']} | {l['clients']} | {fmt(l['p50Ms'], 2)} | {fmt(l['p99Ms'], 2)} | {fmt(l['perSecond'], 0)} | {l['failures']} |")
    print(f"\nCalls per request on the hot path ({calls[0]['requests']} in a row per route, after one warm-up)\n")
    print("| route | Redis round trips | DynamoDB/S3 requests |")
    print("|---|---|---|")
    for c in calls:
        print(f"| {c['route']} | {c['redisRoundTrips']:.2f} | {c['dynamodbRequests']:.2f} |")
    print(f"\nPOST /tts/stream through the local API ({stream['requests']} requests): first audio byte p50 "
          f"{fmt(stream['firstByteP50Ms'], 1)} ms (max {fmt(stream['firstByteMaxMs'], 1)}), stream end p50 "
          f"{fmt(stream['endP50Ms'], 1)} ms; the stand-in's first chunk comes after {stream['standInFirstChunkMs']} ms")
    print("\nwritten: bench/results.json")


def print_burst(burst):
    print(f"\nA burst of generations: FREE, BASIC and PREMIUM at once against an ElevenLabs account of "
          f"{burst['concurrency']} at a time, {burst['latencyMs']} ms each (wait = answer less those ms)\n")
    print("| gate | made | other answers | upstream 429s | most in flight | answered by ElevenLabs /s (limit) "
          "| made /s end to end | units lost | PREMIUM wait p50 / p99 ms | BASIC | FREE |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in burst["runs"]:
        waits = " | ".join(f"{fmt(r['tiers'][t]['waitP50Ms'], 0)} / {fmt(r['tiers'][t]['waitP99Ms'], 0)}" for t in BURST_TIERS)
        print(f"| {r['gate']} | {r['made']} of {r['requests']} | {r['refused'] or '-'} | {r['upstream429s']} | "
              f"{r['peakInFlight']} | {fmt(r['upstreamPerSecond'])} ({fmt(r['limitPerSecond'])}) | {fmt(r['perSecond'])} | "
              f"{r['unitsLost']} | {waits} |")


if __name__ == "__main__":
    main()
