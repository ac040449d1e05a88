//! API Gateway's WebSocket API, locally: a WebSocket handshake at `/push` becomes the `$connect`
//! event the push function's own handler judges (its answer decides whether the upgrade
//! happens), a closed socket becomes `$disconnect`, and the management API
//! (`POST`/`DELETE /@connections/{id}`, SigV4-signed by the calling function's credentials)
//! sends to and closes the sockets held here.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use base64::{Engine, prelude::BASE64_STANDARD};
use futures_util::{SinkExt, StreamExt};
use hyper::{body::Bytes, upgrade::OnUpgrade};
use hyper_util::rt::TokioIo;
use lambda_http::{
    Body, Response,
    http::{HeaderMap, Method, StatusCode, header},
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, handshake::derive_accept_key, protocol::Role},
};
use voice_core::{
    App,
    domain::ids::random_bytes,
    upstream::{outbound::LazyClient, push::Gateway},
};

/// Where the local WebSocket endpoint is (`PUSH_URL` = `ws://127.0.0.1:{port}/push`).
pub const PATH: &str = "/push";
/// The management API's path prefix (`PUSH_ENDPOINT` = `http://127.0.0.1:{port}`).
const CONNECTIONS: &str = "/@connections/";

enum Outgoing {
    Text(String),
    Close,
}

/// The open sockets, by connection id.
#[derive(Default, Clone)]
pub struct Sockets(Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Outgoing>>>>);

impl Sockets {
    fn send(&self, connection_id: &str, outgoing: Outgoing) -> bool {
        let open = self.0.lock().expect("the sockets' lock");
        open.get(connection_id).is_some_and(|socket| socket.send(outgoing).is_ok())
    }

    pub fn count(&self) -> usize {
        self.0.lock().expect("the sockets' lock").len()
    }
}

