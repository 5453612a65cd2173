//! The sample events of `events/<function>/` (the files `cargo lambda invoke --data-file` and
//! `sam local invoke -e` take) and what each must answer, `expected.json`: read and checked here
//! and nowhere else. The same check judges an answer whether it came from a handler called in
//! process (`http_samples.rs`, the consumer tests) or from the function's real binary under a
//! loopback Runtime API (`sample_binaries.rs`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

/// `events/`.
pub fn events_dir() -> PathBuf {
    crate::http::workspace_root().join("events")
}

/// One sample event of `events/<function>/` with its entry of `expected.json`.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The function's name, its folder under `functions/` and `events/`.
    pub function: String,
    /// The file's name, e.g. `valid.json`.
    pub name: String,
    pub event: Value,
    pub expected: Expectation,
}

impl Sample {
    /// `events/<function>/<name>`, for messages.
    pub fn label(&self) -> String {
        format!("events/{}/{}", self.function, self.name)
    }
}

/// What a function answered an event: its response, or the invocation error Lambda reports (the
/// error's text).
#[derive(Debug, Clone)]
pub enum Answer {
    Response(Value),
    InvocationError(String),
}

/// What a sample must answer, as `expected.json` says it.
#[derive(Debug, Clone, PartialEq)]
pub enum Expectation {
    /// An HTTP function: API Gateway's response has this status; an error is a problem of this
    /// type; the JSON body holds at least `body`. Every answer echoes the correlation id.
    Http {
        status: u16,
        problem_type: Option<String>,
        body: Option<Value>,
    },
    /// An SQS consumer: its partial batch response names exactly these message ids.
    BatchItemFailures(BTreeSet<String>),
    /// The invocation fails (an Amazon MQ batch handed back to the broker) with this text in
    /// its error.
    InvocationError(String),
    /// The response is exactly this JSON (`"response": ...`; Amazon MQ's `{}`).
    Exactly(Value),
    /// Any other function: the response holds at least this JSON.
    Contains(Value),
}

impl Expectation {
    /// Reads one entry of `expected.json`; panics on an entry that says too little (an HTTP
    /// error without its problem type), which is a broken sample, not a failing function.
    pub fn parse(label: &str, entry: &Value) -> Self {
        if let Some(status) = entry.get("status") {
            let status = status
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or_else(|| panic!("{label}: status {status} is no HTTP status"));
            let problem_type = entry.get("type").and_then(Value::as_str).map(str::to_owned);
            assert!(
                status < 400 || problem_type.is_some(),
                "{label}: an error expectation must name its problem type"
            );
            return Expectation::Http {
                status,
                problem_type,
                body: entry.get("body").cloned(),
            };
        }
        if let Some(ids) = entry.get("batch_item_failures") {
            let ids = ids
                .as_array()
                .unwrap_or_else(|| panic!("{label}: batch_item_failures is a list"))
                .iter()
                .map(|id| {
                    id.as_str()
                        .unwrap_or_else(|| panic!("{label}: message ids are strings"))
                        .to_owned()
                })
                .collect();
            return Expectation::BatchItemFailures(ids);
        }
        if let Some(text) = entry.get("invocation_error") {
            let text = text
                .as_str()
                .unwrap_or_else(|| panic!("{label}: invocation_error is a text"));
            return Expectation::InvocationError(text.to_owned());
        }
        if let Some(response) = entry.get("response") {
            return Expectation::Exactly(response.clone());
        }
        Expectation::Contains(entry.clone())
    }

    /// What is wrong with `answer` to `event`; empty when it is what was expected.
    pub fn problems(&self, event: &Value, answer: &Answer) -> Vec<String> {
        let response = match (self, answer) {
            (Expectation::InvocationError(text), Answer::InvocationError(error)) => {
                return if error.contains(text.as_str()) {
                    Vec::new()
                } else {
                    vec![format!("the invocation failed with {error}, not {text:?}")]
                };
            }
            (Expectation::InvocationError(text), Answer::Response(response)) => {
                return vec![format!(
                    "answered {response} where the invocation should fail with {text:?}"
                )];
            }
            (_, Answer::InvocationError(error)) => {
                return vec![format!("the invocation failed: {error}")];
            }
            (_, Answer::Response(response)) => response,
        };
        let mut problems = Vec::new();
        match self {
            Expectation::Http {
                status,
                problem_type,
                body: expected_body,
            } => {
                let header = |name: &str| response["headers"][name].as_str();
                let text = response["body"].as_str().unwrap_or_default();
                let body: Value = if text.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(text).unwrap_or(Value::Null)
                };
                if response["statusCode"].as_u64() != Some(u64::from(*status)) {
                    problems.push(format!(
                        "status {} ≠ {status}: {text}",
                        response["statusCode"]
                    ));
                    return problems;
                }
                if let Some(problem_type) = problem_type {
                    if body["type"].as_str() != Some(problem_type) {
                        problems.push(format!("type {} ≠ {problem_type}", body["type"]));
                    }
                    if header("content-type") != Some("application/problem+json") {
                        problems.push(format!(
                            "a problem sent as {:?}, not application/problem+json",
                            header("content-type")
                        ));
                    }
                }
                if let Some(expected_body) = expected_body
                    && !contains(&body, expected_body)
                {
                    problems.push(format!("body {text} does not contain {expected_body}"));
                }
                // Every answer echoes the correlation id: the header's, else the request id.
                let correlation = event["headers"]["x-correlation-id"]
                    .as_str()
                    .or(event["requestContext"]["requestId"].as_str());
                if header("x-correlation-id") != correlation {
                    problems.push(format!(
                        "x-correlation-id {:?} ≠ {correlation:?}",
                        header("x-correlation-id")
                    ));
                }
            }
            Expectation::BatchItemFailures(expected) => {
                let failed: Option<BTreeSet<String>> =
                    response["batchItemFailures"].as_array().map(|failures| {
                        failures
                            .iter()
                            .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                            .collect()
                    });
                if failed.as_ref() != Some(expected) {
                    problems.push(format!("batchItemFailures {failed:?} ≠ {expected:?}"));
                }
            }
            Expectation::Exactly(expected) => {
                if response != expected {
                    problems.push(format!("{response} ≠ {expected}"));
                }
            }
            Expectation::Contains(expected) => {
                if !contains(response, expected) {
                    problems.push(format!("{response} does not contain {expected}"));
                }
            }
            Expectation::InvocationError(_) => {}
        }
        problems
    }
}

