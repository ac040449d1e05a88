//! openapi.yaml against the code, without running it: the template's routes and the access each
//! route table enforces (public, cookie + CSRF, API key); each request body against the Rust type
//! its handler parses (the fields, which are required, which kinds of value parse); the limits
//! against the code's constants; each text pattern against the check it stands for. What the
//! running API accepts and answers is checked by schemathesis (tests/e2e.sh).

use std::{collections::BTreeSet, fs};

use local_api::{
    FUNCTIONS,
    routes::{expected_security, operations, stated_security},
    routes_from_template,
};
use serde_json::{Value as Json, json};
use serde_norway::Value;
use voice_core::http::{Access, body::BodyType};

const OPENAPI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");

fn spec() -> Value {
    serde_norway::from_str(&fs::read_to_string(OPENAPI).unwrap()).unwrap()
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
    for &(binary, table) in FUNCTIONS {
        for route in table {
            let (_, operation) = operations
                .iter()
                .find(|(key, _)| key == route.key)
                .unwrap_or_else(|| panic!("{binary}: {} is not in openapi.yaml", route.key));
            let alternatives = stated_security(&spec, operation);
            let state_change = !route.key.starts_with("GET ");
            let expected = expected_security(route);
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

// What each request body accepts, against the Rust type that parses it.

/// Each operation's JSON body and the type its handler parses it into, as its route declares
/// (`body:` in `route!`); a nested object is named by its place in the body's schema.
fn request_types(spec: &Json) -> Vec<(String, &'static str, BodyType)> {
    use voice_core::domain::{generation, profile, voices};
    // The objects inside a body that are types of their own.
    let nested: [(&str, &str, BodyType); 3] = [
        (
            std::any::type_name::<generation::TtsBody>(),
            "/properties/voiceSettings",
            BodyType::of::<generation::SliderValues>(),
        ),
        (
            std::any::type_name::<profile::ProfilePatch>(),
            "/properties/preferences",
            BodyType::of::<profile::Preferences>(),
        ),
        (std::any::type_name::<voices::NewVoiceBody>(), "/properties/consent", BodyType::of::<voices::Consent>()),
    ];
    let mut types = Vec::new();
    for route in FUNCTIONS.iter().flat_map(|(_, table)| table.iter()) {
        let Some(body) = route.body else { continue };
        let (method, path) = route.key.split_once(' ').unwrap();
        let id = spec["paths"][path][method.to_lowercase()]["operationId"].as_str();
        let id = id.unwrap_or_else(|| panic!("{}: openapi.yaml names no operationId", route.key)).to_owned();
        for (_, at, inner) in nested.iter().filter(|(outer, _, _)| *outer == (body.name)()) {
            types.push((id.clone(), *at, *inner));
        }
        types.push((id, "", body));
    }
    types
}

/// Where the spec forbids a kind of value that the type parses, and a later check refuses it.
const REFUSED_AFTER_PARSING: &[(&str, &str, &str)] = &[
    // `consent: null` parses as no consent, which the clone's check refuses (VALIDATION_FAILED).
    ("cloneVoice", "consent", "null"),
    ("cloneWorkspaceVoice", "consent", "null"),
];

/// `schema` with its `$ref` followed.
fn resolve<'a>(spec: &'a Json, schema: &'a Json) -> &'a Json {
    match schema.get("$ref").and_then(Json::as_str) {
        Some(reference) => resolve(spec, spec.pointer(reference.trim_start_matches('#')).expect(reference)),
        None => schema,
    }
}

/// The schema of an operation's JSON body.
fn request_schema<'a>(spec: &'a Json, id: &str) -> &'a Json {
    let (_, operation) = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap())
        .find(|(_, o)| o["operationId"] == id)
        .unwrap_or_else(|| panic!("{id} is not in openapi.yaml"));
    let body = resolve(spec, &operation["requestBody"]);
    object_schema(spec, &body["content"]["application/json"]["schema"])
}

/// The object alternative of a schema that may also be null.
fn object_schema<'a>(spec: &'a Json, schema: &'a Json) -> &'a Json {
    let schema = resolve(spec, schema);
    match schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Json::as_array) {
        Some(alternatives) => alternatives
            .iter()
            .map(|a| resolve(spec, a))
            .find(|a| a.get("properties").is_some())
            .expect("an object alternative"),
        None => schema,
    }
}

