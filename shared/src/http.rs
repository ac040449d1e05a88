//! Small helpers shared by the HTTP handlers: JSON responses, the request id, cookies, routing.

use lambda_http::{Body, Request, RequestExt, Response, http::StatusCode};
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

/// The first value of a query string parameter.
pub fn query<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.query_string_parameters_ref().and_then(|q| q.first(name))
}

/// Parses a JSON body into `T` with a size cap; errors name the offending field.
pub fn json_body<T: serde::de::DeserializeOwned>(req: &Request, max_bytes: usize) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge { limit: max_bytes });
    }
    if bytes.is_empty() {
        return Err(ApiError::validation("body", "a JSON body is required"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        let field = if path == "." {
            // "missing field `text`", "unknown field `foo`": the name is between backticks.
            message.split('`').nth(1).unwrap_or("body").to_owned()
        } else {
            path
        };
        ApiError::validation(field, message)
    })
}

/// The Lambda request id (the local API makes one up the same way).
pub fn request_id(req: &Request) -> String {
    req.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_default()
}

/// Turns a handler's result into the response, mapping errors the one way they are mapped.
pub fn finish(request_id: &str, result: HttpResult) -> Response<Body> {
    result.unwrap_or_else(|error| error.into_response(request_id))
}

/// The value of one cookie. API Gateway folds the `cookies` array into one `Cookie` header.
pub fn cookie<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all("cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

pub fn header<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The client's address as API Gateway saw it.
pub fn source_ip(req: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        _ => None,
    }
}

/// A route's answer to a method it does not serve.
pub fn no_route(req: &Request) -> ApiError {
    ApiError::NotFound(format!("no route for {} {}", req.method(), req.uri().path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cookie_among_several() {
        let req = lambda_http::http::Request::builder()
            .header("cookie", "theme=dark; sid=abc=; other=1")
            .header("cookie", "late=2")
            .body(Body::Empty)
            .unwrap();
        assert_eq!(cookie(&req, "sid"), Some("abc="));
        assert_eq!(cookie(&req, "late"), Some("2"));
        assert_eq!(cookie(&req, "missing"), None);
    }
}
