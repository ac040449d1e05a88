//! What the local API serves besides the functions, as the edge in front of them would in AWS:
//! API Gateway's CORS answers (from template.yaml's `CorsConfiguration`), and, in local mode
//! only, the web client (`web/`, static files in AWS), the OpenAPI document as JSON
//! (`/openapi.json`) and its docs page (`/docs`).

use std::path::PathBuf;

use anyhow::Context;
use hyper::body::Bytes;
use lambda_http::{
    Body, Response,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
};
use serde_norway::Value;

/// API Gateway's CORS settings for the HTTP API: the template's `CorsConfiguration`, with the
/// `AllowedOrigins` parameter's local value.
#[derive(Debug, Clone)]
pub struct Cors {
    pub origins: Vec<String>,
    pub methods: String,
    pub headers: String,
    pub max_age: u64,
    pub credentials: bool,
}

impl Cors {
    /// Reads `Resources.HttpApi.Properties.CorsConfiguration`; `origins` stands in for the
    /// `AllowedOrigins` parameter it refers to.
    pub fn from_template(yaml: &str, origins: Vec<String>) -> anyhow::Result<Self> {
        let template: Value = serde_norway::from_str(yaml).context("template.yaml is not valid YAML")?;
        let cors = template
            .get("Resources")
            .and_then(|r| r.get("HttpApi"))
            .and_then(|api| api.get("Properties"))
            .and_then(|p| p.get("CorsConfiguration"))
            .context("template.yaml's HttpApi has no CorsConfiguration")?;
        let list = |key: &str| -> anyhow::Result<String> {
            let items =
                cors.get(key).and_then(Value::as_sequence).with_context(|| format!("CorsConfiguration.{key}"))?;
            Ok(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        };
        Ok(Self {
            origins,
            methods: list("AllowMethods")?,
            headers: list("AllowHeaders")?,
            max_age: cors.get("MaxAge").and_then(Value::as_u64).unwrap_or(0),
            credentials: cors.get("AllowCredentials").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    fn allows<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        self.origins.iter().any(|o| o.as_bytes() == origin.as_bytes()).then_some(origin)
    }

    /// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`), which API
    /// Gateway gives without invoking a function: 204, with the grant only for an allowed origin.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let mut response = Response::builder().status(StatusCode::NO_CONTENT);
        if let Some(origin) = self.allows(headers) {
            response = response
                .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin)
                .header(header::ACCESS_CONTROL_ALLOW_METHODS, &self.methods)
                .header(header::ACCESS_CONTROL_ALLOW_HEADERS, &self.headers)
                .header(header::ACCESS_CONTROL_MAX_AGE, self.max_age);
            if self.credentials {
                response = response.header(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
            }
        }
        Some(response.header(header::VARY, "origin").body(Body::Empty).expect("valid headers"))
    }

    /// Adds the grant to a function's answer to a request from an allowed origin.
    pub fn decorate<B>(&self, request: &HeaderMap, response: &mut Response<B>) {
        let Some(origin) = self.allows(request) else { return };
        let headers = response.headers_mut();
        // The streamed speech names its recording in a header the page must read (the function
        // URL's ExposeHeaders).
        if headers.contains_key("x-recording-id") {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("x-recording-id"));
        }
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.credentials {
            headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
}

/// The web client and the API's documents, in local mode.
#[derive(Debug, Clone)]
pub struct Site {
    /// `web/`: flat, so a request names a file or nothing.
    pub root: PathBuf,
    /// openapi.yaml.
    pub openapi: PathBuf,
    /// Where the page may fetch and play audio from besides itself (the S3 endpoint, and the
    /// CloudFront stand-in when audio goes through it).
    pub media_origins: Vec<String>,
}

/// The web client's pages (its `views` in web/app.js). Some are API paths too (`/voices`): a
/// browser navigating to one gets the page, any other request the API.
pub const PAGES: &[&str] =
    &["/", "/library", "/voices", "/account", "/teams", "/settings", "/admin", "/pricing", "/billing/success"];

impl Site {
    /// A browser's navigation to one of the client's [`PAGES`] (`Sec-Fetch-Mode: navigate`, which
    /// a script's request never carries): the page, before any route; `None` for anything else.
    pub fn navigation(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response<Body>> {
        let navigating = headers.get("sec-fetch-mode").is_some_and(|mode| mode == "navigate");
        if method != Method::GET || !navigating || !PAGES.contains(&path) {
            return None;
        }
        std::fs::read(self.root.join("index.html")).ok().map(|bytes| self.file("index.html", bytes))
    }

    /// A `GET` no route took: `/openapi.json`, `/docs`, a file of `web/`, else (for a browser
    /// asking for a page) the client's `index.html`, whose script routes by path.
    pub fn serve(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        if path == "/openapi.json" {
            return Some(self.openapi_json());
        }
        let name = match path.trim_start_matches('/') {
            "" => "index.html",
            "docs" => "docs.html",
            name => name,
        };
        let is_file_name =
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) && !name.starts_with('.');
        if is_file_name && let Ok(bytes) = std::fs::read(self.root.join(name)) {
            return Some(self.file(name, bytes));
        }
        let wants_page = headers
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
        if wants_page {
            return std::fs::read(self.root.join("index.html")).ok().map(|bytes| self.file("index.html", bytes));
        }
        None
    }

    fn openapi_json(&self) -> Response<Body> {
        let document = std::fs::read_to_string(&self.openapi)
            .map_err(anyhow::Error::from)
            .and_then(|yaml| Ok(serde_norway::from_str::<serde_json::Value>(&yaml)?));
        match document {
            Ok(document) => Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::Text(document.to_string()))
                .expect("valid headers"),
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "reading openapi.yaml");
                Response::builder()
                    .status(500)
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body(Body::Text("openapi.yaml could not be read; see the local API's log".into()))
                    .expect("valid headers")
            }
        }
    }

