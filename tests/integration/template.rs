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
    let stream = &template["Resources"]["StreamFunction"];
    let events = stream["Properties"]["Events"].as_mapping().map(|e| e.len()).unwrap_or(0);
    assert_eq!(events, 0, "SAM DynamoDB events would attach the managed stream-read role on every table");

    let mappings: Vec<String> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::Lambda::EventSourceMapping")
        .filter(|r| text(&r["Properties"]["FunctionName"]).contains("StreamFunction"))
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
