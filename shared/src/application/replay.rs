//! Replaying a time window of archived events to one consumer: the archive sends the events
//! again, marked as a replay, to that consumer's queue only, and the consumer's idempotence does
//! the rest — an event it applied before is a duplicate and changes nothing; an event whose
//! processed-event marker is gone (a projection reset, a new consumer) is applied. Progress is
//! the share of the window the archive reports as replayed.

use std::sync::Arc;
use std::time::Duration;

use super::ports::{EventArchive, ReplayError, ReplayProgress, ReplayRequest, ReplayState};

/// Starts a replay and follows it to its end.
#[derive(Clone)]
pub struct ArchiveReplay {
    archive: Arc<dyn EventArchive>,
}

impl ArchiveReplay {
    pub fn new(archive: Arc<dyn EventArchive>) -> Self {
        Self { archive }
    }

    /// Starts the replay, then asks for its progress every `poll` until it has ended, handing each
    /// answer and the share of the window done (0.0–1.0, when known) to `progress`.
    pub async fn run(
        &self,
        request: &ReplayRequest,
        poll: Duration,
        mut progress: impl FnMut(&ReplayProgress, Option<f64>) + Send,
    ) -> Result<ReplayProgress, ReplayError> {
        self.archive.start_replay(request).await?;
        loop {
            let status = self.archive.replay_progress(&request.name).await?;
            let share = if status.state == ReplayState::Completed {
                Some(1.0)
            } else {
                status
                    .replayed_through
                    .map(|through| window_share(request, through))
            };
            progress(&status, share);
            if status.state != ReplayState::Running {
                return Ok(status);
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// How much of the request's window lies before `through`.
fn window_share(request: &ReplayRequest, through: time::OffsetDateTime) -> f64 {
    let whole = (request.to - request.from).as_seconds_f64();
    if whole <= 0.0 {
        return 1.0;
    }
    ((through - request.from).as_seconds_f64() / whole).clamp(0.0, 1.0)
}
