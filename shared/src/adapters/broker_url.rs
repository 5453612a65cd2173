//! Broker URLs usually carry a password, and a log line or an error message must never show it.
//! Every broker adapter (RabbitMQ, Redis, NATS) names its broker through [`redact`].

/// The URL with the password of its user info replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let user_info = &authority[..at];
    let user = user_info.split(':').next().unwrap_or_default();
    if user_info.contains(':') {
        format!(
            "{}{user}:***{}",
            &url[..scheme_end],
            &url[scheme_end + at..]
        )
    } else {
        url.to_owned()
    }
}
