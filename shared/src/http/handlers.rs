//! One handler per route. Each reads the caller and its input, calls one use case and answers;
//! it never fails: every error becomes a problem response (`problem.rs`). Each runs inside a span
//! carrying the request id and correlation id, so every log line of the request, including the
//! use case's, can be found from either.

use lambda_http::{Body, Request, Response};
use tracing::Instrument;

use crate::application::{
    AchievementQueries, ActivityQueries, ActivityService, CreateOutcome, StatsQueries,
};
use crate::domain::UserId;
use crate::functions::HttpFunction;
use crate::telemetry::{self, Metric};

use super::achievements_json::AchievementsJson;
use super::activity_json::{ActivityPageJson, ActivityPatchJson, NewActivityJson};
use super::identity::caller;
use super::problem::HttpError;
use super::request::{self, json_body};
use super::request_meta::RequestMeta;
use super::response;
use super::stats_json::StatsJson;

/// The media type of a JSON merge patch, accepted besides `application/json` on PATCH.
pub const MERGE_PATCH_JSON: &str = "application/merge-patch+json";

/// The request's span, opened with the caller's id when the request has one: recording it
/// afterwards made the JSON log format parse and rewrite the span's fields once more per request
/// (issue 15, handler CPU).
fn request_span(
    function: &'static str,
    meta: &RequestMeta,
    user: Option<&UserId>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        function,
        request_id = %meta.request_id,
        correlation_id = %meta.correlation_id,
        user_id = user.map(UserId::as_str),
    );
    // The root of the activity's trace, or a child of the caller's (or Lambda's X-Ray segment).
    if let Some(parent) = &meta.trace_parent {
        crate::traces::follow(&span, parent);
    }
    span
}

/// Turns the outcome into the response, logs one line per request with its status, and emits the
/// function's request metrics (one EMF line: requests, client and server errors, latency).
fn finish(
    result: Result<Response<Body>, HttpError>,
    meta: &RequestMeta,
    span: &tracing::Span,
    function: HttpFunction,
    started: std::time::Instant,
) -> Response<Body> {
    let _entered = span.enter();
    let (response, problem) = match result {
        Ok(response) => (response, None),
        Err(error) => {
            let (problem_type, detail, _) = error.problem();
            (
                response::error(error, meta),
                Some((problem_type.slug(), detail)),
            )
        }
    };
    let status = response.status().as_u16();
    match problem {
        None => tracing::info!(status, "request completed"),
        Some((problem, detail)) => tracing::info!(status, problem, %detail, "request completed"),
    }
    telemetry::emit_metrics(
        function.name(),
        &[
            Metric::count("Requests", 1),
            Metric::count("ClientErrors", u64::from((400..500).contains(&status))),
            Metric::count("ServerErrors", u64::from(status >= 500)),
            Metric::milliseconds("Latency", started.elapsed().as_secs_f64() * 1000.0),
        ],
    );
    response
}

/// Runs a handler's body inside the request's span, with the caller identified, and answers
/// whatever it returns; every handler below is written with it. A request without a caller the
/// domain can hold is answered 401 inside the span, before the body runs. A macro, not a function
/// taking an async closure: the body borrows the request and `meta`, and the future must stay
/// `Send` for the Lambda runtime, which a generic async-closure bound cannot promise.
macro_rules! serve {
    ($function:expr, $request:expr, |$meta:ident, $user:ident| $body:expr) => {{
        let started = std::time::Instant::now();
        let $meta = RequestMeta::of(&$request);
        let identified = caller(&$request);
        let span = request_span($function.name(), &$meta, identified.as_ref().ok());
        let result = async {
            let $user = identified?;
            $body
        }
        .instrument(span.clone())
        .await;
        finish(result, &$meta, &span, $function, started)
    }};
}

/// `POST /activities` → 201 with the activity and `Location`.
pub async fn create_activity(service: &ActivityService, request: Request) -> Response<Body> {
    serve!(HttpFunction::CreateActivity, request, |meta, user| {
        let body = json_body::<NewActivityJson>(&request, &[])?;
        let idempotency = request::idempotency(&request, body.bytes)?;
        let draft = body
            .value
            .into_draft(service.today())
            .map_err(HttpError::InvalidBody)?;
        let outcome = service
            .create(&meta.context(user), draft, idempotency)
            .await?;
        Ok(match outcome {
            CreateOutcome::Created(activity) => response::created(&activity, false, &meta),
            CreateOutcome::Replayed(activity) => response::created(&activity, true, &meta),
        })
    })
}

/// `GET /activities/{id}` → 200 with the activity and its `ETag`.
pub async fn get_activity(service: &ActivityQueries, request: Request) -> Response<Body> {
    serve!(HttpFunction::GetActivity, request, |meta, user| {
        let id = request::activity_id(&request)?;
        let activity = service.get(&meta.context(user), id).await?;
        Ok(response::activity(200, &activity, &meta))
    })
}

