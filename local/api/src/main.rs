use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use local_api::{Router, serve};
use tokio::net::TcpListener;
use voice_core::App;

/// `make run`: the stack's environment comes from .local/stack.env (API_PORT picks the port).
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    voice_core::telemetry::init();
    let app = Arc::new(App::from_env().await?);
    let router = Arc::new(Router::from_template_file(app, "template.yaml")?);
    let port: u16 = std::env::var("API_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3001);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    println!("Local API listening on http://{addr}");
    for route in router.routes() {
        println!("  {:6} {:24} -> {} ({})", route.method.as_str(), route.path, route.function, route.binary);
    }
    serve(router, listener).await
}
