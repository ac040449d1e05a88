//! Live updates over WebSocket, through the local API as the WebSocket API: `$connect` takes a
//! good ticket once and an allowed origin only; what happens to a person reaches each of their
//! connections and no one else's; a connection found gone is forgotten; signing out and erasure
//! close what they must; the management API takes only the functions' signatures.

use std::time::Duration;

use futures_util::StreamExt;
use integration_tests::{TestApp, VOICE};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Error as WsError, Message, client::IntoClientRequest},
};
use voice_core::{domain::tiers::Tier, store::connections::Connection};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const ORIGIN: &str = "http://127.0.0.1:3001";

/// A ticket from `POST /push/tickets`, and the URL it is good for.
async fn ticket(app: &TestApp, user: &integration_tests::User) -> (String, String) {
    let response = app.post("/push/tickets", user, Some(&json!({}))).await;
    assert_eq!(response.status, 201, "{}", response.body);
    assert_eq!(response.body["expiresIn"], 30);
    let body = &response.body;
    (body["ticket"].as_str().unwrap().to_owned(), body["url"].as_str().unwrap().to_owned())
}

/// Opens `url?ticket=…` from `origin`: the socket, or the handshake's refusal status.
async fn open(url: &str, ticket: &str, origin: Option<&str>) -> Result<Socket, u16> {
    let mut request = format!("{url}?ticket={ticket}").into_client_request().unwrap();
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse().unwrap());
    }
    match connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("the handshake failed otherwise: {other}"),
    }
}

async fn connect(app: &TestApp, user: &integration_tests::User) -> Socket {
    let (ticket, url) = ticket(app, user).await;
    open(&url, &ticket, Some(ORIGIN)).await.expect("a good ticket from an allowed origin connects")
}

/// The next event on `socket`, or None when none comes within `wait`.
async fn next_event(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, socket.next()).await.ok()?? {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return Some(json!({ "closed": true })),
            Ok(_) => continue,
        }
    }
}

async fn connections_of(app: &TestApp, user: &integration_tests::User) -> Vec<Connection> {
    let (connections, _) = app.app.push.as_ref().unwrap();
    connections.of_user(&user.id, app.app.clock.now().unix_timestamp()).await.unwrap()
}

fn speech() -> Value {
    json!({ "voiceId": VOICE, "text": "Live updates reach every tab." })
}

#[tokio::test]
async fn a_ticket_opens_one_connection_once_and_only_from_an_allowed_origin() {
    let (app, live) = TestApp::builder().spawn_live().await;
    let user = app.sign_in(Tier::Free).await;

    let (ticket, url) = ticket(&app, &user).await;
    assert_eq!(url, format!("ws://{}/push", live.addr));
    let first = open(&url, &ticket, Some(ORIGIN)).await;
    assert!(first.is_ok(), "the ticket's first use connects");
    assert_eq!(open(&url, &ticket, Some(ORIGIN)).await.err(), Some(401), "a used ticket is refused");
    assert_eq!(open(&url, "made-up", Some(ORIGIN)).await.err(), Some(401), "an unknown ticket is refused");

    let (fresh, _) = self::ticket(&app, &user).await;
    assert_eq!(open(&url, &fresh, Some("https://elsewhere.example")).await.err(), Some(403), "another origin");
    assert_eq!(open(&url, &fresh, None).await.err(), Some(403), "no origin: no page of ours");
    let refused = app.request(http::Method::POST, "/push/tickets", &[], Some(&json!({}))).await;
    assert_eq!(refused.status, 401, "a ticket needs a session");

    let kept = connections_of(&app, &user).await;
    assert_eq!(kept.len(), 1, "only the accepted connection is kept: {kept:?}");
    assert_eq!(live.router.sockets().count(), 1);
}

