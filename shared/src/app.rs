//! The assembly: configuration, clients and adapters, built once per cold start and shared by
//! every invocation. Nothing here decides anything; the router and the flows do.

use std::sync::OnceLock;

use anyhow::Context;
use tokio::sync::OnceCell;

use crate::{
    clock::Clock,
    config::{Config, Secret},
    domain::health,
    store::{
        admission::Gates,
        api_keys::ApiKeys,
        audio::{AudioStore, Cdn},
        audit::AuditLog,
        aws,
        connections::Connections,
        consent::ConsentRecords,
        login_attempts::LoginAttempts,
        recordings::Recordings,
        redis::{Redis, RedisAuth},
        secrets::{self, MacKey, Wanted},
        sessions::Sessions,
        subscriptions::Subscriptions,
        usage_events::UsageEvents,
        users::{PoolRows, Users, snapshot::Snapshots},
        voices::Voices,
        webhook_events::WebhookEvents,
        workspaces::Workspaces,
    },
    upstream::{
        elevenlabs::{Account, Accounts, ElevenLabs},
        email::Mailer,
        oidc::Idp,
        outbound,
        push::Gateway,
        stripe::Stripe,
    },
};

/// What a function's init may start fetching in the background ([`App::warm`]).
#[derive(Debug, Clone, Copy)]
pub enum Warm {
    Stripe,
    StripeWebhookSecrets,
    ElevenLabs,
    Auth0ClientSecret,
    OidcDiscovery,
}

pub struct App {
    pub config: Config,
    pub clock: Clock,
    pub redis: Redis,
    pub users: Users,
    pub sessions: Sessions,
    pub login_attempts: LoginAttempts,
    pub recordings: Recordings,
    pub subscriptions: Subscriptions,
    pub webhook_events: WebhookEvents,
    pub voices: Voices,
    pub consent: ConsentRecords,
    pub api_keys: ApiKeys,
    pub audit: AuditLog,
    /// Overage generations on their way to Stripe's meter.
    pub usage_events: UsageEvents,
    /// Teams: workspaces, their members and invitations.
    pub workspaces: Workspaces,
    /// The admission gate in front of each ElevenLabs account.
    pub gates: Gates,
    /// Open WebSocket connections and their tickets, and the API that reaches them (None when
    /// no WebSocket API is configured).
    pub push: Option<(Connections, Gateway)>,
    pub idp: Idp,
    /// The last health report, reused for a few seconds.
    pub health: health::Cache,
    /// For outside services: no redirects, timeouts.
    http: outbound::LazyClient,
    ssm: aws_sdk_ssm::Client,
    /// For the clients only some functions use, built on first use (see [`App::audio`]).
    sdk: aws_types::SdkConfig,
    audio: OnceLock<AudioStore>,
    mailer: OnceLock<Option<Mailer>>,
    auth0_client_secret: OnceCell<Secret<String>>,
    stripe: OnceCell<Stripe>,
    elevenlabs: OnceCell<Accounts>,
    webhook_secrets: OnceCell<Vec<Secret<String>>>,
}

impl App {
    /// Reads the configuration and builds the clients; no network call is made here.
    pub async fn from_env() -> anyhow::Result<Self> {
        let config = Config::from_env()?;
        Self::new(config, Clock::system()).await
    }

    pub async fn new(config: Config, clock: Clock) -> anyhow::Result<Self> {
        crate::telemetry::metrics::set_namespace(&config.metrics_namespace);
        // ring as the process's TLS provider, which the Redis client takes (crate::tls).
        crate::tls::provider();
        let sdk = aws::sdk_config(&config.aws);
        let dynamodb = aws::dynamodb(&sdk);
        let ssm = match &config.aws.ssm_endpoint_url {
            Some(url) => aws_sdk_ssm::Client::new(&sdk.to_builder().endpoint_url(url.as_str()).build()),
            None => aws_sdk_ssm::Client::new(&sdk),
        };
        let redis_auth = match (&config.redis_username, &config.secrets.redis_password) {
            (Some(username), Some(parameter)) => {
                Some(RedisAuth { username: username.clone(), ssm: ssm.clone(), password_parameter: parameter.clone() })
            }
            _ => None,
        };
        let redis = Redis::connect_lazy(&config.redis_url, redis_auth).context("REDIS_URL")?;
        let tables = &config.tables;
        let http = outbound::LazyClient::default();
        let mac_key = MacKey::from_ssm(ssm.clone(), config.secrets.session_mac_key.clone());
        Ok(Self {
            users: Users::new(
                dynamodb.clone(),
                tables.users.clone(),
                Snapshots::new(redis.clone(), mac_key.clone()),
                PoolRows::new(dynamodb.clone(), tables.workspaces.clone()),
            ),
            sessions: Sessions::new(
                redis.clone(),
                dynamodb.clone(),
                tables.sessions.clone(),
                config.session.clone(),
                mac_key,
            ),
            login_attempts: LoginAttempts::new(redis.clone()),
            recordings: Recordings::new(dynamodb.clone(), tables.recordings.clone()),
            subscriptions: Subscriptions::new(dynamodb.clone(), tables.subscriptions.clone()),
            webhook_events: WebhookEvents::new(dynamodb.clone(), tables.webhook_events.clone()),
            voices: Voices::new(dynamodb.clone(), tables.voices.clone()),
            api_keys: ApiKeys::new(dynamodb.clone(), tables.api_keys.clone()),
            audit: AuditLog::new(dynamodb.clone(), tables.audit.clone()),
            usage_events: UsageEvents::new(dynamodb.clone(), tables.usage_events.clone()),
            workspaces: Workspaces::new(dynamodb.clone(), tables.workspaces.clone()),
            gates: Gates::new(
                &redis,
                clock,
                config.voice.elevenlabs_accounts.iter().map(|a| (a.name.as_str(), a.concurrency)),
            ),
            push: config.push.as_ref().map(|push| {
                let connections = Connections::new(redis.clone(), dynamodb.clone(), push.table.clone());
                (connections, Gateway::new(http.clone(), push.endpoint.clone(), &config.aws))
            }),
            consent: ConsentRecords::new(dynamodb, tables.consent_records.clone()),
            idp: Idp::new(http.clone(), config.idp.clone()),
            ssm,
            sdk,
            audio: OnceLock::new(),
            mailer: OnceLock::new(),
            http,
            redis,
            config,
            clock,
            health: health::Cache::new(health::REUSE_FOR),
            auth0_client_secret: OnceCell::new(),
            stripe: OnceCell::new(),
            elevenlabs: OnceCell::new(),
            webhook_secrets: OnceCell::new(),
        })
    }

