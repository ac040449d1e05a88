//! Each function as deployed: its own environment, as template.yaml gives it (the Globals and its
//! own Variables, which local/provision.py resolves for the local stack into
//! `.local/functions.json`, with the credentials of the function's own role), and its own `App`
//! built from it, as its cold start would build it.

use std::collections::HashMap;

use anyhow::{Context, bail};
use serde::Deserialize;
use voice_core::{App, clock::Clock, config::Config};

/// The variable naming the file (`make up` writes it into .local/stack.env).
pub const ENVIRONMENTS_VAR: &str = "LOCAL_FUNCTIONS";

#[derive(Debug, Deserialize)]
struct Entry {
    /// The template's logical id (`WebhookFunction`).
    function: String,
    environment: HashMap<String, String>,
}

/// Every function's environment, by the binary its template entry builds.
#[derive(Debug)]
pub struct Environments(HashMap<String, Entry>);

impl Environments {
    pub fn load(path: &str) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {path} (written by `make up`)"))?;
        Ok(Self(serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?))
    }

    /// The file `LOCAL_FUNCTIONS` names.
    pub fn from_env() -> anyhow::Result<Self> {
        let path = std::env::var(ENVIRONMENTS_VAR)
            .with_context(|| format!("{ENVIRONMENTS_VAR} is not set: run with the local stack's environment"))?;
        Self::load(&path)
    }

    /// The environment `binary` runs with.
    pub fn environment(&self, binary: &str) -> anyhow::Result<&HashMap<String, String>> {
        Ok(&self.entry(binary)?.environment)
    }

    /// The configuration `binary` reads from its own environment at its cold start; a variable
    /// it needs that its template environment lacks is named with the function.
    pub fn config(&self, binary: &str) -> anyhow::Result<Config> {
        let entry = self.entry(binary)?;
        Config::from_lookup(|name| entry.environment.get(name).cloned())
            .map_err(|error| anyhow::anyhow!("{} ({binary}): {error} in its template.yaml environment", entry.function))
    }

    fn entry(&self, binary: &str) -> anyhow::Result<&Entry> {
        match self.0.get(binary) {
            Some(entry) => Ok(entry),
            None => bail!("no environment for {binary:?}: template.yaml has no function building it"),
        }
    }
}

/// One `App` per function, each built from that function's own configuration, for the life of
/// the process (a streamed body outlives the call that made it).
#[derive(Clone)]
pub struct Apps(HashMap<String, &'static App>);

impl Apps {
    /// Builds every function's app (the scheduled and stream ones too) from its environment;
    /// `adjust` changes a function's configuration first (the tests' faults and shorter
    /// timeouts). Fails on the first function whose environment is incomplete.
    pub async fn build(
        environments: &Environments,
        clock: Clock,
        adjust: impl Fn(&str, &mut Config),
    ) -> anyhow::Result<Self> {
        let mut apps = HashMap::new();
        let mut binaries: Vec<&String> = environments.0.keys().collect();
        binaries.sort();
        for binary in binaries {
            let mut config = environments.config(binary)?;
            adjust(binary, &mut config);
            let app = App::new(config, clock).await.with_context(|| format!("building {binary}"))?;
            apps.insert(binary.clone(), &*Box::leak(Box::new(app)));
        }
        Ok(Self(apps))
    }

    pub fn get(&self, binary: &str) -> &'static App {
        self.0
            .get(binary)
            .copied()
            .unwrap_or_else(|| panic!("no app for {binary:?}: template.yaml builds no such function"))
    }

    /// The upgrade URL an error the router itself answers links to (the same in every
    /// function's configuration: it comes from the Globals).
    pub(crate) fn upgrade_url(&self) -> &'static url::Url {
        &self.0.values().next().expect("the template has functions").config.voice.upgrade_url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_missing_from_a_functions_environment_is_named_with_the_function() {
        let json = r#"{ "webhook": { "function": "WebhookFunction", "environment": { "AWS_REGION": "us-east-1" } } }"#;
        let environments = Environments(serde_json::from_str(json).unwrap());
        let error = environments.config("webhook").unwrap_err().to_string();
        assert!(error.starts_with("WebhookFunction (webhook): configuration variable"), "{error}");
        assert!(error.ends_with("is missing in its template.yaml environment"), "{error}");
        let unknown = environments.config("nope").unwrap_err().to_string();
        assert!(unknown.contains("no environment for \"nope\""), "{unknown}");
    }
}
