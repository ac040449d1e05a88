//! What template.yaml grants, read from the file itself.

use std::fs;

use serde_norway::Value;

fn template() -> Value {
    serde_norway::from_str(&fs::read_to_string(integration_tests::TEMPLATE).unwrap()).unwrap()
}

/// A value as text (tags such as `!GetAtt` included), for comparisons.
fn text(value: &Value) -> String {
    format!("{value:?}")
}

fn statements(function: &Value) -> Vec<&Value> {
    let policies = function["Properties"]["Policies"].as_sequence().map(Vec::as_slice).unwrap_or_default();
    policies.iter().filter_map(|p| p["Statement"].as_sequence()).flatten().collect()
}

#[test]
fn the_stream_function_reads_exactly_its_two_streams() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let stream = &template["Resources"]["TtlCleanupFunction"];
    let events = stream["Properties"]["Events"].as_mapping().map(|e| e.len()).unwrap_or(0);
    assert_eq!(events, 0, "SAM DynamoDB events would attach the managed stream-read role on every table");

    let mappings: Vec<String> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::Lambda::EventSourceMapping")
        .filter(|r| text(&r["Properties"]["FunctionName"]).contains("TtlCleanupFunction"))
        .map(|r| text(&r["Properties"]["EventSourceArn"]))
        .collect();
    assert_eq!(mappings.len(), 2, "{mappings:?}");
    assert!(mappings.iter().any(|m| m.contains("RecordingsTable.StreamArn")), "{mappings:?}");
    assert!(mappings.iter().any(|m| m.contains("SessionsTable.StreamArn")), "{mappings:?}");

    let reads: Vec<&Value> =
        statements(stream).into_iter().filter(|s| text(&s["Action"]).contains("dynamodb:GetRecords")).collect();
    assert_eq!(reads.len(), 1);
    let resources = reads[0]["Resource"].as_sequence().unwrap();
    let resources: Vec<String> = resources.iter().map(text).collect();
    assert_eq!(resources.len(), 2, "{resources:?}");
    assert!(resources.iter().all(|r| r.contains(".StreamArn")), "only the two streams: {resources:?}");
}

#[test]
fn no_function_policy_grants_a_wildcard_action_or_resource() {
    let template = template();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        for statement in statements(resource) {
            let actions = text(&statement["Action"]);
            assert!(!actions.contains("\"*\"") && !actions.contains(":*\""), "{name:?}: {actions}");
            assert_ne!(statement["Resource"], Value::String("*".into()), "{name:?}: {actions} on *");
        }
    }
}

/// The names a `Fn::ForEach` entry iterates over, by the entry's key.
fn for_each<'t>(template: &'t Value, key: &str) -> (Vec<String>, &'t Value) {
    let entry = &template["Resources"][key];
    let names = entry[1]
        .as_sequence()
        .unwrap_or_else(|| panic!("{key} has no list"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    (names, &entry[2])
}

#[test]
fn every_function_and_table_has_its_alarms_and_every_alarm_notifies() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let of_type = |kind: &str, suffix: &str| -> Vec<String> {
        let mut names: Vec<String> = resources
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .map(|(n, _)| n.as_str().unwrap().strip_suffix(suffix).unwrap().to_owned())
            .collect();
        names.sort();
        names
    };

    let (mut functions, alarms) = for_each(&template, "Fn::ForEach::FunctionAlarms");
    functions.sort();
    assert_eq!(functions, of_type("AWS::Serverless::Function", "Function"), "every function, and only functions");
    let metrics: Vec<String> =
        alarms.as_mapping().unwrap().values().map(|a| text(&a["Properties"]["MetricName"])).collect();
    assert!(
        metrics.iter().any(|m| m.contains("Errors")) && metrics.iter().any(|m| m.contains("Throttles")),
        "{metrics:?}"
    );

    let (mut tables, _) = for_each(&template, "Fn::ForEach::TableAlarms");
    tables.sort();
    assert_eq!(tables, of_type("AWS::DynamoDB::Table", "Table"), "every table");

    let alarms: Vec<(&Value, &Value)> =
        resources.iter().filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm").collect();
    let names: Vec<&str> = alarms.iter().map(|(n, _)| n.as_str().unwrap()).collect();
    for wanted in ["WebhookFailuresAlarm", "DeadLettersAlarm", "TtsLatencyAlarm", "StreamIteratorAgeAlarm"] {
        assert!(names.contains(&wanted), "{wanted} in {names:?}");
    }
    let generated = ["Fn::ForEach::FunctionAlarms", "Fn::ForEach::TableAlarms"]
        .map(|key| for_each(&template, key).1.as_mapping().unwrap().values().cloned().collect::<Vec<_>>())
        .concat();
    for alarm in alarms.iter().map(|(_, a)| *a).chain(&generated) {
        assert!(text(&alarm["Properties"]["AlarmActions"]).contains("AlarmTopic"), "{alarm:?}");
    }
}

#[test]
fn alarms_on_our_own_metrics_name_what_the_functions_emit() {
    let template = template();
    let namespace = text(&template["Globals"]["Function"]["Environment"]["Variables"]["METRICS_NAMESPACE"]);
    // POST /tts's latency is Lambda's own (free) Duration of the function that serves it.
    let latency = &template["Resources"]["TtsLatencyAlarm"]["Properties"];
    assert_eq!(latency["Namespace"], "AWS/Lambda");
    assert_eq!(latency["MetricName"], "Duration");
    assert_eq!(latency["Dimensions"][0]["Name"], "FunctionName");
    assert!(text(&latency["Dimensions"][0]["Value"]).contains("TtsFunction"), "{latency:?}");
    let webhook = &template["Resources"]["WebhookFailuresAlarm"]["Properties"];
    assert_eq!(text(&webhook["Namespace"]), namespace);
    assert_eq!(
        (&webhook["MetricName"], &webhook["Dimensions"][0]["Value"]),
        (&Value::from("WebhookOutcomes"), &Value::from("failed"))
    );
    // The webhook flow names its outcomes in one place; "failed" must be among them.
    let handler =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/src/flows/stripe_events.rs")).unwrap();
    assert!(handler.contains("outcome(\"failed\")"));
}

#[test]
fn the_public_health_function_can_read_no_secret() {
    let template = template();
    let health = &template["Resources"]["HealthFunction"];
    let policies = text(&health["Properties"]["Policies"]);
    for secret in [
        "Auth0ClientSecretParameter",
        "StripeSecretKeyParameter",
        "StripeWebhookSecretParameter",
        "ElevenLabsApiKeyParameter",
        "SessionMacKeyParameter",
        "CachePasswordPolicy",
        "SessionKeyPolicy",
        "secretsmanager",
    ] {
        assert!(!policies.contains(secret), "the health function may read {secret}: {policies}");
    }
    assert!(policies.contains("HealthProbeParameter"), "{policies}");
}

#[test]
fn every_function_that_writes_user_rows_can_forget_their_cached_copy() {
    let template = template();
    // Each writes user rows (tier, usage, allowances, erasure) and so forgets the row's snapshot.
    for function in [
        "WebhookFunction",
        "ReconcileFunction",
        "ResetFunction",
        "SweepFunction",
        "TtlCleanupFunction",
        "AdminFunction",
    ] {
        let policies = text(&template["Resources"][function]["Properties"]["Policies"]);
        assert!(policies.contains("CachePasswordPolicy"), "{function} cannot reach the cache: {policies}");
    }
}
