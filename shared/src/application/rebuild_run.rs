//! Running a rebuild over every user: the table scanned in parallel segments (one user's
//! activities are all in one segment), pages of users handed to a [`ProjectionRebuild`], reads
//! held to a set rate, and a checkpoint after every page so that an interrupted run resumes
//! where it stopped. Rebuilding a user twice is harmless (a rebuild is a conditional correction
//! towards the recomputed value), so a resume may repeat the page it was in.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::domain::UserId;

use super::ports::{ActivitySource, ScanPosition, StoreError};
use super::rebuild::{PageReport, ProjectionRebuild, RebuildSettings};

/// How a whole run behaves.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Parallel scan segments (DynamoDB `TotalSegments`), each scanned by its own task.
    pub segments: u32,
    /// Items one scan page reads at most (DynamoDB `Limit`).
    pub page_items: usize,
    /// Items read per second at most, scan and rebuild reads together; `None`: as fast as the
    /// store answers.
    pub rate: Option<f64>,
    pub rebuild: RebuildSettings,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            segments: 4,
            page_items: 100,
            rate: None,
            rebuild: RebuildSettings::default(),
        }
    }
}

/// Where each segment of a run stands: what `--resume` reads back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Which projection the run rebuilds (`stats`, `achievements`); a checkpoint of another is
    /// refused.
    pub projection: String,
    /// The table the run reads and corrects (empty when the caller has none to name).
    #[serde(default)]
    pub table: String,
    /// Whether the run is a dry run: a dry run's checkpoint says which pages were *looked at*,
    /// not corrected, and must never be resumed by a real run.
    #[serde(default)]
    pub dry_run: bool,
    pub segments: Vec<SegmentState>,
    /// Users reported busy by the pages done so far: a resumed run reports them again (and
    /// exits accordingly), since they were never corrected.
    #[serde(default)]
    pub busy: Vec<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentState {
    NotStarted,
    After(ScanPosition),
    Done,
}

impl Checkpoint {
    pub fn new(projection: &str, segments: u32) -> Self {
        Self {
            projection: projection.to_owned(),
            table: String::new(),
            dry_run: false,
            segments: vec![SegmentState::NotStarted; segments.max(1) as usize],
            busy: Vec::new(),
        }
    }

    /// The same checkpoint, recorded as one of a run on `table`, dry or not.
    pub fn for_run(mut self, table: &str, dry_run: bool) -> Self {
        table.clone_into(&mut self.table);
        self.dry_run = dry_run;
        self
    }

    pub fn is_done(&self) -> bool {
        self.segments.iter().all(|s| *s == SegmentState::Done)
    }
}

/// Told about every page as it finishes (a progress bar, a log) and handed every checkpoint to
/// keep (a file).
pub trait RunObserver: Send + Sync {
    fn page_done(&self, segment: u32, scanned: usize, report: &PageReport);
    fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), String>;
}

/// What a whole run came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub users: usize,
    pub corrected: usize,
    pub unchanged: usize,
    pub busy: Vec<UserId>,
    pub items_read: usize,
}