    fn file(&self, name: &str, bytes: Vec<u8>) -> Response<Body> {
        let kind = match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            Some("json") => "application/json",
            _ => "application/octet-stream",
        };
        let media = self.media_origins.join(" ");
        // The page runs only its own script, talks only to the API and the audio store, and
        // cannot be framed.
        let policy = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self' {media}; media-src 'self' blob: {media}; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'"
        );
        Response::builder()
            .header(header::CONTENT_TYPE, kind)
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::CONTENT_SECURITY_POLICY, policy)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(header::REFERRER_POLICY, "same-origin")
            .body(Body::Binary(Bytes::from(bytes).to_vec()))
            .expect("valid headers")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

    fn cors() -> Cors {
        let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
        Cors::from_template(&template, vec!["http://app.example".into()]).unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    fn site() -> Site {
        Site {
            root: format!("{ROOT}/web").into(),
            openapi: format!("{ROOT}/openapi.yaml").into(),
            media_origins: vec!["http://127.0.0.1:5055".into()],
        }
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_is_granted_with_credentials() {
        let asked = headers(&[("origin", "http://app.example"), ("access-control-request-method", "POST")]);
        let answer = cors().preflight(&Method::OPTIONS, &asked).unwrap();
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        let got = |name: &str| answer.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got("access-control-allow-origin").as_deref(), Some("http://app.example"));
        assert_eq!(got("access-control-allow-credentials").as_deref(), Some("true"));
        assert!(got("access-control-allow-headers").unwrap().contains("x-csrf-token"));
        assert!(got("access-control-allow-methods").unwrap().contains("PATCH"));
    }

    #[test]
    fn a_foreign_origin_gets_no_grant() {
        let asked = headers(&[("origin", "http://evil.example"), ("access-control-request-method", "POST")]);
        let answer = cors().preflight(&Method::OPTIONS, &asked).unwrap();
        assert!(answer.headers().get("access-control-allow-origin").is_none());

        let mut response = Response::new(Body::Empty);
        cors().decorate(&headers(&[("origin", "http://evil.example")]), &mut response);
        assert!(response.headers().get("access-control-allow-origin").is_none());
        cors().decorate(&headers(&[("origin", "http://app.example")]), &mut response);
        assert_eq!(response.headers()["access-control-allow-origin"], "http://app.example");
        // An OPTIONS that is no preflight goes to the routes (and finds none).
        assert!(cors().preflight(&Method::OPTIONS, &HeaderMap::new()).is_none());
    }

    #[test]
    fn serves_the_client_the_spec_and_the_docs_but_nothing_outside_web() {
        let site = site();
        let page = HeaderMap::from_iter([(header::ACCEPT, HeaderValue::from_static("text/html"))]);
        let none = HeaderMap::new();
        let get = |path: &str, headers: &HeaderMap| site.serve(&Method::GET, path, headers);

        let index = get("/", &none).unwrap();
        assert!(index.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let policy = index.headers()["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'") && policy.contains("http://127.0.0.1:5055"), "{policy}");
        assert!(
            get("/app.js", &none).unwrap().headers()["content-type"].to_str().unwrap().starts_with("text/javascript")
        );
        assert!(get("/docs", &none).is_some());

        let Body::Text(json) = get("/openapi.json", &none).unwrap().into_body() else { panic!("a JSON body") };
        let spec: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(spec["openapi"], "3.1.0");

        // The client routes by path: a page request for one of them gets index.html; an API
        // client gets nothing here (the router answers 404 in the error shape).
        assert!(get("/billing/success", &page).is_some());
        assert!(get("/billing/success", &none).is_none());
        for outside in ["/../template.yaml", "/.hidden", "/%2e%2e/Cargo.toml", "/web/../openapi.yaml"] {
            let served = get(outside, &none);
            assert!(served.is_none(), "{outside} must not be served");
        }
        assert!(site.serve(&Method::POST, "/", &page).is_none());
    }

    #[test]
    fn a_navigation_to_a_page_that_is_also_an_api_path_gets_the_page() {
        let site = site();
        let (navigate, script) = (headers(&[("sec-fetch-mode", "navigate")]), headers(&[("sec-fetch-mode", "cors")]));
        assert!(site.navigation(&Method::GET, "/voices", &navigate).is_some());
        assert!(site.navigation(&Method::GET, "/voices", &script).is_none(), "a script's fetch gets the API");
        assert!(site.navigation(&Method::GET, "/auth/login", &navigate).is_none(), "sign-in is the API's");
        assert!(site.navigation(&Method::POST, "/voices", &navigate).is_none());
    }

    #[test]
    fn the_pages_are_the_client_s_views() {
        let script = std::fs::read_to_string(format!("{ROOT}/web/app.js")).unwrap();
        let views = script.split("const views = {").nth(1).and_then(|rest| rest.split("};").next()).unwrap();
        let mut listed: Vec<&str> =
            views.lines().filter_map(|line| line.trim().strip_prefix('\'')?.split('\'').next()).collect();
        let mut pages = PAGES.to_vec();
        listed.sort_unstable();
        pages.sort_unstable();
        assert_eq!(listed, pages);
    }
}
