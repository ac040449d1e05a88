//! The OpenID Connect client for Auth0: discovery, the authorization URL, the code exchange and
//! ID token verification. Endpoints come from discovery, so the same code talks to Auth0 and to
//! the local oidc-provider stand-in.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation, decode, decode_header,
    jwk::{Jwk, JwkSet},
};
use serde::Deserialize;
use tokio::sync::{Mutex, OnceCell};
use url::Url;

use crate::{
    config::{IdpSettings, Secret},
    error::ApiError,
    upstream::outbound,
};

/// How far exp/iat may be off between the IdP's clock and ours.
const LEEWAY_SECS: u64 = 60;
/// An unknown `kid` refetches the JWKS at most this often, so forged tokens cannot hammer the IdP.
const JWKS_REFETCH_COOLDOWN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
    pub end_session_endpoint: Option<Url>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    #[error("the identity provider is unreachable or answered unexpectedly")]
    Unavailable(#[source] anyhow::Error),
    #[error("the identity provider refused the authorization code ({0})")]
    InvalidGrant(String),
    #[error("the ID token was rejected: {0}")]
    InvalidToken(String),
}

impl From<IdpError> for ApiError {
    fn from(error: IdpError) -> Self {
        ApiError::Upstream { service: "identity provider", temporary: true, source: error.into() }
    }
}

/// The claims we use from a verified ID token.
#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    pub sub: String,
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    /// When the person last gave their credentials to the IdP (unix seconds); always sent when
    /// the request asked for `max_age`.
    #[serde(default)]
    pub auth_time: Option<i64>,
    nonce: Option<String>,
}

/// What the authorization request carries besides the client's own settings.
pub struct AuthorizationRequest<'a> {
    pub state: &'a str,
    pub nonce: &'a str,
    pub code_challenge: &'a str,
    /// Ask the person to sign in again even with a live IdP session (before erasing an account).
    pub reauthenticate: bool,
}

struct Keys {
    set: JwkSet,
    /// When an unknown `kid` last caused a refetch.
    refetched_at: Option<Instant>,
}

pub struct Idp {
    http: outbound::LazyClient,
    settings: IdpSettings,
    metadata: OnceCell<Metadata>,
    keys: Mutex<Option<Keys>>,
}

impl Idp {
    /// No network here: discovery and keys are fetched on first use and kept for the cold start.
    pub fn new(http: outbound::LazyClient, settings: IdpSettings) -> Self {
        Self { http, settings, metadata: OnceCell::new(), keys: Mutex::new(None) }
    }

    pub async fn metadata(&self) -> Result<&Metadata, IdpError> {
        self.metadata.get_or_try_init(|| self.discover()).await.map_err(IdpError::Unavailable)
    }