    /// The app for the whole life of the process (one Lambda execution environment), so that work
    /// started at init can go on in the background.
    pub fn into_static(self) -> &'static Self {
        Box::leak(Box::new(self))
    }

    /// Starts fetching what the function's requests will need (secrets, clients, OIDC discovery)
    /// without waiting for it: the runtime asks for the first event meanwhile, and a request that
    /// needs one of them waits for the same fetch instead of starting another. A failure is
    /// logged; the first request that needs the thing tries again.
    pub fn warm(&'static self, needs: &'static [Warm]) {
        for need in needs {
            tokio::spawn(async move {
                let warmed = match need {
                    Warm::Stripe => self.stripe().await.map(drop),
                    Warm::StripeWebhookSecrets => self.stripe_webhook_secrets().await.map(drop),
                    Warm::ElevenLabs => self.elevenlabs().await.map(drop),
                    Warm::Auth0ClientSecret => self.auth0_client_secret().await.map(drop),
                    Warm::OidcDiscovery => self.idp.metadata().await.map(drop).map_err(anyhow::Error::new),
                };
                if let Err(error) = warmed {
                    tracing::warn!(?need, error = format!("{error:#}"), "warming failed; retrying on first use");
                }
            });
        }
    }

    /// The client for outside services, built on first use (Stripe and ElevenLabs hold clones of it).
    pub fn http(&self) -> anyhow::Result<&reqwest::Client> {
        self.http.get()
    }

    pub fn ssm(&self) -> &aws_sdk_ssm::Client {
        &self.ssm
    }

    /// The audio bucket. Its S3 client is built on first use: a function that never touches
    /// audio (sign-in, billing, usage) neither builds nor links it.
    pub fn audio(&self) -> &AudioStore {
        self.audio.get_or_init(|| {
            let s3 = aws::s3(&self.sdk, &self.config.aws);
            let cdn = self.config.cdn.clone().map(|settings| Cdn::new(settings, self.ssm.clone()));
            AudioStore::new(s3, self.config.audio_bucket.clone(), self.config.voice.presign_ttl, cdn)
        })
    }

    /// Billing emails through SES (built on first use, as [`App::audio`]); None when no sender is
    /// configured.
    pub fn mailer(&self) -> Option<&Mailer> {
        self.mailer
            .get_or_init(|| {
                self.config.billing.email.as_ref().map(|email| {
                    let ses = aws_sdk_ses::Client::new(&self.sdk);
                    Mailer::new(ses, email.clone())
                })
            })
            .as_ref()
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

    /// The ElevenLabs accounts' clients, their keys fetched together once per cold start.
    pub async fn elevenlabs(&self) -> anyhow::Result<&Accounts> {
        self.elevenlabs
            .get_or_try_init(|| async {
                let voice = &self.config.voice;
                let wanted: Vec<_> = voice
                    .elevenlabs_accounts
                    .iter()
                    .map(|a| Wanted { variable: "ELEVENLABS_API_KEY_PARAM", parameter: a.key_parameter.as_deref() })
                    .collect();
                let keys = secrets::fetch_all(&self.ssm, &wanted).await?;
                let http = self.http()?;
                let accounts = voice.elevenlabs_accounts.iter().zip(keys).map(|(account, key)| Account {
                    name: account.name.clone(),
                    voice_slots: account.voice_slots,
                    client: ElevenLabs::new(http.clone(), voice.elevenlabs_base.clone(), key, voice.elevenlabs_timeout),
                });
                Ok(Accounts::new(accounts.collect()))
            })
            .await
    }

    /// The Stripe client, its key fetched once per cold start.
    pub async fn stripe(&self) -> anyhow::Result<&Stripe> {
        self.stripe
            .get_or_try_init(|| async {
                let key = self.secret("STRIPE_SECRET_KEY_PARAM", &self.config.secrets.stripe_secret_key).await?;
                Ok(Stripe::new(self.http()?.clone(), self.config.stripe.api_base.clone(), key))
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
}
