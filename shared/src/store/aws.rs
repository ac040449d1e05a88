//! AWS clients, built once per cold start from the Lambda environment.
//!
//! No aws-config: in Lambda the region and the function role's credentials are environment
//! variables, and aws-config's general-purpose chains (profile files, SSO, STS, IMDS) were about
//! 0.27 MB of code in every binary (its own 169 KB and its STS client's 104 KB in the login
//! build's symbols) and work at every cold start for nothing.

mod http;

use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_types::{retry::RetryConfig, timeout::TimeoutConfig};
use aws_types::{SdkConfig, region::Region};

use crate::config::AwsSettings;

/// The SDK configuration: region and credentials as the configuration read them from the
/// environment (as Lambda sets them), standard retries, our HTTP client ([`http`]);
/// `endpoint_url` points everything at moto. Makes no network call.
pub fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    let credentials = settings.credentials.for_sdk();
    let timeouts = TimeoutConfig::builder().operation_attempt_timeout(Duration::from_secs(5)).build();
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(http::Client::default())
        .sleep_impl(TokioSleep::new())
        .retry_config(RetryConfig::standard())
        .timeout_config(timeouts);
    if let Some(url) = &settings.endpoint_url {
        config = config.endpoint_url(url.as_str());
    }
    config.build()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AwsCredentials, Secret};

    #[test]
    fn region_and_credentials_come_from_the_configuration() {
        let settings = AwsSettings {
            region: "eu-west-1".into(),
            credentials: AwsCredentials {
                access_key_id: "ASIAEXAMPLE".into(),
                secret_access_key: Secret::new("secret".into()),
                session_token: Some(Secret::new("token".into())),
            },
            endpoint_url: None,
            s3_force_path_style: false,
            ssm_endpoint_url: None,
            s3_endpoint_url: None,
        };
        let config = sdk_config(&settings);
        assert_eq!(config.region().map(Region::as_ref), Some("eu-west-1"));
        assert!(config.credentials_provider().is_some());
        assert!(config.http_client().is_some());
        assert_eq!(config.endpoint_url(), None);
    }
}
