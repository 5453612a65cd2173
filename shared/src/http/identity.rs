//! Who is calling. API Gateway's JWT authorizer has verified the token before the function runs
//! and passes its claims in the request context; the caller is the `sub` claim and nothing else.
//! A user id in a body, a query parameter or a header is never trusted: that would let anyone act
//! as anyone.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::domain::UserId;

use super::problem::HttpError;

/// The claim that names the caller.
pub const SUBJECT_CLAIM: &str = "sub";

/// The authenticated caller, or `Unauthenticated` when the request carries no usable `sub` claim
/// (no authorizer configured on the route, or a token without a subject).
pub fn caller(request: &Request) -> Result<UserId, HttpError> {
    let claims = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .authorizer
            .as_ref()
            .and_then(|authorizer| authorizer.jwt.as_ref())
            .map(|jwt| &jwt.claims),
        _ => None,
    };
    let subject = claims
        .and_then(|claims| claims.get(SUBJECT_CLAIM))
        .ok_or(HttpError::Unauthenticated)?;
    // A subject the domain cannot hold is not an identity we can serve.
    UserId::parse(subject.as_str()).map_err(|_| HttpError::Unauthenticated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorizer: &str) -> Request {
        let event = format!(
            r#"{{"version":"2.0","routeKey":"GET /stats","rawPath":"/stats","rawQueryString":"",
            "headers":{{"x-user-id":"user-mallory"}},
            "requestContext":{{"accountId":"123456789012","apiId":"api","domainName":"api.example.com",
            "http":{{"method":"GET","path":"/stats","protocol":"HTTP/1.1","sourceIp":"192.0.2.1","userAgent":"test"}},
            "requestId":"req-1","routeKey":"GET /stats","stage":"$default","time":"26/Nov/2026:12:00:00 +0000",
            "timeEpoch":1795694400000{authorizer}}},"isBase64Encoded":false}}"#
        );
        lambda_http::request::from_str(&event).unwrap()
    }

    #[test]
    fn the_caller_is_the_sub_claim() {
        let r = request(r#","authorizer":{"jwt":{"claims":{"sub":"user-alice"},"scopes":null}}"#);
        assert_eq!(caller(&r).unwrap().as_str(), "user-alice");
    }

    #[test]
    fn no_claim_means_no_caller_whatever_the_headers_say() {
        for authorizer in [
            "",
            r#","authorizer":{"jwt":{"claims":{"email":"a@example.com"},"scopes":null}}"#,
            r#","authorizer":{"jwt":{"claims":{"sub":""},"scopes":null}}"#,
        ] {
            assert!(matches!(
                caller(&request(authorizer)),
                Err(HttpError::Unauthenticated)
            ));
        }
    }
}
