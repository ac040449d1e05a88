//! `make bench` helper: loads the running local API's hot path and prints one JSON line per
//! (route, concurrency): p50, p99, throughput, and the bare Redis GET round trip measured in the
//! same run. Users come on stdin (the lines `bench-users` prints), spread over the clients so no
//! user passes the per-minute rate limit.
//!
//!   bench-load BASE_URL REQUESTS_PER_LEVEL LEVEL... < users.jsonl

use std::{
    io::BufRead,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use redis::AsyncCommands;
use serde_json::{Value, json};

const ROUTES: [&str; 2] = ["/usage", "/auth/session"];

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench-load BASE_URL REQUESTS_PER_LEVEL LEVEL... < users.jsonl";
    let base = args.next().context(usage)?;
    let per_level: usize = args.next().context(usage)?.parse()?;
    let levels: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let users: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .map(|line| Ok(serde_json::from_str::<Value>(&line?)?["cookie"].as_str().context("a cookie")?.to_owned()))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!users.is_empty(), "no users on stdin");
    let users = Arc::new(users);
    // The project's base client (reqwest is built without a crypto provider of its own).
    let client = voice_core::tls::http_client_builder().pool_max_idle_per_host(256).build()?;

    let redis_rtt = redis_round_trip().await?;
    let mut next_user = 0usize;
    for route in ROUTES {
        for &clients in &levels {
            let each = per_level.div_ceil(clients);
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for c in 0..clients {
                let (client, users, url) = (client.clone(), users.clone(), format!("{base}{route}"));
                let first = next_user + c * each;
                tasks.spawn(async move {
                    let mut timings = Vec::with_capacity(each);
                    let mut failures = 0usize;
                    for i in 0..each {
                        let cookie = &users[(first + i) % users.len()];
                        let sent = Instant::now();
                        let status = client.get(&url).header("cookie", cookie).send().await.map(|r| r.status());
                        timings.push(sent.elapsed());
                        failures += usize::from(!status.is_ok_and(|s| s.is_success()));
                    }
                    (timings, failures)
                });
            }
            let (mut timings, mut failures) = (Vec::new(), 0);
            while let Some(done) = tasks.join_next().await {
                let (t, f) = done?;
                timings.extend(t);
                failures += f;
            }
            let elapsed = started.elapsed();
            next_user += clients * each;
            timings.sort();
            let line = json!({
                "route": format!("GET {route}"),
                "clients": clients,
                "requests": timings.len(),
                "failures": failures,
                "p50Ms": percentile(&timings, 0.5),
                "p99Ms": percentile(&timings, 0.99),
                "perSecond": timings.len() as f64 / elapsed.as_secs_f64(),
                "redisGetP50Ms": redis_rtt,
            });
            println!("{line}");
        }
    }
    Ok(())
}

/// The median of 1000 GETs of a missing key on the stack's Redis, as the app's user.
async fn redis_round_trip() -> anyhow::Result<f64> {
    let config = voice_core::config::Config::from_env()?;
    let app = voice_core::App::new(config, voice_core::clock::Clock::system()).await?;
    let mut conn = app.redis.conn().await?;
    let mut timings = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let sent = Instant::now();
        let _: Option<String> = conn.get("rate:bench:missing").await?;
        timings.push(sent.elapsed());
    }
    timings.sort();
    Ok(percentile(&timings, 0.5))
}
