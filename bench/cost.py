"""`make cost`: a monthly AWS cost estimate per 1k / 10k / 100k monthly active users.

Inputs, all in the repo: the usage profile (bench/cost/profile.toml: assumptions), public prices
(bench/cost/prices.toml, with their date), the latest benchmark (bench/results.json: each
function's measured warm duration, init and peak memory, from `make bench`), and template.yaml
(each function's memory size, the architecture, the routes and alarms). DynamoDB units per
request are counted from the code paths (UNITS below, with where each comes from).
"""

import json
import pathlib
import re
import sys
import tomllib

import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
HOURS_PER_MONTH = 730
SIZES = (1_000, 10_000, 100_000)

# Per invocation of each function in the profile's requests: (read units, write units, S3 PUTs,
# Redis commands), counted from the code paths. Every `user:` route reads the session, the
# user's snapshot and its rate counters in one Redis script (GET, EXPIRE, HMGET, INCR, EXPIRE: 5
# commands, 2 more for a second limit), and reads the user row from DynamoDB only when the
# snapshot is missing: after a write to the user, so a route that writes the user pays the next
# read's 1 RRU and the snapshot's refill (3 commands) besides its own forget (3 commands). The
# session's DynamoDB re-check (1 WRU) happens at most once a minute per session, counted once per
# page load.
UNITS = {
    "login": (0, 0, 0, 3),          # state, nonce, verifier into Redis; the per-IP limit
    "callback": (1, 2, 0, 10),      # users UpdateItem (upsert), sessions PutItem; GETDEL, SET; forget + refill
    "session": (0, 0, 0, 5),
    "usage": (0, 0, 0, 5),
    "recordings": (2.5, 0, 0, 5),   # one page Query (20 rows of ~1 KB, eventually consistent)
    "voices": (0.5, 0, 0, 5),       # the caller's clones (Query)
    "presets": (0, 0, 0, 5),
    "tts": (1, 2, 2, 15),           # quota UpdateItem, recording PutItem; the audio and its cache copy; the admission gate's script and release
    "recordings_write": (1.5, 2, 0, 11),  # GetItem of the recording; UpdateItem/DeleteItem + allowance
    "checkout": (0, 0, 0, 7),       # its Stripe-call limit is a second counter
    "webhook": (1.5, 4, 0, 6),      # customer → user (index), claim, complete, subscription, user
    "ttl-cleanup": (0, 0.1, 0, 1),       # per expired row: the once-only storage claim for uploads
    "health": (0.5, 0, 0, 1),
    "sweep": (1, 0, 0, 0),
    "reconcile": (0, 0, 0, 0),      # scaled by users below
    # Live updates: $connect (GETDEL of the ticket, the user's GetItem, the connection's
    # PutItem) and $disconnect (DeleteItem), averaged over the two; the ticket is a session
    # route plus its SET.
    "push": (0.5, 1, 0, 0.5),
    "push_ticket": (0, 0, 0, 6),
}


def load():
    prices = tomllib.loads((REPO / "bench/cost/prices.toml").read_text())
    profile = tomllib.loads((REPO / "bench/cost/profile.toml").read_text())
    results_path = REPO / "bench/results.json"
    if not results_path.exists():
        sys.exit("no bench/results.json: run `make bench` first")
    results = json.loads(results_path.read_text())
    template = yaml.load((REPO / "template.yaml").read_text(), Loader=_Loader)
    return prices, profile, results, template


class _Loader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Ref, !Sub …) as plain values."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def memory_mb(template):
    """Each function's configured memory (the Globals default unless it sets its own)."""
    default = template["Globals"]["Function"]["MemorySize"]
    memory = {}
    for resource in template["Resources"].values():
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function":
            binary = resource["Metadata"]["BuildProperties"]["Binary"]
            memory[binary] = resource["Properties"].get("MemorySize", default)
    return memory


def routes(template):
    count = 0
    for resource in template["Resources"].values():
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function":
            events = resource["Properties"].get("Events") or {}
            count += sum(1 for e in events.values() if e.get("Type") == "HttpApi")
    return count


