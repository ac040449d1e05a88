//! Everything a function needs, built once per cold start and shared by every invocation.

use anyhow::Context;
use lambda_http::Request;

use crate::{
    auth::{
        Session, SessionToken, Sessions, csrf,
        session::{COOKIE_NAME, ClientInfo},
    },
    aws,
    cache::Redis,
    clock::Clock,
    config::Config,
    error::ApiError,
    http::cookie,
    users::{Profile, User, Users},
};

pub struct App {
    pub config: Config,
    pub clock: Clock,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub redis: Redis,
    pub users: Users,
    pub sessions: Sessions,
}

/// A fresh sign-in: the cookie value goes to the browser, nowhere else.
#[derive(Debug)]
pub struct SignedIn {
    pub user: User,
    pub token: SessionToken,
    pub session: Session,
}

/// The signed-in user behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub session: Session,
    pub user: User,
}

impl App {
    /// Reads the configuration and builds the clients; no network call is made here.
    pub async fn from_env() -> anyhow::Result<Self> {
        let config = Config::from_env()?;
        Self::new(config, Clock::system()).await
    }

    pub async fn new(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let sdk = aws::sdk_config(&config.aws).await;
        let dynamodb = aws::dynamodb(&sdk);
        let s3 = aws::s3(&sdk, &config.aws);
        let redis = Redis::connect_lazy(&config.redis_url).context("REDIS_URL")?;
        let users = Users::new(dynamodb.clone(), config.tables.users.clone());
        let sessions =
            Sessions::new(redis.clone(), dynamodb.clone(), config.tables.sessions.clone(), config.session.clone());
        Ok(Self { config, clock, dynamodb, s3, redis, users, sessions })
    }

    /// The caller's valid session and user row, or UNAUTHENTICATED. State-changing requests
    /// must also pass the CSRF check.
    pub async fn caller(&self, req: &Request) -> Result<Caller, ApiError> {
        let session = self.session(req).await?;
        let user = self.users.get(&session.user_id).await?.ok_or(ApiError::Unauthenticated)?;
        Ok(Caller { session, user })
    }

    /// The caller's valid session (CSRF-checked for state changes), without the user row.
    pub async fn session(&self, req: &Request) -> Result<Session, ApiError> {
        let token = cookie(req, COOKIE_NAME).and_then(SessionToken::parse).ok_or(ApiError::Unauthenticated)?;
        let session = self
            .sessions
            .validate(&token, self.clock.now())
            .await
            .map_err(|source| ApiError::Upstream { service: "session store", temporary: true, source })?
            .ok_or(ApiError::Unauthenticated)?;
        csrf::check(req, &session, &self.config.web.allowed_origins)?;
        Ok(session)
    }

    /// Signs a verified IdP profile in: upserts the user and opens a fresh session. The callback
    /// does this after checking the ID token; the test harness does it to mint users.
    pub async fn sign_in(&self, profile: &Profile, client: &ClientInfo) -> anyhow::Result<SignedIn> {
        let now = self.clock.now();
        let user = self.users.record_login(profile, now).await?;
        let (token, session) = self.sessions.open(&user.id, client, now).await?;
        Ok(SignedIn { user, token, session })
    }
}
