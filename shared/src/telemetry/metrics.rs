//! CloudWatch metrics as Embedded Metric Format lines on stdout: CloudWatch Logs turns each line
//! into metric data points, so a function makes no extra call and holds no client for them.
//! One line per event, in the namespace set once per cold start ([`set_namespace`]; the
//! template gives each stack its own).
//!
//! Every distinct combination of a metric's dimension values is a custom metric CloudWatch bills
//! monthly, so a metric has a dimension only where an alarm or the dashboard reads it per value:
//! `Requests` by status class (the router) and `WebhookOutcomes` by outcome (the webhook; the
//! failures are alarmed). Every other metric is one series, and what would have been its
//! dimension (the route, the tier, the scope, the service) is a field of the same log line, for
//! CloudWatch Logs Insights; so are the latencies (`Latency` per request, `UpstreamLatency` per
//! outbound call), which the dashboard reads from the logs. docs/operations.md lists them.

use std::{
    io::Write,
    sync::{Mutex, OnceLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{Map, Value, json};

/// The namespace when none was set.
pub const DEFAULT_NAMESPACE: &str = "VoiceApp";

static NAMESPACE: OnceLock<String> = OnceLock::new();

/// Sets the metrics' namespace for this process (the first call wins: one per cold start).
pub fn set_namespace(namespace: &str) {
    let _ = NAMESPACE.set(namespace.to_owned());
}

pub fn namespace() -> &'static str {
    NAMESPACE.get().map_or(DEFAULT_NAMESPACE, String::as_str)
}

#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Count,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
        }
    }
}

/// Lines also kept in memory, for tests that read what a function logged.
static CAPTURED: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// One EMF line: the metrics `values` under every one of `dimension_sets` (each a list of names
/// from `fields`, possibly none), with `fields` and `details` as the line's other fields.
pub fn emit(
    fields: &[(&str, &str)],
    dimension_sets: &[&[&str]],
    values: &[(&str, Unit, f64)],
    details: &[(&str, f64)],
) {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let metrics: Vec<Value> =
        values.iter().map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.as_str() })).collect();
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": millis,
            "CloudWatchMetrics": [{ "Namespace": namespace(), "Dimensions": dimension_sets, "Metrics": metrics }],
        }),
    );
    for (name, value) in fields {
        line.insert((*name).into(), Value::String((*value).into()));
    }
    for (name, _, value) in values {
        line.insert((*name).into(), json!(value));
    }
    for (name, value) in details {
        line.insert((*name).into(), json!(value));
    }
    let text = Value::Object(line).to_string();
    if let Some(captured) = CAPTURED.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        captured.push(text.clone());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// One count of `name`, a single series; `detail` (what it was about: a tier, a scope, a
/// reason) is a field of the line, for Logs Insights.
pub fn count(name: &str, detail: (&str, &str)) {
    emit(&[detail], &[&[]], &[(name, Unit::Count, 1.0)], &[]);
}

/// One count of `name` per value of `dimension`: only where an alarm or the dashboard reads the
/// values apart, and the values are a short fixed list.
pub fn count_by(name: &str, dimension: (&str, &str)) {
    emit(&[dimension], &[&[dimension.0]], &[(name, Unit::Count, 1.0)], &[]);
}

/// A request answered: `Requests` by status class (`2xx`, `4xx`, `5xx`, not the code); the
/// route (API Gateway's route key) and the latency are fields of the line.
pub fn request(route: &str, status: u16, latency: Duration) {
    let outcome = format!("{}xx", status / 100);
    emit(
        &[("Route", route), ("Outcome", &outcome)],
        &[&["Outcome"]],
        &[("Requests", Unit::Count, 1.0)],
        &[("Latency", latency.as_secs_f64() * 1000.0)],
    );
}

/// An outbound call to `service` (stripe, elevenlabs, auth0): `UpstreamErrors` counts a failure
/// (no answer, 5xx or 429); the service and the latency are fields of the line.
pub fn upstream(service: &str, latency: Duration, failed: bool) {
    emit(
        &[("Service", service)],
        &[&[]],
        &[("UpstreamErrors", Unit::Count, if failed { 1.0 } else { 0.0 })],
        &[("UpstreamLatency", latency.as_secs_f64() * 1000.0)],
    );
}

/// From now on, keeps every metric line this process writes; [`captured`] returns them.
pub fn start_capture() {
    CAPTURED.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(Vec::new);
}

/// The lines written since [`start_capture`], parsed.
pub fn captured() -> Vec<Value> {
    let captured = CAPTURED.lock().unwrap_or_else(|p| p.into_inner());
    captured.iter().flatten().filter_map(|line| serde_json::from_str(line).ok()).collect()
}
