//! The SDK's HTTP client: a reqwest client on the shared TLS configuration (`crate::tls`), in
//! place of the SDK's own hyper stack, so every function links one HTTP client and one TLS
//! stack, and no HTTP/2.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use aws_smithy_runtime_api::client::{
    http::{HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector},
    orchestrator::{HttpRequest, HttpResponse},
    result::ConnectorError,
    runtime_components::RuntimeComponents,
};
use aws_smithy_types::body::SdkBody;

/// Built on the first request, so a cold start does no TLS work for a function whose first
/// request needs no AWS call.
#[derive(Debug, Clone, Default)]
pub struct Client(Arc<OnceLock<reqwest::Client>>);

impl Client {
    fn get(&self) -> Result<&reqwest::Client, ConnectorError> {
        if let Some(client) = self.0.get() {
            return Ok(client);
        }
        // The shared base (TLS, no redirects, 2 s to connect); a whole attempt is bounded by the
        // SDK configuration's attempt timeout.
        let built = crate::tls::http_client_builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| ConnectorError::other(error.into(), None))?;
        Ok(self.0.get_or_init(|| built))
    }
}

impl HttpClient for Client {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Client {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.get().cloned();
        HttpConnectorFuture::new(async move { send(&client?, request).await })
    }
}

async fn send(client: &reqwest::Client, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
    let (parts, body) = request.try_into_http1x().map_err(|error| ConnectorError::user(error.into()))?.into_parts();
    // An in-memory body (every DynamoDB, SSM and SES call) goes as bytes; only a stream is wrapped.
    let body = match body.bytes() {
        Some(bytes) => reqwest::Body::from(bytes::Bytes::copy_from_slice(bytes)),
        None => reqwest::Body::wrap(body),
    };
    let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
        .map_err(|error| ConnectorError::user(error.into()))?;
    let response = client.execute(request).await.map_err(classify)?;
    let (parts, body) = http::Response::from(response).into_parts();
    HttpResponse::try_from(http::Response::from_parts(parts, SdkBody::from_body_1_x(body)))
        .map_err(|error| ConnectorError::other(error.into(), None))
}

/// The SDK retries timeouts and I/O errors (a refused connection, a pooled connection the server
/// had closed); anything else is final.
fn classify(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || error.is_request() || error.is_body() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}
