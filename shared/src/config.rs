//! Typed configuration, read once at cold start. Nothing else in the project reads environment
//! variables (the AWS SDK's own `AWS_*` variables aside).

use std::{fmt, str::FromStr, time::Duration};

use url::Url;

use crate::domain::tiers::Tier;

/// A value that must never reach a log line, an error body or a `Debug` dump.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A variable that is missing or does not parse. Its message names the variable, never its value.
#[derive(thiserror::Error, PartialEq, Eq)]
#[error("configuration variable {name} {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

// `main` returning `Err` prints the Debug form: make that the readable message too.
impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: Tables,
    /// The CloudWatch namespace of the functions' metrics (`METRICS_NAMESPACE`; per stack in
    /// the template, `VoiceApp` when unset).
    pub metrics_namespace: String,
    pub audio_bucket: String,
    /// Audio served through CloudFront with signed URLs; None: presigned S3 URLs.
    pub cdn: Option<CdnSettings>,
    /// Live updates over the WebSocket API; None: nothing is pushed.
    pub push: Option<PushSettings>,
    pub aws: AwsSettings,
    pub redis_url: Secret<String>,
    /// The cache's RBAC user; with `secrets.redis_password`, connections authenticate.
    pub redis_username: Option<String>,
    pub session: SessionPolicy,
    pub web: WebSettings,
    pub idp: IdpSettings,
    pub stripe: StripeSettings,
    pub voice: VoiceSettings,
    pub billing: BillingSettings,
    pub secrets: SecretParameters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Month,
    Year,
}

/// A Stripe price the product sells, and the tier it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceConfig {
    pub id: String,
    pub tier: Tier,
    pub interval: Interval,
}

#[derive(Debug, Clone)]
pub struct BillingSettings {
    /// Only these prices grant a tier; any other price id grants nothing.
    pub prices: Vec<PriceConfig>,
    pub checkout_success_url: Url,
    pub checkout_cancel_url: Url,
    pub portal_return_url: Url,
    /// How long a webhook delivery holds its event while applying it; shorter than the webhook
    /// function's timeout, so that a delivery killed mid-apply never blocks the retry.
    pub webhook_lease: Duration,
    /// Payment-failure emails: the SES sender identity and template; None sends no email.
    pub email: Option<BillingEmail>,
    /// How generations past the allowance are billed; None offers no overage (every plan stops
    /// at its limit).
    pub overage: Option<OverageBilling>,
    /// TEAM's per-seat monthly price, billed to a workspace's own customer; None sells no TEAM
    /// (workspaces keep their free seats).
    pub team_price: Option<String>,
}

/// Overage is billed by a Stripe Billing Meter and the metered price that reads it, an item of
/// every subscription whose plan allows overage.
#[derive(Debug, Clone)]
pub struct OverageBilling {
    /// The meter's event name: each generation past the allowance is one event.
    pub meter_event: String,
    /// The metered price (its `recurring.meter` is that meter).
    pub price: String,
}

#[derive(Debug, Clone)]
pub struct BillingEmail {
    /// The verified SES identity the emails come from.
    pub sender: String,
    /// The SES template for a failed payment.
    pub payment_failed_template: String,
    /// The SES template telling a customer that a subscription was cancelled and refunded.
    pub subscription_refunded_template: String,
    /// The SES template telling a user that 80 % or 100 % of the month's allowance (or of the
    /// overage cap) is used.
    pub usage_alert_template: String,
    /// The SES template inviting someone into a workspace.
    pub workspace_invitation_template: String,
}

impl BillingSettings {
    pub fn tier_of(&self, price_id: &str) -> Option<Tier> {
        self.prices.iter().find(|p| p.id == price_id).map(|p| p.tier)
    }

    /// The metered price a subscription to `tier` carries: overage's, when it is offered and
    /// the tier allows it.
    pub fn metered_price_for(&self, tier: Tier) -> Option<&str> {
        let overage = self.overage.as_ref()?;
        tier.rules().overage_unit_cents.is_some().then_some(overage.price.as_str())
    }

    pub fn price_for(&self, tier: Tier, interval: Interval) -> Option<&PriceConfig> {
        self.prices.iter().find(|p| p.tier == tier && p.interval == interval)
    }
}