def alarm_metrics(template):
    resources = template["Resources"]
    functions = len(resources["Fn::ForEach::FunctionAlarms"][1]) * 2
    tables = len(resources["Fn::ForEach::TableAlarms"][1]) * 2  # metric math over two metrics
    single = sum(1 for r in resources.values() if isinstance(r, dict) and r.get("Type") == "AWS::CloudWatch::Alarm")
    return functions + tables + single


def invocations_per_user(profile):
    """Invocations of each function, per MAU per month, averaged over the tier mix."""
    per = {}
    for tier, share in profile["mix"].items():
        u = profile["per_user"][tier]
        add = lambda name, n: per.__setitem__(name, per.get(name, 0) + share * n)  # noqa: E731
        add("login", u["sign_ins"])
        add("callback", u["sign_ins"])
        for name in ("session", "usage", "recordings", "voices", "presets"):
            add(name, u["page_loads"])
        add("tts", u["generations"])
        add("recordings_write", u["other_writes"])
        add("recordings", u["plays"])  # GET /recordings/{id}: a fresh presigned URL
        add("checkout", u["billing_calls"])
        add("webhook", u["webhook_events"])
        add("ttl-cleanup", u["generations"] * (1 - profile["audio"]["favourite_share"]))
        add("session_rechecks", u["page_loads"])
        add("push", 2 * u["page_loads"])
        add("push_ticket", u["page_loads"])
        add("pushes", u["generations"] + u["webhook_events"])
        add("generations", u["generations"])
        add("plays", u["plays"])
        add("clones", u["clones_held"])
    return per