/// A value of each kind the schema allows: every value of an enum or const, one of each type.
fn allowed(spec: &Json, schema: &Json) -> Vec<Json> {
    let schema = resolve(spec, schema);
    if let Some(value) = schema.get("const") {
        return vec![value.clone()];
    }
    if let Some(values) = schema.get("enum").and_then(Json::as_array) {
        return values.clone();
    }
    if let Some(alternatives) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Json::as_array) {
        return alternatives.iter().flat_map(|a| allowed(spec, a)).collect();
    }
    let types: Vec<&str> = match &schema["type"] {
        Json::String(one) => vec![one.as_str()],
        Json::Array(several) => several.iter().map(|t| t.as_str().unwrap()).collect(),
        _ => panic!("a request schema without a type: {schema}"),
    };
    types
        .into_iter()
        .map(|kind| match kind {
            "null" => Json::Null,
            "boolean" => json!(true),
            "integer" => schema.get("minimum").cloned().unwrap_or(json!(1)),
            "number" => schema.get("minimum").cloned().unwrap_or(json!(0.5)),
            "string" => json!("x".repeat(schema.get("minLength").and_then(Json::as_u64).unwrap_or(1) as usize)),
            "array" => json!([example(spec, &schema["items"])]),
            "object" => object_example(spec, schema),
            other => panic!("an unknown type {other}"),
        })
        .collect()
}

fn example(spec: &Json, schema: &Json) -> Json {
    allowed(spec, schema).into_iter().next().expect("a schema that allows something")
}

/// An object with every property the schema names.
fn object_example(spec: &Json, schema: &Json) -> Json {
    let mut object = serde_json::Map::new();
    if let Some(properties) = schema.get("properties").and_then(Json::as_object) {
        for (name, property) in properties {
            object.insert(name.clone(), example(spec, property));
        }
    } else if let Some(values @ Json::Object(_)) = schema.get("additionalProperties") {
        object.insert("key".to_owned(), example(spec, values));
    }
    Json::Object(object)
}

