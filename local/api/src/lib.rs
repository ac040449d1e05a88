//! The local API: one HTTP server on 127.0.0.1 serving every HTTP function's real handler at the
//! method and path template.yaml declares for it. Each request is turned into the API Gateway
//! (HTTP API, payload 2.0) event Lambda would deliver and parsed by lambda_http itself, so the
//! handlers see exactly what they see in AWS. A streaming function's route (answered by its
//! function URL in AWS) gets the function URL's event (the same payload, route key `$default`)
//! and its answer is passed on chunk by chunk as it is produced.

#![recursion_limit = "256"]

pub mod functions;
pub mod push;
pub mod routes;
mod site;
mod template;

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use anyhow::{Context, bail};
use base64::{Engine, prelude::BASE64_STANDARD};
use http_body_util::{BodyExt, Limited};
use hyper::{body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use lambda_http::{Body, RequestExt, Response, lambda_runtime::Context as LambdaContext, request::RequestContext};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc2822};
use tokio::net::TcpListener;
use tracing::Instrument;
use voice_core::{
    ApiError, App,
    domain::ids::{hex, random_bytes},
    http::router::{self, Streamed},
};

pub use functions::{Apps, Environments};
pub use site::{Cors, Site};
pub use template::{Route, routes_from_template};

/// Every HTTP function's route table, by the binary name its template entry builds.
pub const FUNCTIONS: &[(&str, &[voice_core::http::Route])] = &[
    ("account", account::ROUTES),
    ("admin", admin::ROUTES),
    ("callback", callback::ROUTES),
    ("checkout", checkout::ROUTES),
    ("health", health::ROUTES),
    ("login", login::ROUTES),
    ("portal", portal::ROUTES),
    ("presets", presets::ROUTES),
    ("recordings", recordings::ROUTES),
    ("session", session::ROUTES),
    ("tts", tts::ROUTES),
    ("tts-stream", tts_stream::ROUTES),
    ("usage", usage::ROUTES),
    ("voices", voices::ROUTES),
    ("webhook", webhook::ROUTES),
];

/// Where the template, the functions' route tables and the local API disagree; empty when they
/// agree. The template is the source of truth: each of its HTTP routes must be in the table of
/// the binary it builds, and each table entry must be routed to that binary by the template.
pub fn parity_problems(template: &[Route]) -> Vec<String> {
    let mut problems = Vec::new();
    for route in template {
        match FUNCTIONS.iter().find(|(binary, _)| *binary == route.binary) {
            None => problems.push(format!(
                "template.yaml routes {} to binary {:?}, which the local API does not serve",
                route.key(),
                route.binary
            )),
            Some((_, table)) if !table.iter().any(|r| r.key == route.key()) => problems.push(format!(
                "template.yaml routes {} to {:?}, whose route table lacks it",
                route.key(),
                route.binary
            )),
            Some(_) => {}
        }
    }
    for &(binary, table) in FUNCTIONS {
        for entry in table {
            if !template.iter().any(|r| r.binary == binary && r.key() == entry.key) {
                problems.push(format!("{binary:?} serves {}, which template.yaml does not route to it", entry.key));
            }
        }
    }
    problems
}

/// API Gateway's payload limit.
const MAX_BODY: usize = 10 * 1024 * 1024;

pub struct Router {
    /// Each function's own app, built from its own environment.
    apps: Apps,
    routes: Vec<(Route, &'static [voice_core::http::Route])>,
    /// Overrides every function's timeout (tests of time budgets).
    timeout: Option<std::time::Duration>,
    /// API Gateway's CORS answers.
    cors: Option<Cors>,
    /// The web client and the API's documents (local mode).
    site: Option<Site>,
    /// The open WebSocket connections of live updates.
    sockets: push::Sockets,
    /// Whose signatures the WebSocket management API takes.
    signers: Arc<push::Signers>,
}

impl Router {
    /// Pairs every template route with its handler. Fails when the template routes to a
    /// function the local API does not serve, or the local API serves one the template lacks.
    pub fn new(apps: Apps, routes: Vec<Route>) -> anyhow::Result<Self> {
        let problems = parity_problems(&routes);
        if !problems.is_empty() {
            bail!("template.yaml and the functions' route tables disagree:\n  {}", problems.join("\n  "));
        }
        let paired = routes
            .into_iter()
            .map(|route| {
                let table = FUNCTIONS.iter().find(|(binary, _)| *binary == route.binary).map(|(_, t)| *t);
                (route, table.expect("parity checked above"))
            })
            .collect();
        let signers = Arc::new(push::Signers::new(&apps));
        Ok(Self {
            apps,
            routes: paired,
            timeout: None,
            cors: None,
            site: None,
            sockets: push::Sockets::default(),
            signers,
        })
    }

