//! The one router every HTTP function runs behind. A function declares its routes once, as a
//! table of API Gateway route keys (`"GET /recordings/{id}"`) and handlers; [`serve`] dispatches
//! on the event's `routeKey` (never the raw path, which carries the stage name under a named
//! stage) and owns what every route shares: the request id, authentication (the session cookie),
//! CSRF, the rate limits, and the mapping of errors to responses.
//!
//! Rate limits: every authenticated request (but sign-out) counts against the caller's per-tier
//! `requests_per_minute`; a route that costs money upstream also against its own per-tier limit
//! (`rate_limit: Generations`); a public route may be limited per client IP (`per_ip: 20`). All
//! answer 429 RATE_LIMITED with `Retry-After`.

use std::{future::Future, pin::Pin};

use lambda_http::{
    Body, Request, RequestExt, Response, lambda_runtime::streaming::Body as StreamBody, request::RequestContext,
};

use crate::{
    App,
    clock::Deadline,
    domain::usage::UsagePeriod,
    domain::{
        roles::Permission,
        session::{COOKIE_NAME, Session, SessionToken, user_slot},
        tiers::{Limit, Uncounted},
        user::User,
    },
    error::ApiError,
    http::{
        HttpResult, csrf,
        request::{cookie, source_ip},
    },
    store::{api_keys::KeyMeta, rate_limit, sessions::Validated},
    telemetry::metrics,
    upstream::outbound,
};

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = HttpResult> + Send + 'a>>;

/// A streamed answer (Lambda response streaming): the body is sent as it is produced.
pub type Streamed = Response<StreamBody>;
pub type StreamFuture<'a> = Pin<Box<dyn Future<Output = Result<Streamed, ApiError>> + Send + 'a>>;

/// Who may call a route, and so what its handler receives.
#[derive(Clone, Copy)]
pub enum Access {
    /// Anyone (sign-in, the plans, Stripe's webhook).
    Public(for<'a> fn(Ctx<'a>) -> HandlerFuture<'a>),
    /// A valid session (CSRF-checked for state changes), without reading the user row or counting
    /// against the rate limits (sign-out).
    Session(for<'a> fn(Ctx<'a>, Session) -> HandlerFuture<'a>),
    /// A valid session and the user's row, read strongly consistent so a new tier shows at once.
    User(for<'a> fn(Ctx<'a>, Caller) -> HandlerFuture<'a>),
    /// As `User`, for a function whose answer streams ([`serve_streaming`]): the handler gets the
    /// app for the whole process, since the body outlives the call.
    Stream(for<'a> fn(&'static App, Ctx<'a>, Caller) -> StreamFuture<'a>),
}

/// One line of a function's route table.
#[derive(Clone, Copy)]
pub struct Route {
    /// API Gateway's route key: `METHOD /path/{param}`, exactly as template.yaml declares it.
    pub key: &'static str,
    pub access: Access,
    /// A per-user, per-tier limit besides the one on every request, for routes that cost money
    /// upstream.
    pub rate_limit: Option<Limit>,
    /// Requests per minute from one client IP address (public routes).
    pub per_ip: Option<u32>,
    /// Also callable with an API key (`Authorization: Bearer vk_…`), under the same tier rules.
    pub api_key: bool,
    /// An admin-area route: the caller's role must allow this (the RBAC table in
    /// `domain::roles`), else 403 FORBIDDEN.
    pub permission: Option<Permission>,
    /// The JSON body its handler parses (openapi.yaml's request schema is checked against it).
    pub body: Option<crate::http::body::BodyType>,
}