#[derive(Debug, Clone)]
pub struct VoiceSettings {
    /// `https://api.elevenlabs.io/`, or the local stand-in.
    pub elevenlabs_base: Url,
    /// How long one generation may take before the unit is given back.
    pub elevenlabs_timeout: Duration,
    /// The ElevenLabs accounts speech and clones are spread over; never empty, the first is the
    /// primary (the premade voice list; clones placed before there were several).
    pub elevenlabs_accounts: Vec<ElevenLabsAccount>,
    /// How long a recording that is not a favourite is kept.
    pub recording_ttl: Duration,
    /// Lifetime of presigned audio URLs.
    pub presign_ttl: Duration,
    /// Where LIMIT_REACHED and FEATURE_LOCKED send the user.
    pub upgrade_url: Url,
}

/// One ElevenLabs account: a plan with its own key, voice slots and concurrency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElevenLabsAccount {
    /// Names the account: the partition of the residency index (two accounts never evict each
    /// other's clones), its admission gate's keys, the label on the voices we add to it.
    pub name: String,
    /// The SSM SecureString parameter holding its API key.
    pub key_parameter: Option<String>,
    /// How many custom voices it holds (ElevenLabs' plan limit).
    pub voice_slots: u32,
    /// How many requests it takes at once (ElevenLabs' plan: Creator 5, Pro 10, Scale and
    /// Business 15); its admission gate keeps every instance's requests within it.
    pub concurrency: u32,
}

/// At most this many accounts (each is one more query when a clone is placed).
const MAX_ELEVENLABS_ACCOUNTS: usize = 10;

impl ElevenLabsAccount {
    /// The primary account (`ELEVENLABS_ACCOUNT`, `ELEVENLABS_API_KEY_PARAM`,
    /// `ELEVENLABS_VOICE_SLOTS`, `ELEVENLABS_CONCURRENCY`) and the others listed in
    /// `ELEVENLABS_MORE_ACCOUNTS` as `name:concurrency:slots`, comma-separated, each with its key
    /// in the parameter `<ELEVENLABS_API_KEY_PARAM>/<name>`.
    fn all_from<F: Fn(&str) -> Option<String>>(env: &Vars<'_, F>) -> Result<Vec<Self>, ConfigError> {
        let primary = Self {
            name: env.optional("ELEVENLABS_ACCOUNT").unwrap_or_else(|| "default".to_owned()),
            key_parameter: env.optional("ELEVENLABS_API_KEY_PARAM"),
            voice_slots: env.parse_or("ELEVENLABS_VOICE_SLOTS", 30)?,
            concurrency: env.parse_or("ELEVENLABS_CONCURRENCY", 10)?,
        };
        let mut all = vec![primary];
        let listed = env.optional("ELEVENLABS_MORE_ACCOUNTS").unwrap_or_default();
        for entry in listed.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let account = Self::listed(entry, all[0].key_parameter.as_deref())
                .map_err(|problem| ConfigError { name: "ELEVENLABS_MORE_ACCOUNTS", problem })?;
            if all.iter().any(|a| a.name == account.name) {
                let problem = format!("names the account {:?} twice", account.name);
                return Err(ConfigError { name: "ELEVENLABS_MORE_ACCOUNTS", problem });
            }
            all.push(account);
        }
        if all.len() > MAX_ELEVENLABS_ACCOUNTS {
            let problem = format!("lists more than {} accounts", MAX_ELEVENLABS_ACCOUNTS - 1);
            return Err(ConfigError { name: "ELEVENLABS_MORE_ACCOUNTS", problem });
        }
        Ok(all)
    }

    fn listed(entry: &str, primary_key: Option<&str>) -> Result<Self, String> {
        let shape = || format!("entry {entry:?} is not name:concurrency:slots");
        let [name, concurrency, slots] = entry.split(':').collect::<Vec<_>>()[..] else { return Err(shape()) };
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            return Err(format!("account name {name:?} is not 1 to 64 letters, digits, '-' or '_'"));
        }
        let count = |raw: &str| raw.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(shape);
        Ok(Self {
            name: name.to_owned(),
            key_parameter: primary_key.map(|p| format!("{}/{name}", p.trim_end_matches('/'))),
            concurrency: count(concurrency)?,
            voice_slots: count(slots)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Tables {
    pub users: String,
    pub sessions: String,
    pub recordings: String,
    pub subscriptions: String,
    pub webhook_events: String,
    pub voices: String,
    pub consent_records: String,
    pub api_keys: String,
    /// Admin actions, append-only.
    pub audit: String,
    pub usage_events: String,
    pub workspaces: String,
}

#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`), as Lambda sets it.
    pub region: String,
    /// The function role's credentials, as Lambda puts them in the environment.
    pub credentials: AwsCredentials,
    /// Sends every AWS call to one endpoint (the local moto server). None in AWS.
    pub endpoint_url: Option<Url>,
    /// Path-style S3 addressing, which moto needs.
    pub s3_force_path_style: bool,
    /// SSM's own endpoint when it differs (`AWS_ENDPOINT_URL_SSM`, the SDK's convention).
    pub ssm_endpoint_url: Option<Url>,
    /// S3's own endpoint when it differs (`AWS_ENDPOINT_URL_S3`).
    pub s3_endpoint_url: Option<Url>,
}

#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    /// Present for a role's temporary credentials (always, in Lambda).
    pub session_token: Option<Secret<String>>,
}

