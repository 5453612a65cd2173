//! Every HTTP sample event in `events/<function>/` (the files `sam local invoke -e` and
//! `cargo lambda invoke --data-file` take) runs through its function's handler over the in-memory
//! system seeded with `events/seed.json`, and answers as `expected.json` says. A sample without an
//! expectation, or an expectation without a sample, fails the test.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use activelog::http::ROUTES;
use activelog_tests::http::http_samples;
use activelog_tests::samples::{Expectation, Sample};

#[tokio::test]
async fn every_sample_answers_as_expected() {
    let samples = http_samples();
    assert!(samples.len() >= 40, "only {} samples", samples.len());
    let mut failures = Vec::new();
    for sample in &samples {
        let answer = sample.answer_in_process().await;
        for problem in sample.expected.problems(&sample.event, &answer) {
            failures.push(format!("{}: {problem}", sample.label()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn samples_carry_the_route_key_of_their_function() {
    for sample in http_samples() {
        let route_key = sample.event["routeKey"].as_str().expect("routeKey");
        let route = ROUTES
            .iter()
            .find(|r| r.route_key() == route_key)
            .unwrap_or_else(|| panic!("{}: unknown route {route_key}", sample.name));
        assert_eq!(route.function, sample.http_function(), "{}", sample.name);
        assert_eq!(sample.event["requestContext"]["routeKey"], route_key);
        assert_eq!(sample.event["version"], "2.0");
        let path = sample.event["rawPath"].as_str().expect("rawPath");
        let parameters = route
            .match_path(path)
            .unwrap_or_else(|| panic!("{}: {path}", sample.name));
        for (name, value) in parameters {
            assert_eq!(
                sample.event["pathParameters"][name],
                value.as_str(),
                "{}",
                sample.name
            );
        }
    }
}

#[test]
fn every_function_has_a_success_and_writing_routes_have_bad_input_samples() {
    let samples = http_samples();
    for route in ROUTES {
        let of_function: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.http_function() == route.function)
            .collect();
        let status = |s: &&Sample| match s.expected {
            Expectation::Http { status, .. } => status,
            _ => 0,
        };
        assert!(
            of_function.iter().any(|s| status(s) < 300),
            "{} has no success sample",
            route.function.name()
        );
        assert!(
            of_function.iter().any(|s| status(s) == 401),
            "{} has no missing-claim sample",
            route.function.name()
        );
        if route.method != "GET" {
            assert!(
                of_function
                    .iter()
                    .filter(|s| (400..500).contains(&status(s)) && status(s) != 401)
                    .count()
                    >= 2,
                "{} needs bad-input samples",
                route.function.name()
            );
        }
    }
}

/// A change that turns a good event into one `lambda_http` cannot convert.
type Mutation = fn(&mut serde_json::Value);

/// Events `lambda_http`'s own conversion panics on (a body flagged base64 that does not decode;
/// a `Host` or path that makes no URI), made from every function's success sample. Each must be
/// answered — by the handler, never a 5xx — because a panic under `panic = "abort"` kills the
/// execution environment.
#[tokio::test]
async fn every_function_answers_events_that_make_no_valid_request() {
    let mutations: [(&str, Mutation); 4] = [
        ("undecodable base64 body", |e| {
            e["body"] = "not base64 at all!".into();
            e["isBase64Encoded"] = true.into();
        }),
        ("host that makes no URI", |e| {
            e["headers"]["host"] = "not a host name".into();
        }),
        ("path that makes no URI", |e| {
            e["rawPath"] = "/activities/a b\\c".into();
            e["requestContext"]["domainName"] = "bad domain".into();
        }),
        ("query that makes no URI", |e| {
            e["rawQueryString"] = "limit=1 2&type=\"x\"".into();
        }),
    ];
    let samples = http_samples();
    for route in ROUTES {
        let sample = samples
            .iter()
            .find(|s| {
                s.http_function() == route.function
                    && matches!(s.expected, Expectation::Http { status, .. } if status < 300)
            })
            .unwrap_or_else(|| panic!("{} has a success sample", route.function.name()));
        for (what, mutate) in &mutations {
            let mut event = sample.event.clone();
            mutate(&mut event);
            let hostile = Sample {
                function: sample.function.clone(),
                name: format!("{} ({what})", sample.name),
                event,
                expected: sample.expected.clone(),
            };
            let response = hostile.run().await;
            assert!(
                response.status < 500,
                "{} {}: {} {}",
                route.function.name(),
                hostile.name,
                response.status,
                response.text
            );
        }
    }
}
