//! The HTTP edge: API Gateway HTTP API requests (payload format 2.0) in, use cases called, responses
//! out. This is the only place that sees raw JSON, query strings and headers; it parses them into
//! domain values once and turns every failure into an RFC 9457 problem.
//!
//! - [`gateway_event`]: API Gateway's event in and its response out, without panics.
//! - [`identity`]: who the caller is (the JWT authorizer's `sub` claim, nothing else).
//! - [`request`]: body limits, JSON parsing, query, path and header parameters.
//! - [`activity_json`]: the JSON shape of activities, lists and statistics.
//! - [`problem`]: the one mapping from errors to status codes and problem types.
//! - [`response`]: JSON and problem responses with the headers every answer carries.
//! - [`handlers`]: one function per route; each answers, whatever happens.
//! - [`achievements`]: `GET /achievements`, the achievements consumer's read side.
//!
//! Routing is API Gateway's job: each function serves one route, so an unknown path or method
//! never reaches a handler. [`ROUTES`] is the single table of which function serves which route;
//! the OpenAPI test and the local stack both read it.

pub mod achievements;
pub mod activity_json;
pub mod gateway_event;
pub mod handlers;
pub mod identity;
pub mod problem;
pub mod request;
pub mod response;

pub use achievements::get_achievements;
pub use handlers::{
    create_activity, delete_activity, get_activity, get_stats, list_activities, update_activity,
};
pub use identity::caller;
pub use problem::{HttpError, Problem, ProblemType};
pub use request::RequestMeta;

/// A Lambda function that serves HTTP requests; the name is its folder under `functions/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpFunction {
    CreateActivity,
    GetActivity,
    ListActivities,
    UpdateActivity,
    DeleteActivity,
    GetStats,
    GetAchievements,
}

impl HttpFunction {
    pub fn name(self) -> &'static str {
        match self {
            Self::CreateActivity => "create-activity",
            Self::GetActivity => "get-activity",
            Self::ListActivities => "list-activities",
            Self::UpdateActivity => "update-activity",
            Self::DeleteActivity => "delete-activity",
            Self::GetStats => "get-stats",
            Self::GetAchievements => "get-achievements",
        }
    }
}

/// One API Gateway route and the function behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Upper-case HTTP method, as in an API Gateway route key.
    pub method: &'static str,
    /// The path template as API Gateway and OpenAPI write it: `/activities/{id}`.
    pub path: &'static str,
    pub function: HttpFunction,
}

impl Route {
    /// The API Gateway route key, e.g. `GET /activities/{id}`.
    pub fn route_key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path parameters when `path` matches this route's template, `None` otherwise.
    pub fn match_path(&self, path: &str) -> Option<Vec<(&'static str, String)>> {
        let mut template = self.path.split('/');
        let mut actual = path.split('/');
        let mut parameters = Vec::new();
        loop {
            match (template.next(), actual.next()) {
                (None, None) => return Some(parameters),
                (Some(expected), Some(segment)) => {
                    match expected.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) if !segment.is_empty() => {
                            parameters.push((name, segment.to_owned()));
                        }
                        Some(_) => return None,
                        None if expected == segment => {}
                        None => return None,
                    }
                }
                _ => return None,
            }
        }
    }
}

/// Every route of the API. `template.yaml`, `docs/openapi.yaml` and the local stack follow this.
pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/activities",
        function: HttpFunction::CreateActivity,
    },
    Route {
        method: "GET",
        path: "/activities",
        function: HttpFunction::ListActivities,
    },
    Route {
        method: "GET",
        path: "/activities/{id}",
        function: HttpFunction::GetActivity,
    },
    Route {
        method: "PATCH",
        path: "/activities/{id}",
        function: HttpFunction::UpdateActivity,
    },
    Route {
        method: "DELETE",
        path: "/activities/{id}",
        function: HttpFunction::DeleteActivity,
    },
    Route {
        method: "GET",
        path: "/stats",
        function: HttpFunction::GetStats,
    },
    Route {
        method: "GET",
        path: "/achievements",
        function: HttpFunction::GetAchievements,
    },
];

/// The route a method and concrete path are served by, with its path parameters.
pub fn route_for(method: &str, path: &str) -> Option<(Route, Vec<(&'static str, String)>)> {
    ROUTES.iter().find_map(|route| {
        if !route.method.eq_ignore_ascii_case(method) {
            return None;
        }
        route
            .match_path(path)
            .map(|parameters| (*route, parameters))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_templates_exactly() {
        let (route, parameters) = route_for("GET", "/activities/01ABC").unwrap();
        assert_eq!(route.function, HttpFunction::GetActivity);
        assert_eq!(parameters, vec![("id", "01ABC".to_owned())]);
        assert_eq!(
            route_for("get", "/activities").unwrap().0.function,
            HttpFunction::ListActivities
        );
        assert!(route_for("GET", "/activities/").is_none());
        assert!(route_for("GET", "/activities/a/b").is_none());
        assert!(route_for("PUT", "/activities/a").is_none());
        assert!(route_for("GET", "/nope").is_none());
    }

    #[test]
    fn every_route_key_is_unique() {
        let mut keys: Vec<String> = ROUTES.iter().map(Route::route_key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), ROUTES.len());
    }
}
