//! Test harness: the real handlers, routed the way template.yaml routes them, against the local
//! stack (moto, redis-server, …). Every test gets its own users and sessions (random ids), so
//! tests run in parallel and never see each other's data. Run through `make test`, which starts
//! the stack and loads its environment.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use http::{HeaderMap, Method};
use lambda_http::{Body, http::Request};
use local_api::Router;
use rand::RngCore;
use redis::AsyncCommands;
use serde_json::Value;
use shared::{
    App,
    auth::{
        SessionToken,
        session::{COOKIE_NAME, ClientInfo, redis_key},
    },
    clock::Clock,
    config::{Config, Secret},
    ids::UserId,
    tiers::Tier,
    users::Profile,
};

pub const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");

/// An address where nothing listens: a store that is "down".
pub const DEAD_ENDPOINT: &str = "http://127.0.0.1:1";

pub struct TestApp {
    pub app: Arc<App>,
    router: Router,
}

/// Builds a [`TestApp`] from the stack's configuration, optionally bent.
pub struct Builder {
    config: Config,
    clock: Clock,
}

impl Builder {
    pub fn config(mut self, adjust: impl FnOnce(&mut Config)) -> Self {
        adjust(&mut self.config);
        self
    }

    /// Redis unreachable (its URL points where nothing listens).
    pub fn redis_down(self) -> Self {
        self.config(|c| c.redis_url = Secret::new("redis://127.0.0.1:1".into()))
    }

    /// DynamoDB and S3 unreachable.
    pub fn aws_down(self) -> Self {
        self.config(|c| c.aws.endpoint_url = Some(DEAD_ENDPOINT.parse().unwrap()))
    }

    /// The app's clock runs this far ahead of real time.
    pub fn later(mut self, by: time::Duration) -> Self {
        self.clock = Clock::shifted(by);
        self
    }

    pub async fn spawn(self) -> TestApp {
        let app = Arc::new(App::new(self.config, self.clock).await.expect("the app builds"));
        let router = Router::from_template_file(app.clone(), TEMPLATE).expect("template routes match the local API");
        TestApp { app, router }
    }
}

/// A user signed in through the same library call the sign-in callback makes.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub token: SessionToken,
    pub csrf: String,
}

impl User {
    pub fn cookie(&self) -> String {
        format!("{COOKIE_NAME}={}", self.token.expose())
    }

    pub fn session_key(&self) -> String {
        self.token.key()
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestResponse {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error body: {}", self.body))
    }

    pub fn set_cookie(&self) -> Option<&str> {
        self.headers.get("set-cookie").and_then(|v| v.to_str().ok())
    }
}

pub fn stack_config() -> Config {
    Config::from_env().unwrap_or_else(|e| panic!("{e}: run the tests with `make test`, which starts the local stack"))
}

pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{suffix}")
}

impl TestApp {
    pub fn builder() -> Builder {
        Builder { config: stack_config(), clock: Clock::system() }
    }

    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// A new user with a live session, at the given tier.
    pub async fn sign_in(&self, tier: Tier) -> User {
        let id = UserId::parse(unique("auth0|test-")).unwrap();
        let email = format!("{}@example.test", unique("user-"));
        let profile = Profile { user_id: id.clone(), email: email.clone(), name: Some("Test User".into()) };
        let client = ClientInfo { ip_address: Some("127.0.0.1".into()), user_agent: Some("harness".into()) };
        let signed = self.app.sign_in(&profile, &client).await.expect("sign-in works");
        if tier != Tier::Free {
            self.set_user(&id, &[("subscriptionTier", AttributeValue::S(tier.as_str().into()))]).await;
        }
        User { id, email, csrf: signed.token.csrf_token(), token: signed.token }
    }

    /// Sets attributes of a user row directly (standing in for features that write them).
    pub async fn set_user(&self, id: &UserId, fields: &[(&str, AttributeValue)]) {
        let mut update = self
            .app
            .dynamodb
            .update_item()
            .table_name(&self.app.config.tables.users)
            .key("userId", AttributeValue::S(id.to_string()));
        let mut sets = Vec::new();
        for (i, (name, value)) in fields.iter().enumerate() {
            sets.push(format!("#f{i} = :v{i}"));
            update = update
                .expression_attribute_names(format!("#f{i}"), *name)
                .expression_attribute_values(format!(":v{i}"), value.clone());
        }
        update.update_expression(format!("SET {}", sets.join(", "))).send().await.expect("user update");
    }

    pub async fn session_item(&self, user: &User) -> Option<std::collections::HashMap<String, AttributeValue>> {
        self.app
            .dynamodb
            .get_item()
            .table_name(&self.app.config.tables.sessions)
            .key("sessionId", AttributeValue::S(user.session_key()))
            .consistent_read(true)
            .send()
            .await
            .expect("session read")
            .item
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(stack_config().redis_url.expose().as_str()).unwrap();
        client.get_multiplexed_async_connection().await.expect("redis is up")
    }

    pub async fn cached_session(&self, user: &User) -> Option<String> {
        self.redis().await.get(redis_key(&user.session_key())).await.unwrap()
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path).header("user-agent", "integration-tests");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let response = self.router.dispatch(builder.body(bytes.into()).unwrap(), "127.0.0.1").await;
        let (parts, body) = response.into_parts();
        let body = match body {
            Body::Empty => Value::Null,
            Body::Text(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
            Body::Binary(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        TestResponse { status: parts.status.as_u16(), headers: parts.headers, body }
    }

    pub async fn get(&self, path: &str, user: &User) -> TestResponse {
        self.request(Method::GET, path, &[("cookie", &user.cookie())], None).await
    }

    /// A state-changing request carrying the user's CSRF token, as the frontend sends it.
    pub async fn post(&self, path: &str, user: &User, body: Option<&Value>) -> TestResponse {
        self.request(Method::POST, path, &[("cookie", &user.cookie()), ("x-csrf-token", &user.csrf)], body).await
    }
}