/// `GET /activities?from&to&type&limit&cursor` → 200 with a page, newest first.
pub async fn list_activities(service: &ActivityQueries, request: Request) -> Response<Body> {
    serve!(HttpFunction::ListActivities, request, |meta, user| {
        let list = request::list_request(&request)?;
        let page = service.list(&meta.context(user), list).await?;
        Ok(response::json_text(
            200,
            ActivityPageJson(&page).to_json(),
            &meta,
        ))
    })
}

/// `PATCH /activities/{id}` (JSON merge patch, optional `If-Match`) → 200 with the activity.
pub async fn update_activity(service: &ActivityService, request: Request) -> Response<Body> {
    serve!(HttpFunction::UpdateActivity, request, |meta, user| {
        let id = request::activity_id(&request)?;
        let if_match = request::if_match(&request)?;
        let body = json_body::<ActivityPatchJson>(&request, &[MERGE_PATCH_JSON])?;
        let patch = body
            .value
            .into_patch(service.today())
            .map_err(HttpError::InvalidBody)?;
        let activity = service
            .update(&meta.context(user), id, &patch, if_match)
            .await?;
        Ok(response::activity(200, &activity, &meta))
    })
}

/// `DELETE /activities/{id}` (optional `If-Match`) → 204.
pub async fn delete_activity(service: &ActivityService, request: Request) -> Response<Body> {
    serve!(HttpFunction::DeleteActivity, request, |meta, user| {
        let id = request::activity_id(&request)?;
        let if_match = request::if_match(&request)?;
        service.delete(&meta.context(user), id, if_match).await?;
        Ok(response::no_content(&meta))
    })
}

/// `GET /stats?period&date` → 200 with totals and the per-type breakdown.
pub async fn get_stats(stats: &StatsQueries, request: Request) -> Response<Body> {
    serve!(HttpFunction::GetStats, request, |meta, user| {
        let period = request::stats_period(&request)?;
        let stats = stats.get(&meta.context(user), period).await?;
        Ok(response::json(200, &StatsJson::from(&stats), &meta))
    })
}

/// `GET /achievements` → 200 with the caller's progress and unlocked milestones.
pub async fn get_achievements(queries: &AchievementQueries, request: Request) -> Response<Body> {
    serve!(HttpFunction::GetAchievements, request, |meta, user| {
        let standing = queries.get(&meta.context(user)).await?;
        Ok(response::json(
            200,
            &AchievementsJson::from(&standing),
            &meta,
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::registry::LookupSpan;

    use super::*;
    use crate::http::GatewayEventBuilder;
    use crate::startup::{InMemoryStack, QueueOptions};

    /// A `request` span as it was opened and used: its `user_id` at the start, and how many
    /// times a field was recorded on it afterwards.
    type SpanSeen = (Option<String>, usize);

    /// Every `request` span of a run.
    #[derive(Clone, Default)]
    struct RequestSpans(Arc<Mutex<Vec<SpanSeen>>>);

    struct UserIdField(Option<String>);

    impl Visit for UserIdField {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "user_id" {
                self.0 = Some(value.to_owned());
            }
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "user_id" {
                self.0 = Some(format!("{value:?}"));
            }
        }
    }

    impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S>
        for RequestSpans
    {
        fn on_new_span(&self, attributes: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            if attributes.metadata().name() == "request" {
                let mut user = UserIdField(None);
                attributes.record(&mut user);
                self.0.lock().unwrap().push((user.0, 0));
            }
        }
        fn on_record(&self, span: &Id, _: &Record<'_>, context: Context<'_, S>) {
            if context.span(span).is_some_and(|s| s.name() == "request")
                && let Some(last) = self.0.lock().unwrap().last_mut()
            {
                last.1 += 1;
            }
        }
    }

    async fn stats_of(stack: &InMemoryStack, builder: GatewayEventBuilder) -> u16 {
        let request = builder.request().unwrap();
        get_stats(&stack.stats, request).await.status().as_u16()
    }

    #[test]
    fn the_request_span_is_opened_with_the_caller_and_never_rewritten() {
        let stack = InMemoryStack::with_system_clock(&[], &QueueOptions::default()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let caller = || GatewayEventBuilder::new("GET", "/stats").caller("user-1");
        let anonymous = || GatewayEventBuilder::new("GET", "/stats").without_caller();
        // Meet the handler's callsites before the subscriber is installed (see the tracing tests).
        assert_eq!(runtime.block_on(stats_of(&stack, caller())), 200);

        let spans = RequestSpans::default();
        let subscriber = tracing_subscriber::registry().with(spans.clone());
        let statuses = tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                (
                    stats_of(&stack, caller()).await,
                    stats_of(&stack, anonymous()).await,
                )
            })
        });

        assert_eq!(statuses, (200, 401));
        assert_eq!(
            *spans.0.lock().unwrap(),
            vec![(Some("user-1".to_owned()), 0), (None, 0)]
        );
    }
}
