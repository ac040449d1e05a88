//! One declaration per route: the functions' `route!` tables ([`crate::FUNCTIONS`]). From them
//! `make routes` writes template.yaml's `HttpApi` events, and `make template-check` (run by the
//! tests too) reports, line by line, where template.yaml, openapi.yaml or events/ disagree:
//!
//! - template.yaml: each function's `HttpApi` events are exactly its table's routes (a streamed
//!   route is its `Metadata.StreamedRoute` instead);
//! - openapi.yaml: an operation for each route and no other, with the security its access means
//!   (public: none; a session: the cookie, plus the CSRF header for a state change; API keys: the
//!   Bearer key as an alternative), and a JSON request body exactly where the route names one;
//! - events/: each HTTP event file names a declared route.

use std::{collections::BTreeSet, fs, path::Path};

use anyhow::Context;
use serde_norway::Value;
use voice_core::http::{Access, Route as Declared};

use crate::{FUNCTIONS, routes_from_template};

/// A declared route with the binary that serves it.
struct Served {
    binary: &'static str,
    route: &'static Declared,
}

fn declared() -> Vec<Served> {
    FUNCTIONS.iter().flat_map(|(binary, table)| table.iter().map(move |route| Served { binary, route })).collect()
}

fn method_and_path(key: &str) -> (&str, &str) {
    key.split_once(' ').expect("a route key is `METHOD /path`")
}

/// The template's event name for a new route: `DELETE /recordings/{id}` → `DeleteRecordingsId`.
fn event_name(key: &str) -> String {
    let mut name = String::new();
    for word in key.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        name.extend(chars.next().map(|c| c.to_ascii_uppercase()));
        name.push_str(&chars.as_str().to_ascii_lowercase());
    }
    name
}

