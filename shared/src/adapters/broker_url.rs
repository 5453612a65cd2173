//! Broker URLs usually carry a password or a token, and a log line or an error message must never
//! show it. Every broker adapter (RabbitMQ, Redis, NATS, Kafka) names its broker through [`redact`].

/// The URL with the secret of its user info replaced by `***`: the part after the first `:`
/// (`user:password`), or all of it when it has no `:` (a token such as `nats://TOKEN@host`).
/// The user info runs from `://` to the last `@` before any `?` or `#`, because a password may
/// itself hold `/` (base64), which would otherwise end the authority early and leave it showing.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let before_query = url[scheme_end..]
        .find(['?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..before_query]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return url.to_owned();
    };
    let user_info = &url[scheme_end..at];
    match user_info.split_once(':') {
        Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end], &url[at..]),
        None => format!("{}***{}", &url[..scheme_end], &url[at..]),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("amqp://app:s3cret@127.0.0.1:5672/vhost"),
            "amqp://app:***@127.0.0.1:5672/vhost"
        );
        assert_eq!(
            redact("redis://:ab/cd+ef@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("redis://u:p@ss/wd@host:6379/0?x=1"),
            "redis://u:***@host:6379/0?x=1"
        );
    }

    #[test]
    fn a_token_without_a_password_never_shows() {
        assert_eq!(
            redact("nats://s3cr3ttoken@127.0.0.1:4222"),
            "nats://***@127.0.0.1:4222"
        );
    }

    #[test]
    fn urls_without_user_info_stay_as_they_are() {
        for url in [
            "nats://127.0.0.1:4222",
            "redis://127.0.0.1:6379/0?name=a@b",
            "kafka://a:9092,b:9092",
            "no scheme",
        ] {
            assert_eq!(redact(url), url);
        }
    }
}