/// Declares a route: `route!("GET /usage", user: usage)`, `route!("POST /tts", user: generate,
/// rate_limit: Generations)`, `route!("GET /auth/login", public: login, per_ip: 20)`,
/// `route!("POST /admin/users/{id}/suspend", user: suspend, permission: Suspend, body: Reasoned)`.
/// `public` handlers take a [`Ctx`], `session` ones also the [`Session`], `user` ones also the
/// [`Caller`]; `body` names the type a handler parses its JSON body into.
#[macro_export]
macro_rules! route {
    ($key:literal, public: $handler:path $(, per_ip: $per_ip:literal)?) => {
        $crate::http::Route {
            key: $key,
            access: $crate::http::Access::Public(|ctx| Box::pin($handler(ctx))),
            rate_limit: None,
            per_ip: $crate::route!(@some $($per_ip)?),
            api_key: false,
            permission: None,
            body: None,
        }
    };
    ($key:literal, session: $handler:path) => {
        $crate::http::Route {
            key: $key,
            access: $crate::http::Access::Session(|ctx, session| Box::pin($handler(ctx, session))),
            rate_limit: None,
            per_ip: None,
            api_key: false,
            permission: None,
            body: None,
        }
    };
    ($key:literal, user: $handler:path $(, rate_limit: $limit:ident)? $(, api_keys: $keys:literal)? $(, permission: $permission:ident)? $(, body: $body:ty)?) => {
        $crate::http::Route {
            key: $key,
            access: $crate::http::Access::User(|ctx, caller| Box::pin($handler(ctx, caller))),
            rate_limit: $crate::route!(@some $($crate::domain::tiers::Limit::$limit)?),
            per_ip: None,
            api_key: $crate::route!(@keys $($keys)?),
            permission: $crate::route!(@some $($crate::domain::roles::Permission::$permission)?),
            body: $crate::route!(@some $($crate::http::body::BodyType::of::<$body>())?),
        }
    };
    ($key:literal, stream: $handler:path $(, rate_limit: $limit:ident)? $(, api_keys: $keys:literal)? $(, body: $body:ty)?) => {
        $crate::http::Route {
            key: $key,
            access: $crate::http::Access::Stream(|app, ctx, caller| Box::pin($handler(app, ctx, caller))),
            rate_limit: $crate::route!(@some $($crate::domain::tiers::Limit::$limit)?),
            per_ip: None,
            api_key: $crate::route!(@keys $($keys)?),
            permission: None,
            body: $crate::route!(@some $($crate::http::body::BodyType::of::<$body>())?),
        }
    };
    (@keys $keys:literal) => { $keys };
    (@keys) => { false };
    (@some $value:expr) => { Some($value) };
    (@some) => { None };
}

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    Session(Session),
    ApiKey(KeyMeta),
}

/// The signed-in user behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub credential: Credential,
    pub user: User,
}

impl Caller {
    /// The API key the request came with (None for the browser session).
    pub fn api_key(&self) -> Option<&KeyMeta> {
        match &self.credential {
            Credential::ApiKey(key) => Some(key),
            Credential::Session(_) => None,
        }
    }

    /// The browser session (routes that take no API key always have one).
    pub fn session(&self) -> Result<&Session, ApiError> {
        match &self.credential {
            Credential::Session(session) => Ok(session),
            Credential::ApiKey(_) => Err(ApiError::Unauthenticated),
        }
    }
}

/// What a handler gets besides its caller: the assembled app, the request, its id, and when the
/// invocation must have answered.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub app: &'a App,
    pub req: &'a Request,
    pub request_id: &'a str,
    pub deadline: Deadline,
}

/// The budget when the invocation carries no deadline (never in Lambda): the template's default
/// function timeout.
const DEFAULT_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// A function's main loop: every event through [`serve`] with the function's routes.
pub async fn run(app: &App, routes: &'static [Route]) -> Result<(), lambda_http::Error> {
    let handler = |req| async move { Ok::<_, lambda_http::Error>(AsBuilt(serve(app, routes, req).await)) };
    lambda_http::run(lambda_http::service_fn(handler)).await
}

/// A response handed to the runtime as it is built. lambda_http's own conversion of a
/// `Response<Body>` re-reads every body and re-decodes text bodies by the charset of their
/// `Content-Type`, which links a whole character-set library (`encoding_rs`, about 150 KB) into
/// every function. The router's bodies are already what they say: JSON text or nothing.
struct AsBuilt(Response<Body>);

impl lambda_http::IntoResponse for AsBuilt {
    fn into_response(self) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        Box::pin(std::future::ready(self.0))
    }
}

