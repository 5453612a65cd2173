//! Which function serves which route: the one table `template.yaml`, `docs/openapi.yaml` and the
//! local stack's stand-in for API Gateway all follow (the OpenAPI and template tests check it).
//! Routing is API Gateway's job: each function serves one route, so an unknown path or method
//! never reaches a handler.

use crate::functions::HttpFunction;

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
    fn every_http_function_serves_exactly_one_route() {
        for function in HttpFunction::ALL {
            let routes = ROUTES.iter().filter(|r| r.function == function).count();
            assert_eq!(routes, 1, "{}", function.name());
        }
    }

    #[test]
    fn every_route_key_is_unique() {
        let mut keys: Vec<String> = ROUTES.iter().map(Route::route_key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), ROUTES.len());
    }
}
