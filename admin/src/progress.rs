//! What an operator watches: a progress bar (indicatif) per run, counting users rebuilt and
//! items read, with the differences a dry run finds printed above it; the checkpoint kept after
//! every page. Drawn only on a terminal; otherwise (a CI log) indicatif stays quiet and the
//! summary at the end says it all.

use std::sync::Mutex;
use std::time::Duration;

use activelog::application::{
    Checkpoint, PageReport, ReplayProgress, ReplayState, RunObserver, UserRebuild,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::CheckpointFile;

/// The progress of a rebuild: a spinner with counts (the number of users is not known before
/// the scan ends), and the checkpoint file.
pub struct RebuildProgress {
    bar: ProgressBar,
    checkpoint: Option<CheckpointFile>,
    counts: Mutex<(usize, usize, usize, usize)>,
}

impl RebuildProgress {
    pub fn new(projection: &str, checkpoint: Option<CheckpointFile>) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(format!("{projection} rebuild"));
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            bar,
            checkpoint,
            counts: Mutex::new((0, 0, 0, 0)),
        }
    }

    /// A line above the bar; on standard output itself when there is no bar (not a terminal:
    /// a log, a pipe), where indicatif's `println` prints nothing.
    fn line(&self, text: String) {
        if self.bar.is_hidden() {
            println!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    /// Prints what one page found for each user (dry runs and corrections alike).
    pub fn print_page(&self, report: &PageReport) {
        for (user, outcome) in &report.users {
            match outcome {
                UserRebuild::Unchanged => {}
                UserRebuild::Busy => self.line(format!("{user}: busy, left for a later run")),
                UserRebuild::Corrected(differences) => {
                    for difference in differences {
                        self.line(format!(
                            "{user} {}: stored {} activities / {} min / {} m / {} kcal, recomputed {} / {} / {} / {}",
                            difference.period,
                            difference.stored.totals.activities,
                            difference.stored.totals.minutes,
                            difference.stored.totals.distance_m,
                            difference.stored.totals.calories,
                            difference.recomputed.totals.activities,
                            difference.recomputed.totals.minutes,
                            difference.recomputed.totals.distance_m,
                            difference.recomputed.totals.calories,
                        ));
                    }
                }
                UserRebuild::Repaired { progress, awarded } => {
                    if let Some((stored, raised)) = progress {
                        self.line(format!(
                            "{user}: progress {} activities / {} min / {} m raised to {} / {} / {}",
                            stored.activities,
                            stored.minutes,
                            stored.distance_m,
                            raised.activities,
                            raised.minutes,
                            raised.distance_m
                        ));
                    }
                    if !awarded.is_empty() {
                        let ids: Vec<&str> = awarded.iter().map(|m| m.id()).collect();
                        self.line(format!("{user}: awarded {}", ids.join(", ")));
                    }
                }
            }
        }
    }

    pub fn finish(&self) {
        self.bar.finish();
    }
}

impl RunObserver for RebuildProgress {
    fn page_done(&self, _segment: u32, scanned: usize, report: &PageReport) {
        self.print_page(report);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.0 += report.users.len();
        counts.1 +=
            report.count(|r| matches!(r, UserRebuild::Corrected(_) | UserRebuild::Repaired { .. }));
        counts.2 += report.count(|r| *r == UserRebuild::Busy);
        counts.3 += scanned + report.items_read;
        self.bar.set_message(format!(
            "users {} · corrected {} · busy {} · items read {}",
            counts.0, counts.1, counts.2, counts.3
        ));
    }

    fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), String> {
        match &self.checkpoint {
            Some(file) => file.save(checkpoint),
            None => Ok(()),
        }
    }
}

/// The progress of a replay: a bar over the window (EventBridge reports the time of the last
/// event replayed, not a count).
pub struct ReplayBar {
    bar: ProgressBar,
}

impl ReplayBar {
    pub fn new(name: &str) -> Self {
        let bar = ProgressBar::new(1000);
        bar.set_style(
            ProgressStyle::with_template("[{elapsed_precise}] {prefix} {bar:40} {percent}% {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("replay {name}"));
        Self { bar }
    }

    pub fn update(&self, progress: &ReplayProgress, share: Option<f64>) {
        if let Some(share) = share {
            self.bar.set_position((share * 1000.0).round() as u64);
        }
        let state = match &progress.state {
            ReplayState::Running => "running".to_owned(),
            ReplayState::Completed => "completed".to_owned(),
            ReplayState::Cancelled => "cancelled".to_owned(),
            ReplayState::Failed(reason) => format!("failed: {reason}"),
        };
        let through = progress
            .replayed_through
            .map(|t| format!(", replayed through {t}"))
            .unwrap_or_default();
        self.bar.set_message(format!("{state}{through}"));
    }

    pub fn finish(&self) {
        self.bar.finish();
    }
}