impl AwsCredentials {
    /// The SDK's form of them, for its clients and for signing requests ourselves.
    pub fn for_sdk(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose(),
            self.session_token.as_ref().map(|token| token.expose().clone()),
            None,
            "environment",
        )
    }
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// Sliding inactivity window (SPEC: 900 s).
    pub idle: Duration,
    /// Hard cap from sign-in, however active the session is.
    pub absolute: Duration,
    /// How often a session served from Redis is re-checked against (and touched in) DynamoDB.
    pub durable_recheck: Duration,
    /// `Domain` attribute for the cookie; host-only when None.
    pub cookie_domain: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The frontend; the default redirect target and always an allowed origin.
    pub app_url: Url,
    /// Origins (scheme://host[:port]) that may make state-changing requests and receive redirects.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct IdpSettings {
    /// The Auth0 tenant's issuer, ending in `/` (e.g. `https://tenant.eu.auth0.com/`). Its
    /// endpoints come from OIDC discovery.
    pub issuer: Url,
    pub client_id: String,
    /// This API's own `/auth/callback`, registered with the IdP.
    pub callback_url: Url,
    /// Refuse sign-ins whose ID token does not say `email_verified: true`.
    pub require_verified_email: bool,
}

#[derive(Debug, Clone)]
pub struct StripeSettings {
    /// `https://api.stripe.com/`, or a local stand-in.
    pub api_base: Url,
}

/// The CloudFront distribution in front of the audio bucket (`CLOUDFRONT_DOMAIN`,
/// `CLOUDFRONT_KEY_PAIR_ID`, and the private key's SSM parameter `CLOUDFRONT_PRIVATE_KEY_PARAM`:
/// all three or none).
#[derive(Debug, Clone)]
pub struct CdnSettings {
    /// `https://d111111abcdef8.cloudfront.net` (or the distribution's own domain name).
    pub base: Url,
    pub key_pair_id: String,
    pub private_key_parameter: String,
}

impl CdnSettings {
    fn from_env(env: &Vars<'_, impl Fn(&str) -> Option<String>>) -> Result<Option<Self>, ConfigError> {
        let names = ["CLOUDFRONT_DOMAIN", "CLOUDFRONT_KEY_PAIR_ID", "CLOUDFRONT_PRIVATE_KEY_PARAM"];
        let why = "CloudFront needs its domain, key pair id and private key parameter together";
        let Some([_, key_pair_id, private_key_parameter]) = env.together(names, why)? else { return Ok(None) };
        let base = env.required_url("CLOUDFRONT_DOMAIN", &["https", "http"])?;
        Ok(Some(Self { base: Url::parse(&base).expect("checked by required_url"), key_pair_id, private_key_parameter }))
    }
}

/// The WebSocket API of live updates (`CONNECTIONS_TABLE`, `PUSH_ENDPOINT`, `PUSH_URL`: all
/// three or none).
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The open connections' table.
    pub table: String,
    /// The management API: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`.
    pub endpoint: Url,
    /// Where clients connect: `wss://…/{stage}` (or the API's custom domain).
    pub public_url: Url,
}

impl PushSettings {
    fn from_env(env: &Vars<'_, impl Fn(&str) -> Option<String>>) -> Result<Option<Self>, ConfigError> {
        let names = ["CONNECTIONS_TABLE", "PUSH_ENDPOINT", "PUSH_URL"];
        let why = "live updates need the connections table, the management endpoint and the public URL together";
        let Some([table, _, _]) = env.together(names, why)? else { return Ok(None) };
        let endpoint = env.required_url("PUSH_ENDPOINT", &["https", "http"])?;
        let public_url = env.required_url("PUSH_URL", &["wss", "ws"])?;
        Ok(Some(Self {
            table,
            endpoint: Url::parse(&endpoint).expect("checked by required_url"),
            public_url: Url::parse(&public_url).expect("checked by required_url"),
        }))
    }
}

