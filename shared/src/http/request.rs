//! Reading a request: query parameters, JSON bodies (typed, bounded, errors naming the field),
//! cookies, headers, the client's address, path parameters.

use lambda_http::{Request, RequestExt};

use crate::error::ApiError;

/// A path parameter of the route, e.g. `id` of `/recordings/{id}`.
pub fn path_param<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.path_parameters_ref().and_then(|p| p.first(name))
}

/// The first value of a query string parameter.
pub fn query<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.query_string_parameters_ref().and_then(|q| q.first(name))
}

/// The `limit` query parameter of a paged list: `default` when absent, else a whole number from 1
/// to `max` (VALIDATION_FAILED otherwise).
pub fn page_limit(req: &Request, default: u32, max: u32) -> Result<u32, ApiError> {
    match query(req, "limit") {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| ApiError::validation("limit", format!("must be a whole number from 1 to {max}"))),
    }
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
    // Every body is an object; serde's derived structs would also take an array of the fields.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::validation("body", "must be a JSON object"));
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

#[cfg(test)]
mod tests {
    use lambda_http::Body;

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

    #[test]
    fn a_body_is_an_object_and_so_is_each_nested_one() {
        #[derive(Debug, serde::Deserialize)]
        struct Inner {
            #[allow(dead_code)]
            a: u8,
        }
        #[derive(Debug, serde::Deserialize)]
        struct Outer {
            #[serde(default, deserialize_with = "crate::domain::json::object_or_null")]
            inner: Option<Inner>,
        }
        let parse = |json: &'static str| {
            let req = lambda_http::http::Request::builder().body(Body::Text(json.into())).unwrap();
            json_body::<Outer>(&req, 1024)
        };
        assert!(parse(r#"{"inner": {"a": 1}}"#).unwrap().inner.is_some());
        assert!(parse(r#"{"inner": null}"#).unwrap().inner.is_none());
        assert!(parse("{}").unwrap().inner.is_none());
        for refused in ["[null]", r#"{"inner": [1]}"#, r#"  [{"a": 1}]"#] {
            assert!(matches!(parse(refused), Err(ApiError::Validation { .. })), "{refused}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Any Cookie header: no panic, and a value found is one the header really carries.
            #[test]
            fn cookie_headers_never_confuse_the_parser(header in "[ -~]{0,300}", name in "[a-z_]{1,8}") {
                let req = lambda_http::http::Request::builder().header("cookie", header.as_str()).body(Body::Empty).unwrap();
                if let Some(value) = cookie(&req, &name) {
                    prop_assert!(header.contains(&format!("{name}={value}")), "{header:?}");
                }
                let _ = cookie(&req, "sid").and_then(crate::domain::session::SessionToken::parse);
            }
        }
    }
}
