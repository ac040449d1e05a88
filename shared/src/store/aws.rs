//! AWS clients, built once per cold start from the Lambda environment.
//!
//! No aws-config: in Lambda the region and the function role's credentials are environment
//! variables, and aws-config's general-purpose chains (profile files, SSO, STS, IMDS) were about
//! 0.27 MB of code in every binary (its own 169 KB and its STS client's 104 KB in the login
//! build's symbols) and work at every cold start for nothing.

mod http;

use std::time::Duration;

use anyhow::Context;
use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_types::{retry::RetryConfig, timeout::TimeoutConfig};
use aws_types::{SdkConfig, region::Region};

use crate::config::AwsSettings;

/// The SDK configuration: region and credentials from the environment (as Lambda sets them),
/// standard retries, our HTTP client ([`http`]); `endpoint_url` points everything at moto.
/// Reads the process environment; makes no network call.
pub fn sdk_config(settings: &AwsSettings) -> anyhow::Result<SdkConfig> {
    sdk_config_from(settings, |name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

fn sdk_config_from(settings: &AwsSettings, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<SdkConfig> {
    let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).context("AWS_REGION is not set")?;
    let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
        anyhow::bail!("AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must both be set");
    };
    let credentials = Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "environment");
    let timeouts = TimeoutConfig::builder().operation_attempt_timeout(Duration::from_secs(5)).build();
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(http::Client::default())
        .sleep_impl(TokioSleep::new())
        .retry_config(RetryConfig::standard())
        .timeout_config(timeouts);
    if let Some(url) = &settings.endpoint_url {
        config = config.endpoint_url(url.as_str());
    }
    Ok(config.build())
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

    fn settings() -> AwsSettings {
        AwsSettings { endpoint_url: None, s3_force_path_style: false, ssm_endpoint_url: None, s3_endpoint_url: None }
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn region_and_credentials_come_from_the_lambda_environment() {
        let vars = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ];
        let config = sdk_config_from(&settings(), env(&vars)).unwrap();
        assert_eq!(config.region().map(Region::as_ref), Some("eu-west-1"));
        assert!(config.credentials_provider().is_some());
        assert!(config.http_client().is_some());
        assert_eq!(config.endpoint_url(), None);
    }

    #[test]
    fn a_missing_region_or_key_is_named() {
        let no_region =
            sdk_config_from(&settings(), env(&[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b")]));
        assert!(no_region.unwrap_err().to_string().contains("AWS_REGION"));
        let no_secret =
            sdk_config_from(&settings(), env(&[("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "a")]));
        assert!(no_secret.unwrap_err().to_string().contains("AWS_SECRET_ACCESS_KEY"));
    }
}