def estimate(users, prices, profile, results, template):
    bench = {r["function"]: r for r in results["functions"]}
    memory = memory_mb(template)
    per = invocations_per_user(profile)
    ops = profile["operations"]
    upstream = profile["upstream"]
    audio = profile["audio"]
    arch = "arm64"  # the template's default Architecture
    gb_second = prices["lambda"][f"gb_second_{arch}"]

    # Lambda: measured warm duration (+ what the function waits on outside services in AWS),
    # plus the init of the share of invocations that start an instance, at the configured memory.
    waits = {"tts": upstream["elevenlabs_generation_ms"], "callback": upstream["auth0_exchange_ms"],
             "checkout": upstream["stripe_call_ms"], "webhook": upstream["stripe_call_ms"]}
    # Not measured on their own: the push function ($connect, $disconnect) and the ticket route
    # cost about what the session route does (one Redis round trip, one or two DynamoDB calls).
    measured_as = {"recordings_write": "recordings", "push": "session", "push_ticket": "session"}
    invocations = {name: n * users for name, n in per.items() if name in UNITS}
    invocations["health"] = ops["health_probes_per_month"]
    invocations["sweep"] = ops["sweep_runs_per_month"]
    lambda_gb_s = 0.0
    for name, count in invocations.items():
        row = bench[measured_as.get(name, name)]
        duration_ms = (row["warmP50Ms"] or row["firstRequestMs"]) + waits.get(name, 0) + ops["cold_start_share"] * row["initMs"]
        lambda_gb_s += count * duration_ms / 1000 * memory[measured_as.get(name, name)] / 1024
    # The nightly reconciliation: one run, about one Stripe read per paying user.
    paying = users * (profile["mix"]["BASIC"] + profile["mix"]["PREMIUM"])
    reconcile_s = ops["reconcile_runs_per_month"] * paying * upstream["stripe_call_ms"] / 1000 / 8  # 8 in flight
    lambda_gb_s += reconcile_s * memory["reconcile"] / 1024
    total_invocations = sum(invocations.values()) + ops["reconcile_runs_per_month"]
    http_requests = sum(c for n, c in invocations.items() if n not in ("ttl-cleanup", "sweep", "push"))

    reads = sum(UNITS[n][0] * c for n, c in invocations.items())
    writes = sum(UNITS[n][1] * c for n, c in invocations.items()) + per["session_rechecks"] * users
    # Each push lists the person's connections (user-index Query, eventually consistent).
    pushes = per["pushes"] * users
    reads += 0.5 * pushes
    puts = sum(UNITS[n][2] * c for n, c in invocations.items())
    redis_commands = sum(UNITS[n][3] * c for n, c in invocations.items())
    # The monthly reset scans every user row and writes the active ones.
    reads += users * 2 / 4 + users  # scan (~2 KB rows) and the conditional writes' reads
    writes += users

    generations = per["generations"] * users
    # Recordings (kept a week, or as favourites) and the generation cache's copy of each audio
    # (tagged temporary: the lifecycle rule ends it after 8 days).
    kept_gb = generations * audio["bytes_per_generation"] * (
        audio["kept_days"] / 30 + audio["favourite_share"] * audio["favourite_months_kept"] + 8 / 30) / 1e9
    samples_gb = per["clones"] * users * audio["sample_bytes_per_clone"] / 1e9
    transfer_gb = per["plays"] * users * audio["bytes_per_generation"] / 1e9
    table_gb = (users * 3_000 + generations * 1_000 * (audio["kept_days"] / 30 + audio["favourite_share"] * 6)) / 1e9

    p = prices
    lines = {
        "Lambda (duration)": lambda_gb_s * gb_second,
        "Lambda (requests)": total_invocations / 1e6 * p["lambda"]["per_million_requests"],
        "API Gateway (HTTP API)": http_requests / 1e6 * p["api_gateway"]["per_million_requests"],
        "API Gateway (WebSocket)": pushes / 1e6 * p["api_gateway_websocket"]["per_million_messages"]
        + per["push_ticket"] * users * profile["live"]["minutes_per_connection"] / 1e6
        * p["api_gateway_websocket"]["per_million_connection_minutes"],
        "DynamoDB (requests)": reads / 1e6 * p["dynamodb"]["per_million_read_units"]
        + writes / 1e6 * p["dynamodb"]["per_million_write_units"],
        "DynamoDB (storage + PITR)": table_gb * (p["dynamodb"]["storage_gb_month"] + p["dynamodb"]["pitr_gb_month"]),
        "S3 (storage + requests)": (kept_gb + samples_gb) * p["s3"]["standard_gb_month"]
        + puts / 1000 * p["s3"]["per_thousand_puts"]
        + (per["plays"] + per["generations"]) * users / 1000 * p["s3"]["per_thousand_gets"],  # plays; cache HEADs
        "S3 (audio to browsers)": max(0.0, transfer_gb - 100) * p["s3"]["transfer_out_gb"],
        "ElastiCache Serverless": max(p["elasticache_serverless_valkey"]["minimum_gb"], users * 2_000 / 1e9)
        * p["elasticache_serverless_valkey"]["gb_hour"] * HOURS_PER_MONTH
        + redis_commands / 1e6 * p["elasticache_serverless_valkey"]["per_million_ecpu"],
        egress_label(ops["egress"]): egress(ops["egress"], generations, p, ops),
        "CloudWatch (logs)": total_invocations * ops["log_bytes_per_invocation"] / 1e9
        * (p["cloudwatch"]["logs_ingested_gb"] + p["cloudwatch"]["logs_stored_gb_month"]),
        "CloudWatch (metrics, alarms, dashboard)": custom_metrics(template, ops) * p["cloudwatch"]["custom_metric_month"]
        + alarm_metrics(template) * p["cloudwatch"]["alarm_metric_month"] + p["cloudwatch"]["dashboard_month"],
        "Secrets Manager": p["secrets_manager"]["secret_month"],
    }
    return lines


def egress_label(kind):
    return {"nat_instance": "NAT instance (egress)", "nat_gateway": "NAT gateway (egress)"}[kind]


def egress(kind, generations, p, ops):
    """The monthly cost of reaching Stripe, Auth0 and ElevenLabs: the NAT and its public IPv4
    address. A NAT gateway also charges for every GB it processes (ElevenLabs' audio coming back)."""
    address = p["public_ipv4"]["hour"] * HOURS_PER_MONTH
    if kind == "nat_instance":
        instance = p["nat_instance"]["hour"] * HOURS_PER_MONTH
        return instance + p["nat_instance"]["volume_gb"] * p["nat_instance"]["volume_gb_month"] + address
    return ops["nat_gateways"] * (p["nat_gateway"]["hour"] * HOURS_PER_MONTH + address) \
        + generations * ops["nat_bytes_per_generation"] / 1e9 * p["nat_gateway"]["per_gb"]


