//! Every broker subscriber consumes in sessions: connect, consume until the connection drops,
//! connect again. This is the one loop around those sessions, with its backoff: a session that
//! was up and dropped starts again after the shortest pause, one that never came up waits twice
//! as long each time, up to the longest.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Why a consuming session ended.
pub(crate) enum Ended<E> {
    Shutdown,
    /// The session was up and then dropped: reconnect from the shortest pause.
    Dropped(E),
    /// The session never came up.
    Failed(E),
}

/// Runs `session` again and again until `shutdown` turns true (or a session ends by it).
/// `source` names the queue or stream in the logs.
pub(crate) async fn run_sessions<E, F, S>(
    source: &str,
    shortest: Duration,
    longest: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut session: F,
) where
    E: Display,
    F: FnMut(watch::Receiver<bool>) -> S,
    S: Future<Output = Ended<E>>,
{
    let mut pause = shortest;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match session(shutdown.clone()).await {
            Ended::Shutdown => break,
            Ended::Dropped(error) => {
                pause = shortest;
                tracing::warn!(source, %error, retry_in = ?pause, "connection to the broker dropped; reconnecting");
            }
            Ended::Failed(error) => {
                tracing::warn!(source, %error, retry_in = ?pause, "cannot consume; trying again");
            }
        }
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(longest);
    }
    tracing::info!(source, "subscriber stopped");
}
