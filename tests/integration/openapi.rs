//! openapi.yaml against the template and the functions' own route tables: the same routes, and
//! for each the access the router enforces (public, cookie + CSRF, API key). What each route
//! accepts and answers is checked against the running API by schemathesis (tests/e2e.sh).

use std::{collections::BTreeSet, fs};

use local_api::{FUNCTIONS, routes_from_template};
use serde_norway::Value;
use voice_core::http::Access;

const OPENAPI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn spec() -> Value {
    serde_norway::from_str(&fs::read_to_string(OPENAPI).unwrap()).unwrap()
}

/// Every operation as (`METHOD /path`, operation).
fn operations(spec: &Value) -> Vec<(String, &Value)> {
    let paths = spec["paths"].as_mapping().expect("paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                operations.push((format!("{} {}", method.to_uppercase(), path.as_str().unwrap()), operation));
            }
        }
    }
    operations
}

/// The names of the security schemes each alternative of an operation requires.
fn security(spec: &Value, operation: &Value) -> Vec<BTreeSet<String>> {
    let requirements = operation.get("security").unwrap_or(&spec["security"]);
    requirements
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_owned()).collect())
        .collect()
}

#[test]
fn the_spec_has_exactly_the_template_routes() {
    let spec = spec();
    let documented: BTreeSet<String> = operations(&spec).into_iter().map(|(key, _)| key).collect();
    let template = routes_from_template(&fs::read_to_string(integration_tests::TEMPLATE).unwrap()).unwrap();
    let routed: BTreeSet<String> = template.iter().map(|r| r.key()).collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(undocumented.is_empty(), "template.yaml routes these, openapi.yaml lacks them: {undocumented:?}");
    assert!(unrouted.is_empty(), "openapi.yaml documents these, template.yaml does not route them: {unrouted:?}");
    assert_eq!(spec["openapi"].as_str(), Some("3.1.0"));
}

#[test]
fn each_operation_names_the_access_its_route_enforces() {
    let spec = spec();
    let operations = operations(&spec);
    let mut checked = 0;
    for (binary, table) in FUNCTIONS {
        for route in table {
            let (_, operation) = operations
                .iter()
                .find(|(key, _)| key == route.key)
                .unwrap_or_else(|| panic!("{binary}: {} is not in openapi.yaml", route.key));
            let alternatives = security(&spec, operation);
            let state_change = !route.key.starts_with("GET ");
            let cookie: BTreeSet<String> = if state_change {
                ["sessionCookie".to_owned(), "csrfToken".to_owned()].into()
            } else {
                ["sessionCookie".to_owned()].into()
            };
            let bearer: BTreeSet<String> = ["bearerKey".to_owned()].into();
            let expected: Vec<BTreeSet<String>> = match route.access {
                Access::Public(_) => vec![],
                _ if route.api_key => vec![cookie, bearer],
                _ => vec![cookie],
            };
            assert_eq!(alternatives, expected, "{}: openapi.yaml's security differs from the route table", route.key);

            let responses = operation["responses"].as_mapping().unwrap();
            let has = |status: &str| responses.keys().any(|k| k.as_str() == Some(status));
            if !matches!(route.access, Access::Public(_)) {
                assert!(has("401"), "{}: an authenticated route documents 401", route.key);
            }
            // Sign-out (the session-only access) is never refused for rate; every other
            // authenticated request is counted.
            let counted = matches!(route.access, Access::User(_) | Access::Stream(_));
            assert_eq!(has("429"), counted || route.per_ip.is_some(), "{}: 429 documented iff rate limited", route.key);
            if state_change && !matches!(route.access, Access::Public(_)) {
                assert!(has("403"), "{}: a state change documents CSRF_FAILED (403)", route.key);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, operations.len(), "every operation is some function's route");
}

#[test]
fn every_error_answer_has_the_one_error_shape() {
    let spec = spec();
    for (key, operation) in operations(&spec) {
        for (status, response) in operation["responses"].as_mapping().unwrap() {
            let status: u16 = status.as_str().unwrap().parse().unwrap();
            if status < 400 || (key == "GET /health" && status == 503) {
                continue;
            }
            let reference = response["$ref"].as_str().unwrap_or_default();
            let name = reference
                .strip_prefix("#/components/responses/")
                .unwrap_or_else(|| panic!("{key} {status}: an error answer refers to one of components/responses"));
            let schema = &spec["components"]["responses"][name]["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(schema.as_str(), Some("#/components/schemas/Error"), "{key} {status}");
        }
    }
    let codes: BTreeSet<&str> =
        spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
    for code in [
        "UNAUTHENTICATED",
        "CSRF_FAILED",
        "FEATURE_LOCKED",
        "LIMIT_REACHED",
        "FORBIDDEN",
        "NOT_FOUND",
        "VALIDATION_FAILED",
        "CONFLICT",
        "PAYLOAD_TOO_LARGE",
        "RATE_LIMITED",
        "UPSTREAM_UNAVAILABLE",
        "INTERNAL",
    ] {
        assert!(codes.contains(code), "the Error schema lists {code}");
    }
}