#[tokio::test]
async fn a_generation_reaches_each_of_its_persons_connections_and_no_one_elses() {
    let (app, _live) = TestApp::builder().spawn_live().await;
    let (user, other) = (app.sign_in(Tier::Basic).await, app.sign_in(Tier::Basic).await);
    let (mut tab_a, mut tab_b, mut others) =
        (connect(&app, &user).await, connect(&app, &user).await, connect(&app, &other).await);

    let made = app.post("/tts", &user, Some(&speech())).await;
    assert_eq!(made.status, 201, "{}", made.body);
    for tab in [&mut tab_a, &mut tab_b] {
        let event = next_event(tab, Duration::from_secs(5)).await.expect("the usage is pushed");
        assert_eq!(event["type"], "usage.changed", "{event}");
        assert_eq!(event["usage"], made.body["usage"], "the usage the response shows");
        assert_eq!(event["usage"]["used"], 1);
    }
    // Streamed speech counts when its stream ends, and is pushed then (new text: the same again
    // would come from the generation cache, uncounted).
    let text = json!({ "voiceId": VOICE, "text": "And streamed speech reaches them too." });
    let streamed = app.post("/tts/stream", &user, Some(&text)).await;
    assert_eq!(streamed.status, 200, "{}", streamed.body);
    for tab in [&mut tab_a, &mut tab_b] {
        let event = next_event(tab, Duration::from_secs(5)).await.expect("the streamed generation's usage");
        assert_eq!((&event["type"], &event["usage"]["used"]), (&json!("usage.changed"), &json!(2)), "{event}");
    }
    assert_eq!(next_event(&mut others, Duration::from_millis(500)).await, None, "nothing reaches another person");
}

#[tokio::test]
async fn a_connection_found_gone_is_forgotten() {
    let (app, _live) = TestApp::builder().spawn_live().await;
    let user = app.sign_in(Tier::Basic).await;
    let mut open_tab = connect(&app, &user).await;
    // A row whose socket is gone (its $disconnect never came): the management API answers 410.
    let (connections, _) = app.app.push.as_ref().unwrap();
    let gone = Connection { connection_id: "gone+/A=".into(), user_id: user.id.clone(), session: "s".into() };
    connections.add(&gone, app.app.clock.now().unix_timestamp()).await.unwrap();
    assert_eq!(connections_of(&app, &user).await.len(), 2);

    assert_eq!(app.post("/tts", &user, Some(&speech())).await.status, 201);
    assert_eq!(next_event(&mut open_tab, Duration::from_secs(5)).await.unwrap()["type"], "usage.changed");
    let left: Vec<String> = connections_of(&app, &user).await.into_iter().map(|c| c.connection_id).collect();
    assert_eq!(left.len(), 1, "the gone one is forgotten, the open one kept: {left:?}");
    assert!(!left.contains(&gone.connection_id));
}

#[tokio::test]
async fn signing_out_closes_that_sessions_connections() {
    let (app, live) = TestApp::builder().spawn_live().await;
    let user = app.sign_in(Tier::Free).await;
    let mut socket = connect(&app, &user).await;
    assert_eq!(connections_of(&app, &user).await.len(), 1);

    let out = app.post("/auth/logout", &user, None).await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(next_event(&mut socket, Duration::from_secs(5)).await, Some(json!({ "closed": true })));
    assert!(connections_of(&app, &user).await.is_empty(), "the row is gone with the connection");
    for _ in 0..50 {
        if live.router.sockets().count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(live.router.sockets().count(), 0, "the socket is closed");
}

#[tokio::test]
async fn a_suspension_closes_every_connection_of_the_person() {
    let (app, _live) = TestApp::builder().spawn_live().await;
    let admin = app.sign_in(Tier::Free).await;
    app.set_user(&admin.id, &[("role", aws_sdk_dynamodb::types::AttributeValue::S("admin".into()))]).await;
    let target = app.sign_in(Tier::Free).await;
    let mut sockets = [connect(&app, &target).await, connect(&app, &target).await];
    let mut bystander = connect(&app, &admin).await;

    let path = format!("/admin/users/{}/suspend", target.id.as_str().replace('|', "%7C"));
    let suspended = app.post(&path, &admin, Some(&json!({ "reason": "chargeback fraud" }))).await;
    assert_eq!(suspended.status, 200, "{}", suspended.body);
    for socket in &mut sockets {
        assert_eq!(next_event(socket, Duration::from_secs(5)).await, Some(json!({ "closed": true })));
    }
    assert!(connections_of(&app, &target).await.is_empty());
    assert_eq!(next_event(&mut bystander, Duration::from_millis(300)).await, None, "the admin's stays open");
    assert_eq!(connections_of(&app, &admin).await.len(), 1);
}

#[tokio::test]
async fn erasure_closes_and_forgets_every_connection_and_no_ticket_outlives_it() {
    let (app, _live) = TestApp::builder().spawn_live().await;
    let user = app.sign_in(Tier::Free).await;
    let mut sockets = [connect(&app, &user).await, connect(&app, &user).await];
    let (late, url) = ticket(&app, &user).await;

    let erased = app.delete("/user", &user).await;
    assert_eq!((erased.status, &erased.body["status"]), (200, &json!("erased")), "{}", erased.body);
    for socket in &mut sockets {
        assert_eq!(next_event(socket, Duration::from_secs(5)).await, Some(json!({ "closed": true })));
    }
    assert!(connections_of(&app, &user).await.is_empty(), "no row names the person");
    assert_eq!(open(&url, &late, Some(ORIGIN)).await.err(), Some(401), "a ticket from before the erasure");
    assert!(connections_of(&app, &user).await.is_empty());
}

#[tokio::test]
async fn the_management_api_takes_only_a_functions_signature() {
    let (app, live) = TestApp::builder().spawn_live().await;
    let user = app.sign_in(Tier::Free).await;
    let _socket = connect(&app, &user).await;
    let id = connections_of(&app, &user).await.remove(0).connection_id;
    let url = format!(
        "http://{}/@connections/{}",
        live.addr,
        percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC)
    );

    let unsigned = reqwest::Client::new().post(&url).body("{}").send().await.unwrap();
    assert_eq!(unsigned.status(), 403);
    // Signed, but by the tests' own credentials, which no function has.
    let forged = reqwest::Client::new()
        .post(&url)
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIAFORGED/20261205/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
        .header("x-amz-date", "20261205T120000Z")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
}

