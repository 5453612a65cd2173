//! Looking for one dead letter in a queue that hands each message to one reader at a time
//! (RabbitMQ's `basic_get`, SQS's receive). Such a queue addresses no message by its id, so a
//! redrive of one reads the queue until the message turns up; but another reader — a listing
//! (the console lists whenever a depth moves), or a redrive of another message — holds what it
//! read while it runs, and the message is not there to be read. So a search that did not find
//! it looks again, a few times, a second apart, before the message is called unknown.

use std::future::Future;
use std::time::Duration;

/// How many times the queue is searched before a message is called unknown.
const LOOKS: usize = 3;

/// How long to wait between two searches: longer than a listing takes on the local stack.
const BETWEEN_LOOKS: Duration = Duration::from_secs(1);

/// Runs `search` (which moves the message and answers `true` if it found it) until it finds
/// the message or has looked [`LOOKS`] times; an error ends the search at once.
pub(crate) async fn found_within_a_few_looks<E, Search, Looking>(
    mut search: Search,
) -> Result<bool, E>
where
    Search: FnMut() -> Looking,
    Looking: Future<Output = Result<bool, E>>,
{
    for look in 1..=LOOKS {
        if search().await? {
            return Ok(true);
        }
        if look < LOOKS {
            tokio::time::sleep(BETWEEN_LOOKS).await;
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn looks_again_until_found_and_stops_there() {
        let mut looks = 0;
        let found = found_within_a_few_looks::<(), _, _>(|| {
            looks += 1;
            let found = looks == 2;
            async move { Ok(found) }
        })
        .await;
        assert_eq!((found, looks), (Ok(true), 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_never_seen_is_unknown_after_three_looks_two_seconds_apart_in_all() {
        let started = tokio::time::Instant::now();
        let mut looks = 0;
        let found = found_within_a_few_looks::<(), _, _>(|| {
            looks += 1;
            async { Ok(false) }
        })
        .await;
        assert_eq!((found, looks), (Ok(false), 3));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_ends_the_search_at_once() {
        let mut looks = 0;
        let found = found_within_a_few_looks(|| {
            looks += 1;
            async { Err::<bool, _>("broker gone") }
        })
        .await;
        assert_eq!((found, looks), (Err("broker gone"), 1));
    }
}