    async fn discover(&self) -> anyhow::Result<Metadata> {
        let url = self.settings.issuer.join(".well-known/openid-configuration")?;
        let metadata: Metadata = self.get_json(url).await.context("OIDC discovery")?;
        if metadata.issuer != self.settings.issuer.as_str() {
            return Err(anyhow!("discovery names issuer {:?}, not the configured one", metadata.issuer));
        }
        Ok(metadata)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: Url) -> anyhow::Result<T> {
        let request = self.http.get()?.get(url.clone()).timeout(outbound::timeout(outbound::EXCHANGE_TIMEOUT));
        let response = outbound::observed("auth0", request).await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(anyhow!("GET {url} answered {status}"));
        }
        response.json().await.with_context(|| format!("GET {url}: unexpected body"))
    }

    /// The URL to send the browser to: authorization code flow, PKCE S256, state and nonce.
    pub async fn authorization_url(&self, request: &AuthorizationRequest<'_>) -> Result<Url, IdpError> {
        let mut url = self.metadata().await?.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", self.settings.callback_url.as_str())
            .append_pair("scope", "openid email profile")
            .append_pair("state", request.state)
            .append_pair("nonce", request.nonce)
            .append_pair("code_challenge", request.code_challenge)
            .append_pair("code_challenge_method", "S256");
        if request.reauthenticate {
            url.query_pairs_mut().append_pair("prompt", "login").append_pair("max_age", "0");
        }
        Ok(url)
    }

    /// Exchanges the code (with the client secret and the PKCE verifier) for an ID token.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        client_secret: &Secret<String>,
    ) -> Result<String, IdpError> {
        #[derive(Deserialize)]
        struct Tokens {
            id_token: String,
        }
        #[derive(Deserialize)]
        struct OAuthError {
            error: String,
        }

        let endpoint = self.metadata().await?.token_endpoint.clone();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.settings.callback_url.as_str()),
            ("client_id", self.settings.client_id.as_str()),
            ("client_secret", client_secret.expose().as_str()),
            ("code_verifier", verifier),
        ];
        let http = self.http.get().map_err(IdpError::Unavailable)?;
        let request = http.post(endpoint).form(&form).timeout(outbound::timeout(outbound::EXCHANGE_TIMEOUT));
        let response = outbound::observed("auth0", request)
            .await
            .map_err(|e| IdpError::Unavailable(anyhow::Error::new(e).context("token endpoint")))?;
        let status = response.status();
        if status.is_success() {
            let tokens: Tokens = response
                .json()
                .await
                .map_err(|e| IdpError::Unavailable(anyhow::Error::new(e).context("token response")))?;
            return Ok(tokens.id_token);
        }
        if status.is_client_error() {
            let error = response.json::<OAuthError>().await.map(|e| e.error).unwrap_or_else(|_| status.to_string());
            return Err(IdpError::InvalidGrant(error));
        }
        Err(IdpError::Unavailable(anyhow!("token endpoint answered {status}")))
    }

    /// Verifies signature (RS256 through the JWKS), iss, aud, exp (with leeway) and nonce.
    pub async fn verify_id_token(&self, token: &str, expected_nonce: &str) -> Result<IdClaims, IdpError> {
        let header = decode_header(token).map_err(|e| IdpError::InvalidToken(format!("unreadable header ({e})")))?;
        if header.alg != Algorithm::RS256 {
            return Err(IdpError::InvalidToken(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| IdpError::InvalidToken("no kid".into()))?;
        let jwk = self.signing_key(&kid).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| IdpError::InvalidToken(format!("unusable key ({e})")))?;

        let metadata = self.metadata().await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&metadata.issuer]);
        validation.set_audience(&[&self.settings.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let claims =
            decode::<IdClaims>(token, &key, &validation).map_err(|e| IdpError::InvalidToken(e.to_string()))?.claims;
        if claims.nonce.as_deref() != Some(expected_nonce) {
            return Err(IdpError::InvalidToken("nonce mismatch".into()));
        }
        Ok(claims)
    }

    /// The key for `kid`, refetching the JWKS once if it is unknown (keys rotate).
    async fn signing_key(&self, kid: &str) -> Result<Jwk, IdpError> {
        let mut keys = self.keys.lock().await;
        if let Some(jwk) = keys.as_ref().and_then(|k| k.set.find(kid)) {
            return Ok(jwk.clone());
        }
        let refetch = match keys.as_ref() {
            None => Some(None),
            Some(k) if k.refetched_at.is_none_or(|at| at.elapsed() >= JWKS_REFETCH_COOLDOWN) => {
                Some(Some(Instant::now()))
            }
            Some(_) => None,
        };
        if let Some(refetched_at) = refetch {
            let url = self.metadata().await?.jwks_uri.clone();
            let set: JwkSet = self.get_json(url).await.map_err(IdpError::Unavailable)?;
            *keys = Some(Keys { set, refetched_at });
        }
        keys.as_ref()
            .and_then(|k| k.set.find(kid))
            .cloned()
            .ok_or_else(|| IdpError::InvalidToken(format!("unknown signing key {kid:?}")))
    }

    /// Where to send the browser to end the IdP session: the discovered `end_session_endpoint`
    /// (OIDC RP-initiated logout), else Auth0's `/v2/logout`, which is also the answer when
    /// discovery fails: logout must not depend on the IdP being reachable.
    pub async fn logout_url(&self, return_to: &Url) -> Url {
        let endpoint = match self.metadata().await {
            Ok(metadata) => metadata.end_session_endpoint.clone(),
            Err(error) => {
                tracing::warn!(error = format!("{:#}", anyhow::Error::new(error)), "OIDC discovery failed at logout");
                None
            }
        };
        match endpoint {
            Some(mut url) => {
                url.query_pairs_mut()
                    .append_pair("client_id", &self.settings.client_id)
                    .append_pair("post_logout_redirect_uri", return_to.as_str());
                url
            }
            None => {
                let mut url = self.settings.issuer.join("v2/logout").expect("a relative path joins onto the issuer");
                url.query_pairs_mut()
                    .append_pair("client_id", &self.settings.client_id)
                    .append_pair("returnTo", return_to.as_str());
                url
            }
        }
    }
}
