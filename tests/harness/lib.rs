//! Test harness: the real handlers, routed the way template.yaml routes them, against the local
//! stack (moto, redis-server, …). Every test gets its own users and sessions (random ids), so
//! tests run in parallel and never see each other's data. Run through `make test`, which starts
//! the stack and loads its environment.

pub mod elevenlabs;
pub mod fake_idp;
pub mod fault;
pub mod idp;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use http::{HeaderMap, Method};
use lambda_http::{Body, http::Request, lambda_runtime::streaming::Body as StreamBody};
use local_api::{Apps, Environments, Router};
use redis::AsyncCommands;
use serde_json::Value;
use voice_core::{
    App,
    clock::Clock,
    config::{Config, Secret},
    domain::{
        ids::{Email, UserId, random_hex},
        session::{COOKIE_NAME, ClientInfo, SessionToken},
        tiers::Tier,
        user::Profile,
    },
    flows::signin::{SignedIn, open_session},
    store::{aws, sessions::redis_key},
};

pub const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
pub const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");

/// The audio the ElevenLabs stand-in returns for every generation.
pub const SAMPLE_MP3: &[u8] = include_bytes!("../../local/standins/sample.mp3");

/// A voice the ElevenLabs stand-in lists.
pub const VOICE: &str = "21m00Tcm4TlvDq8ikWAM";

/// An address where nothing listens: a store that is "down".
pub const DEAD_ENDPOINT: &str = "http://127.0.0.1:1";

pub struct TestApp {
    /// The tests' own app, with the stack's (Globals) configuration and the harness's own
    /// credentials: what a test arranges or checks directly goes through it.
    pub app: Arc<App>,
    /// Raw clients for what tests check or arrange behind the adapters' backs.
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    /// Each function's own app, as deployed (its template environment, its role), with the
    /// test's adjustments: requests and direct invocations of a function run with it.
    functions: Apps,
    router: Router,
    /// The address requests come from: one per TestApp, so per-IP limits never cross tests.
    pub client_ip: String,
}

/// An adjustment of the configuration, made to the tests' own and to every function's.
type Adjustment = Box<dyn Fn(&mut Config) + Send + Sync>;

/// Builds a [`TestApp`] from the stack's configuration, optionally bent.
pub struct Builder {
    adjustments: Vec<Adjustment>,
    clock: Clock,
    timeout: Option<std::time::Duration>,
}

impl Builder {
    /// Bends the configuration of the tests' app and of every function's the same way.
    pub fn config(mut self, adjust: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        self.adjustments.push(Box::new(adjust));
        self
    }

    /// Redis unreachable (its URL points where nothing listens).
    pub fn redis_down(self) -> Self {
        self.config(|c| c.redis_url = Secret::new("redis://127.0.0.1:1".into()))
    }

    /// DynamoDB and S3 unreachable. SSM still answers: in AWS a function's secrets were fetched
    /// at its cold start, long before such an outage.
    pub fn aws_down(self) -> Self {
        self.config(|c| {
            c.aws.ssm_endpoint_url = c.aws.endpoint_url.clone();
            c.aws.endpoint_url = Some(DEAD_ENDPOINT.parse().unwrap());
        })
    }

