//! AWS clients, built once per cold start.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig, timeout::TimeoutConfig};
use aws_smithy_http_client::tls::{self, TrustStore};

use crate::config::AwsSettings;

/// Loads region and credentials the SDK's usual way; `endpoint_url` points everything at moto.
/// Its HTTPS client trusts the shared roots (`crate::tls`) instead of loading the native ones
/// again.
pub async fn sdk_config(settings: &AwsSettings) -> anyhow::Result<SdkConfig> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .build();
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(crate::tls::roots()?.pem.clone());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(tls::TlsContext::builder().with_trust_store(trust).build()?)
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts).http_client(http);
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url.as_str());
    }
    Ok(loader.load().await)
}

pub fn dynamodb(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

pub fn s3(sdk: &SdkConfig, settings: &AwsSettings) -> aws_sdk_s3::Client {
    let mut config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(settings.s3_force_path_style);
    if let Some(url) = &settings.s3_endpoint_url {
        config = config.endpoint_url(url.as_str());
    }
    let config = config.build();
    aws_sdk_s3::Client::from_conf(config)
}
