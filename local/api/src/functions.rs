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

    /// Every function's app, by binary.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'static App)> {
        self.0.iter().map(|(binary, app)| (binary.as_str(), *app))
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

/// What Lambda itself puts in every function's environment (the region and the role's
/// credentials), which the template does not declare.
const SET_BY_LAMBDA: [&str; 5] =
    ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_FUNCTION_NAME"];

/// template.yaml's environments against the configuration, without the stack: every function's
/// configuration loads from the variables its template environment declares (the Globals and its
/// own), and every declared variable is one the configuration reads. The values are what the
/// template states (a plain string, a parameter's default), else stand-ins of the kind the
/// configuration parses; resolving them is `make up`'s job, and a value that does not parse
/// stops the local API at its start.
pub fn template_problems(yaml: &str) -> anyhow::Result<Vec<String>> {
    let template: serde_norway::Value = serde_norway::from_str(yaml).context("template.yaml is not valid YAML")?;
    // A value the template states: a plain string, or a parameter's default (`!Ref Param`).
    let stated = |value: &serde_norway::Value| -> Option<String> {
        match value {
            serde_norway::Value::String(literal) => Some(literal.clone()),
            serde_norway::Value::Tagged(tagged) if tagged.tag == "Ref" => {
                let default = template.get("Parameters")?.get(tagged.value.as_str()?)?.get("Default")?;
                match default {
                    serde_norway::Value::String(text) => Some(text.clone()),
                    serde_norway::Value::Number(number) => Some(number.to_string()),
                    _ => None,
                }
            }
            _ => None,
        }
    };
    let variables = |node: &serde_norway::Value| -> HashMap<String, Option<String>> {
        node.get("Environment")
            .and_then(|e| e.get("Variables"))
            .and_then(|v| v.as_mapping())
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str()?.to_owned(), stated(v)))).collect())
            .unwrap_or_default()
    };
    let globals = template.get("Globals").and_then(|g| g.get("Function")).map(variables).unwrap_or_default();
    let resources = template.get("Resources").and_then(|r| r.as_mapping()).context("template.yaml has no Resources")?;

    let mut problems = Vec::new();
    let mut declared = HashMap::new();
    for (logical, resource) in resources {
        if resource.get("Type").and_then(|t| t.as_str()) != Some("AWS::Serverless::Function") {
            continue;
        }
        let logical = logical.as_str().unwrap_or_default();
        let binary = resource
            .get("Metadata")
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(|b| b.as_str())
            .unwrap_or(logical);
        let mut environment = globals.clone();
        environment.extend(resource.get("Properties").map(variables).unwrap_or_default());
        if let (Err(error), _) = load(&environment) {
            problems.push(format!("{logical} ({binary}): {error} in its template.yaml environment"));
        }
        declared.extend(environment);
    }
    // Whatever any function declares, offered at once, is read or is dead weight (when that
    // does not load, the missing variables above say why).
    if let (Ok(_), read) = load(&declared) {
        let mut unread: Vec<&String> = declared.keys().filter(|name| !read.contains(*name)).collect();
        unread.sort();
        for name in unread {
            problems.push(format!("{name}: declared in template.yaml's environment, read by no configuration"));
        }
    }
    Ok(problems)
}

/// The configuration loaded from `environment` (stand-in values, and what Lambda sets), and
/// every variable it asked for.
fn load(
    environment: &HashMap<String, Option<String>>,
) -> (Result<Config, voice_core::config::ConfigError>, std::collections::HashSet<String>) {
    let asked = std::cell::RefCell::new(std::collections::HashSet::new());
    let loaded = Config::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_owned());
        if SET_BY_LAMBDA.contains(&name) {
            return Some(stand_in(name));
        }
        environment.get(name).map(|value| value.clone().unwrap_or_else(|| stand_in(name)))
    });
    (loaded, asked.into_inner())
}

/// A value of the kind the configuration parses `name` as, for the presence check.
fn stand_in(name: &str) -> String {
    match name {
        "REDIS_URL" => "rediss://cache.invalid:6379".into(),
        "ALLOWED_ORIGINS" => "https://app.invalid".into(),
        "PUSH_URL" => "wss://push.invalid/live".into(),
        "PUSH_ENDPOINT" => "https://push.invalid/live".into(),
        _ if name.ends_with("_SECONDS") || name.ends_with("_SLOTS") => "60".into(),
        _ if name.ends_with("_URL")
            || name.ends_with("_BASE")
            || name.ends_with("_ISSUER")
            || name == "CLOUDFRONT_DOMAIN" =>
        {
            "https://service.invalid/".into()
        }
        _ => format!("{}-stand-in", name.to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../../template.yaml");

    #[test]
    fn every_function_reads_its_configuration_from_what_the_template_declares() {
        assert_eq!(template_problems(TEMPLATE).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_variable_the_template_lacks_or_nothing_reads_is_named() {
        let declared = "        USERS_TABLE: !Ref UsersTable\n";
        assert!(TEMPLATE.contains(declared), "the Globals declare USERS_TABLE as expected here");
        let missing =
            "WebhookFunction (webhook): configuration variable USERS_TABLE is missing in its template.yaml environment";
        let problems = template_problems(&TEMPLATE.replacen(declared, "", 1)).unwrap();
        assert!(problems.contains(&missing.to_owned()), "{problems:?}");

        let misspelt = TEMPLATE.replacen(declared, &format!("{declared}        USERS_TABEL: !Ref UsersTable\n"), 1);
        let problems = template_problems(&misspelt).unwrap();
        let unread = "USERS_TABEL: declared in template.yaml's environment, read by no configuration";
        assert_eq!(problems, [unread]);
    }

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