/// Whether a request is a WebSocket handshake for the push endpoint.
pub fn is_handshake(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    method == Method::GET
        && path == PATH
        && headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Whether a request is for the management API.
pub fn is_management(path: &str) -> bool {
    path.starts_with(CONNECTIONS)
}

/// Who may call the management API: every function's role credentials, by access key (as IAM
/// knows them), and where the calls are recorded for the permissions report.
pub struct Signers {
    by_key: HashMap<String, Signer>,
    log: Option<std::path::PathBuf>,
}

struct Signer {
    binary: String,
    /// Signs as the function does (only its signing is used here).
    gateway: Gateway,
    session_token: Option<String>,
    region: String,
}

impl Signers {
    pub fn new(apps: &crate::Apps) -> Self {
        let by_key = apps
            .iter()
            .map(|(binary, app)| {
                let aws = &app.config.aws;
                let signer = Signer {
                    binary: binary.to_owned(),
                    gateway: Gateway::new(LazyClient::default(), "http://127.0.0.1/".parse().expect("a URL"), aws),
                    session_token: aws.credentials.session_token.as_ref().map(|t| t.expose().clone()),
                    region: aws.region.clone(),
                };
                (aws.credentials.access_key_id.clone(), signer)
            })
            .collect();
        Self { by_key, log: std::env::var_os("AWS_CALL_LOG").map(Into::into) }
    }

    /// The function whose credentials signed the request, if its SigV4 signature (service
    /// `execute-api`, the function's region, its session token) is what those credentials give.
    fn verify(&self, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Result<&Signer, &'static str> {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let authorization = text("authorization").ok_or("Missing Authentication Token")?;
        let credential = authorization.split("Credential=").nth(1).and_then(|c| c.split(',').next()).unwrap_or("");
        let signer = self.by_key.get(credential.split('/').next().unwrap_or("")).ok_or("unknown access key")?;
        if text("x-amz-security-token") != signer.session_token.as_deref() {
            return Err("the security token included in the request is invalid");
        }
        let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        let at = text("x-amz-date")
            .and_then(|date| time::PrimitiveDateTime::parse(date, format).ok())
            .ok_or("X-Amz-Date is missing or malformed")?
            .assume_utc();
        let url = format!("http://{}{path}", text("host").unwrap_or("127.0.0.1"));
        let signed =
            signer.gateway.signed(method.as_str(), &url, body, at.into()).map_err(|_| "not a signable request")?;
        let expected = signed.iter().find(|(name, _)| name == "authorization").map(|(_, value)| value.as_str());
        match expected == Some(authorization) {
            true => Ok(signer),
            false => Err("The request signature we calculated does not match the signature you provided"),
        }
    }

    fn record(&self, signer: &Signer, method: &Method, connection_id: &str) {
        let Some(log) = &self.log else { return };
        let arn = format!(
            "arn:aws:execute-api:{}:123456789012:local/live/{method}/@connections/{connection_id}",
            signer.region
        );
        let call = json!({
            "principal": { "binary": signer.binary },
            "action": "execute-api:ManageConnections",
            "resources": [arn],
            "context": {},
        });
        let line = format!("{call}\n");
        let written = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
            .and_then(|mut file| std::io::Write::write_all(&mut file, line.as_bytes()));
        if let Err(error) = written {
            tracing::warn!(%error, "could not record a management call");
        }
    }
}

/// API Gateway's answer to `POST` (send) or `DELETE` (close) `@connections/{id}`: 200/204, or
/// 410 Gone for a connection that is not open; 403 for a request whose SigV4 signature is not
/// one of the functions' (IAM, judging the signer's policy, is `make test`'s permissions report).
pub fn manage(
    sockets: &Sockets,
    signers: &Signers,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response<Body> {
    let signer = match signers.verify(method, path, headers, body) {
        Ok(signer) => signer,
        Err(why) => return status(StatusCode::FORBIDDEN, &json!({ "message": why }).to_string()),
    };
    let raw = &path[CONNECTIONS.len()..];
    let id = percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned();
    signers.record(signer, method, &id);
    let sent = match *method {
        Method::POST => sockets.send(&id, Outgoing::Text(String::from_utf8_lossy(body).into_owned())),
        Method::DELETE => sockets.send(&id, Outgoing::Close),
        _ => return status(StatusCode::METHOD_NOT_ALLOWED, "{}"),
    };
    match (sent, method) {
        (true, &Method::DELETE) => status(StatusCode::NO_CONTENT, ""),
        (true, _) => status(StatusCode::OK, ""),
        (false, _) => status(StatusCode::GONE, r#"{"message":"GoneException"}"#),
    }
}

/// A WebSocket handshake: `$connect` decides; on 200 the connection is upgraded and held until
/// either side closes it, then `$disconnect` runs.
pub async fn open(
    app: &'static App,
    sockets: Sockets,
    request: &hyper::Request<()>,
    upgrade: OnUpgrade,
    source_ip: &str,
) -> Response<Body> {
    let Some(key) = request.headers().get("sec-websocket-key").map(|k| derive_accept_key(k.as_bytes())) else {
        return status(StatusCode::BAD_REQUEST, "a WebSocket handshake needs Sec-WebSocket-Key");
    };
    // API Gateway's ids are base64 of a few bytes, `=` included.
    let connection_id = BASE64_STANDARD.encode(random_bytes::<11>());
    let connect = event(request, "$connect", "CONNECT", &connection_id, source_ip);
    let answer = push::handle(app, connect).await;
    if answer.status_code != 200 {
        let code =
            StatusCode::from_u16(u16::try_from(answer.status_code).unwrap_or(500)).unwrap_or(StatusCode::FORBIDDEN);
        return status(code, "");
    }
    let (sender, mut outgoing) = mpsc::unbounded_channel();
    sockets.0.lock().expect("the sockets' lock").insert(connection_id.clone(), sender);
    let disconnect = event(request, "$disconnect", "DISCONNECT", &connection_id, source_ip);
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            let mut socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            loop {
                tokio::select! {
                    out = outgoing.recv() => match out {
                        Some(Outgoing::Text(text)) => {
                            if socket.send(Message::text(text)).await.is_err() { break }
                        }
                        Some(Outgoing::Close) | None => {
                            let _ = socket.close(None).await;
                            break;
                        }
                    },
                    incoming = socket.next() => match incoming {
                        // Clients' messages go to `$default`, which takes none; pings are
                        // answered by the socket itself.
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                        Some(Ok(_)) => {}
                    },
                }
            }
        }
        sockets.0.lock().expect("the sockets' lock").remove(&connection_id);
        push::handle(app, disconnect).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header("sec-websocket-accept", key)
        .body(Body::Empty)
        .expect("a valid response")
}

/// The event API Gateway delivers for a WebSocket route.
fn event(
    request: &hyper::Request<()>,
    route: &str,
    kind: &str,
    connection_id: &str,
    source_ip: &str,
) -> aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest {
    let headers: HashMap<String, String> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let query: HashMap<String, String> = url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let now = time::OffsetDateTime::now_utc();
    let event = json!({
        "headers": headers,
        "queryStringParameters": if query.is_empty() { serde_json::Value::Null } else { json!(query) },
        "isBase64Encoded": false,
        "requestContext": {
            "routeKey": route,
            "eventType": kind,
            "connectionId": connection_id,
            "connectedAt": now.unix_timestamp() * 1000,
            "requestTimeEpoch": now.unix_timestamp() * 1000,
            "requestId": voice_core::domain::ids::random_hex::<8>(),
            "apiId": "local",
            "stage": "local",
            "domainName": request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1"),
            "messageDirection": "IN",
            "identity": { "sourceIp": source_ip },
        },
    });
    serde_json::from_value(event).expect("the WebSocket event's shape")
}

fn status(code: StatusCode, body: &str) -> Response<Body> {
    let body = if body.is_empty() { Body::Empty } else { Body::Text(body.to_owned()) };
    Response::builder().status(code).header(header::CONTENT_TYPE, "application/json").body(body).expect("a response")
}
