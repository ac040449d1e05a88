//! `Set-Cookie` values: the session cookie and the login-attempt cookie.

use crate::{
    config::SessionPolicy,
    domain::session::{COOKIE_NAME, SessionToken},
};

/// The cookie binding a login attempt to the browser that began it.
pub const STATE_COOKIE: &str = "oidc_state";

/// `Set-Cookie` for a new session: HttpOnly, Secure, SameSite=Lax, Path=/, host-only unless a
/// domain is configured; the browser keeps it no longer than the server does.
pub fn session_cookie(token: &SessionToken, policy: &SessionPolicy) -> String {
    cookie(token.expose(), policy.absolute.as_secs(), policy)
}

/// `Set-Cookie` that makes the browser drop the session cookie.
pub fn cleared_cookie(policy: &SessionPolicy) -> String {
    cookie("", 0, policy)
}

fn cookie(value: &str, max_age: u64, policy: &SessionPolicy) -> String {
    let domain = policy.cookie_domain.as_ref().map(|d| format!("; Domain={d}")).unwrap_or_default();
    format!("{COOKIE_NAME}={value}; Max-Age={max_age}; Path=/; HttpOnly; Secure; SameSite=Lax{domain}")
}

/// `Set-Cookie` for a login attempt (or, with max_age 0, its removal). Sent only to the callback.
pub fn state_cookie(policy: &SessionPolicy, value: &str, max_age: u64) -> String {
    let domain = policy.cookie_domain.as_ref().map(|d| format!("; Domain={d}")).unwrap_or_default();
    format!("{STATE_COOKIE}={value}; Max-Age={max_age}; Path=/auth/callback; HttpOnly; Secure; SameSite=Lax{domain}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy(domain: Option<&str>) -> SessionPolicy {
        SessionPolicy {
            idle: Duration::from_secs(900),
            absolute: Duration::from_secs(43_200),
            durable_recheck: Duration::from_secs(60),
            cookie_domain: domain.map(String::from),
        }
    }

    #[test]
    fn cookies_have_the_required_attributes() {
        let token = SessionToken::generate(&crate::domain::ids::UserId::parse("auth0|ada").unwrap());
        let set = session_cookie(&token, &policy(None));
        assert_eq!(set, format!("sid={}; Max-Age=43200; Path=/; HttpOnly; Secure; SameSite=Lax", token.expose()));
        assert_eq!(
            cleared_cookie(&policy(Some("example.com"))),
            "sid=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax; Domain=example.com"
        );
        assert_eq!(
            state_cookie(&policy(None), "abc", 600),
            "oidc_state=abc; Max-Age=600; Path=/auth/callback; HttpOnly; Secure; SameSite=Lax"
        );
    }
}
