//! The authorization code flow around the IdP: `begin` at /auth/login, `complete` at
//! /auth/callback. The attempt (state, nonce, PKCE verifier, returnTo) is kept by
//! [`LoginAttempts`], taken exactly once, and only by the browser holding the state cookie.

use base64::{Engine, prelude::BASE64_URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use url::Url;

use crate::{
    config::{Secret, WebSettings},
    domain::{
        ids::{Email, UserId, random_token},
        session::{ClientInfo, Session, SessionToken},
        user::{Profile, User},
    },
    error::ApiError,
    flows::customers::ensure_customer,
    store::{
        login_attempts::{LoginAttempts, PendingLogin},
        sessions::Sessions,
        users::Users,
    },
    upstream::{
        oidc::{AuthorizationRequest, Idp, IdpError},
        stripe::Stripe,
    },
};

/// How far the IdP's clock may be behind ours.
const CLOCK_SKEW_SECS: i64 = 60;

/// A fresh sign-in: the cookie value goes to the browser, nowhere else.
#[derive(Debug)]
pub struct SignedIn {
    pub user: User,
    pub token: SessionToken,
    pub session: Session,
}

/// Upserts the user of a verified IdP profile and opens a fresh session for them (a new id at
/// every sign-in: no fixation), unless an admin suspended the account. The callback does this
/// after checking the ID token; the test harness does it to mint users.
pub async fn open_session(
    users: &Users,
    sessions: &Sessions,
    profile: &Profile,
    client: &ClientInfo,
    authenticated_at: Option<i64>,
    now: OffsetDateTime,
) -> Result<SignedIn, SignInFailure> {
    let user = users.record_login(profile, now).await?;
    if user.suspension.is_some() {
        return Err(SignInFailure::Suspended);
    }
    let (token, session) = sessions.open(&user.id, client, authenticated_at, now).await?;
    Ok(SignedIn { user, token, session })
}

/// A login begun: where to send the browser, and the state its cookie must carry back.
pub struct Started {
    pub location: Url,
    pub state: String,
}

/// Starts a login with fresh state, nonce and PKCE verifier.
pub async fn begin(
    idp: &Idp,
    attempts: &LoginAttempts,
    web: &WebSettings,
    return_to: Option<&str>,
    reauthenticate: bool,
) -> Result<Started, ApiError> {
    let (state, nonce, verifier) = (random_token(), random_token(), random_token());
    let challenge = BASE64_URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let return_to = web.return_to(return_to);
    let location = idp
        .authorization_url(&AuthorizationRequest {
            state: &state,
            nonce: &nonce,
            code_challenge: &challenge,
            reauthenticate,
        })
        .await?;
    let started_at = OffsetDateTime::now_utc().unix_timestamp();
    let pending = PendingLogin { nonce, verifier, return_to: return_to.into(), reauthenticate, started_at };
    attempts.begin(&state, &pending).await.map_err(|source| ApiError::Upstream {
        service: "session store",
        temporary: true,
        source,
    })?;
    Ok(Started { location, state })
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
    #[error("the identity provider has not verified the email address")]
    UnverifiedEmail,
    #[error("the account is suspended")]
    Suspended,
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
            Self::UnverifiedEmail => "email_not_verified",
            Self::Suspended => "account_suspended",
            Self::Internal(_) => "sign_in_failed",
        }
    }
}

pub struct Completed {
    pub signed_in: SignedIn,
    pub return_to: Url,
}

/// What completing a sign-in reads and writes.
pub struct SignIn<'a> {
    pub idp: &'a Idp,
    pub attempts: &'a LoginAttempts,
    pub users: &'a Users,
    pub sessions: &'a Sessions,
    pub client_secret: &'a Secret<String>,
    /// None while Stripe cannot be reached: the customer is made later.
    pub stripe: Option<&'a Stripe>,
    pub web: &'a WebSettings,
    /// Refuse an ID token without `email_verified: true` (`REQUIRE_VERIFIED_EMAIL`).
    pub require_verified_email: bool,
}

impl SignIn<'_> {
    /// Completes a login: checks and spends the state, exchanges the code, verifies the ID
    /// token, upserts the user, opens a session, and makes sure the user has a Stripe customer.
    pub async fn complete(
        &self,
        query: &CallbackQuery<'_>,
        state_cookie: Option<&str>,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Completed, SignInFailure> {
        let state = query.state.ok_or(SignInFailure::InvalidState)?;
        let bound = state_cookie.is_some_and(|cookie| bool::from(cookie.as_bytes().ct_eq(state.as_bytes())));
        if !bound {
            return Err(SignInFailure::InvalidState);
        }
        let pending = self.attempts.take(state).await?.ok_or(SignInFailure::InvalidState)?;
        if let Some(error) = query.error {
            return Err(SignInFailure::Idp(error.to_owned()));
        }
        let code = query.code.ok_or(SignInFailure::MissingCode)?;

        let id_token = self
            .idp
            .exchange_code(code, &pending.verifier, self.client_secret)
            .await
            .map_err(SignInFailure::Rejected)?;
        let claims = self.idp.verify_id_token(&id_token, &pending.nonce).await.map_err(SignInFailure::Rejected)?;
        // Asked to ask for the credentials again: the token must show the IdP did (a silent
        // sign-in through the IdP's own session carries the earlier, older auth_time).
        if pending.reauthenticate && claims.auth_time.is_none_or(|at| at < pending.started_at - CLOCK_SKEW_SECS) {
            return Err(SignInFailure::Rejected(IdpError::InvalidToken(
                "the identity provider did not ask for the credentials again (auth_time)".into(),
            )));
        }

        // An unverified address may be someone else's: it must not become an account's identity.
        if self.require_verified_email && claims.email_verified != Some(true) {
            return Err(SignInFailure::UnverifiedEmail);
        }
        let email = claims.email.as_deref().map(Email::parse);
        let profile = Profile {
            user_id: UserId::parse(claims.sub)
                .ok()
                .filter(|id| id.library_workspace().is_none())
                .ok_or(SignInFailure::InvalidProfile("sub"))?,
            email: email.and_then(Result::ok).ok_or(SignInFailure::InvalidProfile("email"))?,
            name: claims.name,
        };
        let mut signed_in = open_session(self.users, self.sessions, &profile, client, claims.auth_time, now).await?;

        // Stripe being down must not lock people out: the customer is created at the next sign-in
        // or when billing first needs it (ensure_customer is idempotent).
        let customer = match self.stripe {
            Some(stripe) => ensure_customer(self.users, stripe, &signed_in.user).await,
            None => Err(ApiError::Internal(anyhow::anyhow!("the Stripe client is not available"))),
        };
        match customer {
            Ok(customer) => signed_in.user.stripe_customer_id = Some(customer),
            Err(error) => tracing::warn!(user_id = %profile.user_id, ?error, "no Stripe customer yet"),
        }

        let return_to = pending.return_to.parse().unwrap_or_else(|_| self.web.app_url.clone());
        Ok(Completed { signed_in, return_to })
    }
}