fn event_lines(name: &str, key: &str) -> [String; 3] {
    let (method, path) = method_and_path(key);
    // Braces in a flow mapping must be quoted.
    let path = if path.contains('{') { format!("\"{path}\"") } else { path.to_owned() };
    [
        format!("        {name}:"),
        "          Type: HttpApi".to_owned(),
        format!("          Properties: {{ ApiId: !Ref HttpApi, Method: {method}, Path: {path} }}"),
    ]
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// template.yaml with every function's `HttpApi` events written from its route table: existing
/// events keep their names (and place), missing ones are added under `Events:`, the others go.
/// Every other line stays as it is.
pub fn write_template(yaml: &str) -> anyhow::Result<String> {
    let template: Value = serde_norway::from_str(yaml).context("template.yaml is not valid YAML")?;
    let resources = template["Resources"].as_mapping().context("template.yaml has no Resources")?;
    let mut lines: Vec<String> = yaml.lines().map(String::from).collect();
    for (binary, table) in FUNCTIONS {
        let logical = resources
            .iter()
            .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
            .and_then(|(name, _)| name.as_str())
            .with_context(|| {
                format!("template.yaml has no function whose Metadata.BuildProperties.Binary is {binary}")
            })?;
        let wanted: Vec<&str> =
            table.iter().filter(|r| !matches!(r.access, Access::Stream(_))).map(|r| r.key).collect();
        lines = write_events(lines, logical, &wanted)?;
    }
    let mut written = lines.join("\n");
    written.push('\n');
    Ok(written)
}

/// The function `logical`'s block with exactly `wanted` as its `HttpApi` events.
fn write_events(mut lines: Vec<String>, logical: &str, wanted: &[&str]) -> anyhow::Result<Vec<String>> {
    let start = lines.iter().position(|l| l == &format!("  {logical}:")).context("the function's block")?;
    let end = (start + 1..lines.len())
        .find(|&i| !lines[i].trim().is_empty() && indent(&lines[i]) <= 2)
        .unwrap_or(lines.len());
    let events = (start..end).find(|&i| lines[i] == "      Events:");
    // The existing events: (first line, last line + 1, HttpApi route key).
    let mut existing = Vec::new();
    if let Some(events) = events {
        let mut i = events + 1;
        while i < end && (lines[i].trim().is_empty() || indent(&lines[i]) >= 8) {
            if indent(&lines[i]) == 8 {
                let last = (i + 1..end).find(|&j| indent(&lines[j]) <= 8 || lines[j].trim().is_empty()).unwrap_or(end);
                let block = lines[i..last].join("\n");
                let key = block.contains("Type: HttpApi").then(|| {
                    let field = |name: &str| {
                        block.split(&format!("{name}: ")).nth(1).map(|rest| {
                            let rest = rest.trim_start_matches('"');
                            rest.split([',', ' ', '"', '\n']).next().unwrap_or_default().to_owned()
                        })
                    };
                    format!(
                        "{} {}",
                        field("Method").unwrap_or_default().to_uppercase(),
                        field("Path").unwrap_or_default()
                    )
                });
                existing.push((i, last, key));
                i = last;
            } else {
                i += 1;
            }
        }
    }
    // Remove the HttpApi events no longer declared (from the bottom up, so indices hold).
    for (first, last, key) in existing.iter().rev() {
        if let Some(key) = key
            && !wanted.contains(&key.as_str())
        {
            lines.drain(*first..*last);
        }
    }
    let present: BTreeSet<&str> = existing.iter().filter_map(|(_, _, k)| k.as_deref()).collect();
    let missing: Vec<&&str> = wanted.iter().filter(|k| !present.contains(**k)).collect();
    if missing.is_empty() {
        return Ok(lines);
    }
    let mut added: Vec<String> = missing.iter().flat_map(|key| event_lines(&event_name(key), key)).collect();
    let at = match events {
        Some(events) => {
            // After the last event, so existing ones keep their place.
            let mut at = events + 1;
            while at < lines.len() && indent(&lines[at]) >= 8 && !lines[at].trim().is_empty() {
                at += 1;
            }
            at
        }
        None => {
            let properties =
                (start..end).find(|&i| lines[i] == "    Properties:").context("the function's Properties")?;
            let mut at = properties + 1;
            while at < lines.len() && indent(&lines[at]) > 6
                || lines.get(at).is_some_and(|l| l.starts_with("      Description"))
            {
                at += 1;
            }
            added.insert(0, "      Events:".to_owned());
            at
        }
    };
    lines.splice(at..at, added);
    Ok(lines)
}

/// Where `after` differs from `before`, as `file: missing/extra line N: …`.
fn differences(file: &str, before: &str, after: &str) -> Vec<String> {
    let (old, new): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let (old_set, new_set): (BTreeSet<&str>, BTreeSet<&str>) =
        (old.iter().copied().collect(), new.iter().copied().collect());
    let mut problems = Vec::new();
    for (n, line) in new.iter().enumerate().filter(|(_, l)| !old_set.contains(**l)) {
        problems.push(format!("{file}: missing line {}: {}", n + 1, line.trim()));
    }
    for (n, line) in old.iter().enumerate().filter(|(_, l)| !new_set.contains(**l)) {
        problems.push(format!("{file}: extra line {}: {}", n + 1, line.trim()));
    }
    problems
}

/// Where template.yaml's HTTP routes differ from the route tables (`make routes` mends them).
pub fn template_problems(yaml: &str) -> Vec<String> {
    let mut problems = match write_template(yaml) {
        Ok(written) => differences("template.yaml", yaml, &written),
        Err(error) => vec![format!("template.yaml: {error:#}")],
    };
    // A streamed route is answered at its function's URL, named by Metadata.StreamedRoute.
    let routed = routes_from_template(yaml).unwrap_or_default();
    for served in declared().iter().filter(|s| matches!(s.route.access, Access::Stream(_))) {
        if !routed.iter().any(|r| r.streamed && r.binary == served.binary && r.key() == served.route.key) {
            problems.push(format!(
                "template.yaml: the function building {} lacks `Metadata.StreamedRoute: {}`",
                served.binary, served.route.key
            ));
        }
    }
    problems
}

/// The security alternatives openapi.yaml must state for a route (names of security schemes).
pub fn expected_security(route: &Declared) -> Vec<BTreeSet<String>> {
    // The admin area asks for the CSRF header on reads too (they are audited).
    let cookie: BTreeSet<String> = if route.key.starts_with("GET ") && route.permission.is_none() {
        ["sessionCookie".to_owned()].into()
    } else {
        ["sessionCookie".to_owned(), "csrfToken".to_owned()].into()
    };
    match route.access {
        Access::Public(_) => vec![],
        _ if route.api_key => vec![cookie, ["bearerKey".to_owned()].into()],
        _ => vec![cookie],
    }
}

/// Every operation of the spec as (`METHOD /path`, operation).
pub fn operations(spec: &Value) -> Vec<(String, &Value)> {
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_mapping().into_iter().flatten() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(operation) = item.get(method) {
                operations
                    .push((format!("{} {}", method.to_uppercase(), path.as_str().unwrap_or_default()), operation));
            }
        }
    }
    operations
}

/// The security alternatives an operation states (its own, else the document's).
pub fn stated_security(spec: &Value, operation: &Value) -> Vec<BTreeSet<String>> {
    let requirements = operation.get("security").unwrap_or(&spec["security"]);
    requirements
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|r| r.as_mapping().into_iter().flatten().filter_map(|(k, _)| k.as_str().map(String::from)).collect())
        .collect()
}