impl RunSummary {
    fn add(&mut self, report: &PageReport, scanned: usize) {
        use super::rebuild::UserRebuild::*;
        self.users += report.users.len();
        self.unchanged += report.count(|r| *r == Unchanged);
        self.corrected += report.count(|r| matches!(r, Corrected(_) | Repaired { .. }));
        self.busy.extend(
            report
                .users
                .iter()
                .filter(|(_, r)| *r == Busy)
                .map(|(u, _)| u.clone()),
        );
        self.items_read += scanned + report.items_read;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

/// Holds reads to `rate` items per second over every segment: each read reserves its share of
/// time after the previous reservation and waits for it.
struct ReadRate {
    per_item: Option<Duration>,
    next: Mutex<Instant>,
}

impl ReadRate {
    fn new(rate: Option<f64>) -> Self {
        Self {
            per_item: rate
                .filter(|r| r.is_finite() && *r > 0.0)
                .map(|r| Duration::from_secs_f64(1.0 / r)),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn take(&self, items: usize) {
        let Some(per_item) = self.per_item else {
            return;
        };
        let start = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let start = (*next).max(Instant::now());
            *next = start + per_item * u32::try_from(items).unwrap_or(u32::MAX);
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// Drives a [`ProjectionRebuild`] over a scan of the activities.
#[derive(Clone)]
pub struct RebuildRunner {
    source: Arc<dyn ActivitySource>,
    rebuild: Arc<dyn ProjectionRebuild>,
}

impl RebuildRunner {
    pub fn new(source: Arc<dyn ActivitySource>, rebuild: Arc<dyn ProjectionRebuild>) -> Self {
        Self { source, rebuild }
    }

    /// Rebuilds the given users only (`--user`).
    pub async fn run_users(
        &self,
        users: &[UserId],
        settings: &RunSettings,
    ) -> Result<(PageReport, RunSummary), RunError> {
        let report = self.rebuild.rebuild_users(users, &settings.rebuild).await?;
        let mut summary = RunSummary::default();
        summary.add(&report, 0);
        Ok((report, summary))
    }

    /// Rebuilds every user, from `checkpoint` (a fresh one, or one read back to resume).
    pub async fn run_all(
        &self,
        settings: &RunSettings,
        checkpoint: Checkpoint,
        observer: Arc<dyn RunObserver>,
    ) -> Result<RunSummary, RunError> {
        let segments = u32::try_from(checkpoint.segments.len()).unwrap_or(1);
        let earlier_busy = checkpoint.busy.clone();
        let state = Arc::new(Mutex::new(checkpoint));
        let rate = Arc::new(ReadRate::new(settings.rate));
        let mut tasks = tokio::task::JoinSet::new();
        for segment in 0..segments {
            let runner = self.clone();
            let settings = settings.clone();
            let state = state.clone();
            let rate = rate.clone();
            let observer = observer.clone();
            tasks.spawn(async move {
                runner
                    .run_segment(
                        segment,
                        segments,
                        &settings,
                        &state,
                        &rate,
                        observer.as_ref(),
                    )
                    .await
            });
        }
        let mut summary = RunSummary {
            busy: earlier_busy,
            ..RunSummary::default()
        };
        let mut failure = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(part)) => {
                    summary.users += part.users;
                    summary.corrected += part.corrected;
                    summary.unchanged += part.unchanged;
                    summary.busy.extend(part.busy);
                    summary.items_read += part.items_read;
                }
                Ok(Err(error)) => failure = failure.or(Some(error)),
                Err(join) => {
                    failure =
                        failure.or(Some(RunError::Checkpoint(format!("segment task: {join}"))))
                }
            }
        }
        summary.busy.sort();
        summary.busy.dedup();
        match failure {
            Some(error) => Err(error),
            None => Ok(summary),
        }
    }

    async fn run_segment(
        &self,
        segment: u32,
        segments: u32,
        settings: &RunSettings,
        state: &Mutex<Checkpoint>,
        rate: &ReadRate,
        observer: &dyn RunObserver,
    ) -> Result<RunSummary, RunError> {
        let index = segment as usize;
        let mut summary = RunSummary::default();
        let mut after = match &state.lock().unwrap_or_else(|e| e.into_inner()).segments[index] {
            SegmentState::Done => return Ok(summary),
            SegmentState::NotStarted => None,
            SegmentState::After(position) => Some(position.clone()),
        };
        loop {
            rate.take(settings.page_items).await;
            let page = self
                .source
                .scan_users(segment, segments, after.as_ref(), settings.page_items)
                .await?;
            let report = if page.users.is_empty() {
                PageReport::default()
            } else {
                self.rebuild
                    .rebuild_users(&page.users, &settings.rebuild)
                    .await?
            };
            rate.take(report.items_read).await;
            summary.add(&report, page.items_read);
            observer.page_done(segment, page.items_read, &report);
            let snapshot = {
                let mut checkpoint = state.lock().unwrap_or_else(|e| e.into_inner());
                checkpoint.busy.extend(
                    report
                        .users
                        .iter()
                        .filter(|(_, r)| *r == super::rebuild::UserRebuild::Busy)
                        .map(|(u, _)| u.clone()),
                );
                checkpoint.segments[index] = match &page.next {
                    Some(position) => SegmentState::After(position.clone()),
                    None => SegmentState::Done,
                };
                checkpoint.clone()
            };
            observer
                .checkpoint(&snapshot)
                .map_err(RunError::Checkpoint)?;
            match page.next {
                Some(position) => after = Some(position),
                None => return Ok(summary),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::application::UserPage;
    use crate::application::rebuild::UserRebuild;
    use crate::domain::Activity;

    /// One segment of two pages: user `a`, then user `b`.
    struct TwoPages;

    #[async_trait]
    impl ActivitySource for TwoPages {
        async fn scan_users(
            &self,
            _segment: u32,
            _segments: u32,
            after: Option<&ScanPosition>,
            _limit: usize,
        ) -> Result<UserPage, StoreError> {
            Ok(match after {
                None => UserPage {
                    users: vec![UserId::parse("a").unwrap()],
                    items_read: 1,
                    next: Some(ScanPosition(serde_json::json!("a"))),
                },
                Some(_) => UserPage {
                    users: vec![UserId::parse("b").unwrap()],
                    items_read: 1,
                    next: None,
                },
            })
        }

        async fn user_activities(&self, _user_id: &UserId) -> Result<Vec<Activity>, StoreError> {
            Ok(Vec::new())
        }
    }

    /// User `a` keeps changing (busy); every other user is unchanged.
    struct ABusy;

    #[async_trait]
    impl ProjectionRebuild for ABusy {
        async fn rebuild_users(
            &self,
            users: &[UserId],
            _settings: &RebuildSettings,
        ) -> Result<PageReport, StoreError> {
            Ok(PageReport {
                users: users
                    .iter()
                    .map(|u| {
                        let outcome = if u.as_str() == "a" {
                            UserRebuild::Busy
                        } else {
                            UserRebuild::Unchanged
                        };
                        (u.clone(), outcome)
                    })
                    .collect(),
                items_read: 0,
            })
        }
    }

    /// Keeps checkpoints; refuses the second one (an interruption after the first page).
    #[derive(Default)]
    struct Interrupting {
        kept: Mutex<Vec<Checkpoint>>,
        interrupt: bool,
    }

    impl RunObserver for Interrupting {
        fn page_done(&self, _segment: u32, _scanned: usize, _report: &PageReport) {}

        fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), String> {
            let mut kept = self.kept.lock().unwrap();
            if self.interrupt && !kept.is_empty() {
                return Err("interrupted".into());
            }
            kept.push(checkpoint.clone());
            Ok(())
        }
    }

    /// A user reported busy before an interruption is still reported by the resumed run.
    #[tokio::test]
    async fn busy_users_before_an_interruption_are_reported_after_the_resume() {
        let runner = RebuildRunner::new(Arc::new(TwoPages), Arc::new(ABusy));
        let settings = RunSettings {
            segments: 1,
            ..RunSettings::default()
        };
        let first = Arc::new(Interrupting {
            interrupt: true,
            ..Default::default()
        });
        runner
            .run_all(&settings, Checkpoint::new("stats", 1), first.clone())
            .await
            .unwrap_err();
        let kept = first.kept.lock().unwrap().last().cloned().unwrap();
        assert!(!kept.is_done());

        let summary = runner
            .run_all(&settings, kept, Arc::new(Interrupting::default()))
            .await
            .unwrap();
        assert_eq!(summary.users, 1, "the resumed run rebuilt `b` only");
        assert_eq!(summary.busy, [UserId::parse("a").unwrap()]);
    }

    /// Every segment: `pages` pages of `items` items each, one new user per page.
    struct Pages {
        pages: u64,
        items: usize,
    }

    #[async_trait]
    impl ActivitySource for Pages {
        async fn scan_users(
            &self,
            segment: u32,
            _segments: u32,
            after: Option<&ScanPosition>,
            _limit: usize,
        ) -> Result<UserPage, StoreError> {
            let page = after.and_then(|p| p.0.as_u64()).map_or(0, |p| p + 1);
            Ok(UserPage {
                users: vec![UserId::parse(format!("user-{segment}-{page}")).unwrap()],
                items_read: self.items,
                next: (page + 1 < self.pages).then(|| ScanPosition(serde_json::json!(page))),
            })
        }

        async fn user_activities(&self, _user_id: &UserId) -> Result<Vec<Activity>, StoreError> {
            Ok(Vec::new())
        }
    }

    /// How long (in tokio's virtual time) a run over 2 segments of 5 pages of 10 items takes.
    async fn run_time(rate: Option<f64>) -> Duration {
        let runner = RebuildRunner::new(
            Arc::new(Pages {
                pages: 5,
                items: 10,
            }),
            Arc::new(ABusy),
        );
        let settings = RunSettings {
            segments: 2,
            page_items: 10,
            rate,
            ..RunSettings::default()
        };
        let started = Instant::now();
        let summary = runner
            .run_all(
                &settings,
                Checkpoint::new("stats", 2),
                Arc::new(Interrupting::default()),
            )
            .await
            .unwrap();
        assert_eq!(summary.users, 10);
        started.elapsed()
    }

    /// `--rate`: 100 items (10 pages of 10, over 2 segments) at 100 items per second take at
    /// least 0.9 s (the first page is read at once, each next one 0.1 s after the one before),
    /// whatever the number of segments: the rate bounds the run, not each segment. Unbounded,
    /// the same run takes no time at all.
    #[tokio::test(start_paused = true)]
    async fn reads_are_held_to_the_rate_over_every_segment() {
        assert_eq!(run_time(None).await, Duration::ZERO);
        let bounded = run_time(Some(100.0)).await;
        assert!(
            bounded >= Duration::from_millis(900),
            "100 items at 100/s took {bounded:?}"
        );
        assert!(
            bounded < Duration::from_millis(1100),
            "100 items at 100/s took {bounded:?}: slower than the rate"
        );
        let faster = run_time(Some(1000.0)).await;
        assert!(
            (Duration::from_millis(90)..Duration::from_millis(110)).contains(&faster),
            "100 items at 1000/s took {faster:?}"
        );
    }
}