/// Names of SSM parameters (SecureString) holding the secrets; the values are fetched at cold
/// start by the functions that need them (see `secrets`), never passed as plain variables.
#[derive(Debug, Clone, Default)]
pub struct SecretParameters {
    pub auth0_client_secret: Option<String>,
    pub stripe_secret_key: Option<String>,
    /// The value may hold several secrets separated by commas (rotation).
    pub stripe_webhook_secret: Option<String>,
    /// The key that authenticates session entries in Redis (HMAC-SHA256).
    pub session_mac_key: Option<String>,
    /// The cache user's password (in AWS, the Secrets Manager reference path).
    pub redis_password: Option<String>,
    /// A parameter that holds nothing secret: what the health check reads.
    pub health_probe: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any source of variables; tests pass a map.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Vars(&lookup);
        let app_url: Url = env.parse("APP_URL")?;
        let mut allowed_origins = vec![origin_of(&app_url)];
        for origin in env.list("ALLOWED_ORIGINS")? {
            let url: Url = origin.parse().map_err(|_| ConfigError {
                name: "ALLOWED_ORIGINS",
                problem: format!("has an entry that is not a URL: {origin:?}"),
            })?;
            allowed_origins.push(origin_of(&url));
        }
        allowed_origins.dedup();

        let issuer: Url = env.parse("AUTH0_ISSUER")?;
        if !issuer.path().ends_with('/') {
            return Err(ConfigError { name: "AUTH0_ISSUER", problem: "must end with '/'".into() });
        }

        let session = SessionPolicy {
            idle: Duration::from_secs(env.parse_or("SESSION_IDLE_SECONDS", 900)?),
            absolute: Duration::from_secs(env.parse_or("SESSION_ABSOLUTE_SECONDS", 12 * 3600)?),
            durable_recheck: Duration::from_secs(env.parse_or("SESSION_RECHECK_SECONDS", 60)?),
            cookie_domain: env.optional("SESSION_COOKIE_DOMAIN"),
        };
        if session.absolute < session.idle {
            return Err(ConfigError {
                name: "SESSION_ABSOLUTE_SECONDS",
                problem: "must not be shorter than SESSION_IDLE_SECONDS".into(),
            });
        }

        let mut prices = Vec::new();
        for (name, tier, interval) in [
            ("STRIPE_PRICE_BASIC_MONTHLY", Tier::Basic, Interval::Month),
            ("STRIPE_PRICE_BASIC_YEARLY", Tier::Basic, Interval::Year),
            ("STRIPE_PRICE_PREMIUM_MONTHLY", Tier::Premium, Interval::Month),
            ("STRIPE_PRICE_PREMIUM_YEARLY", Tier::Premium, Interval::Year),
        ] {
            if let Some(id) = env.optional(name) {
                if prices.iter().any(|p: &PriceConfig| p.id == id) {
                    return Err(ConfigError { name, problem: "repeats another price id".into() });
                }
                prices.push(PriceConfig { id, tier, interval });
            }
        }
        let team_price = env.optional("STRIPE_PRICE_TEAM_MONTHLY");
        if team_price.as_ref().is_some_and(|team| prices.iter().any(|p| &p.id == team)) {
            let problem = "repeats a personal plan's price id: TEAM has its own".into();
            return Err(ConfigError { name: "STRIPE_PRICE_TEAM_MONTHLY", problem });
        }
        let app_path = |path: &str| app_url.join(path).expect("a relative path joins onto a URL");
        let billing = BillingSettings {
            prices,
            team_price,
            checkout_success_url: env.parse_or("CHECKOUT_SUCCESS_URL", app_path("billing/success"))?,
            checkout_cancel_url: env.parse_or("CHECKOUT_CANCEL_URL", app_path("pricing"))?,
            portal_return_url: env.parse_or("PORTAL_RETURN_URL", app_path("account"))?,
            webhook_lease: Duration::from_secs(env.parse_or("WEBHOOK_LEASE_SECONDS", 12)?),
            overage: match (env.optional("STRIPE_OVERAGE_METER_EVENT"), env.optional("STRIPE_PRICE_OVERAGE")) {
                (Some(meter_event), Some(price)) => Some(OverageBilling { meter_event, price }),
                (None, None) => None,
                (Some(_), None) => {
                    let problem = "is missing: overage needs the metered price beside the meter".into();
                    return Err(ConfigError { name: "STRIPE_PRICE_OVERAGE", problem });
                }
                (None, Some(_)) => {
                    let problem = "is missing: the metered price reads that meter".into();
                    return Err(ConfigError { name: "STRIPE_OVERAGE_METER_EVENT", problem });
                }
            },
            email: match env.optional("BILLING_EMAIL_FROM") {
                None => None,
                Some(sender) => Some(BillingEmail {
                    sender,
                    payment_failed_template: env.required("PAYMENT_FAILED_TEMPLATE")?,
                    subscription_refunded_template: env.required("SUBSCRIPTION_REFUNDED_TEMPLATE")?,
                    usage_alert_template: env.required("USAGE_ALERT_TEMPLATE")?,
                    workspace_invitation_template: env.required("WORKSPACE_INVITATION_TEMPLATE")?,
                }),
            },
        };
        let upgrade_url = match env.optional_parse("UPGRADE_URL")? {
            Some(url) => url,
            None => app_url.join("pricing").expect("a relative path joins onto a URL"),
        };