#[tokio::test]
async fn the_sample_connect_event_is_judged_by_origin_then_ticket() {
    let app = TestApp::spawn().await;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/push-connect.json")).unwrap();
    let event: aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest = serde_json::from_str(&text).unwrap();
    let answer = push::handle(app.function("push"), event.clone()).await;
    assert_eq!(answer.status_code, 403, "the sample's origin is not one of the local stack's");

    let mut allowed = event;
    allowed.headers.insert("origin", ORIGIN.parse().unwrap());
    let answer = push::handle(app.function("push"), allowed).await;
    assert_eq!(answer.status_code, 401, "a ticket that was never issued");
}

/// botocore's SigV4 `Authorization` for the request, at `at` (unix seconds).
fn botocore_authorization(url: &str, body: &str, at: i64) -> String {
    let script = r#"
import datetime, sys
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
url, body, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
class At(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return cls.fromtimestamp(at, datetime.timezone.utc).replace(tzinfo=None)
    @classmethod
    def now(cls, tz=None):
        return cls.fromtimestamp(at, tz)
botocore.auth.datetime.datetime = At
request = AWSRequest(method="POST", url=url, data=body.encode())
credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "a-session-token")
botocore.auth.SigV4Auth(credentials, "execute-api", "eu-west-1").add_auth(request)
print(request.headers["Authorization"])
"#;
    let python = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.local/venv/bin/python"));
    let output = std::process::Command::new(python)
        .args(["-c", script, url, body, &at.to_string()])
        .output()
        .expect("the stack's Python (local/stack.sh installs it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_management_api_signature_is_the_one_botocore_computes() {
    use voice_core::{
        config::{AwsCredentials, AwsSettings, Secret},
        upstream::{outbound::LazyClient, push::Gateway},
    };
    let aws = AwsSettings {
        region: "eu-west-1".into(),
        credentials: AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: Some(Secret::new("a-session-token".into())),
        },
        endpoint_url: None,
        s3_force_path_style: false,
        ssm_endpoint_url: None,
        s3_endpoint_url: None,
    };
    let endpoint = "https://abc123.execute-api.eu-west-1.amazonaws.com/live".parse().unwrap();
    let gateway = Gateway::new(LazyClient::default(), endpoint, &aws);
    // An id as API Gateway makes them, `=` and all: the path is encoded once in the URL and again
    // in SigV4's canonical request.
    let url = gateway.url("P8ZnHdMYoAMCJZw=");
    let (body, at) = (r#"{"type":"usage.changed"}"#, 1_796_472_000);
    let ours = gateway.signed("POST", &url, body.as_bytes(), std::time::UNIX_EPOCH + Duration::from_secs(at)).unwrap();
    let authorization = &ours.iter().find(|(name, _)| name == "authorization").unwrap().1;
    assert_eq!(authorization, &botocore_authorization(&url, body, at as i64));
    assert!(ours.iter().any(|(name, value)| name == "x-amz-security-token" && value == "a-session-token"));
}

#[tokio::test]
async fn every_member_hears_of_a_join_a_role_and_a_removal_and_the_removed_one_too() {
    let (app, _live) = TestApp::builder().spawn_live().await;
    let (owner, member) = (app.sign_in(Tier::Basic).await, app.sign_in(Tier::Free).await);
    let workspace = crate::workspaces::new_workspace(&app, &owner, "Live team").await;
    let (mut owners, mut members) = (connect(&app, &owner).await, connect(&app, &member).await);
    let expect = |change: &str, role: Value| {
        let mut event = json!({ "type": "workspace.changed", "workspaceId": workspace, "change": change,
                                "userId": member.id.as_str() });
        if !role.is_null() {
            event["role"] = role;
        }
        event
    };

    crate::workspaces::join(&app, &owner, &workspace, &member, "MEMBER").await;
    for tab in [&mut owners, &mut members] {
        assert_eq!(next_event(tab, Duration::from_secs(5)).await, Some(expect("joined", json!("MEMBER"))));
    }
    let path = format!("/workspaces/{workspace}/members/{}", member.id.as_str().replace('|', "%7C"));
    assert_eq!(app.patch(&path, &owner, &json!({ "role": "ADMIN" })).await.status, 200);
    for tab in [&mut owners, &mut members] {
        assert_eq!(next_event(tab, Duration::from_secs(5)).await, Some(expect("role", json!("ADMIN"))));
    }
    assert_eq!(app.delete(&path, &owner).await.status, 200);
    for tab in [&mut owners, &mut members] {
        assert_eq!(next_event(tab, Duration::from_secs(5)).await, Some(expect("removed", Value::Null)));
    }
    // No longer a member: the next change is not theirs to hear.
    crate::workspaces::join(&app, &owner, &workspace, &app.sign_in(Tier::Free).await, "VIEWER").await;
    assert_eq!(next_event(&mut owners, Duration::from_secs(5)).await.unwrap()["change"], "joined");
    assert_eq!(next_event(&mut members, Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn a_clone_made_in_one_tab_is_announced_to_the_others() {
    let (app, _live) = TestApp::builder().spawn_live().await;
    let user = app.sign_in(Tier::Basic).await;
    let mut other_tab = connect(&app, &user).await;
    let sample = crate::voices::upload_sample(&app, &user, integration_tests::SAMPLE_MP3).await;
    let name = integration_tests::unique("voice-");
    let made = app.post("/voices", &user, Some(&crate::voices::clone_body(&name, &[sample]))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let event = next_event(&mut other_tab, Duration::from_secs(5)).await;
    assert_eq!(event, Some(json!({ "type": "voice.ready", "voiceId": made.body["voiceId"], "name": name })));
}

#[tokio::test]
async fn one_ticket_shown_by_five_handshakes_at_once_opens_one_connection() {
    let (app, _live) = TestApp::builder().spawn_live().await;
    let user = app.sign_in(Tier::Free).await;
    let (ticket, url) = ticket(&app, &user).await;
    let tries = (0..5).map(|_| open(&url, &ticket, Some(ORIGIN)));
    let outcomes = futures_util::future::join_all(tries).await;
    let opened = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let refused: Vec<u16> = outcomes.iter().filter_map(|outcome| outcome.as_ref().err().copied()).collect();
    assert_eq!((opened, refused), (1, vec![401; 4]));
    assert_eq!(connections_of(&app, &user).await.len(), 1);
}

#[tokio::test]
async fn every_member_hears_that_team_arrived() {
    let (app, _live) = TestApp::builder().spawn_live().await;
    let (owner, member) = (app.sign_in(Tier::Free).await, app.sign_in(Tier::Free).await);
    let workspace = crate::workspaces::new_workspace(&app, &owner, "Paying team").await;
    crate::workspaces::join(&app, &owner, &workspace, &member, "MEMBER").await;
    let (mut owners, mut members) = (connect(&app, &owner).await, connect(&app, &member).await);
    let subscription = crate::seats::buy_team(&app, &owner, &workspace, 6).await;

    // Stripe's event about it, through the webhook route as Stripe sends it.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let payload = json!({ "id": integration_tests::unique("evt_team_"), "object": "event",
        "type": "customer.subscription.created", "created": now,
        "data": { "object": { "id": subscription, "object": "subscription" } } })
    .to_string();
    let signed = voice_core::upstream::stripe::signature::header(&app.webhook_secret().await, now, payload.as_bytes());
    let delivered = app.deliver(&payload, Some(&signed)).await;
    assert_eq!(delivered.status, 200, "{}", delivered.body);

    let expected = json!({ "type": "workspace.seats", "workspaceId": workspace, "status": "active", "seats": 6,
                           "billedSeats": 2 });
    for tab in [&mut owners, &mut members] {
        assert_eq!(next_event(tab, Duration::from_secs(5)).await, Some(expected.clone()));
    }
}
