//! The HTTP routes template.yaml declares: every `HttpApi` event of every serverless function,
//! and the route a streaming function answers at its URL (`Metadata.StreamedRoute`, for a
//! `FunctionUrlConfig` with `InvokeMode: RESPONSE_STREAM`).

use std::collections::HashMap;

use anyhow::{Context, anyhow, bail};
use lambda_http::http::Method;
use serde_norway::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The template's logical id, e.g. `SessionFunction`.
    pub function: String,
    /// The cargo binary it builds (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    pub method: Method,
    /// As declared, with `{name}` placeholders.
    pub path: String,
    /// The function's timeout (its own `Timeout`, else the Globals'), which Lambda turns into
    /// the invocation's deadline.
    pub timeout_secs: u64,
    /// Answered by a streaming function through its URL, not by API Gateway.
    pub streamed: bool,
}

impl Route {
    /// API Gateway's route key, e.g. `GET /recordings/{id}`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path parameters when `method` and `path` hit this route.
    pub fn matches(&self, method: &Method, path: &str) -> Option<HashMap<String, String>> {
        if *method != self.method {
            return None;
        }
        let pattern: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
        if pattern.len() != actual.len() {
            return None;
        }
        let mut params = HashMap::new();
        for (want, got) in pattern.iter().zip(&actual) {
            match want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(name) if !got.is_empty() => {
                    params.insert(name.to_owned(), (*got).to_owned());
                }
                Some(_) => return None,
                None if want == got => {}
                None => return None,
            }
        }
        Some(params)
    }
}

pub fn routes_from_template(yaml: &str) -> anyhow::Result<Vec<Route>> {
    let template: Value = serde_norway::from_str(yaml).context("template.yaml is not valid YAML")?;
    let resources = template.get("Resources").and_then(Value::as_mapping).context("template.yaml has no Resources")?;
    let default_timeout = template
        .get("Globals")
        .and_then(|g| g.get("Function"))
        .and_then(|f| f.get("Timeout"))
        .and_then(Value::as_u64)
        .unwrap_or(3); // Lambda's own default
    let mut routes = Vec::new();
    for (name, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let function = name.as_str().context("a resource name is not a string")?.to_owned();
        let timeout = resource.get("Properties").and_then(|p| p.get("Timeout")).and_then(Value::as_u64);
        let binary = || {
            resource
                .get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .and_then(|b| b.get("Binary"))
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("{function} has HTTP routes but no Metadata.BuildProperties.Binary"))
        };
        if let Some(streamed) = resource.get("Metadata").and_then(|m| m.get("StreamedRoute")).and_then(Value::as_str) {
            let mode = resource
                .get("Properties")
                .and_then(|p| p.get("FunctionUrlConfig"))
                .and_then(|u| u.get("InvokeMode"))
                .and_then(Value::as_str);
            if mode != Some("RESPONSE_STREAM") {
                bail!("{function} declares a StreamedRoute but no FunctionUrlConfig with InvokeMode RESPONSE_STREAM");
            }
            let (method, path) = streamed.split_once(' ').context("a StreamedRoute is `METHOD /path`")?;
            routes.push(Route {
                function: function.clone(),
                binary: binary()?.to_owned(),
                method: method.parse().context("HTTP method")?,
                path: path.to_owned(),
                timeout_secs: timeout.unwrap_or(default_timeout),
                streamed: true,
            });
        }
        let Some(events) = resource.get("Properties").and_then(|p| p.get("Events")).and_then(Value::as_mapping) else {
            continue;
        };
        for event in events.values().filter(|e| e.get("Type").and_then(Value::as_str) == Some("HttpApi")) {
            let binary = binary()?;
            let property = |key: &str| {
                event
                    .get("Properties")
                    .and_then(|p| p.get(key))
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("an HttpApi event of {function} has no {key}"))
            };
            routes.push(Route {
                function: function.clone(),
                binary: binary.to_owned(),
                method: property("Method")?.to_uppercase().parse().context("HTTP method")?,
                path: property("Path")?.to_owned(),
                timeout_secs: timeout.unwrap_or(default_timeout),
                streamed: false,
            });
        }
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Route {
        Route {
            function: "F".into(),
            binary: "f".into(),
            method: Method::GET,
            path: path.into(),
            timeout_secs: 3,
            streamed: false,
        }
    }

    #[test]
    fn placeholders_capture_one_segment() {
        let params = route("/recordings/{id}").matches(&Method::GET, "/recordings/01J").unwrap();
        assert_eq!(params["id"], "01J");
        assert!(route("/recordings/{id}").matches(&Method::GET, "/recordings").is_none());
        assert!(route("/recordings/{id}").matches(&Method::GET, "/recordings/a/b").is_none());
        assert!(route("/recordings/{id}").matches(&Method::POST, "/recordings/01J").is_none());
        assert!(route("/usage").matches(&Method::GET, "/usage").unwrap().is_empty());
    }

    #[test]
    fn reads_http_api_events_and_ignores_the_rest() {
        let yaml = r#"
Globals:
  Function: { Timeout: 10 }
Resources:
  Table: { Type: AWS::DynamoDB::Table, Properties: { TableName: !Sub "${AWS::StackName}-t" } }
  Fn:
    Type: AWS::Serverless::Function
    Metadata: { BuildMethod: rust-cargolambda, BuildProperties: { Binary: things } }
    Properties:
      Timeout: 25
      Events:
        List: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: get, Path: /things } }
        Stream: { Type: DynamoDB, Properties: { Stream: !GetAtt Table.StreamArn } }
  Streamer:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: streamer }, StreamedRoute: POST /things/stream }
    Properties:
      FunctionUrlConfig: { AuthType: NONE, InvokeMode: RESPONSE_STREAM }
"#;
        let routes = routes_from_template(yaml).unwrap();
        assert_eq!(
            routes,
            [
                Route {
                    function: "Fn".into(),
                    binary: "things".into(),
                    method: Method::GET,
                    path: "/things".into(),
                    timeout_secs: 25,
                    streamed: false,
                },
                Route {
                    function: "Streamer".into(),
                    binary: "streamer".into(),
                    method: Method::POST,
                    path: "/things/stream".into(),
                    timeout_secs: 10,
                    streamed: true,
                },
            ]
        );
        let buffered = yaml.replace("RESPONSE_STREAM", "BUFFERED");
        assert!(routes_from_template(&buffered).is_err(), "a streamed route needs a streaming URL");
    }
}
