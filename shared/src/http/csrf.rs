//! Cross-site request forgery: a state-changing request must come from an allowed origin or
//! carry the session's CSRF token.

use lambda_http::{Request, http::Method};
use subtle::ConstantTimeEq;

use crate::{domain::session::Session, error::ApiError, http::request::header};

pub const CSRF_HEADER: &str = "x-csrf-token";

/// Safe methods pass. Otherwise an `Origin` header must be allowed (a foreign one is refused even
/// with a token); without `Origin`, the `X-CSRF-Token` header must equal the session's token.
pub fn check(req: &Request, session: &Session, allowed_origins: &[String]) -> Result<(), ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    match header(req, "origin") {
        Some(origin) if allowed_origins.iter().any(|allowed| allowed == origin) => Ok(()),
        Some(_) => Err(ApiError::CsrfFailed),
        None => token(req, session),
    }
}

/// The `X-CSRF-Token` header must equal the session's token, whatever the method: for the admin
/// area, whose reads are recorded in the audit log, so that a link an admin follows from another
/// site (a top-level GET, which carries the SameSite=Lax cookie) records nothing in their name.
pub fn token(req: &Request, session: &Session) -> Result<(), ApiError> {
    let sent = header(req, CSRF_HEADER).ok_or(ApiError::CsrfFailed)?;
    if bool::from(sent.as_bytes().ct_eq(session.csrf_token.as_bytes())) { Ok(()) } else { Err(ApiError::CsrfFailed) }
}

#[cfg(test)]
mod tests {
    use lambda_http::Body;

    use super::*;
    use crate::domain::ids::UserId;

    fn session() -> Session {
        Session {
            key: "k".into(),
            user_id: UserId::parse("u").unwrap(),
            created_at: 0,
            absolute_expires_at: 1,
            authenticated_at: None,
            csrf_token: "expected-token".into(),
        }
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = lambda_http::http::Request::builder().method(method).uri("/auth/logout");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::Empty).unwrap()
    }

    fn verdict(method: &str, headers: &[(&str, &str)]) -> bool {
        check(&request(method, headers), &session(), &["https://app.example.com".to_owned()]).is_ok()
    }

    #[test]
    fn safe_methods_pass() {
        assert!(verdict("GET", &[("origin", "https://evil.example")]));
    }

    #[test]
    fn state_changes_need_the_token_or_an_allowed_origin() {
        assert!(!verdict("POST", &[]));
        assert!(!verdict("POST", &[(CSRF_HEADER, "wrong")]));
        assert!(!verdict("DELETE", &[(CSRF_HEADER, "expected-tokeN")]));
        assert!(verdict("POST", &[(CSRF_HEADER, "expected-token")]));
        assert!(verdict("PATCH", &[("origin", "https://app.example.com")]));
    }

    #[test]
    fn a_foreign_origin_is_refused_even_with_the_token() {
        assert!(!verdict("POST", &[("origin", "https://evil.example"), (CSRF_HEADER, "expected-token")]));
        assert!(!verdict("POST", &[("origin", "null"), (CSRF_HEADER, "expected-token")]));
    }
}
