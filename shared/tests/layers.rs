//! The library's module graph: no cycles, and every layer only looks down. Read from the source
//! (every `crate::…` path, `use` trees expanded), so a new import that breaks either rule fails
//! here with the offending path.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The layers under `src/`; a unit is one of their modules (children folded in), or a root file.
const LAYERS: [&str; 5] = ["domain", "store", "upstream", "flows", "http"];

/// What each part may import besides itself (and besides the leaves `error`, `clock`,
/// `telemetry`, `tls`).
fn allowed(from: &str, to: &str) -> bool {
    let layer = |unit: &str| unit.split("::").next().unwrap_or(unit).to_owned();
    let (from, to) = (layer(from), layer(to));
    if from == to || matches!(to.as_str(), "error" | "clock" | "telemetry" | "tls") {
        return true;
    }
    match from.as_str() {
        "error" | "clock" | "telemetry" | "tls" => false,
        "config" => to == "domain",
        "domain" => to == "config",
        "store" | "upstream" => matches!(to.as_str(), "domain" | "config"),
        "app" => matches!(to.as_str(), "domain" | "config" | "store" | "upstream"),
        "flows" => matches!(to.as_str(), "domain" | "config" | "store" | "upstream"),
        "http" => matches!(to.as_str(), "domain" | "config" | "store" | "upstream" | "flows" | "app" | "assemble"),
        "assemble" => matches!(to.as_str(), "domain" | "config" | "store" | "upstream" | "flows" | "app"),
        "lib" => true,
        _ => false,
    }
}

fn unit_of(segments: &[String]) -> String {
    match segments {
        [] => "lib".to_owned(),
        [layer, module, ..] if LAYERS.contains(&layer.as_str()) => format!("{layer}::{module}"),
        [first, ..] => first.clone(),
    }
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: `store/users/quota.rs` → `[store, users, quota]`.
fn module_of(path: &Path) -> Vec<String> {
    let relative = path.strip_prefix(SRC).unwrap().with_extension("");
    let mut segments: Vec<String> = relative.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if matches!(segments.last().map(String::as_str), Some("mod" | "lib")) {
        segments.pop();
    }
    segments
}

/// Expands a `use` tree (the text after `crate::`, up to its `;`) into full paths.
fn expand(tree: &str) -> Vec<Vec<String>> {
    fn parse(tokens: &[String], at: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut path = prefix;
        while *at < tokens.len() {
            match tokens[*at].as_str() {
                "{" => {
                    *at += 1;
                    loop {
                        parse(tokens, at, path.clone(), out);
                        match tokens.get(*at).map(String::as_str) {
                            Some(",") => *at += 1,
                            Some("}") => {
                                *at += 1;
                                break;
                            }
                            _ => break,
                        }
                        if tokens.get(*at).map(String::as_str) == Some("}") {
                            *at += 1;
                            break;
                        }
                    }
                    return;
                }
                "," | "}" => break,
                "::" | "*" => *at += 1,
                "as" => *at += 2,
                "self" => *at += 1,
                ident => {
                    path.push(ident.to_owned());
                    *at += 1;
                }
            }
        }
        out.push(path);
    }
    let mut tokens = Vec::new();
    for raw in tree.replace("::", " :: ").split_whitespace() {
        let mut word = String::new();
        for c in raw.chars() {
            if matches!(c, '{' | '}' | ',') {
                if !word.is_empty() {
                    tokens.push(std::mem::take(&mut word));
                }
                tokens.push(c.to_string());
            } else {
                word.push(c);
            }
        }
        if !word.is_empty() {
            tokens.push(word);
        }
    }
    let mut out = Vec::new();
    parse(&tokens, &mut 0, Vec::new(), &mut out);
    out
}

/// Every `crate::…` path a source text names.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("crate::") {
        let after = &rest[start + "crate::".len()..];
        let in_use = rest[..start].trim_end().ends_with("use");
        if in_use {
            let end = after.find(';').unwrap_or(after.len());
            paths.extend(expand(&after[..end]));
            rest = &after[end..];
        } else {
            let end = after.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(after.len());
            paths.push(after[..end].split("::").filter(|s| !s.is_empty()).map(String::from).collect());
            rest = &after[end..];
        }
    }
    paths
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut sources = Vec::new();
    files(Path::new(SRC), &mut sources);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in sources {
        let from = unit_of(&module_of(&path));
        let text = fs::read_to_string(&path).unwrap();
        let edges = graph.entry(from.clone()).or_default();
        for target in crate_paths(&text) {
            // The root's re-exports (`crate::App`, `crate::ApiError`) and exported macro (`route!`).
            let target = match target.first().map(String::as_str) {
                Some("App") => vec!["app".to_owned()],
                Some("ApiError") => vec!["error".to_owned()],
                Some("route") => vec!["http".to_owned(), "router".to_owned()],
                _ => target,
            };
            let to = unit_of(&target);
            if to != from && to != "lib" {
                edges.insert(to);
            }
        }
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn use_trees_expand_to_full_paths() {
    let paths =
        expand("{domain::{ids::{UserId, random_hex}, tiers::Tier}, store::dynamo::{self, n}, error::ApiError as E}");
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        joined,
        [
            "domain::ids::UserId",
            "domain::ids::random_hex",
            "domain::tiers::Tier",
            "store::dynamo",
            "store::dynamo::n",
            "error::ApiError"
        ]
    );
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
}

#[test]
fn the_library_has_no_module_cycles() {
    let graph = graph();
    assert!(graph.len() > 20, "read too few modules: {graph:?}");
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn every_layer_only_looks_down() {
    let wrong: Vec<String> = graph()
        .iter()
        .flat_map(|(from, tos)| tos.iter().filter(|to| !allowed(from, to)).map(move |to| format!("{from} -> {to}")))
        .collect();
    assert!(wrong.is_empty(), "imports against the layering:\n{}", wrong.join("\n"));
}