/// Where openapi.yaml's operations differ from the route tables.
pub fn openapi_problems(yaml: &str) -> Vec<String> {
    let spec: Value = match serde_norway::from_str(yaml) {
        Ok(spec) => spec,
        Err(error) => return vec![format!("openapi.yaml is not valid YAML: {error}")],
    };
    let operations = operations(&spec);
    let mut problems = Vec::new();
    for Served { binary, route } in declared() {
        let Some((_, operation)) = operations.iter().find(|(key, _)| key == route.key) else {
            let (method, path) = method_and_path(route.key);
            problems.push(format!(
                "openapi.yaml: missing operation `{}` under paths.{path} ({binary})",
                method.to_lowercase()
            ));
            continue;
        };
        let (stated, expected) = (stated_security(&spec, operation), expected_security(route));
        if stated != expected {
            problems
                .push(format!("openapi.yaml: {} states security {stated:?}, its route means {expected:?}", route.key));
        }
        let json_body = operation["requestBody"]["content"].get("application/json").is_some()
            || operation["requestBody"].get("$ref").is_some();
        if json_body != route.body.is_some() && !matches!(route.access, Access::Public(_)) {
            let which = if json_body {
                "has a JSON body its route names no type for"
            } else {
                "lacks the JSON body its route parses"
            };
            problems.push(format!("openapi.yaml: {} {which}", route.key));
        }
    }
    let keys: BTreeSet<&str> = declared().iter().map(|s| s.route.key).collect();
    for (key, _) in &operations {
        if !keys.contains(key.as_str()) {
            problems.push(format!("openapi.yaml: extra operation {key}, which no route table declares"));
        }
    }
    problems
}

/// Event files (events/*.json) whose `routeKey` no route table declares.
pub fn event_problems(dir: &Path) -> Vec<String> {
    let keys: BTreeSet<&str> = declared().iter().map(|s| s.route.key).collect();
    let mut problems = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return vec![format!("{}: cannot be read", dir.display())] };
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        let event: Option<serde_json::Value> =
            fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok());
        let Some(event) = event else {
            problems.push(format!("{}: not a JSON event", path.display()));
            continue;
        };
        if let Some(key) = event["routeKey"].as_str()
            && !keys.contains(key)
        {
            problems.push(format!("{}: names {key}, which no route table declares", path.display()));
        }
    }
    problems
}

/// Everything that disagrees with the route tables, in the repository at `root`.
pub fn problems(root: &Path) -> anyhow::Result<Vec<String>> {
    let read = |name: &str| fs::read_to_string(root.join(name)).with_context(|| format!("reading {name}"));
    let mut problems = template_problems(&read("template.yaml")?);
    problems.extend(openapi_problems(&read("openapi.yaml")?));
    problems.extend(event_problems(&root.join("events")));
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../../template.yaml");

    #[test]
    fn a_route_missing_from_the_template_is_named_and_written_back() {
        let dropped = "        Read:\n          Type: HttpApi\n          Properties: { ApiId: !Ref HttpApi, Method: GET, Path: \"/recordings/{id}\" }\n";
        assert!(TEMPLATE.contains(dropped), "the template routes GET /recordings/{{id}} as expected here");
        let without = TEMPLATE.replacen(dropped, "", 1);
        let problems = template_problems(&without);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("missing line") && p.contains("Method: GET, Path: \"/recordings/{id}\"")),
            "{problems:?}"
        );
        let written = write_template(&without).unwrap();
        assert!(written.contains("GetRecordingsId:"), "added under the function's events");
        assert!(template_problems(&written).is_empty());
        assert_eq!(routes_from_template(&written).unwrap().len(), routes_from_template(TEMPLATE).unwrap().len());
    }

    #[test]
    fn a_route_no_table_declares_is_named_and_removed() {
        let extra = "      Events:\n        Nowhere:\n          Type: HttpApi\n          Properties: { ApiId: !Ref HttpApi, Method: GET, Path: /nowhere }\n";
        let with = TEMPLATE.replacen("      Events:\n", extra, 1);
        let problems = template_problems(&with);
        assert!(problems.iter().any(|p| p.contains("extra line") && p.contains("/nowhere")), "{problems:?}");
        assert_eq!(write_template(&with).unwrap(), TEMPLATE);
    }

    #[test]
    fn the_checked_in_files_agree_with_the_tables() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        assert_eq!(problems(&root).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn new_events_are_named_from_their_route() {
        assert_eq!(event_name("DELETE /recordings/{id}"), "DeleteRecordingsId");
        assert_eq!(event_name("POST /admin/users/{id}/grant-usage"), "PostAdminUsersIdGrantUsage");
    }
}
