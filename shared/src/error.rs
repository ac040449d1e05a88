//! The one error type at the HTTP edge, with stable codes (SPEC §2), and the one place that turns
//! it into a response. 5xx bodies are opaque: the cause chain goes to the log with the request id.

use lambda_http::{Body, Response, http::StatusCode};
use serde_json::{Map, Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("sign-in required")]
    Unauthenticated,
    #[error("missing or invalid CSRF token, or a request from a foreign origin")]
    CsrfFailed,
    /// A feature the caller's plan does not include (the edge adds where to upgrade).
    #[error("{0}")]
    FeatureLocked(String),
    /// An allowance of the caller's plan is used up (the edge adds where to upgrade).
    #[error("{0}")]
    LimitReached(String),
    #[error("{0}")]
    Forbidden(String),
    /// Forbidden until the person signs in again (at `reauthenticate_url`).
    #[error("{message}")]
    Reauthenticate { message: String, reauthenticate_url: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    /// CONFLICT until the customer settles a payment (in the billing portal, at `portal_url`).
    #[error("{message}")]
    PaymentNeeded { message: String, portal_url: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// An outside service has no room for the request now (503, with when to try again).
    #[error("{service} is busy, try again in {retry_after_secs} s")]
    Busy { service: &'static str, retry_after_secs: u64 },
    /// An outside service failed; `temporary` picks 503 over 502.
    #[error("{service} is unavailable, try again shortly")]
    Upstream { service: &'static str, temporary: bool, source: anyhow::Error },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation { field: field.into(), message: message.into() }
    }

    pub fn locked(message: impl Into<String>) -> Self {
        Self::FeatureLocked(message.into())
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::CsrfFailed => "CSRF_FAILED",
            Self::FeatureLocked(_) => "FEATURE_LOCKED",
            Self::LimitReached(_) => "LIMIT_REACHED",
            Self::Forbidden(_) | Self::Reauthenticate { .. } => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Validation { .. } => "VALIDATION_FAILED",
            Self::Conflict(_) | Self::PaymentNeeded { .. } => "CONFLICT",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Busy { .. } | Self::Upstream { .. } => "UPSTREAM_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::CsrfFailed
            | Self::FeatureLocked(_)
            | Self::LimitReached(_)
            | Self::Forbidden(_)
            | Self::Reauthenticate { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Validation { .. } => StatusCode::BAD_REQUEST,
            Self::Conflict(_) | Self::PaymentNeeded { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy { .. } | Self::Upstream { temporary: true, .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream { temporary: false, .. } => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Logs what the client must not see, then builds the JSON error response; a refusal of the
    /// plan (FEATURE_LOCKED, LIMIT_REACHED) links to `upgrade_url`.
    pub fn into_response(self, request_id: &str, upgrade_url: &url::Url) -> Response<Body> {
        let status = self.status();
        match &self {
            Self::Internal(cause) => tracing::error!(request_id, error = format!("{cause:#}"), "internal error"),
            Self::Upstream { service, source, .. } => {
                tracing::warn!(request_id, service, error = format!("{source:#}"), "upstream unavailable")
            }
            Self::Busy { service, .. } => tracing::warn!(request_id, service, "upstream busy; asked to retry later"),
            _ => tracing::info!(request_id, code = self.code(), "request refused"),
        }

        let mut error = Map::new();
        error.insert("code".into(), self.code().into());
        error.insert("message".into(), self.to_string().into());
        match &self {
            Self::FeatureLocked(_) | Self::LimitReached(_) => {
                error.insert("upgradeUrl".into(), upgrade_url.as_str().into());
            }
            Self::Reauthenticate { reauthenticate_url, .. } => {
                error.insert("reauthenticateUrl".into(), reauthenticate_url.as_str().into());
            }
            Self::PaymentNeeded { portal_url, .. } => {
                error.insert("portalUrl".into(), portal_url.as_str().into());
            }
            Self::Validation { field, message } => {
                error.insert("fields".into(), json!({ field: message }));
            }
            Self::RateLimited { retry_after_secs } | Self::Busy { retry_after_secs, .. } => {
                error.insert("retryAfter".into(), (*retry_after_secs).into());
            }
            Self::Internal(_) => {
                error.insert("requestId".into(), request_id.into());
            }
            _ => {}
        }

        let mut response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", "no-store");
        if let Self::RateLimited { retry_after_secs } | Self::Busy { retry_after_secs, .. } = self {
            response = response.header("retry-after", retry_after_secs);
        }
        let body = json!({ "error": Value::Object(error) }).to_string();
        response.body(Body::Text(body)).expect("static headers are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(error: ApiError, request_id: &str) -> Response<Body> {
        error.into_response(request_id, &"https://app.example/pricing".parse().unwrap())
    }

    fn body(response: &Response<Body>) -> Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[test]
    fn internal_errors_are_opaque() {
        let cause = anyhow::anyhow!("dynamodb: table voice-prod-users, key AKIASECRET");
        let response = answer(ApiError::Internal(cause.context("loading user")), "req-1");
        assert_eq!(response.status(), 500);
        let body = body(&response);
        assert_eq!(body, json!({"error": {"code": "INTERNAL", "message": "internal error", "requestId": "req-1"}}));
    }

    #[test]
    fn validation_names_the_field() {
        let response = answer(ApiError::validation("text", "must be at most 500 characters"), "r");
        assert_eq!(response.status(), 400);
        let body = body(&response);
        assert_eq!(body["error"]["code"], "VALIDATION_FAILED");
        assert_eq!(body["error"]["fields"]["text"], "must be at most 500 characters");
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let response = answer(ApiError::RateLimited { retry_after_secs: 12 }, "r");
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "12");
        assert_eq!(body(&response)["error"]["retryAfter"], 12);
    }

    #[test]
    fn upstream_errors_hide_their_cause() {
        let error =
            ApiError::Upstream { service: "ElevenLabs", temporary: true, source: anyhow::anyhow!("key xi-123") };
        let response = answer(error, "r");
        assert_eq!(response.status(), 503);
        assert!(!String::from_utf8_lossy(response.body().as_ref()).contains("xi-123"));
    }

    #[test]
    fn refusals_of_the_plan_link_to_the_upgrade() {
        for error in [ApiError::locked("sliders are PREMIUM"), ApiError::LimitReached("all 10 used".into())] {
            let response = answer(error, "r");
            assert_eq!(response.status(), 403);
            assert_eq!(body(&response)["error"]["upgradeUrl"], "https://app.example/pricing");
        }
        let other = answer(ApiError::not_found("voice"), "r");
        assert!(body(&other)["error"].get("upgradeUrl").is_none());
    }
}
