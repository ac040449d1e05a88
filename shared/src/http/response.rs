//! Building responses: JSON (never cached: every answer here is per user) and redirects.

use lambda_http::{Body, Response, http::StatusCode};
use serde::Serialize;

use crate::error::ApiError;

pub type HttpResult = Result<Response<Body>, ApiError>;

/// A JSON response that no cache keeps (every answer here is per user).
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).expect("response values serialize");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Body::Text(body))
        .expect("static headers are valid")
}

pub fn ok<T: Serialize + ?Sized>(value: &T) -> HttpResult {
    Ok(json(StatusCode::OK, value))
}

/// A 302 to `location`, setting each of `cookies`.
pub fn redirect(location: &url::Url, cookies: &[String]) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::FOUND)
        .header("location", location.as_str())
        .header("cache-control", "no-store");
    for cookie in cookies {
        builder = builder.header("set-cookie", cookie);
    }
    builder.body(Body::Empty).expect("URLs and cookies are valid header values")
}

pub fn created<T: Serialize + ?Sized>(value: &T) -> HttpResult {
    Ok(json(StatusCode::CREATED, value))
}
