//! Who may talk to the local server. It authenticates no API caller (`x-user-id` is believed), so
//! its defence is that only programs on this machine reach it. A loopback bind keeps other
//! machines out, but not a web page open in the developer's browser:
//!
//! - DNS rebinding points an attacker's name at 127.0.0.1, so the page's requests reach us as
//!   same-origin requests carrying that name in `Host`: only `localhost` and IP literals are served.
//! - A cross-site "simple" POST (`text/plain`, a form) needs no CORS preflight: an operator POST
//!   must be declared `application/json`, which a foreign page can only send after a preflight
//!   this server never grants.
//! - With `--aws` the operator endpoints touch real queues: they also need the per-run token
//!   printed at start ([`TOKEN_HEADER`]).

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{Method, Response, StatusCode};
use axum::middleware::Next;
use serde_json::json;

use crate::json_response::json_response;

/// The header that carries the operator token in `--aws` mode.
pub const TOKEN_HEADER: &str = "x-activelog-local-token";

/// Whether a `Host` header names this machine in a way DNS cannot rebind: `localhost` or an IP
/// literal (IPv6 in brackets), with or without a port.
pub fn host_is_local(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, "")) => inside,
            Some((inside, after)) if after.strip_prefix(':').is_some_and(is_port) => inside,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

fn is_port(port: &str) -> bool {
    port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
}

fn refuse(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, json!({ "message": message }))
}

/// Every request: refuses a `Host` that is not this machine's (DNS rebinding).
pub async fn local_host_only(request: Request, next: Next) -> Response<Body> {
    let host = request.headers().get(HOST).and_then(|v| v.to_str().ok());
    match host {
        Some(host) if host_is_local(host) => next.run(request).await,
        _ => {
            tracing::warn!(host = ?host, path = %request.uri().path(), "refused: unexpected Host header");
            refuse(
                StatusCode::FORBIDDEN,
                "unexpected Host header: the local stack serves only localhost and IP addresses",
            )
        }
    }
}

/// What the operator endpoints require besides a local `Host`.
#[derive(Clone, Default)]
pub struct OperatorAccess {
    /// Required in [`TOKEN_HEADER`] when set (`--aws` mode).
    pub token: Option<Arc<str>>,
}

impl OperatorAccess {
    /// A fresh token of 160 random bits (two ULIDs' random parts, from `rand`'s CSPRNG).
    pub fn with_new_token() -> Self {
        let token = format!(
            "{:020x}{:020x}",
            ulid::Ulid::new().random(),
            ulid::Ulid::new().random()
        );
        Self::with_token(token)
    }

    pub fn with_token(token: String) -> Self {
        Self {
            token: Some(token.into()),
        }
    }
}

/// Compares without stopping at the first difference, so timing tells nothing about the token.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// `/_local/`: the token when one is set, and a JSON content type on every POST.
pub async fn operator_only(
    State(access): State<OperatorAccess>,
    request: Request,
    next: Next,
) -> Response<Body> {
    if let Some(expected) = &access.token {
        let given = request
            .headers()
            .get(TOKEN_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !same_secret(given, expected.as_bytes()) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "the operator endpoints need the token printed at start, in x-activelog-local-token",
            );
        }
    }
    if request.method() == Method::POST {
        let media_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        if media_type.as_deref() != Some("application/json") {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "operator POSTs must be sent as application/json",
            );
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_localhost_and_ip_literals_are_local_hosts() {
        for host in [
            "localhost",
            "LOCALHOST:3000",
            "127.0.0.1",
            "127.0.0.1:3000",
            "[::1]",
            "[::1]:3000",
            "192.168.1.20:3000",
        ] {
            assert!(host_is_local(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:3000",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "localhost:",
            "localhost:99999",
            "[::1",
            "[::1]x",
            "",
        ] {
            assert!(!host_is_local(host), "{host}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
        let a = OperatorAccess::with_new_token();
        let b = OperatorAccess::with_new_token();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.map(|t| t.len()), Some(40));
    }
}
