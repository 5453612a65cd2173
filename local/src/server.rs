//! The HTTP side of the local stack: the public API, served by the functions' own handlers behind
//! a stand-in for API Gateway, the operator endpoints under `/_local/`, and the console at
//! `/_console/` (`console/`).

use std::sync::Arc;
use std::time::Instant;

use activelog::application::AchievementQueries;
use activelog::application::{ActivityQueries, ActivityService, StatsQueries};
use activelog::functions::HttpFunction;
use activelog::http;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, Uri};

use crate::access::{self, OperatorAccess};
use crate::console::{self, Journal};
use crate::gateway;
use crate::json_response::json_response;
use crate::operator::{self, Operator};

/// The use cases behind the HTTP functions.
#[derive(Clone)]
pub struct Services {
    pub activities: ActivityService,
    pub activity_queries: ActivityQueries,
    pub stats: StatsQueries,
    pub achievements: AchievementQueries,
}

#[derive(Clone)]
struct AppState {
    services: Services,
}

/// API Gateway accepts bodies up to 10 MB; the functions refuse more than 64 KiB themselves.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The API and the operator endpoints, behind the checks of [`access`]: a local `Host` for
/// everything, and for `/_local/` a JSON content type on POSTs and, when set, the token.
pub fn router(
    services: Services,
    operator: Arc<dyn Operator>,
    operator_access: OperatorAccess,
    journal: Arc<Journal>,
) -> Router {
    let operator = operator::router(operator.clone())
        .merge(console::operator_routes(journal.clone(), operator))
        .layer(axum::middleware::from_fn_with_state(
            operator_access,
            access::operator_only,
        ));
    Router::new()
        .nest("/_local", operator)
        .merge(console::page_routes())
        .fallback(api)
        .layer(axum::middleware::from_fn_with_state(
            journal,
            console::record_changes,
        ))
        .layer(axum::middleware::from_fn(access::local_host_only))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(AppState { services })
}

async fn api(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let started = Instant::now();
    let routed = match gateway::route(&method, &uri, &headers, &body) {
        Ok(routed) => routed,
        Err(refused) => {
            tracing::info!(method = %method, path = %uri.path(), status = refused.status.as_u16(), "no route");
            return json_response(
                refused.status,
                serde_json::json!({"message": refused.message}),
            );
        }
    };
    let services = &state.services;
    let event = routed.event;
    let response = match routed.route.function {
        HttpFunction::CreateActivity => http::create_activity(&services.activities, event).await,
        HttpFunction::GetActivity => http::get_activity(&services.activity_queries, event).await,
        HttpFunction::ListActivities => {
            http::list_activities(&services.activity_queries, event).await
        }
        HttpFunction::UpdateActivity => http::update_activity(&services.activities, event).await,
        HttpFunction::DeleteActivity => http::delete_activity(&services.activities, event).await,
        HttpFunction::GetStats => http::get_stats(&services.stats, event).await,
        HttpFunction::GetAchievements => {
            http::get_achievements(&services.achievements, event).await
        }
    };
    tracing::info!(
        request_id = %routed.request_id,
        route = %routed.route.route_key(),
        function = routed.route.function.name(),
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request served"
    );
    into_axum(response)
}

fn into_axum(response: lambda_http::Response<lambda_http::Body>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let body = match body {
        lambda_http::Body::Empty => Body::empty(),
        lambda_http::Body::Text(text) => Body::from(text),
        lambda_http::Body::Binary(bytes) => Body::from(bytes),
        _ => Body::empty(),
    };
    Response::from_parts(parts, body)
}
