//! The authorization code flow around the IdP: `begin` at /auth/login, `complete` at
//! /auth/callback. State, nonce, PKCE verifier and returnTo live in Redis under the state's hash
//! for ten minutes, are taken exactly once, and only by the browser holding the state cookie.

use base64::{Engine, prelude::BASE64_URL_SAFE_NO_PAD};
use rand::RngCore;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use crate::{
    ApiError, App,
    app::SignedIn,
    auth::{
        oidc::{AuthorizationRequest, IdpError},
        session::ClientInfo,
    },
    billing::customers::ensure_customer,
    ids::UserId,
    users::Profile,
};

pub const STATE_COOKIE: &str = "oidc_state";
const LOGIN_TTL_SECS: u64 = 600;

#[derive(Serialize, Deserialize)]
struct PendingLogin {
    nonce: String,
    verifier: String,
    return_to: String,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    BASE64_URL_SAFE_NO_PAD.encode(bytes)
}

fn pending_key(state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    format!("login:{}", BASE64_URL_SAFE_NO_PAD.encode(digest))
}

pub struct Started {
    pub location: Url,
    pub state_cookie: String,
}

/// Starts a login: where to send the browser, and the cookie binding the attempt to it.
pub async fn begin(app: &App, return_to: Option<&str>) -> Result<Started, ApiError> {
    let (state, nonce, verifier) = (random_token(), random_token(), random_token());
    let challenge = BASE64_URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let return_to = app.config.web.return_to(return_to);
    let location = app
        .idp
        .authorization_url(&AuthorizationRequest { state: &state, nonce: &nonce, code_challenge: &challenge })
        .await
        .map_err(|e| ApiError::Upstream { service: "identity provider", temporary: true, source: e.into() })?;

    let pending = serde_json::to_string(&PendingLogin { nonce, verifier, return_to: return_to.into() })
        .expect("pending logins serialize");
    let mut redis = app.redis.conn();
    let stored: redis::RedisResult<()> = redis.set_ex(pending_key(&state), pending, LOGIN_TTL_SECS).await;
    stored.map_err(|e| ApiError::Upstream { service: "session store", temporary: true, source: e.into() })?;

    Ok(Started { location, state_cookie: state_cookie(app, &state, LOGIN_TTL_SECS) })
}

/// `Set-Cookie` for the login attempt (or, with max_age 0, its removal). Sent only to the callback.
pub fn state_cookie(app: &App, value: &str, max_age: u64) -> String {
    let domain = app.config.session.cookie_domain.as_ref().map(|d| format!("; Domain={d}")).unwrap_or_default();
    format!("{STATE_COOKIE}={value}; Max-Age={max_age}; Path=/auth/callback; HttpOnly; Secure; SameSite=Lax{domain}")
}

/// The callback's query string.
#[derive(Debug, Default)]
pub struct CallbackQuery<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// Why a sign-in did not happen; `code()` is what the app receives as `authError`.
#[derive(Debug, thiserror::Error)]
pub enum SignInFailure {
    #[error("the identity provider reported {0}")]
    Idp(String),
    #[error("missing, mismatched, expired or reused state")]
    InvalidState,
    #[error("no authorization code")]
    MissingCode,
    #[error(transparent)]
    Rejected(IdpError),
    #[error("the profile is unusable: {0}")]
    InvalidProfile(&'static str),
    #[error("sign-in failed")]
    Internal(#[from] anyhow::Error),
}

impl SignInFailure {
    pub fn code(&self) -> &str {
        match self {
            // Only the IdP's own short error codes pass through (e.g. access_denied).
            Self::Idp(code) if code.len() <= 40 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => code,
            Self::Idp(_) => "idp_error",
            Self::InvalidState => "invalid_state",
            Self::MissingCode => "invalid_request",
            Self::Rejected(IdpError::InvalidGrant(_)) => "invalid_grant",
            Self::Rejected(IdpError::InvalidToken(_)) | Self::InvalidProfile(_) => "invalid_token",
            Self::Rejected(IdpError::Unavailable(_)) => "idp_unavailable",
            Self::Internal(_) => "sign_in_failed",
        }
    }
}

pub struct Completed {
    pub signed_in: SignedIn,
    pub return_to: Url,
}

/// Completes a login: checks and spends the state, exchanges the code, verifies the ID token,
/// upserts the user, opens a session, and makes sure the user has a Stripe customer.
pub async fn complete(
    app: &App,
    query: &CallbackQuery<'_>,
    state_cookie: Option<&str>,
    client: &ClientInfo,
) -> Result<Completed, SignInFailure> {
    let state = query.state.ok_or(SignInFailure::InvalidState)?;
    let bound = state_cookie.is_some_and(|cookie| bool::from(cookie.as_bytes().ct_eq(state.as_bytes())));
    if !bound {
        return Err(SignInFailure::InvalidState);
    }
    let mut redis = app.redis.conn();
    let pending: Option<String> =
        redis.get_del(pending_key(state)).await.map_err(|e| anyhow::Error::new(e).context("taking the login state"))?;
    let pending: PendingLogin = match pending {
        Some(json) => serde_json::from_str(&json).map_err(|e| anyhow::Error::new(e).context("stored login state"))?,
        None => return Err(SignInFailure::InvalidState),
    };
    if let Some(error) = query.error {
        return Err(SignInFailure::Idp(error.to_owned()));
    }
    let code = query.code.ok_or(SignInFailure::MissingCode)?;

    let client_secret = app.auth0_client_secret().await?;
    let id_token =
        app.idp.exchange_code(code, &pending.verifier, client_secret).await.map_err(SignInFailure::Rejected)?;
    let claims = app.idp.verify_id_token(&id_token, &pending.nonce).await.map_err(SignInFailure::Rejected)?;

    let profile = Profile {
        user_id: UserId::parse(claims.sub).map_err(|_| SignInFailure::InvalidProfile("sub"))?,
        email: claims.email.filter(|e| e.contains('@')).ok_or(SignInFailure::InvalidProfile("email"))?,
        name: claims.name,
    };
    let mut signed_in = app.sign_in(&profile, client).await?;

    // Stripe being down must not lock people out: the customer is created at the next sign-in
    // or when billing first needs it (ensure_customer is idempotent).
    match provision_customer(app, &signed_in).await {
        Ok(customer) => signed_in.user.stripe_customer_id = Some(customer),
        Err(error) => {
            tracing::warn!(user_id = %profile.user_id, error = format!("{error:#}"), "no Stripe customer yet")
        }
    }

    let return_to = pending.return_to.parse().unwrap_or_else(|_| app.config.web.app_url.clone());
    Ok(Completed { signed_in, return_to })
}

async fn provision_customer(app: &App, signed_in: &SignedIn) -> anyhow::Result<String> {
    let stripe = app.stripe().await?;
    ensure_customer(&app.users, stripe, &signed_in.user).await
}