/// Serves one request with the function's route table; errors become the one JSON error shape.
pub async fn serve(app: &App, routes: &[Route], req: Request) -> Response<Body> {
    let context = req.lambda_context_ref();
    let request_id = context.map(|c| c.request_id.clone()).unwrap_or_default();
    let deadline = context.and_then(|c| Deadline::from_epoch_ms(c.deadline)).unwrap_or(Deadline::after(DEFAULT_BUDGET));
    let ctx = Ctx { app, req: &req, request_id: &request_id, deadline };
    let started = std::time::Instant::now();
    // Every outbound call made while serving it is bounded by what is left of the deadline.
    let served = outbound::within(deadline, dispatch(ctx, routes)).await;
    let response = served.unwrap_or_else(|error| error.into_response(&request_id, &app.config.voice.upgrade_url));
    metrics::request(route_key(&req).unwrap_or("unmatched"), response.status().as_u16(), started.elapsed());
    response
}

/// API Gateway's route key for the request (HTTP API, payload 2.0).
pub fn route_key(req: &Request) -> Option<&str> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.route_key.as_deref(),
        _ => None,
    }
}

async fn dispatch(ctx: Ctx<'_>, routes: &[Route]) -> HttpResult {
    let key = route_key(ctx.req);
    let Some(route) = routes.iter().find(|route| Some(route.key) == key) else {
        return Err(ApiError::NotFound(format!("no route for {} {}", ctx.req.method(), ctx.req.uri().path())));
    };
    let now = ctx.app.clock.now().unix_timestamp();
    match route.access {
        Access::Public(handler) => {
            if let (Some(per_minute), Some(ip)) = (route.per_ip, source_ip(ctx.req)) {
                let scope = format!("ip:{}", route.key);
                // Sign-in keeps its state in the cache anyway: without it, it is refused.
                let limit = rate_limit::Counted { scope: &scope, per_minute, uncounted: Uncounted::Closed };
                rate_limit::check(&ctx.app.redis, &ctx.app.webhook_events, &ip, &[limit], now).await?;
            }
            handler(ctx).await
        }
        Access::Session(handler) => {
            // Not counted: ending one's own session (the only such route) is never refused for
            // rate, so a burst of reads cannot keep anyone signed in.
            let (validated, _) = authenticate(ctx, &[], now).await?;
            handler(ctx, validated.session).await
        }
        Access::User(handler) => {
            let caller = authorize(ctx, route, now).await?;
            handler(ctx, caller).await
        }
        Access::Stream(_) => Err(ApiError::NotFound(format!("{} answers only as a stream", route.key))),
    }
}

/// The caller of a user route (a session or, where the route takes one, an API key), its account
/// in good standing, its role allowing the route, and its request counted against the tier's
/// limits.
async fn authorize(ctx: Ctx<'_>, route: &Route, now: i64) -> Result<Caller, ApiError> {
    let scopes: Vec<Limit> = std::iter::once(Limit::Requests).chain(route.rate_limit).collect();
    let (credential, user, slot, counts) = match bearer(ctx.req) {
        // A key is accepted only where the route says so; anywhere else it is no sign-in.
        Some(key) if route.api_key => {
            let meta = authenticate_key(ctx, key).await?;
            let user_id = meta.user_id.clone().ok_or(ApiError::Unauthenticated)?;
            let user = ctx.app.users.get(&user_id).await?.ok_or(ApiError::Unauthenticated)?;
            (Credential::ApiKey(meta), user, user_slot(&user_id), None)
        }
        Some(_) => return Err(ApiError::Unauthenticated),
        None => {
            let (validated, slot) = authenticate(ctx, &scopes, now).await?;
            if route.permission.is_some() {
                csrf::token(ctx.req, &validated.session)?;
            }
            let user = signed_in_user(ctx, &validated, now).await?;
            (Credential::Session(validated.session), user, slot, validated.counts)
        }
    };
    // A suspended account is signed out everywhere, whatever credential it still holds.
    if user.suspension.is_some() {
        return Err(ApiError::Unauthenticated);
    }
    // A person's key follows their plan as it is now (a downgrade may leave it beyond the
    // plan). A workspace's key is the workspace's: it only speaks, in that workspace (the
    // generation reads the member's role there on every request), and reaches none of its
    // maker's own data.
    match &credential {
        Credential::ApiKey(key) if key.workspace_id.is_some() => {
            if !WORKSPACE_KEY_ROUTES.contains(&route.key) {
                return Err(ApiError::Forbidden(
                    "a workspace's API key only speaks in its workspace (POST /tts, POST /tts/stream)".into(),
                ));
            }
        }
        Credential::ApiKey(key) => crate::flows::api_keys::usable(&ctx.app.api_keys, &user, key).await?,
        Credential::Session(_) => {}
    }
    if let Some(permission) = route.permission
        && !user.role.allows(permission)
    {
        return Err(ApiError::Forbidden("your role does not allow this".into()));
    }
    let rules = user.tier.rules();
    let limits: Vec<_> = scopes
        .iter()
        .map(|limit| rate_limit::Counted {
            scope: limit.as_str(),
            per_minute: rules.per_minute(*limit),
            uncounted: limit.when_uncounted(),
        })
        .collect();
    count_requests(ctx, &slot, counts.as_deref(), &limits, now).await?;
    Ok(Caller { credential, user })
}

