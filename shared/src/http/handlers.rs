//! One handler per route. Each reads the caller and its input, calls one use case and answers;
//! it never fails: every error becomes a problem response (`problem.rs`). Each runs inside a span
//! carrying the request id and correlation id, so every log line of the request, including the
//! use case's, can be found from either.

use lambda_http::{Body, Request, Response};
use tracing::Instrument;

use crate::application::{
    AchievementQueries, ActivityQueries, ActivityService, CreateOutcome, StatsQueries,
};
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

fn request_span(function: &'static str, meta: &RequestMeta) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        function,
        request_id = %meta.request_id,
        correlation_id = %meta.correlation_id,
        user_id = tracing::field::Empty,
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

/// Runs a handler's body inside the request's span and answers whatever it returns; every handler
/// below is written with it. A macro, not a function taking an async closure: the body borrows
/// the request and `meta`, and the future must stay `Send` for the Lambda runtime, which a generic
/// async-closure bound cannot promise.
macro_rules! serve {
    ($function:expr, $request:expr, |$meta:ident| $body:expr) => {{
        let started = std::time::Instant::now();
        let $meta = RequestMeta::of(&$request);
        let span = request_span($function.name(), &$meta);
        let result = async { $body }.instrument(span.clone()).await;
        finish(result, &$meta, &span, $function, started)
    }};
}

fn identify(request: &Request) -> Result<crate::domain::UserId, HttpError> {
    let user = caller(request)?;
    tracing::Span::current().record("user_id", user.as_str());
    Ok(user)
}

/// `POST /activities` → 201 with the activity and `Location`.
pub async fn create_activity(service: &ActivityService, request: Request) -> Response<Body> {
    serve!(HttpFunction::CreateActivity, request, |meta| {
        let user = identify(&request)?;
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
    serve!(HttpFunction::GetActivity, request, |meta| {
        let user = identify(&request)?;
        let id = request::activity_id(&request)?;
        let activity = service.get(&meta.context(user), id).await?;
        Ok(response::activity(200, &activity, &meta))
    })
}

/// `GET /activities?from&to&type&limit&cursor` → 200 with a page, newest first.
pub async fn list_activities(service: &ActivityQueries, request: Request) -> Response<Body> {
    serve!(HttpFunction::ListActivities, request, |meta| {
        let user = identify(&request)?;
        let list = request::list_request(&request)?;
        let page = service.list(&meta.context(user), list).await?;
        Ok(response::json(200, &ActivityPageJson::from(&page), &meta))
    })
}

/// `PATCH /activities/{id}` (JSON merge patch, optional `If-Match`) → 200 with the activity.
pub async fn update_activity(service: &ActivityService, request: Request) -> Response<Body> {
    serve!(HttpFunction::UpdateActivity, request, |meta| {
        let user = identify(&request)?;
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
    serve!(HttpFunction::DeleteActivity, request, |meta| {
        let user = identify(&request)?;
        let id = request::activity_id(&request)?;
        let if_match = request::if_match(&request)?;
        service.delete(&meta.context(user), id, if_match).await?;
        Ok(response::no_content(&meta))
    })
}

/// `GET /stats?period&date` → 200 with totals and the per-type breakdown.
pub async fn get_stats(stats: &StatsQueries, request: Request) -> Response<Body> {
    serve!(HttpFunction::GetStats, request, |meta| {
        let user = identify(&request)?;
        let period = request::stats_period(&request)?;
        let stats = stats.get(&meta.context(user), period).await?;
        Ok(response::json(200, &StatsJson::from(&stats), &meta))
    })
}

/// `GET /achievements` → 200 with the caller's progress and unlocked milestones.
pub async fn get_achievements(queries: &AchievementQueries, request: Request) -> Response<Body> {
    serve!(HttpFunction::GetAchievements, request, |meta| {
        let user = identify(&request)?;
        let standing = queries.get(&meta.context(user)).await?;
        Ok(response::json(
            200,
            &AchievementsJson::from(&standing),
            &meta,
        ))
    })
}
