use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use local_api::{Apps, Cors, Environments, Router, Site, routes_from_template, serve};
use tokio::net::TcpListener;
use voice_core::clock::Clock;

/// `make run`: every function runs with its own environment (.local/functions.json, which
/// .local/stack.env names); API_PORT picks the port.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    voice_core::telemetry::init();
    let port: u16 = std::env::var("API_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3001);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    // The WebSocket API is this server too: its management endpoint and where clients connect.
    let apps = Apps::build(&Environments::from_env()?, Clock::system(), |_, config| {
        if let Some(push) = &mut config.push {
            push.endpoint = format!("http://{addr}").parse().expect("a local URL");
            push.public_url = format!("ws://{addr}{}", local_api::push::PATH).parse().expect("a local URL");
        }
    })
    .await?;
    let template = std::fs::read_to_string("template.yaml").context("reading template.yaml")?;
    let origins = apps.get("session").config.web.allowed_origins.clone();
    let cors = Cors::from_template(&template, origins)?;
    let config = &apps.get("session").config;
    let cdn = config.cdn.as_ref().map(|cdn| voice_core::config::origin_of(&cdn.base));
    let media_origins = std::env::var("AWS_ENDPOINT_URL").ok().into_iter().chain(cdn).collect();
    let site = Site { root: "web".into(), openapi: "openapi.yaml".into(), media_origins };
    let router = Router::new(apps, routes_from_template(&template)?)?.with_cors(cors).with_site(site);
    let router = Arc::new(router);
    println!("Local API listening on http://{addr} (web client: http://{addr}/, API docs: http://{addr}/docs)");
    for route in router.routes() {
        println!("  {:6} {:24} -> {} ({})", route.method.as_str(), route.path, route.function, route.binary);
    }
    serve(router, listener).await
}