/// Every sample of `events/<function>/`, in name order; panics when a sample has no expectation
/// or an expectation no sample.
pub fn samples_of(function: &str) -> Vec<Sample> {
    let dir = events_dir().join(function);
    let read = |name: &str| -> Value {
        let path = dir.join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let expected = read("expected.json");
    let expected = expected
        .as_object()
        .unwrap_or_else(|| panic!("events/{function}/expected.json is an object"));
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("events/{function}: {e}")) {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && name != "expected.json" {
            files.insert(name);
        }
    }
    let expected_names: BTreeSet<String> = expected.keys().cloned().collect();
    assert_eq!(
        files, expected_names,
        "events/{function}: every sample needs an expectation and every expectation a sample"
    );
    files
        .into_iter()
        .map(|name| {
            let label = format!("events/{function}/{name}");
            Sample {
                function: function.to_owned(),
                event: read(&name),
                expected: Expectation::parse(&label, &expected[&name]),
                name,
            }
        })
        .collect()
}

/// True when `actual` holds everything in `expected`: objects may have more members, arrays must
/// have the same length with each element matching.
pub fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| contains(av, v))),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(av, ev)| contains(av, ev))
        }
        (Value::Number(a), Value::Number(e)) => a.as_f64() == e.as_f64(),
        _ => actual == expected,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The check can fail: each kind of expectation refuses a wrong answer.
    #[test]
    fn wrong_answers_are_refused() {
        let event = json!({"headers": {}, "requestContext": {"requestId": "r-1"}});
        let http = Expectation::parse(
            "t",
            &json!({"status": 404, "type": "https://activelog.dev/problems/not-found"}),
        );
        let problem = |status: u16, kind: &str, correlation: &str| {
            Answer::Response(json!({
                "statusCode": status,
                "headers": {"content-type": "application/problem+json", "x-correlation-id": correlation},
                "body": json!({"type": format!("https://activelog.dev/problems/{kind}")}).to_string(),
            }))
        };
        assert!(
            http.problems(&event, &problem(404, "not-found", "r-1"))
                .is_empty()
        );
        assert!(
            !http
                .problems(&event, &problem(400, "not-found", "r-1"))
                .is_empty()
        );
        assert!(
            !http
                .problems(&event, &problem(404, "forbidden", "r-1"))
                .is_empty()
        );
        assert!(
            !http
                .problems(&event, &problem(404, "not-found", "r-2"))
                .is_empty()
        );

        let batch = Expectation::parse("t", &json!({"batch_item_failures": ["a"]}));
        let failures = |ids: Value| {
            Answer::Response(json!({"batchItemFailures": ids.as_array().unwrap().iter()
                .map(|id| json!({"itemIdentifier": id})).collect::<Vec<_>>()}))
        };
        assert!(batch.problems(&event, &failures(json!(["a"]))).is_empty());
        assert!(!batch.problems(&event, &failures(json!([]))).is_empty());

        let error = Expectation::parse("t", &json!({"invocation_error": "1 poison"}));
        let failed = Answer::InvocationError("1 poison message(s)".into());
        assert!(error.problems(&event, &failed).is_empty());
        assert!(
            !error
                .problems(&event, &Answer::Response(json!({})))
                .is_empty()
        );
        assert!(!batch.problems(&event, &failed).is_empty());

        let exactly = Expectation::parse("t", &json!({"response": {}}));
        assert!(
            exactly
                .problems(&event, &Answer::Response(json!({})))
                .is_empty()
        );
        assert!(
            !exactly
                .problems(&event, &Answer::Response(json!({"batchItemFailures": []})))
                .is_empty()
        );

        let relay = Expectation::parse("t", &json!({"published": 0}));
        assert!(
            relay
                .problems(
                    &event,
                    &Answer::Response(json!({"published": 0, "failed": 0}))
                )
                .is_empty()
        );
        assert!(
            !relay
                .problems(&event, &Answer::Response(json!({"published": 1})))
                .is_empty()
        );
    }
}