    /// As [`Builder::spawn`], with the local API served on an ephemeral port as the WebSocket API
    /// of live updates (`ws://{addr}/push`, management at `http://{addr}`): the functions push to
    /// it, and [`Live`] opens connections to it.
    pub async fn spawn_live(self) -> (TestApp, Live) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self
            .config(move |config| {
                let push = config.push.as_mut().expect("the stack configures live updates");
                push.endpoint = format!("http://{addr}").parse().unwrap();
                push.public_url = format!("ws://{addr}{}", local_api::push::PATH).parse().unwrap();
            })
            .spawn()
            .await;
        let router = Arc::new(Router::from_template_file(app.functions.clone(), TEMPLATE).unwrap());
        tokio::spawn(local_api::serve(router.clone(), listener));
        (app, Live { addr, router })
    }

    /// Every invocation gets this much time (Lambda's deadline) instead of its function's timeout.
    pub fn function_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The app's clock runs this far ahead of real time.
    pub fn later(mut self, by: time::Duration) -> Self {
        self.clock = Clock::shifted(by);
        self
    }

    /// The app's clock starts a second into a new minute, so that a test of per-minute limits
    /// has the whole window (the counters are keyed by the app's minute).
    pub fn at_a_minutes_start(self) -> Self {
        let second = i64::from(time::OffsetDateTime::now_utc().second());
        self.later(time::Duration::seconds(61 - second))
    }

    pub async fn spawn(self) -> TestApp {
        let adjust = |config: &mut Config| self.adjustments.iter().for_each(|adjustment| adjustment(config));
        let mut config = stack_config();
        adjust(&mut config);
        let sdk = aws::sdk_config(&config.aws);
        let (dynamodb, s3) = (aws::dynamodb(&sdk), aws::s3(&sdk, &config.aws));
        let app = Arc::new(App::new(config, self.clock).await.expect("the app builds"));
        let functions = Apps::build(environments(), self.clock, |_, config| adjust(config))
            .await
            .expect("every function's template environment is complete");
        let mut router =
            Router::from_template_file(functions.clone(), TEMPLATE).expect("template routes match the local API");
        if let Some(timeout) = self.timeout {
            router = router.with_timeout(timeout);
        }
        let [a, b, c] = rand::random::<[u8; 3]>();
        TestApp { app, dynamodb, s3, functions, router, client_ip: format!("10.{a}.{b}.{c}") }
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

    /// Where Redis keeps this user's session entry.
    pub fn redis_key(&self) -> String {
        redis_key(self.token.slot(), &self.token.key())
    }
}

/// A streamed answer: read its body with `next_chunk`.
pub struct StreamedResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: StreamBody,
}

impl StreamedResponse {
    /// The next chunk of audio; None at the stream's clean end; Err if it ended in an error.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        use http_body_util::BodyExt;
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(error)) => return Err(error.to_string()),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data.to_vec()));
                    }
                }
            }
        }
    }

    /// The rest of the body as JSON (an error answer).
    pub async fn json(mut self) -> Value {
        let mut bytes = Vec::new();
        while let Ok(Some(chunk)) = self.next_chunk().await {
            bytes.extend(chunk);
        }
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
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

    /// The full `Set-Cookie` line that sets `name`, if any.
    pub fn cookie_line(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|line| line.starts_with(&format!("{name}=")))
    }

    /// `name=value` as a `Cookie` header would carry it, if the response set a non-empty value.
    pub fn cookie_pair(&self, name: &str) -> Option<String> {
        let pair = self.cookie_line(name)?.split(';').next()?;
        (pair.len() > name.len() + 1).then(|| pair.to_owned())
    }

    pub fn location(&self) -> url::Url {
        let raw = self.headers.get("location").unwrap_or_else(|| panic!("no location ({})", self.status));
        raw.to_str().unwrap().parse().unwrap()
    }
}

/// A login begun at GET /auth/login.
#[derive(Debug, Clone)]
pub struct Login {
    pub authorization_url: url::Url,
    pub state: String,
    pub nonce: String,
    /// `oidc_state=…`, as the browser sends it back to the callback.
    pub state_cookie: String,
}

/// GETs a (presigned) URL; status and bytes.
pub async fn download(url: &str) -> (u16, Vec<u8>) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}