/// A value of each of JSON's kinds.
fn every_kind() -> [Json; 6] {
    [Json::Null, json!(true), json!(7), json!("x"), json!([]), json!({})]
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

#[test]
fn every_request_body_is_the_type_its_handler_parses() {
    let spec = serde_json::to_value(spec()).unwrap();
    let types = request_types(&spec);
    let mut problems = Vec::new();

    // Every JSON body but Stripe's own event (checked by its signature) has its type here.
    for item in spec["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values().filter(|o| o.get("requestBody").is_some()) {
            let id = operation["operationId"].as_str().unwrap();
            if id != "stripeWebhook" && !types.iter().any(|(op, at, _)| op == id && at.is_empty()) {
                problems.push(format!("{id}: its route declares no body type (`body:` in route!)"));
            }
        }
    }

    for (id, at, rust) in &types {
        let schema = request_schema(&spec, id);
        let schema = object_schema(&spec, schema.pointer(at).unwrap_or_else(|| panic!("{id}{at}")));
        let place = format!("{id}{at} ({})", (rust.name)());
        let properties = schema["properties"].as_object().unwrap();
        let required: BTreeSet<&str> = schema
            .get("required")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .map(|r| r.as_str().unwrap())
            .collect();

        let documented: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
        let parsed: BTreeSet<&str> = (rust.fields)().iter().copied().collect();
        if documented != parsed {
            problems.push(format!("{place}: the spec has {documented:?}, the type {parsed:?}"));
        }
        if schema["additionalProperties"] != json!(false) {
            problems.push(format!("{place}: the spec allows unknown fields"));
        }

        let whole = object_example(&spec, schema);
        if let Err(e) = (rust.parses)(whole.clone()) {
            problems.push(format!("{place}: the spec's example {whole} is refused: {e}"));
            continue;
        }
        let mut unknown = whole.clone();
        unknown["notAField"] = json!(1);
        if (rust.parses)(unknown).is_ok() {
            problems.push(format!("{place}: an unknown field is accepted"));
        }

        for (name, property) in properties {
            let with = |value: Json| {
                let mut body = whole.clone();
                body[name] = value;
                (rust.parses)(body)
            };
            let mut without = whole.clone();
            without.as_object_mut().unwrap().remove(name);
            if (rust.parses)(without).is_err() && !required.contains(name.as_str()) {
                problems.push(format!("{place}: {name} is optional in the spec, required by the type"));
            }
            let values = allowed(&spec, property);
            for value in &values {
                if let Err(e) = with(value.clone()) {
                    problems
                        .push(format!("{place}: {name} = {value} is allowed by the spec, refused by the type: {e}"));
                }
            }
            let kinds: BTreeSet<&str> = values.iter().map(kind).collect();
            for value in every_kind().into_iter().filter(|v| !kinds.contains(kind(v))) {
                let other = kind(&value);
                let excused = REFUSED_AFTER_PARSING.iter().any(|(o, n, k)| o == id && n == name && *k == other);
                if with(value).is_ok() && !excused {
                    problems.push(format!("{place}: {name} may not be {other} in the spec, the type parses it"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "openapi.yaml and the request types differ:\n{}", problems.join("\n"));
}

#[test]
fn the_spec_states_the_limits_the_code_enforces() {
    use voice_core::{
        domain::{audio, tiers, voices},
        flows::admin::MAX_GRANT,
    };
    let spec = serde_json::to_value(spec()).unwrap();
    let limit = |id: &str, pointer: &str| -> f64 {
        let schema = if id.is_empty() { &spec } else { request_schema(&spec, id) };
        schema.pointer(pointer).and_then(Json::as_f64).unwrap_or_else(|| panic!("{id}{pointer} is not a number"))
    };
    let longest_text = tiers::TIERS.iter().map(|t| t.max_text_chars).max().unwrap();
    let (slowest, fastest) = audio::SPEED_RANGE;
    let limits: [(&str, &str, f64); 21] = [
        ("generate", "/properties/text/maxLength", longest_text as f64),
        ("generate", "/properties/speed/minimum", slowest.into()),
        ("generate", "/properties/speed/maximum", fastest.into()),
        ("savePreset", "/properties/speed/minimum", slowest.into()),
        ("savePreset", "/properties/speed/maximum", fastest.into()),
        ("uploadSample", "/properties/sizeBytes/minimum", voices::SAMPLE_MIN_BYTES as f64),
        ("uploadSample", "/properties/sizeBytes/maximum", voices::SAMPLE_MAX_BYTES as f64),
        ("createUpload", "/properties/sizeBytes/minimum", 1.0),
        ("createUpload", "/properties/sizeBytes/maximum", recordings::MAX_UPLOAD_BYTES as f64),
        ("createUpload", "/properties/voiceName/maxLength", recordings::UPLOAD_VOICE_NAME_MAX_CHARS as f64),
        ("createUpload", "/properties/text/maxLength", recordings::UPLOAD_TEXT_MAX_CHARS as f64),
        ("cloneVoice", "/properties/sampleIds/minItems", 1.0),
        ("cloneVoice", "/properties/sampleIds/maxItems", voices::MAX_SAMPLES as f64),
        ("cloneVoice", "/properties/labels/maxProperties", voices::MAX_LABELS as f64),
        ("cloneVoice", "/properties/description/maxLength", voices::DESCRIPTION_MAX_CHARS as f64),
        ("renameVoice", "/properties/description/maxLength", voices::DESCRIPTION_MAX_CHARS as f64),
        ("adminGrantUsage", "/properties/recordings/minimum", 1.0),
        ("adminGrantUsage", "/properties/recordings/maximum", MAX_GRANT.into()),
        ("", "/components/parameters/Limit100/schema/minimum", 1.0),
        ("", "/components/parameters/Limit100/schema/maximum", recordings::MAX_PAGE.into()),
        ("", "/components/schemas/SpeechRequest/properties/text/minLength", 1.0),
    ];
    let mut problems = Vec::new();
    for (id, pointer, code) in limits {
        // The spec writes decimals; the code's f32 limits are compared at f32's precision.
        let documented = limit(id, pointer);
        if documented as f32 != code as f32 {
            problems.push(format!("{id}{pointer}: the spec says {documented}, the code {code}"));
        }
    }
    let listed = |pointer: &str| -> Vec<Json> { spec.pointer(pointer).and_then(Json::as_array).unwrap().clone() };
    let audio_types: Vec<Json> = audio::AudioType::ALL.iter().map(|t| json!(t.mime())).collect();
    if listed("/components/schemas/AudioType/enum") != audio_types {
        problems.push(format!("AudioType: the code takes {audio_types:?}"));
    }
    let tiers: Vec<Json> = tiers::Tier::ALL.iter().map(|t| json!(t.as_str())).collect();
    if listed("/components/schemas/Tier/enum") != tiers {
        problems.push(format!("Tier: the code has {tiers:?}"));
    }
    assert!(problems.is_empty(), "openapi.yaml's limits differ from the code's:\n{}", problems.join("\n"));
}

/// Strings around a text rule's edges: lengths about `max` in several scripts, whitespace to trim,
/// control characters inside and at the ends.
fn text_probes(max: usize) -> Vec<String> {
    let mut probes = Vec::new();
    for unit in ["a", "é", "語", "😀"] {
        for length in [0, 1, 2, 3, 4, max - 1, max, max + 1] {
            let text = unit.repeat(length);
            probes.push(format!(" \t{text}\u{3000}\n"));
            probes.push(text);
        }
    }
    for odd in [
        "a b",
        "a\tb",
        "a\nb",
        "a\u{7}b",
        "\u{7}ab",
        "ab\u{7f}",
        "a\u{85}b",
        "\u{85}ab",
        "a\u{9f}b",
        "a\u{a0}b",
        "\u{a0}",
        "\u{a0}\u{a0}\u{a0}",
        "a\u{200b}b",
        "\u{200b}",
        "\u{feff}ab",
        "a\u{2028}b",
        "\u{1680}abc\u{205f}",
        "\u{2000}\u{200a}x\u{202f}",
        "\u{0}abc",
        "abc\u{1b}",
    ] {
        probes.push(odd.to_owned());
    }
    probes
}

#[test]
fn each_text_pattern_takes_what_the_code_takes() {
    use voice_core::{
        domain::{presets, profile, tiers::Tier, voices},
        flows::admin,
    };
    let spec = serde_json::to_value(spec()).unwrap();
    let voice_name = |s: &str| voices::VoicePatchBody { name: Some(s.into()), description: None }.check().is_ok();
    let preset_name = |s: &str| {
        let preset =
            presets::NewPreset { name: s.into(), stability: 0.5, similarity_boost: 0.5, style: 0.0, speed: 1.0 };
        preset.validate().is_ok()
    };
    let profile_name = |s: &str| {
        let patch = profile::ProfilePatch { name: Some(Some(s.into())), preferences: None };
        patch.check(Tier::Free, &[]).is_ok()
    };
    let key_name = |s: &str| account::key_name(s).is_ok();
    let reason = |s: &str| admin::reason(s).is_ok();
    type Takes<'a> = &'a dyn Fn(&str) -> bool;
    let rules: [(&str, &str, usize, Takes); 7] = [
        ("cloneVoice", "/properties/name", voices::NAME_MAX_CHARS, &voice_name),
        ("renameVoice", "/properties/name", voices::NAME_MAX_CHARS, &voice_name),
        ("savePreset", "/properties/name", presets::NAME_MAX_CHARS, &preset_name),
        ("editProfile", "/properties/name", profile::MAX_NAME_CHARS, &profile_name),
        ("createApiKey", "/properties/name", account::KEY_NAME_MAX_CHARS, &key_name),
        ("createWorkspaceApiKey", "/properties/name", account::KEY_NAME_MAX_CHARS, &key_name),
        ("adminSuspend", "/properties/reason", 500, &reason),
    ];
    let mut problems = Vec::new();
    for (id, at, max, takes) in rules {
        let property = resolve(&spec, request_schema(&spec, id).pointer(at).unwrap());
        let pattern = property["pattern"].as_str().unwrap_or_else(|| panic!("{id}{at} has no pattern"));
        let pattern = regex_lite::Regex::new(pattern).unwrap_or_else(|e| panic!("{id}{at}: {e}"));
        for probe in text_probes(max) {
            let (documented, coded) = (pattern.is_match(&probe), takes(&probe));
            if documented != coded {
                problems
                    .push(format!("{id}{at}: {probe:?} matches the pattern: {documented}, the code takes it: {coded}"));
            }
        }
    }
    assert!(problems.is_empty(), "openapi.yaml's text patterns differ from the code:\n{}", problems.join("\n"));
}
