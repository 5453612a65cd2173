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
    use super::super::GatewayEventBuilder;
    use super::*;

    /// A request whose header claims to be Mallory, with the claims `with` gives it.
    fn request(with: fn(GatewayEventBuilder) -> GatewayEventBuilder) -> Request {
        with(GatewayEventBuilder::new("GET", "/stats").header("x-user-id", "user-mallory"))
            .request()
            .unwrap()
    }

    #[test]
    fn the_caller_is_the_sub_claim() {
        let r = request(|event| event.caller("user-alice"));
        assert_eq!(caller(&r).unwrap().as_str(), "user-alice");
    }

    #[test]
    fn no_claim_means_no_caller_whatever_the_headers_say() {
        let without: [fn(GatewayEventBuilder) -> GatewayEventBuilder; 3] = [
            |event| event,
            |event| event.claim("email", "a@example.com"),
            |event| event.caller(""),
        ];
        for with in without {
            assert!(matches!(
                caller(&request(with)),
                Err(HttpError::Unauthenticated)
            ));
        }
    }
}
