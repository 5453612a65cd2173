//! Retrying a write that lost a race, in-process, with jittered backoff. DynamoDB cancels a
//! transaction with `TransactionConflict` when another transaction touches one of its items at the
//! same moment — routine on a busy user's statistics item. Failing the message for it costs a
//! visibility timeout (minutes) per attempt and, after `maxReceiveCount` of them, sends a good
//! event to the dead-letter queue; trying again a few milliseconds later almost always succeeds.
//! The jitter keeps two consumers that collided from colliding again in lockstep.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Attempts after the first, before the conflict is reported (and the message retried by SQS).
pub const CONFLICT_RETRIES: u32 = 4;

/// The first backoff's ceiling; it doubles with every attempt (25, 50, 100, 200 ms).
const BASE_DELAY: Duration = Duration::from_millis(25);

/// "Full jitter": a delay drawn uniformly from `0..=BASE_DELAY × 2^attempt`, given a random
/// number. Pure, so the bounds are testable.
pub fn jittered_delay(attempt: u32, random: u64) -> Duration {
    let ceiling = BASE_DELAY.as_micros() as u64 * (1_u64 << attempt.min(10));
    Duration::from_micros(random % (ceiling + 1))
}

/// A random number from the standard library's randomly keyed hasher (a fresh key per call):
/// good enough to spread retries, and no random-number crate for it.
fn random() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Runs `write` until it succeeds, fails with something `is_conflict` does not accept, or has
/// been retried [`CONFLICT_RETRIES`] times, sleeping a jittered, growing delay in between.
pub async fn retry_conflicts<T, E, F, Fut>(
    is_conflict: impl Fn(&E) -> bool,
    mut write: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match write().await {
            Err(error) if attempt < CONFLICT_RETRIES && is_conflict(&error) => {
                let delay = jittered_delay(attempt, random());
                tracing::info!(
                    attempt = attempt + 1,
                    delay_ms = delay.as_millis() as u64,
                    "write conflicted with another transaction; retrying"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_within_their_ceiling() {
        for attempt in 0..CONFLICT_RETRIES {
            let ceiling = Duration::from_millis(25 << attempt);
            assert_eq!(jittered_delay(attempt, 0), Duration::ZERO);
            assert_eq!(jittered_delay(attempt, ceiling.as_micros() as u64), ceiling);
            assert!(jittered_delay(attempt, u64::MAX) <= ceiling);
        }
        let spread: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| jittered_delay(3, random())).collect();
        assert!(spread.len() > 10, "jittered, not fixed: {spread:?}");
    }
}