        Ok(Self {
            tables: Tables {
                users: env.required("USERS_TABLE")?,
                sessions: env.required("SESSIONS_TABLE")?,
                recordings: env.required("RECORDINGS_TABLE")?,
                subscriptions: env.required("SUBSCRIPTIONS_TABLE")?,
                webhook_events: env.required("WEBHOOK_EVENTS_TABLE")?,
                voices: env.required("VOICES_TABLE")?,
                consent_records: env.required("CONSENT_TABLE")?,
                api_keys: env.required("API_KEYS_TABLE")?,
                audit: env.required("AUDIT_TABLE")?,
                usage_events: env.required("USAGE_EVENTS_TABLE")?,
                workspaces: env.required("WORKSPACES_TABLE")?,
            },
            metrics_namespace: env.optional("METRICS_NAMESPACE").unwrap_or_else(|| "VoiceApp".to_owned()),
            audio_bucket: env.required("AUDIO_BUCKET")?,
            cdn: CdnSettings::from_env(&env)?,
            push: PushSettings::from_env(&env)?,
            aws: AwsSettings {
                region: env.optional("AWS_REGION").map_or_else(|| env.required("AWS_DEFAULT_REGION"), Ok).map_err(
                    |_| ConfigError {
                        name: "AWS_REGION",
                        problem: "is missing (nor is AWS_DEFAULT_REGION set)".into(),
                    },
                )?,
                credentials: AwsCredentials {
                    access_key_id: env.required("AWS_ACCESS_KEY_ID")?,
                    secret_access_key: Secret::new(env.required("AWS_SECRET_ACCESS_KEY")?),
                    session_token: env.optional("AWS_SESSION_TOKEN").map(Secret::new),
                },
                endpoint_url: env.optional_parse("AWS_ENDPOINT_URL")?,
                s3_force_path_style: env.parse_or("S3_FORCE_PATH_STYLE", false)?,
                ssm_endpoint_url: env.optional_parse("AWS_ENDPOINT_URL_SSM")?,
                s3_endpoint_url: env.optional_parse("AWS_ENDPOINT_URL_S3")?,
            },
            redis_url: Secret::new(env.required_url("REDIS_URL", &["redis", "rediss"])?),
            redis_username: env.optional("REDIS_USERNAME"),
            session,
            web: WebSettings { app_url, allowed_origins },
            idp: IdpSettings {
                issuer,
                client_id: env.required("AUTH0_CLIENT_ID")?,
                callback_url: env.parse("AUTH_CALLBACK_URL")?,
                require_verified_email: env.parse_or("REQUIRE_VERIFIED_EMAIL", true)?,
            },
            stripe: StripeSettings {
                api_base: env.parse_or("STRIPE_API_BASE", "https://api.stripe.com/".parse().expect("static URL"))?,
            },
            billing,
            voice: VoiceSettings {
                elevenlabs_base: env
                    .parse_or("ELEVENLABS_API_BASE", "https://api.elevenlabs.io/".parse().expect("static URL"))?,
                elevenlabs_timeout: Duration::from_secs(env.parse_or("ELEVENLABS_TIMEOUT_SECONDS", 30)?),
                elevenlabs_accounts: ElevenLabsAccount::all_from(&env)?,
                recording_ttl: Duration::from_secs(env.parse_or("RECORDING_TTL_SECONDS", 7 * 24 * 3600)?),
                presign_ttl: Duration::from_secs(env.parse_or("PRESIGN_TTL_SECONDS", 600)?),
                upgrade_url,
            },
            secrets: SecretParameters {
                auth0_client_secret: env.optional("AUTH0_CLIENT_SECRET_PARAM"),
                stripe_secret_key: env.optional("STRIPE_SECRET_KEY_PARAM"),
                stripe_webhook_secret: env.optional("STRIPE_WEBHOOK_SECRET_PARAM"),
                session_mac_key: env.optional("SESSION_MAC_KEY_PARAM"),
                redis_password: env.optional("REDIS_PASSWORD_PARAM"),
                health_probe: env.optional("HEALTH_PROBE_PARAMETER"),
            },
        })
    }
}

