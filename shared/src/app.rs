//! Everything a function needs, built once per cold start and shared by every invocation.

use anyhow::Context;
use lambda_http::Request;
use tokio::sync::OnceCell;

use crate::{
    auth::{
        Session, SessionToken, Sessions, csrf,
        oidc::Idp,
        session::{COOKIE_NAME, ClientInfo},
    },
    aws,
    billing::Stripe,
    cache::Redis,
    clock::Clock,
    config::{Config, Secret},
    error::ApiError,
    http::cookie,
    outbound,
    recordings::{AudioStore, Recordings},
    secrets::{self, Wanted},
    tts::ElevenLabs,
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
    /// For outside services: no redirects, timeouts.
    pub http: reqwest::Client,
    pub idp: Idp,
    pub recordings: Recordings,
    pub audio: AudioStore,
    ssm: aws_sdk_ssm::Client,
    auth0_client_secret: OnceCell<Secret<String>>,
    stripe: OnceCell<Stripe>,
    elevenlabs: OnceCell<ElevenLabs>,
    webhook_secrets: OnceCell<Vec<Secret<String>>>,
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
        let http = outbound::http_client();
        let idp = Idp::new(http.clone(), config.idp.clone());
        let ssm = aws_sdk_ssm::Client::new(&sdk);
        let recordings = Recordings::new(dynamodb.clone(), config.tables.recordings.clone());
        let audio = AudioStore::new(s3.clone(), config.audio_bucket.clone(), config.voice.presign_ttl);
        Ok(Self {
            config,
            clock,
            dynamodb,
            s3,
            redis,
            users,
            sessions,
            http,
            idp,
            recordings,
            audio,
            ssm,
            auth0_client_secret: OnceCell::new(),
            stripe: OnceCell::new(),
            elevenlabs: OnceCell::new(),
            webhook_secrets: OnceCell::new(),
        })
    }

    /// One secret from SSM, by the variable naming its parameter.
    async fn secret(&self, variable: &'static str, parameter: &Option<String>) -> anyhow::Result<Secret<String>> {
        let [secret] = secrets::fetch(&self.ssm, [Wanted { variable, parameter: parameter.as_deref() }]).await?;
        Ok(secret)
    }

    /// The Auth0 client secret, fetched once per cold start.
    pub async fn auth0_client_secret(&self) -> anyhow::Result<&Secret<String>> {
        let parameter = &self.config.secrets.auth0_client_secret;
        self.auth0_client_secret.get_or_try_init(|| self.secret("AUTH0_CLIENT_SECRET_PARAM", parameter)).await
    }

    /// The ElevenLabs client, its key fetched once per cold start.
    pub async fn elevenlabs(&self) -> anyhow::Result<&ElevenLabs> {
        self.elevenlabs
            .get_or_try_init(|| async {
                let key = self.secret("ELEVENLABS_API_KEY_PARAM", &self.config.secrets.elevenlabs_api_key).await?;
                let voice = &self.config.voice;
                Ok(ElevenLabs::new(self.http.clone(), voice.elevenlabs_base.clone(), key, voice.elevenlabs_timeout))
            })
            .await
    }

    /// The Stripe client, its key fetched once per cold start.
    pub async fn stripe(&self) -> anyhow::Result<&Stripe> {
        self.stripe
            .get_or_try_init(|| async {
                let key = self.secret("STRIPE_SECRET_KEY_PARAM", &self.config.secrets.stripe_secret_key).await?;
                Ok(Stripe::new(self.http.clone(), self.config.stripe.api_base.clone(), key))
            })
            .await
    }

    /// The Stripe webhook signing secrets (several, comma-separated, during a rotation), fetched
    /// once per cold start.
    pub async fn stripe_webhook_secrets(&self) -> anyhow::Result<&[Secret<String>]> {
        let secrets = self
            .webhook_secrets
            .get_or_try_init(|| async {
                let value =
                    self.secret("STRIPE_WEBHOOK_SECRET_PARAM", &self.config.secrets.stripe_webhook_secret).await?;
                let all: Vec<_> = value
                    .expose()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Secret::new(s.to_owned()))
                    .collect();
                anyhow::ensure!(!all.is_empty(), "the Stripe webhook secret parameter is empty");
                Ok(all)
            })
            .await?;
        Ok(secrets)
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