    /// Every invocation gets this much time instead of its function's `Timeout`.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Answers preflights and grants cross-origin requests as API Gateway would.
    pub fn with_cors(mut self, cors: Cors) -> Self {
        self.cors = Some(cors);
        self
    }

    /// Serves the web client, `/openapi.json` and `/docs` for the `GET`s no route takes.
    pub fn with_site(mut self, site: Site) -> Self {
        self.site = Some(site);
        self
    }

    pub fn from_template_file(apps: Apps, path: &str) -> anyhow::Result<Self> {
        let yaml = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        Self::new(apps, routes_from_template(&yaml)?)
    }

    /// An error answered the way every function answers it.
    fn error(&self, error: ApiError, request_id: &str) -> Response<Body> {
        error.into_response(request_id, self.apps.upgrade_url())
    }

    /// The app `binary` runs with.
    pub fn app(&self, binary: &str) -> &'static App {
        self.apps.get(binary)
    }

    /// The WebSocket connections open now.
    pub fn sockets(&self) -> &push::Sockets {
        &self.sockets
    }

    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|(route, _)| route)
    }

    /// Serves one request the way API Gateway and Lambda would, the whole answer at once (a
    /// streamed one is collected).
    pub async fn dispatch(&self, request: hyper::Request<Bytes>, source_ip: &str) -> Response<Body> {
        let (parts, body) = self.dispatch_streaming(request, source_ip).await.into_parts();
        match body.collect().await {
            Ok(collected) => Response::from_parts(parts, Body::Binary(collected.to_bytes().to_vec())),
            Err(error) => {
                let cause = anyhow::anyhow!("the stream ended in an error: {error}");
                self.error(ApiError::Upstream { service: "stream", temporary: true, source: cause }, "stream")
            }
        }
    }

    /// Serves one request the way API Gateway, a function URL and Lambda would; a streamed answer
    /// comes as it is produced.
    pub async fn dispatch_streaming(&self, request: hyper::Request<Bytes>, source_ip: &str) -> Streamed {
        let (route, response) = self.answer(&request, source_ip).await;
        let mut response = match (route, response) {
            (_, Answer::Whole(response)) => router::whole(response),
            (_, Answer::Streamed(response)) => response,
        };
        if let Some(cors) = &self.cors {
            cors.decorate(request.headers(), &mut response);
        }
        response
    }

    async fn answer(&self, request: &hyper::Request<Bytes>, source_ip: &str) -> (Option<&Route>, Answer) {
        let request_id = new_request_id();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        if let Some(preflight) = self.cors.as_ref().and_then(|cors| cors.preflight(&method, request.headers())) {
            return (None, Answer::Whole(preflight));
        }
        if push::is_management(&path) {
            return (
                None,
                Answer::Whole(push::manage(
                    &self.sockets,
                    &self.signers,
                    &method,
                    &path,
                    request.headers(),
                    request.body(),
                )),
            );
        }
        if let Some(page) = self.site.as_ref().and_then(|site| site.navigation(&method, &path, request.headers())) {
            return (None, Answer::Whole(page));
        }
        let found = self.routes.iter().find_map(|(route, table)| Some((route, *table, route.matches(&method, &path)?)));
        let Some((route, table, params)) = found else {
            if let Some(page) = self.site.as_ref().and_then(|site| site.serve(&method, &path, request.headers())) {
                return (None, Answer::Whole(page));
            }
            let missing = self.error(ApiError::NotFound(format!("no route for {method} {path}")), &request_id);
            return (None, Answer::Whole(missing));
        };
        let event = api_gateway_event(request, route, &params, &request_id, source_ip);
        if !route.streamed {
            return (Some(route), Answer::Whole(self.invoke(&event.to_string(), &request_id).await));
        }
        let req = match lambda_http::request::from_str(&event.to_string()) {
            Ok(req) => req.with_lambda_context(self.context(route, &request_id)),
            Err(error) => {
                return (Some(route), Answer::Whole(self.error(ApiError::Internal(error.into()), &request_id)));
            }
        };
        let span = tracing::info_span!("local invoke", requestId = %request_id, binary = %route.binary);
        let streamed = router::serve_streaming(self.apps.get(&route.binary), table, req).instrument(span).await;
        (Some(route), Answer::Streamed(streamed))
    }

    /// The Lambda context of an invocation of `route`'s function: its request id and deadline.
    fn context(&self, route: &Route, request_id: &str) -> LambdaContext {
        let mut context = LambdaContext::default();
        context.request_id = request_id.to_owned();
        // As Lambda does: the invocation's deadline, in ms since the epoch.
        let timeout = self.timeout.unwrap_or(std::time::Duration::from_secs(route.timeout_secs));
        let now_ms = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        context.deadline = now_ms + u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        context
    }

    /// Hands an API Gateway event (as JSON, e.g. a file from events/) to the function its
    /// `routeKey` belongs to.
    pub async fn invoke(&self, event: &str, request_id: &str) -> Response<Body> {
        let req = match lambda_http::request::from_str(event) {
            Ok(req) => req,
            Err(error) => return self.error(ApiError::Internal(error.into()), request_id),
        };
        let route_key = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.clone().unwrap_or_default(),
            _ => String::new(),
        };
        let found = self.routes.iter().find(|(route, _)| !route.streamed && route.key() == route_key);
        let Some((route, table)) = found else {
            return self.error(ApiError::NotFound(format!("no route {route_key:?}")), request_id);
        };
        let context = self.context(route, request_id);
        let span = tracing::info_span!("local invoke", requestId = %request_id, binary = %route.binary);
        router::serve(self.apps.get(&route.binary), table, req.with_lambda_context(context)).instrument(span).await
    }
}