impl WebSettings {
    /// Where to send the browser after sign-in: `raw` if it is an absolute URL on an allowed
    /// origin or a path on the app, otherwise the app itself. Never an open redirect.
    pub fn return_to(&self, raw: Option<&str>) -> Url {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return self.app_url.clone();
        };
        let candidate = if raw.starts_with('/') && !raw.starts_with("//") && !raw.contains('\\') {
            self.app_url.join(raw).ok()
        } else {
            Url::parse(raw).ok()
        };
        candidate
            .filter(|url| matches!(url.scheme(), "https" | "http"))
            .filter(|url| self.allowed_origins.contains(&origin_of(url)))
            .unwrap_or_else(|| self.app_url.clone())
    }
}

/// `scheme://host[:port]`, the form browsers send in `Origin`.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

struct Vars<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Vars<'_, F> {
    fn optional(&self, name: &'static str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// Variables that configure one thing together: all of them set, or none (`why` says so
    /// when only some are).
    fn together<const N: usize>(
        &self,
        names: [&'static str; N],
        why: &str,
    ) -> Result<Option<[String; N]>, ConfigError> {
        let set = names.map(|name| self.optional(name));
        if set.iter().all(Option::is_none) {
            return Ok(None);
        }
        match names.iter().zip(&set).find(|(_, value)| value.is_none()) {
            Some((name, _)) => Err(ConfigError { name, problem: format!("is missing: {why}") }),
            None => Ok(Some(set.map(|value| value.expect("checked above")))),
        }
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError { name, problem: "is missing".into() })
    }

    fn optional_parse<T: FromStr>(&self, name: &'static str) -> Result<Option<T>, ConfigError> {
        self.optional(name)
            .map(|raw| {
                raw.parse()
                    .map_err(|_| ConfigError { name, problem: format!("is not a valid {}", short_type_name::<T>()) })
            })
            .transpose()
    }

    fn parse<T: FromStr>(&self, name: &'static str) -> Result<T, ConfigError> {
        self.optional_parse(name)?.ok_or(ConfigError { name, problem: "is missing".into() })
    }

    fn parse_or<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError> {
        Ok(self.optional_parse(name)?.unwrap_or(default))
    }

    fn list(&self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .optional(name)
            .map(|raw| raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default())
    }

    /// A URL whose scheme is one of `schemes`; the value itself never appears in the error.
    fn required_url(&self, name: &'static str, schemes: &[&str]) -> Result<String, ConfigError> {
        let raw = self.required(name)?;
        match Url::parse(&raw) {
            Ok(url) if schemes.contains(&url.scheme()) => Ok(raw),
            _ => Err(ConfigError { name, problem: format!("must be a {} URL", schemes.join(" or ")) }),
        }
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn complete() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("USERS_TABLE", "users"),
            ("SESSIONS_TABLE", "sessions"),
            ("RECORDINGS_TABLE", "recordings"),
            ("SUBSCRIPTIONS_TABLE", "subscriptions"),
            ("WEBHOOK_EVENTS_TABLE", "events"),
            ("VOICES_TABLE", "voices"),
            ("CONSENT_TABLE", "consent"),
            ("API_KEYS_TABLE", "api-keys"),
            ("AUDIT_TABLE", "audit"),
            ("USAGE_EVENTS_TABLE", "usage-events"),
            ("WORKSPACES_TABLE", "workspaces"),
            ("AUDIO_BUCKET", "audio"),
            ("REDIS_URL", "redis://:hunter2@127.0.0.1:6379"),
            ("APP_URL", "http://localhost:3000/app"),
            ("ALLOWED_ORIGINS", "https://app.example.com, https://admin.example.com/"),
            ("AUTH0_ISSUER", "https://tenant.auth0.com/"),
            ("AUTH0_CLIENT_ID", "client"),
            ("AUTH_CALLBACK_URL", "https://api.example.com/auth/callback"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ])
    }

    fn load(vars: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| vars.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn a_complete_environment_loads_with_defaults() {
        let config = load(&complete()).unwrap();
        assert_eq!(config.session.idle, Duration::from_secs(900));
        assert_eq!(
            config.web.allowed_origins,
            ["http://localhost:3000", "https://app.example.com", "https://admin.example.com"]
        );
        assert!(config.aws.endpoint_url.is_none());
    }

    #[test]
    fn the_region_and_the_role_credentials_are_read_as_lambda_sets_them() {
        let config = load(&complete()).unwrap();
        assert_eq!(config.aws.region, "eu-west-1");
        assert_eq!(config.aws.credentials.access_key_id, "ASIAEXAMPLE");
        assert!(!format!("{:?}", config.aws.credentials).contains("secret"), "the secret is never printed");
        let mut vars = complete();
        vars.remove("AWS_REGION");
        vars.insert("AWS_DEFAULT_REGION", "us-east-1");
        assert_eq!(load(&vars).unwrap().aws.region, "us-east-1");
        vars.remove("AWS_DEFAULT_REGION");
        assert!(load(&vars).unwrap_err().to_string().contains("AWS_REGION"));
        let mut vars = complete();
        vars.remove("AWS_SECRET_ACCESS_KEY");
        assert!(load(&vars).unwrap_err().to_string().contains("AWS_SECRET_ACCESS_KEY"));
    }

    #[test]
    fn overage_is_offered_with_its_meter_and_its_metered_price_or_not_at_all() {
        assert!(load(&complete()).unwrap().billing.overage.is_none());
        let mut vars = complete();
        vars.insert("STRIPE_OVERAGE_METER_EVENT", "voice_overage");
        assert!(load(&vars).unwrap_err().to_string().contains("STRIPE_PRICE_OVERAGE"));
        vars.insert("STRIPE_PRICE_OVERAGE", "price_overage");
        let overage = load(&vars).unwrap().billing.overage.unwrap();
        assert_eq!((overage.meter_event.as_str(), overage.price.as_str()), ("voice_overage", "price_overage"));
        vars.remove("STRIPE_OVERAGE_METER_EVENT");
        assert!(load(&vars).unwrap_err().to_string().contains("STRIPE_OVERAGE_METER_EVENT"));
    }

    #[test]
    fn more_elevenlabs_accounts_are_listed_with_keys_beside_the_primary_one() {
        let mut vars = complete();
        vars.insert("ELEVENLABS_ACCOUNT", "main");
        vars.insert("ELEVENLABS_API_KEY_PARAM", "/voice/prod/elevenlabs-api-key");
        vars.insert("ELEVENLABS_MORE_ACCOUNTS", "overflow:15:160, eu_2:5:30");
        let accounts = load(&vars).unwrap().voice.elevenlabs_accounts;
        let listed: Vec<_> = accounts
            .iter()
            .map(|a| (a.name.as_str(), a.key_parameter.as_deref(), a.concurrency, a.voice_slots))
            .collect();
        assert_eq!(
            listed,
            [
                ("main", Some("/voice/prod/elevenlabs-api-key"), 10, 30),
                ("overflow", Some("/voice/prod/elevenlabs-api-key/overflow"), 15, 160),
                ("eu_2", Some("/voice/prod/elevenlabs-api-key/eu_2"), 5, 30),
            ]
        );
        for (bad, says) in [
            ("overflow:15", "is not name:concurrency:slots"),
            ("overflow:0:10", "is not name:concurrency:slots"),
            ("over/flow:5:10", "is not 1 to 64 letters"),
            ("main:5:10", "twice"),
        ] {
            vars.insert("ELEVENLABS_MORE_ACCOUNTS", bad);
            let error = load(&vars).unwrap_err();
            assert_eq!(error.name, "ELEVENLABS_MORE_ACCOUNTS");
            assert!(error.problem.contains(says), "{bad}: {}", error.problem);
        }
    }

    #[test]
    fn live_updates_need_their_table_endpoint_and_public_url_together() {
        assert!(load(&complete()).unwrap().push.is_none(), "none of them: nothing is pushed");
        let mut vars = complete();
        vars.insert("CONNECTIONS_TABLE", "connections");
        vars.insert("PUSH_ENDPOINT", "https://abc.execute-api.eu-west-1.amazonaws.com/live");
        assert_eq!(load(&vars).unwrap_err().name, "PUSH_URL");
        vars.insert("PUSH_URL", "https://abc.execute-api.eu-west-1.amazonaws.com/live");
        assert_eq!(load(&vars).unwrap_err().to_string(), "configuration variable PUSH_URL must be a wss or ws URL");
        vars.insert("PUSH_URL", "wss://abc.execute-api.eu-west-1.amazonaws.com/live");
        let push = load(&vars).unwrap().push.unwrap();
        assert_eq!((push.table.as_str(), push.public_url.scheme()), ("connections", "wss"));
    }

    #[test]
    fn a_missing_variable_is_named() {
        let mut vars = complete();
        vars.remove("SESSIONS_TABLE");
        assert_eq!(load(&vars).unwrap_err().to_string(), "configuration variable SESSIONS_TABLE is missing");
    }

    #[test]
    fn an_invalid_variable_is_named_without_its_value() {
        let mut vars = complete();
        vars.insert("REDIS_URL", "http://user:topsecret@host");
        let message = load(&vars).unwrap_err().to_string();
        assert!(message.contains("REDIS_URL"), "{message}");
        assert!(!message.contains("topsecret"), "{message}");

        let mut vars = complete();
        vars.insert("SESSION_IDLE_SECONDS", "soon");
        assert_eq!(
            load(&vars).unwrap_err().to_string(),
            "configuration variable SESSION_IDLE_SECONDS is not a valid u64"
        );
    }

    #[test]
    fn cloudfront_needs_its_three_settings_together() {
        let mut vars = complete();
        assert!(load(&vars).unwrap().cdn.is_none());
        vars.insert("CLOUDFRONT_DOMAIN", "https://d111111abcdef8.cloudfront.net");
        vars.insert("CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F");
        assert_eq!(load(&vars).unwrap_err().name, "CLOUDFRONT_PRIVATE_KEY_PARAM");
        vars.insert("CLOUDFRONT_PRIVATE_KEY_PARAM", "/voice/cloudfront-key");
        let cdn = load(&vars).unwrap().cdn.unwrap();
        assert_eq!(
            (cdn.base.as_str(), cdn.key_pair_id.as_str()),
            ("https://d111111abcdef8.cloudfront.net/", "K2JCJMDEHXQW5F")
        );
        vars.insert("CLOUDFRONT_DOMAIN", "d111111abcdef8.cloudfront.net");
        assert_eq!(load(&vars).unwrap_err().name, "CLOUDFRONT_DOMAIN");
    }

    #[test]
    fn secrets_never_print() {
        let config = load(&complete()).unwrap();
        let dump = format!("{config:?}");
        assert!(!dump.contains("hunter2"), "{dump}");
        assert!(dump.contains("[redacted]"));
    }

    #[test]
    fn return_to_stays_on_allowed_origins() {
        let web = load(&complete()).unwrap().web;
        let to = |raw: &str| web.return_to(Some(raw)).to_string();
        assert_eq!(to("https://app.example.com/library?x=1"), "https://app.example.com/library?x=1");
        assert_eq!(to("/settings"), "http://localhost:3000/settings");
        for hostile in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "https://app.example.com.evil.example/",
            "https://app.example.com@evil.example/",
            "javascript:alert(1)",
            "http://app.example.com/",
        ] {
            assert_eq!(to(hostile), "http://localhost:3000/app", "{hostile}");
        }
        assert_eq!(web.return_to(None).as_str(), "http://localhost:3000/app");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Any `returnTo` at all, hostile or garbled: the redirect stays on an allowed origin.
            #[test]
            fn return_to_never_leaves_the_allowed_origins(
                raw in prop_oneof![
                    any::<String>(),
                    "(https?:)?(//|/|\\\\)?[a-z.@:%0-9/\\?#]{0,40}",
                    "https://app\\.example\\.com[@:./%a-z0-9]{0,30}",
                ]
            ) {
                let web = load(&complete()).unwrap().web;
                let target = web.return_to(Some(&raw));
                prop_assert!(web.allowed_origins.contains(&origin_of(&target)), "{raw:?} -> {target}");
                prop_assert!(matches!(target.scheme(), "http" | "https"));
            }
        }
    }

    #[test]
    fn the_issuer_must_end_with_a_slash() {
        let mut vars = complete();
        vars.insert("AUTH0_ISSUER", "https://tenant.auth0.com/oidc");
        assert_eq!(load(&vars).unwrap_err().name, "AUTH0_ISSUER");
    }
}
