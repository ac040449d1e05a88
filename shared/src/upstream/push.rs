//! API Gateway's management API for WebSocket connections: `POST @connections/{id}` sends a
//! message, `DELETE` closes the connection. Requests are signed with SigV4 (service
//! `execute-api`) by the function role's credentials, through aws-sigv4 (the signer the SDK
//! itself uses) rather than a generated client of its own.

use std::time::SystemTime;

use anyhow::Context;
use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::{
    config::AwsSettings,
    domain::push::Event,
    upstream::outbound::{self, LazyClient},
};

/// What a connection id may hold unencoded in a path (API Gateway's ids are base64, with `=`,
/// `+` and `/`).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// What became of a message or a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    Delivered,
    /// The connection is closed (410 GoneException): forget it.
    Gone,
}

#[derive(Clone)]
pub struct Gateway {
    http: LazyClient,
    /// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`.
    endpoint: Url,
    region: String,
    credentials: Credentials,
}

impl Gateway {
    pub fn new(http: LazyClient, endpoint: Url, aws: &AwsSettings) -> Self {
        let credentials = aws.credentials.for_sdk();
        Self { http, endpoint, region: aws.region.clone(), credentials }
    }

    /// Sends `event` to one connection.
    pub async fn post(&self, connection_id: &str, event: &Event) -> anyhow::Result<Reached> {
        let body = serde_json::to_vec(event).expect("events serialize");
        self.send(Method::POST, connection_id, body).await
    }

    /// Closes one connection (its `$disconnect` follows).
    pub async fn close(&self, connection_id: &str) -> anyhow::Result<Reached> {
        self.send(Method::DELETE, connection_id, Vec::new()).await
    }

    /// The management API's URL of one connection.
    pub fn url(&self, connection_id: &str) -> String {
        let base = self.endpoint.as_str().trim_end_matches('/');
        format!("{base}/@connections/{}", utf8_percent_encode(connection_id, PATH_SEGMENT))
    }

    async fn send(&self, method: Method, connection_id: &str, body: Vec<u8>) -> anyhow::Result<Reached> {
        let url = self.url(connection_id);
        let headers = self.signed(method.as_str(), &url, &body, SystemTime::now())?;
        let mut request = self.http.get()?.request(method, &url).timeout(outbound::timeout(PUSH_TIMEOUT));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = outbound::observed("apigateway", request).await.context("calling the WebSocket API")?;
        match response.status() {
            status if status.is_success() => Ok(Reached::Delivered),
            StatusCode::GONE => Ok(Reached::Gone),
            status => anyhow::bail!("the WebSocket API answered {status}"),
        }
    }

    /// The SigV4 headers of a request (`Authorization`, `X-Amz-Date`, and the session token's).
    pub fn signed(
        &self,
        method: &str,
        url: &str,
        body: &[u8],
        at: SystemTime,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .context("signing parameters")?
            .into();
        let signable = SignableRequest::new(method, url, std::iter::empty(), SignableBody::Bytes(body))
            .context("a signable request")?;
        let (instructions, _signature) = sign(signable, &params).context("signing")?.into_parts();
        Ok(instructions.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect())
    }
}

/// A push is worth little late: a slow API Gateway must not hold up the request that caused it.
const PUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AwsCredentials, Secret};

    fn gateway() -> Gateway {
        let aws = AwsSettings {
            region: "us-east-1".into(),
            credentials: AwsCredentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
                session_token: None,
            },
            endpoint_url: None,
            s3_force_path_style: false,
            ssm_endpoint_url: None,
            s3_endpoint_url: None,
        };
        let endpoint = "https://abc123.execute-api.us-east-1.amazonaws.com/live".parse().unwrap();
        Gateway::new(LazyClient::default(), endpoint, &aws)
    }

    #[test]
    fn a_connection_id_is_one_encoded_path_segment() {
        assert_eq!(
            gateway().url("L0SM9cOFvHcCIhw=/+x"),
            "https://abc123.execute-api.us-east-1.amazonaws.com/live/@connections/L0SM9cOFvHcCIhw%3D%2F%2Bx"
        );
    }

    #[test]
    fn requests_are_signed_for_execute_api_in_the_region() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_765_000_000);
        let url = gateway().url("abc=");
        let headers = gateway().signed("POST", &url, b"{}", at).unwrap();
        let authorization = &headers.iter().find(|(name, _)| name == "authorization").unwrap().1;
        assert!(
            authorization
                .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251206/us-east-1/execute-api/aws4_request"),
            "{authorization}"
        );
        assert!(headers.iter().any(|(name, value)| name == "x-amz-date" && value == "20251206T054640Z"), "{headers:?}");
    }
}