/// What a function answered: whole (API Gateway) or as a stream (a function URL).
enum Answer {
    Whole(Response<Body>),
    Streamed(Streamed),
}

/// The HTTP API payload 2.0 event for a request, as API Gateway builds it (a function URL's is
/// the same, with the route key `$default`).
fn api_gateway_event(
    request: &hyper::Request<Bytes>,
    route: &Route,
    params: &HashMap<String, String>,
    request_id: &str,
    source_ip: &str,
) -> Value {
    let mut headers: HashMap<String, String> = HashMap::new();
    let mut cookies = Vec::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()));
            continue;
        }
        headers.entry(name.as_str().to_owned()).and_modify(|v| v.push_str(&format!(",{value}"))).or_insert(value);
    }
    let raw_query = request.uri().query().unwrap_or("");
    let mut query: HashMap<String, String> = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        query.entry(key.into_owned()).and_modify(|v| v.push_str(&format!(",{value}"))).or_insert(value.into_owned());
    }
    let (body, base64) = match std::str::from_utf8(request.body()) {
        _ if request.body().is_empty() => (Value::Null, false),
        Ok(text) => (text.into(), false),
        Err(_) => (BASE64_STANDARD.encode(request.body()).into(), true),
    };
    let route_key = if route.streamed { "$default".to_owned() } else { route.key() };
    let now = OffsetDateTime::now_utc();
    json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.uri().path(),
        "rawQueryString": raw_query,
        "cookies": if cookies.is_empty() { Value::Null } else { cookies.into() },
        "headers": headers,
        "queryStringParameters": if query.is_empty() { Value::Null } else { json!(query) },
        "pathParameters": if params.is_empty() { Value::Null } else { json!(params) },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": request.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": route.method.as_str(),
                "path": request.uri().path(),
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": request.headers().get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or(""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format(&Rfc2822).unwrap_or_default(),
            "timeEpoch": now.unix_timestamp() * 1000,
        },
        "body": body,
        "isBase64Encoded": base64,
    })
}

fn new_request_id() -> String {
    let hex = hex(&random_bytes::<16>());
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// Accepts connections until the process ends.
pub async fn serve(router: Arc<Router>, listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let router = router.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let router = router.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&router, request, peer).await) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades();
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed");
            }
        });
    }
}

async fn handle(router: &Router, mut request: hyper::Request<hyper::body::Incoming>, peer: SocketAddr) -> Streamed {
    if push::is_handshake(request.method(), request.uri().path(), request.headers()) {
        let upgrade = hyper::upgrade::on(&mut request);
        let (parts, _) = request.into_parts();
        let handshake = hyper::Request::from_parts(parts, ());
        let app = router.app("push");
        return router::whole(
            push::open(app, router.sockets.clone(), &handshake, upgrade, &peer.ip().to_string()).await,
        );
    }
    let (parts, body) = request.into_parts();
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => {
            let request = hyper::Request::from_parts(parts, collected.to_bytes());
            router.dispatch_streaming(request, &peer.ip().to_string()).await
        }
        Err(_) => router::whole(router.error(ApiError::PayloadTooLarge { limit: MAX_BODY }, &new_request_id())),
    }
}