/// Serves one request of a streaming function (a Function URL with `InvokeMode:
/// RESPONSE_STREAM`, whose events carry no route key: the route is found by method and path).
/// The checks are the router's own; errors become the one JSON error shape, whole.
pub async fn serve_streaming(app: &'static App, routes: &[Route], req: Request) -> Streamed {
    let context = req.lambda_context_ref();
    let request_id = context.map(|c| c.request_id.clone()).unwrap_or_default();
    let deadline = context.and_then(|c| Deadline::from_epoch_ms(c.deadline)).unwrap_or(Deadline::after(DEFAULT_BUDGET));
    let ctx = Ctx { app, req: &req, request_id: &request_id, deadline };
    let key = format!("{} {}", req.method(), req.uri().path());
    let started = std::time::Instant::now();
    let served = outbound::within(deadline, async {
        let route = routes
            .iter()
            .find(|route| route.key == key)
            .ok_or_else(|| ApiError::NotFound(format!("no route for {key}")))?;
        let Access::Stream(handler) = route.access else {
            return Err(ApiError::NotFound(format!("{} is not a streamed route", route.key)));
        };
        let caller = authorize(ctx, route, app.clock.now().unix_timestamp()).await?;
        handler(app, ctx, caller).await
    })
    .await;
    let upgrade_url = &app.config.voice.upgrade_url;
    let response = served.unwrap_or_else(|error| whole(error.into_response(&request_id, upgrade_url)));
    metrics::request(&key, response.status().as_u16(), started.elapsed());
    response
}

/// A buffered answer as a streamed one.
pub fn whole(response: Response<Body>) -> Streamed {
    response.map(|body| match body {
        Body::Empty => StreamBody::empty(),
        Body::Text(text) => StreamBody::from(text),
        Body::Binary(bytes) => StreamBody::from(bytes),
        _ => StreamBody::empty(),
    })
}

/// The routes a workspace's API key may call: speaking in its workspace.
const WORKSPACE_KEY_ROUTES: [&str; 2] = ["POST /tts", "POST /tts/stream"];

