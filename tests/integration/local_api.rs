//! The local API serves what template.yaml declares, and the events/ files reach the handlers.

use std::{collections::BTreeSet, fs};

use http::Method;
use integration_tests::{TEMPLATE, TestApp};
use local_api::routes_from_template;
use voice_core::http::Access;

/// What a request without a session gets, by the route's declared access: the sign-in routes
/// redirect, an unsigned webhook is refused, the other public routes answer, and every other
/// route needs a session. A handler that did not know its own route would answer NOT_FOUND.
fn anonymous_status(key: &str) -> u16 {
    let route = local_api::FUNCTIONS.iter().flat_map(|(_, table)| table.iter()).find(|r| r.key == key);
    match route.unwrap_or_else(|| panic!("no route table declares {key}")).access {
        Access::Public(_) => match key {
            "GET /auth/login" | "GET /auth/callback" => 302,
            "POST /billing/webhook" => 400,
            _ => 200,
        },
        _ => 401,
    }
}

#[tokio::test]
async fn every_template_route_reaches_its_handler() {
    let app = TestApp::spawn().await;
    let routes = routes_from_template(&fs::read_to_string(TEMPLATE).unwrap()).unwrap();
    assert!(routes.len() >= 4, "{routes:?}");

    for route in routes {
        let path = route.path.replace("{id}", "01JD0000000000000000000000");
        let response = app.request(route.method.clone(), &path, &[], None).await;
        let expected = anonymous_status(&route.key());
        assert_eq!(response.status, expected, "{} {path} -> {}", route.method, response.body);
    }
}

#[tokio::test]
async fn unknown_routes_get_the_json_error_shape() {
    let app = TestApp::spawn().await;
    for (method, path) in [(Method::GET, "/nowhere"), (Method::DELETE, "/usage")] {
        let response = app.request(method, path, &[], None).await;
        assert_eq!(response.status, 404);
        assert_eq!(response.error_code(), "NOT_FOUND");
    }
}

#[tokio::test]
async fn every_http_event_file_is_a_template_route_and_reaches_its_handler() {
    let app = TestApp::spawn().await;
    let routes: BTreeSet<String> =
        routes_from_template(&fs::read_to_string(TEMPLATE).unwrap()).unwrap().iter().map(|r| r.key()).collect();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
    let mut seen = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        let Some(route_key) = event["routeKey"].as_str() else { continue };
        assert!(routes.contains(route_key), "{} names {route_key}, which template.yaml does not route", path.display());

        let response = app.router().invoke(&text, "event-file").await;
        // The files carry placeholder cookies, state and signature: no live session, no pending
        // login, no valid webhook.
        assert_eq!(response.status(), anonymous_status(route_key), "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} HTTP event files");
}

#[tokio::test]
async fn template_route_tables_and_local_api_agree() {
    let template = routes_from_template(&fs::read_to_string(TEMPLATE).unwrap()).unwrap();
    assert_eq!(local_api::parity_problems(&template), Vec::<String>::new());

    let declared: BTreeSet<(String, String)> = template.iter().map(|r| (r.binary.clone(), r.key())).collect();
    let tables: BTreeSet<(String, String)> = local_api::FUNCTIONS
        .iter()
        .flat_map(|&(binary, table)| table.iter().map(move |route| (binary.to_string(), route.key.to_owned())))
        .collect();
    let app = TestApp::spawn().await;
    let served: BTreeSet<(String, String)> = app.router().routes().map(|r| (r.binary.clone(), r.key())).collect();
    assert_eq!(tables, declared, "the functions' route tables and template.yaml");
    assert_eq!(served, declared, "the local API and template.yaml");
}

#[test]
fn a_route_missing_on_either_side_is_reported() {
    let yaml = fs::read_to_string(TEMPLATE).unwrap();
    let mut routes = routes_from_template(&yaml).unwrap();
    let dropped = routes.pop().unwrap();
    let problems = local_api::parity_problems(&routes);
    assert!(problems.iter().any(|p| p.contains(&dropped.key())), "{problems:?}");

    let mut extra = routes_from_template(&yaml).unwrap();
    let mut unknown = extra[0].clone();
    unknown.path = "/nowhere".into();
    extra.push(unknown);
    let problems = local_api::parity_problems(&extra);
    assert!(problems.iter().any(|p| p.contains("/nowhere") && p.contains("lacks it")), "{problems:?}");
}

#[tokio::test]
async fn every_function_runs_with_its_own_template_environment() {
    let app = TestApp::spawn().await;
    // Only their own Variables set these: the others keep the defaults.
    assert_eq!(app.function("tts").config.voice.elevenlabs_timeout, std::time::Duration::from_secs(25));
    assert_eq!(app.function("voices").config.voice.elevenlabs_timeout, std::time::Duration::from_secs(30));
    let environment = integration_tests::environments().environment("webhook").unwrap();
    assert_eq!(environment["WEBHOOK_LEASE_SECONDS"], "12");
    assert_eq!(environment["AWS_LAMBDA_FUNCTION_NAME"], "voice-local-WebhookFunction");
    assert!(!integration_tests::environments().environment("session").unwrap().contains_key("WEBHOOK_LEASE_SECONDS"));
}