def through_cloudfront(users, lines, prices, profile):
    """The month's total with audio served by the CloudFront distribution instead of presigned
    S3 URLs: transfer and requests at CloudFront's prices (its free tier first); S3 then sends
    only the edge's misses, to CloudFront, for free."""
    per = invocations_per_user(profile)
    audio, cdn, s3 = profile["audio"], prices["cloudfront"], prices["s3"]
    plays = per["plays"] * users
    transfer_gb = plays * audio["bytes_per_generation"] / 1e9
    misses = plays * (1 - audio["cdn_hit_ratio"])
    cloudfront = max(0.0, transfer_gb - cdn["free_transfer_gb"]) * cdn["transfer_out_gb"] \
        + max(0.0, plays - cdn["free_requests"]) / 10_000 * cdn["per_10k_https_requests"]
    saved = lines["S3 (audio to browsers)"] + (plays - misses) / 1000 * s3["per_thousand_gets"]
    return sum(lines.values()) - saved + cloudfront


def custom_metrics(template, ops):
    """The custom metrics the code emits (shared/src/telemetry/metrics.rs), counted from it: one
    series per name given to `metrics::count`, one per value of a `count_by` dimension (the
    webhook's outcomes), `Requests` by status class (2xx, 4xx, 5xx) and `UpstreamErrors`."""
    code = "\n".join(p.read_text() for folder in ("shared/src", "functions") for p in (REPO / folder).rglob("*.rs"))
    single = set(re.findall(r'metrics::count\(\s*"(\w+)"', code))
    webhook = (REPO / "shared/src/flows/stripe_events.rs").read_text()
    outcomes = set(re.findall(r'outcome\("(\w+)"\)', webhook)) | set(re.findall(r'"(ignored|applied)"', webhook))
    return len(single) + len(outcomes) + 3 + 1


def main():
    prices, profile, results, template = load()
    estimates = {users: estimate(users, prices, profile, results, template) for users in SIZES}
    names = list(estimates[SIZES[0]])
    print(f"Monthly AWS cost estimate, USD ({prices['region']} prices of {prices['date']}; "
          f"benchmark of {results['date']} on {results['machine']})\n")
    print("| item | " + " | ".join(f"{u // 1000}k MAU" for u in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{estimates[u][name]:,.2f}" for u in SIZES) + " |")
    totals = {u: sum(estimates[u].values()) for u in SIZES}
    print("| **total** | " + " | ".join(f"**{totals[u]:,.2f}**" for u in SIZES) + " |")
    print("| per MAU | " + " | ".join(f"{totals[u] / u:.4f}" for u in SIZES) + " |")
    chosen = profile["operations"]["egress"]
    other = "nat_gateway" if chosen == "nat_instance" else "nat_instance"
    swapped = {u: totals[u] - estimates[u][egress_label(chosen)]
               + egress(other, invocations_per_user(profile)["generations"] * u, prices, profile["operations"]) for u in SIZES}
    print(f"\nWith a {egress_label(other).split(' (')[0]} instead: "
          + ", ".join(f"{u // 1000}k MAU {swapped[u]:,.2f}" for u in SIZES) + ".")
    cdn = {u: through_cloudfront(u, estimates[u], prices, profile) for u in SIZES}
    print("With audio through CloudFront (signed URLs, the template's CloudFrontPublicKey): "
          + ", ".join(f"{u // 1000}k MAU {cdn[u]:,.2f}" for u in SIZES) + ".")
    print("\nLargest items:")
    for u in SIZES:
        top = sorted(estimates[u].items(), key=lambda kv: -kv[1])[:3]
        print(f"  {u // 1000}k MAU: " + ", ".join(f"{n} {v / totals[u]:.0%}" for n, v in top))
    print("\nNot included: ElevenLabs (per character, the largest cost of a generation), Stripe's fees,"
          " data transfer inside the free 100 GB, the free tiers of Lambda and DynamoDB.")


if __name__ == "__main__":
    main()
