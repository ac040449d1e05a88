//! Secrets from SSM Parameter Store (SecureString), fetched once per cold start in one call.

use anyhow::{Context, bail};

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::config::Secret;

/// A secret a function needs: the variable that names its parameter, and that name.
pub struct Wanted<'a> {
    pub variable: &'static str,
    pub parameter: Option<&'a str>,
}

/// Fetches the wanted secrets, in order. Errors name the variable or parameter, never a value.
pub async fn fetch<const N: usize>(
    ssm: &aws_sdk_ssm::Client,
    wanted: [Wanted<'_>; N],
) -> anyhow::Result<[Secret<String>; N]> {
    let values = fetch_all(ssm, &wanted).await?;
    Ok(values.try_into().unwrap_or_else(|_| unreachable!("one value per wanted secret")))
}

/// [`fetch`] for a number of secrets known at run time (ten to a call, SSM's limit).
pub async fn fetch_all(ssm: &aws_sdk_ssm::Client, wanted: &[Wanted<'_>]) -> anyhow::Result<Vec<Secret<String>>> {
    let mut values = Vec::with_capacity(wanted.len());
    for batch in wanted.chunks(10) {
        let mut names = Vec::with_capacity(batch.len());
        for want in batch {
            match want.parameter {
                Some(name) => names.push(name.to_owned()),
                None => bail!("configuration variable {} is missing", want.variable),
            }
        }
        let output = ssm
            .get_parameters()
            .set_names(Some(names.clone()))
            .with_decryption(true)
            .send()
            .await
            .context("reading secrets from SSM Parameter Store")?;
        let found = output.parameters.unwrap_or_default();
        for (name, want) in names.iter().zip(batch) {
            let value = found
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| p.value.clone())
                .with_context(|| format!("SSM parameter {name} (named by {}) does not exist", want.variable))?;
            values.push(Secret::new(value));
        }
    }
    Ok(values)
}

/// Whether SSM answers and holds every named parameter (values not decrypted).
pub async fn present(ssm: &aws_sdk_ssm::Client, names: Vec<String>) -> anyhow::Result<bool> {
    if names.is_empty() {
        return Ok(true);
    }
    let output = ssm
        .get_parameters()
        .set_names(Some(names))
        .with_decryption(false)
        .send()
        .await
        .context("asking SSM Parameter Store for the secrets")?;
    Ok(output.invalid_parameters.unwrap_or_default().is_empty())
}

/// The key that signs what Redis holds for the hot path (session entries, user snapshots),
/// fetched from SSM on first use (once per cold start).
#[derive(Clone)]
pub struct MacKey {
    ssm: aws_sdk_ssm::Client,
    parameter: Option<String>,
    key: Arc<OnceCell<Secret<String>>>,
}

impl MacKey {
    pub fn from_ssm(ssm: aws_sdk_ssm::Client, parameter: Option<String>) -> Self {
        Self { ssm, parameter, key: Arc::new(OnceCell::new()) }
    }

    pub(crate) async fn key(&self) -> anyhow::Result<&Secret<String>> {
        self.key
            .get_or_try_init(|| async {
                let parameter = self.parameter.as_deref();
                let [key] = fetch(&self.ssm, [Wanted { variable: "SESSION_MAC_KEY_PARAM", parameter }]).await?;
                Ok(key)
            })
            .await
    }
}