pub fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Waits until `done` holds, looking every 50 ms, for at most `within`; whether it came to hold.
pub async fn eventually<F: Future<Output = bool>>(within: std::time::Duration, mut done: impl FnMut() -> F) -> bool {
    let until = std::time::Instant::now() + within;
    loop {
        if done().await {
            return true;
        }
        if std::time::Instant::now() > until {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A TestApp on its own ElevenLabs account at the stand-in (its own key, holding `held` custom
/// voices), believing the account holds `configured`; the account's name.
pub async fn with_own_elevenlabs_account(held: u32, configured: u32) -> (TestApp, String) {
    let limits = elevenlabs::AccountLimits { voice_slots: Some(held), ..Default::default() };
    with_elevenlabs_account_limited(limits, configured).await
}

/// A TestApp on an ElevenLabs stand-in account of its own with `limits`; the account's name.
/// `configured` is the slot count the app is told (ELEVENLABS_VOICE_SLOTS); the concurrency it
/// is told is the account's.
pub async fn with_elevenlabs_account_limited(limits: elevenlabs::AccountLimits, configured: u32) -> (TestApp, String) {
    let account = elevenlabs_account(&limits).await;
    let app = TestApp::builder()
        .config(account.configure())
        .config(move |c| {
            let primary = &mut c.voice.elevenlabs_accounts[0];
            primary.voice_slots = configured;
            if let Some(concurrency) = limits.concurrency {
                primary.concurrency = concurrency;
            }
        })
        .spawn()
        .await;
    (app, account.name)
}

/// An ElevenLabs stand-in account of a test's own: its name, and the key parameter that reaches it.
pub struct ElevenLabsAccount {
    pub name: String,
    parameter: String,
}

impl ElevenLabsAccount {
    /// This account as the configuration lists it, with the concurrency and slots the app is told.
    pub fn listed(&self, concurrency: u32, voice_slots: u32) -> voice_core::config::ElevenLabsAccount {
        voice_core::config::ElevenLabsAccount {
            name: self.name.clone(),
            key_parameter: Some(self.parameter.clone()),
            voice_slots,
            concurrency,
        }
    }

    /// Points a configuration at this account alone (the concurrency and slots it is told stay).
    pub fn configure(&self) -> impl Fn(&mut Config) + Send + Sync + 'static {
        let (name, parameter) = (self.name.clone(), self.parameter.clone());
        move |c| {
            let primary = &mut c.voice.elevenlabs_accounts[0];
            c.voice.elevenlabs_accounts = vec![voice_core::config::ElevenLabsAccount {
                name: name.clone(),
                key_parameter: Some(parameter.clone()),
                ..primary.clone()
            }];
        }
    }
}

/// A new account at the ElevenLabs stand-in with `limits`, and its key stored in SSM.
pub async fn elevenlabs_account(limits: &elevenlabs::AccountLimits) -> ElevenLabsAccount {
    let name = unique("acct-");
    let config = stack_config();
    // Where the template keeps the keys of accounts beyond the primary one.
    let parameter = format!("{}/{name}", config.voice.elevenlabs_accounts[0].key_parameter.as_deref().unwrap());
    let sdk = voice_core::store::aws::sdk_config(&config.aws);
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&parameter)
        .value(format!("xi-local-key:{name}"))
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let url = config.voice.elevenlabs_base.join(&format!("_test/accounts/{name}")).unwrap();
    let configured_at_standin = reqwest::Client::new().post(url).json(limits).send().await.unwrap();
    assert!(configured_at_standin.status().is_success());
    ElevenLabsAccount { name, parameter }
}

/// Every function's environment as the stack resolved it (read once per test process).
pub fn environments() -> &'static Environments {
    static ENVIRONMENTS: std::sync::OnceLock<Environments> = std::sync::OnceLock::new();
    ENVIRONMENTS.get_or_init(|| {
        Environments::from_env()
            .unwrap_or_else(|e| panic!("{e:#}: run the tests with `make test`, which starts the local stack"))
    })
}

pub fn stack_config() -> Config {
    Config::from_env().unwrap_or_else(|e| panic!("{e}: run the tests with `make test`, which starts the local stack"))
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", random_hex::<8>())
}

/// The local API serving the WebSocket API of a [`Builder::spawn_live`] app.
pub struct Live {
    pub addr: std::net::SocketAddr,
    pub router: Arc<Router>,
}

impl TestApp {
    pub fn builder() -> Builder {
        Builder { adjustments: Vec::new(), clock: Clock::system(), timeout: None }
    }

    /// The app `binary` runs with (its own environment and role), for invoking a scheduled or
    /// stream function's handler directly.
    pub fn function(&self, binary: &str) -> &'static App {
        self.functions.get(binary)
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
        let profile =
            Profile { user_id: id.clone(), email: Email::parse(&email).unwrap(), name: Some("Test User".into()) };
        let client = ClientInfo { ip_address: Some("127.0.0.1".into()), user_agent: Some("harness".into()) };
        let signed = self.open_session(&profile, &client).await.expect("sign-in works");
        if tier != Tier::Free {
            self.set_user(&id, &[("subscriptionTier", AttributeValue::S(tier.as_str().into()))]).await;
        }
        User { id, email, csrf: signed.token.csrf_token(), token: signed.token }
    }

    /// Signs a verified profile in, the way the callback does after checking the ID token.
    pub async fn open_session(&self, profile: &Profile, client: &ClientInfo) -> anyhow::Result<SignedIn> {
        // As if the IdP had just asked for the credentials.
        let now = self.app.clock.now();
        Ok(open_session(&self.app.users, &self.app.sessions, profile, client, Some(now.unix_timestamp()), now).await?)
    }

    /// Sets attributes of a user row directly (standing in for features that write them).
    pub async fn set_user(&self, id: &UserId, fields: &[(&str, AttributeValue)]) {
        let mut update = self
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
        // Written past the store, as an operator's console would: the snapshot must go too.
        self.app.users.snapshots().forget(id).await;
    }

    /// An item of `table` as stored, read strongly consistent.
    pub async fn stored_item(
        &self,
        table: &str,
        key: &[(&str, &str)],
    ) -> Option<std::collections::HashMap<String, AttributeValue>> {
        let key = key.iter().map(|(name, value)| ((*name).to_owned(), AttributeValue::S((*value).to_owned())));
        self.dynamodb
            .get_item()
            .table_name(table)
            .set_key(Some(key.collect()))
            .consistent_read(true)
            .send()
            .await
            .expect("an item read")
            .item
    }

    pub async fn session_item(&self, user: &User) -> Option<std::collections::HashMap<String, AttributeValue>> {
        self.dynamodb
            .get_item()
            .table_name(&self.app.config.tables.sessions)
            .key("sessionId", AttributeValue::S(user.session_key()))
            .consistent_read(true)
            .send()
            .await
            .expect("session read")
            .item
    }

    /// The app's own (authenticated) Redis connection.
    pub async fn redis(&self) -> redis::aio::ConnectionManager {
        self.app.redis.conn().await.expect("redis is up")
    }

    pub async fn cached_session(&self, user: &User) -> Option<String> {
        self.redis().await.get(user.redis_key()).await.unwrap()
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> TestResponse {
        let mut all = vec![("user-agent", "integration-tests")];
        all.extend_from_slice(headers);
        if body.is_some() {
            all.push(("content-type", "application/json"));
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.request_raw(method, path, &all, bytes).await
    }

    pub async fn start_login(&self, return_to: Option<&str>) -> Login {
        let path = match return_to {
            Some(to) => format!(
                "/auth/login?returnTo={}",
                url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>()
            ),
            None => "/auth/login".to_owned(),
        };
        self.login_at(&path).await
    }

    /// `GET /auth/login?reauthenticate=true`: a login that asks the IdP for the credentials again.
    pub async fn start_reauthentication(&self) -> Login {
        self.login_at("/auth/login?reauthenticate=true").await
    }

    async fn login_at(&self, path: &str) -> Login {
        let response = self.request(Method::GET, path, &[], None).await;
        assert_eq!(response.status, 302, "{}", response.body);
        let authorization_url = response.location();
        Login {
            state: query_param(&authorization_url, "state").expect("state"),
            nonce: query_param(&authorization_url, "nonce").expect("nonce"),
            state_cookie: response.cookie_pair("oidc_state").expect("a state cookie"),
            authorization_url,
        }
    }

    /// GET /auth/callback with the IdP's query string, as the browser (with `cookie`) sends it.
    pub async fn callback(&self, query: &str, cookie: Option<&str>) -> TestResponse {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        self.request(Method::GET, &format!("/auth/callback?{query}"), &headers, None).await
    }

    /// The whole sign-in through the oidc-provider stand-in; returns the callback's response.
    pub async fn sign_in_through_idp(&self, person: &idp::Person<'_>, return_to: Option<&str>) -> TestResponse {
        let login = self.start_login(return_to).await;
        let back = idp::sign_in(&login.authorization_url, &self.app.config.idp.callback_url, person).await;
        self.callback(back.query().unwrap_or(""), Some(&login.state_cookie)).await
    }

    pub async fn user_row(&self, id: &str) -> Option<voice_core::domain::user::User> {
        self.app.users.get(&UserId::parse(id).unwrap()).await.unwrap()
    }

    /// The templated emails moto's SES recorded for `to` (moto keeps every sent message).
    pub async fn emails_to(&self, to: &str) -> Vec<Value> {
        let for_to = |m: &Value| m["destinations"]["ToAddresses"].as_array().is_some_and(|a| a.iter().any(|a| a == to));
        self.emails().await.into_iter().filter(for_to).collect()
    }

    /// Every templated email moto's SES recorded (`local/standins/moto_local.py` lists them).
    pub async fn emails(&self) -> Vec<Value> {
        let endpoint = self.app.config.aws.endpoint_url.as_ref().expect("the local stack's moto");
        reqwest::get(endpoint.join("_local/ses/templated").unwrap()).await.unwrap().json().await.unwrap()
    }

    /// What the ElevenLabs stand-in received for `voice_id` (use a unique id per test).
    pub async fn upstream_requests(&self, voice_id: &str) -> Vec<Value> {
        self.elevenlabs().requests(voice_id).await
    }

    /// The ElevenLabs stand-in's control endpoint.
    pub fn elevenlabs(&self) -> elevenlabs::ElevenLabsStandIn {
        elevenlabs::ElevenLabsStandIn { base: self.app.config.voice.elevenlabs_base.clone() }
    }

    pub async fn counter(&self, user: &User) -> (u32, Option<String>) {
        let row = self.app.users.get(&user.id).await.unwrap().unwrap();
        (row.recordings_this_month, row.usage_period.map(|p| p.to_string()))
    }

    pub async fn patch(&self, path: &str, user: &User, body: &Value) -> TestResponse {
        self.request(Method::PATCH, path, &[("cookie", &user.cookie()), ("x-csrf-token", &user.csrf)], Some(body)).await
    }

    pub async fn delete(&self, path: &str, user: &User) -> TestResponse {
        self.request(Method::DELETE, path, &[("cookie", &user.cookie()), ("x-csrf-token", &user.csrf)], None).await
    }

    /// Serves this app's routes over HTTP on an ephemeral port (for webhooks from the Stripe
    /// stand-ins) and registers that URL with them under a unique id.
    pub async fn receive_stripe_webhooks(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = Arc::new(Router::from_template_file(self.functions.clone(), TEMPLATE).unwrap());
        tokio::spawn(local_api::serve(router, listener));
        let secret = self.webhook_secret().await;
        let form = [("url", format!("{base}/billing/webhook")), ("secret", secret)];
        let url = self.stripe_url(&format!("_config/webhooks/{}", unique("test-")));
        let response = reqwest::Client::new().post(url).form(&form).send().await.unwrap();
        assert!(response.status().is_success(), "webhook registration: {}", response.status());
        base
    }

    pub async fn webhook_secret(&self) -> String {
        self.app.stripe_webhook_secrets().await.unwrap()[0].expose().clone()
    }

    pub fn stripe_url(&self, path: &str) -> url::Url {
        self.app.config.stripe.api_base.join(path).unwrap()
    }

    /// A request of the tests' own setup to (local) Stripe, with the test key. It speaks
    /// localstripe's older API and says so (`Test-Setup`), so that the stand-in does not hold it
    /// to the current API's contract as it holds the backend's requests.
    pub fn stripe_setup(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, self.stripe_url(path))
            .bearer_auth("sk_test_local")
            .header("test-setup", "localstripe")
    }

    /// A form POST to (local) Stripe, as test setup; the JSON answer.
    pub async fn stripe_post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let response = self.stripe_setup(Method::POST, path).form(form).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "Stripe {path}: {status} {body}");
        body
    }

    pub async fn stripe_get(&self, path: &str) -> Value {
        self.stripe_setup(Method::GET, path).send().await.unwrap().json().await.unwrap()
    }

    /// Makes a test card the customer's default payment method.
    pub async fn add_card(&self, customer: &str, number: &str) {
        let card = [
            ("type", "card"),
            ("card[number]", number),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2034"),
            ("card[cvc]", "123"),
        ];
        let method = self.stripe_post("v1/payment_methods", &card).await;
        let method = method["id"].as_str().unwrap();
        self.stripe_post(&format!("v1/payment_methods/{method}/attach"), &[("customer", customer)]).await;
        self.stripe_post(&format!("v1/customers/{customer}"), &[("invoice_settings[default_payment_method]", method)])
            .await;
    }

    pub async fn stripe_delete(&self, path: &str) -> Value {
        self.stripe_setup(Method::DELETE, path).send().await.unwrap().json().await.unwrap()
    }

    /// POST /billing/webhook as Stripe would send it.
    pub async fn deliver(&self, payload: &str, signature: Option<&str>) -> TestResponse {
        let headers: Vec<(&str, &str)> = signature.map(|s| ("stripe-signature", s)).into_iter().collect();
        self.request_raw(Method::POST, "/billing/webhook", &headers, payload.as_bytes().to_vec()).await
    }

    /// Waits (up to 20 s) until `done` holds for GET /auth/session: webhooks arrive asynchronously.
    pub async fn session_until(&self, user: &User, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let body = self.get("/auth/session", user).await.body;
            if done(&body) || std::time::Instant::now() > deadline {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    pub async fn request_raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = self.router.dispatch(builder.body(body.into()).unwrap(), &self.client_ip).await;
        let (parts, body) = response.into_parts();
        let body = match body {
            Body::Empty => Value::Null,
            Body::Text(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
            Body::Binary(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        TestResponse { status: parts.status.as_u16(), headers: parts.headers, body }
    }

    /// A POST whose answer may stream (`POST /tts/stream`): status and headers as soon as the
    /// function answers, the body as it is produced.
    pub async fn stream(&self, path: &str, user: &User, body: &Value) -> StreamedResponse {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("user-agent", "integration-tests")
            .header("content-type", "application/json")
            .header("cookie", user.cookie())
            .header("x-csrf-token", &user.csrf)
            .body(body.to_string().into_bytes().into())
            .unwrap();
        let response = self.router.dispatch_streaming(request, &self.client_ip).await;
        let (parts, body) = response.into_parts();
        StreamedResponse { status: parts.status.as_u16(), headers: parts.headers, body }
    }

    /// A GET as the web client sends it: the cookie, and the CSRF header (which the admin area
    /// asks for on reads too).
    pub async fn get(&self, path: &str, user: &User) -> TestResponse {
        self.request(Method::GET, path, &[("cookie", &user.cookie()), ("x-csrf-token", &user.csrf)], None).await
    }

    /// A state-changing request carrying the user's CSRF token, as the frontend sends it.
    pub async fn post(&self, path: &str, user: &User, body: Option<&Value>) -> TestResponse {
        self.request(Method::POST, path, &[("cookie", &user.cookie()), ("x-csrf-token", &user.csrf)], body).await
    }
}