/// `Authorization: Bearer <key>`, when the request carries one (the scheme's name in any case,
/// as RFC 7235 has it).
fn bearer(req: &Request) -> Option<&str> {
    let (scheme, key) = crate::http::request::header(req, "authorization")?.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// The API key's metadata, its use counted; UNAUTHENTICATED for an unknown or revoked key. No
/// CSRF: a key is not sent by browsers on their own.
async fn authenticate_key(ctx: Ctx<'_>, key: &str) -> Result<KeyMeta, ApiError> {
    let app = ctx.app;
    let meta = app.api_keys.authenticate(key).await?.ok_or(ApiError::Unauthenticated)?;
    let now = app.clock.now();
    if let Err(error) = app.api_keys.record_use(&meta, now.unix_timestamp(), UsagePeriod::containing(now)).await {
        tracing::warn!(error = format!("{error:#}"), "could not count the key's use");
    }
    Ok(meta)
}

/// The caller's valid session, CSRF-checked for state-changing methods, and the user's cache
/// slot; else UNAUTHENTICATED (or CSRF_FAILED). The same Redis round trip counts the request
/// against `scopes` and reads the user's snapshot. A failure of both session stores is
/// UPSTREAM_UNAVAILABLE.
async fn authenticate(ctx: Ctx<'_>, scopes: &[Limit], now: i64) -> Result<(Validated, String), ApiError> {
    let app = ctx.app;
    let token = cookie(ctx.req, COOKIE_NAME).and_then(SessionToken::parse).ok_or(ApiError::Unauthenticated)?;
    let counters: Vec<String> =
        scopes.iter().map(|scope| rate_limit::user_key(scope.as_str(), token.slot(), now)).collect();
    let validated = app
        .sessions
        .validate(&token, app.clock.now(), &counters)
        .await
        .map_err(|source| ApiError::Upstream { service: "session store", temporary: true, source })?
        .ok_or(ApiError::Unauthenticated)?;
    csrf::check(ctx.req, &validated.session, &app.config.web.allowed_origins)?;
    Ok((validated, token.slot().to_owned()))
}

/// The session's user: from the snapshot the session's round trip read if it is usable, else
/// from DynamoDB (and remembered for the next request).
async fn signed_in_user(ctx: Ctx<'_>, validated: &Validated, now: i64) -> Result<User, ApiError> {
    let (users, id) = (&ctx.app.users, &validated.session.user_id);
    if let Some(row) = &validated.seen.row
        && let Some(user) = users.snapshots().user(id, row, now).await
    {
        return Ok(user);
    }
    users.get_and_remember(id, &validated.seen, now).await?.ok_or(ApiError::Unauthenticated)
}

/// Judges the counts the session's round trip took; when it took none (the session came from
/// DynamoDB, or is an API key's), counts now.
async fn count_requests(
    ctx: Ctx<'_>,
    slot: &str,
    counted: Option<&[u32]>,
    limits: &[rate_limit::Counted<'_>],
    now: i64,
) -> Result<(), ApiError> {
    match counted {
        Some(counts) => {
            let sized: Vec<(&str, u32)> = limits.iter().map(|l| (l.scope, l.per_minute)).collect();
            rate_limit::judge(counts, &sized, now)
        }
        None => rate_limit::check(&ctx.app.redis, &ctx.app.webhook_events, &format!("{{{slot}}}"), limits, now).await,
    }
}

#[cfg(test)]
mod tests {
    use lambda_http::{Adapter, LambdaEvent, Service, request::LambdaRequest};

    use super::*;

    /// What API Gateway receives for a response the router built, through lambda_http's adapter
    /// as `run` uses it.
    async fn delivered(response: Response<Body>) -> serde_json::Value {
        let event: LambdaRequest =
            serde_json::from_str(include_str!("../../../events/usage-get.json")).expect("a sample HTTP API event");
        let mut adapter = Adapter::from(lambda_http::service_fn(move |_req: Request| {
            std::future::ready(Ok::<_, lambda_http::Error>(AsBuilt(response.clone())))
        }));
        let answer = adapter.call(LambdaEvent::new(event, Default::default())).await.unwrap();
        serde_json::to_value(answer).unwrap()
    }

    #[tokio::test]
    async fn responses_reach_api_gateway_as_built() {
        let json = Response::builder()
            .status(201)
            .header("content-type", "application/json")
            .body(Body::Text(r#"{"ok":"é"}"#.into()))
            .unwrap();
        let answer = delivered(json).await;
        assert_eq!(answer["statusCode"], 201);
        assert_eq!(answer["body"], r#"{"ok":"é"}"#);
        assert_eq!(answer["isBase64Encoded"], false);
        assert_eq!(answer["headers"]["content-type"], "application/json");

        let redirect = Response::builder().status(302).header("location", "/x").body(Body::Empty).unwrap();
        let answer = delivered(redirect).await;
        assert_eq!(answer["statusCode"], 302);
        assert!(answer["body"].is_null() || answer["body"] == "", "{answer}");
    }
}
