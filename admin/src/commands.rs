//! The commands, wired to the AWS adapters: the table (`DynamoDbStore`, which is the activity
//! source and both projection stores), the bus (award events) and the archive (replays). The
//! work itself is `activelog::application`'s, the same code the tests and the local stack run on
//! the in-memory adapters.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use activelog::adapters::dynamodb::DynamoDbStore;
use activelog::adapters::eventbridge::EventBridgeArchive;
use activelog::adapters::system::{RandomIds, SystemClock};
use activelog::application::{
    AchievementsRebuild, ArchiveReplay, Checkpoint, ProjectionRebuild, RebuildRunner,
    RebuildSettings, ReplayRequest, ReplayState, RunSettings, RunSummary, StatsRebuild,
};
use activelog::domain::ProjectionVersion;
use activelog::startup::aws::sdk_config;

use crate::checkpoint::CheckpointFile;
use crate::cli::{Cli, Command, RebuildArgs, RebuildCommand, ReplayArgs, bus_arn_of_rule};
use crate::progress::{RebuildProgress, ReplayBar};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0} is required (flag or environment variable)")]
    Missing(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error(transparent)]
    Run(#[from] activelog::application::RunError),
    #[error(transparent)]
    Replay(#[from] activelog::application::ReplayError),
}

/// Runs one command; the exit code says whether every user was rebuilt (2: some were busy).
pub async fn run(cli: Cli) -> Result<ExitCode, AdminError> {
    match cli.command {
        Command::Stats(RebuildCommand::Rebuild(args)) => {
            let (name, store) = table(cli.table).await?;
            let version = args.projection_version;
            let store = Arc::new(store.with_stats_version(version));
            let rebuild = Arc::new(StatsRebuild::new(
                store.clone(),
                store.clone(),
                Arc::new(SystemClock),
            ));
            let projection = stats_projection_name(version);
            rebuild_command(&projection, &name, store, rebuild, args).await
        }
        Command::Achievements(RebuildCommand::Rebuild(args)) => {
            if !args.projection_version.is_first() {
                return Err(AdminError::Invalid(
                    "--projection-version applies to the statistics only".into(),
                ));
            }
            let (name, store) = table(cli.table).await?;
            let store = Arc::new(store);
            // No publisher: award events wait in the outbox for the stack's relay, because the
            // bus policy lets only the stack's functions put activelog events.
            let rebuild = Arc::new(AchievementsRebuild::new(
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                None,
                Arc::new(SystemClock),
                Arc::new(RandomIds),
            ));
            rebuild_command("achievements", &name, store, rebuild, args).await
        }
        Command::Replay(args) => replay_command(args).await,
    }
}

/// The statistics projection's name in checkpoints and output: `stats` for v1 (as before
/// versions existed), `stats-v2` for v2, so a checkpoint of one version never resumes another.
pub fn stats_projection_name(version: ProjectionVersion) -> String {
    if version.is_first() {
        "stats".to_owned()
    } else {
        format!("stats-{version}")
    }
}

/// The table's name (recorded in checkpoints) and the store on it.
async fn table(name: Option<String>) -> Result<(String, DynamoDbStore), AdminError> {
    let name = name.ok_or(AdminError::Missing("--table (TABLE_NAME)"))?;
    let store = DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(sdk_config().await),
        name.clone(),
    );
    Ok((name, store))
}

/// How long a change may take to commit after its event is stamped: the HTTP functions' timeout.
const COMMIT_BOUND_SECONDS: f64 = 10.0;

fn run_settings(args: &RebuildArgs) -> Result<RunSettings, AdminError> {
    // Checked here, not by clap: a flag's implicit `false` counts as present for `requires`.
    if args.resume && !args.all {
        return Err(AdminError::Invalid(
            "--resume continues an --all run".into(),
        ));
    }
    if !(args.settle_seconds.is_finite() && args.settle_seconds >= 0.0) {
        return Err(AdminError::Invalid(
            "--settle-seconds must be 0 or more".into(),
        ));
    }
    if !(args.max_clock_skew.is_finite() && args.max_clock_skew >= 0.0) {
        return Err(AdminError::Invalid(
            "--max-clock-skew must be 0 or more".into(),
        ));
    }
    let least_settle = 2.0 * args.max_clock_skew + COMMIT_BOUND_SECONDS;
    if args.settle_seconds < least_settle {
        return Err(AdminError::Invalid(format!(
            "--settle-seconds must be at least 2 × --max-clock-skew + {COMMIT_BOUND_SECONDS} s \
             (the time a change takes to commit): {least_settle}"
        )));
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(AdminError::Invalid("--rate must be above 0".into()));
    }
    Ok(RunSettings {
        segments: args.segments,
        page_items: args.page_items.max(1),
        rate: args.rate,
        rebuild: RebuildSettings {
            settle: Duration::from_secs_f64(args.settle_seconds),
            attempts: args.attempts.max(1),
            dry_run: args.dry_run,
            max_clock_skew: Duration::from_secs_f64(args.max_clock_skew),
        },
    })
}

async fn rebuild_command(
    projection: &str,
    table: &str,
    store: Arc<DynamoDbStore>,
    rebuild: Arc<dyn ProjectionRebuild>,
    args: RebuildArgs,
) -> Result<ExitCode, AdminError> {
    let settings = run_settings(&args)?;
    let runner = RebuildRunner::new(store, rebuild);
    let summary = if args.all {
        let file = CheckpointFile::new(args.checkpoint.clone(), projection, args.dry_run);
        let checkpoint = if args.resume {
            file.load(projection, table, args.dry_run, settings.segments)?
        } else {
            Checkpoint::new(projection, settings.segments).for_run(table, args.dry_run)
        };
        let progress = Arc::new(RebuildProgress::new(projection, Some(file.clone())));
        let summary = runner
            .run_all(&settings, checkpoint, progress.clone())
            .await?;
        progress.finish();
        file.remove();
        summary
    } else {
        let progress = RebuildProgress::new(projection, None);
        let (report, summary) = runner.run_users(&args.user, &settings).await?;
        progress.print_page(&report);
        progress.finish();
        summary
    };
    print_summary(projection, &summary, args.dry_run);
    Ok(if summary.busy.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn print_summary(projection: &str, summary: &RunSummary, dry_run: bool) {
    let verb = if dry_run {
        "would correct"
    } else {
        "corrected"
    };
    println!(
        "{projection} rebuild{}: {} users, {verb} {}, unchanged {}, busy {}, items read {}",
        if dry_run { " (dry run)" } else { "" },
        summary.users,
        summary.corrected,
        summary.unchanged,
        summary.busy.len(),
        summary.items_read
    );
    if !summary.busy.is_empty() {
        let busy: Vec<&str> = summary.busy.iter().map(|u| u.as_str()).collect();
        println!(
            "busy users (run again with --user for each): {}",
            busy.join(" ")
        );
    }
}

async fn replay_command(args: ReplayArgs) -> Result<ExitCode, AdminError> {
    let bus_arn = bus_arn_of_rule(&args.rule_arn)
        .ok_or_else(|| AdminError::Invalid(format!("not a rule ARN: {}", args.rule_arn)))?;
    let archive = EventBridgeArchive::new(
        aws_sdk_eventbridge::Client::new(sdk_config().await),
        args.archive_arn.clone(),
        bus_arn,
        [(args.consumer, args.rule_arn.clone())],
    );
    let name = args.name.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            args.consumer.name(),
            ulid::Ulid::new().to_string().to_lowercase()
        )
    });
    let request = ReplayRequest {
        name: name.clone(),
        consumer: args.consumer,
        from: args.from,
        to: args.to,
    };
    let bar = ReplayBar::new(&name);
    let poll = Duration::from_secs_f64(args.poll_seconds.max(0.1));
    let outcome = ArchiveReplay::new(Arc::new(archive))
        .run(&request, poll, |progress, share| {
            bar.update(progress, share)
        })
        .await?;
    bar.finish();
    println!(
        "replay {name} to {}: {:?}",
        args.consumer.name(),
        outcome.state
    );
    Ok(match outcome.state {
        ReplayState::Completed => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn rebuild_args(extra: &[&str]) -> RebuildArgs {
        let mut argv = vec!["activelog-admin", "stats", "rebuild", "--all"];
        argv.extend_from_slice(extra);
        let Command::Stats(RebuildCommand::Rebuild(args)) = Cli::parse_from(argv).command else {
            panic!("not a stats rebuild");
        };
        args
    }

    /// `--rate` reaches the run as a bound on items read per second; zero or less is refused.
    #[test]
    fn the_rate_reaches_the_run() {
        assert_eq!(run_settings(&rebuild_args(&[])).unwrap().rate, None);
        assert_eq!(
            run_settings(&rebuild_args(&["--rate", "250"]))
                .unwrap()
                .rate,
            Some(250.0)
        );
        assert!(run_settings(&rebuild_args(&["--rate", "0"])).is_err());
    }

    /// Each version's run has a checkpoint of its own: a v2 run never resumes v1's pages.
    #[test]
    fn a_projection_version_names_its_own_run() {
        let args = rebuild_args(&["--projection-version", "2"]);
        assert_eq!(args.projection_version.get(), 2);
        assert_eq!(stats_projection_name(args.projection_version), "stats-v2");
        assert_eq!(
            stats_projection_name(rebuild_args(&[]).projection_version),
            "stats"
        );
        assert!(
            Cli::try_parse_from([
                "activelog-admin",
                "stats",
                "rebuild",
                "--all",
                "--projection-version",
                "0"
            ])
            .is_err()
        );
    }

    /// The fence is set `--max-clock-skew` ahead, and the settle time must cover twice the skew
    /// plus the commit bound.
    #[test]
    fn the_settle_time_covers_twice_the_clock_skew_and_the_commit_bound() {
        let settings = run_settings(&rebuild_args(&[])).unwrap();
        assert_eq!(settings.rebuild.max_clock_skew, Duration::from_secs(5));
        assert_eq!(settings.rebuild.settle, Duration::from_secs(30));
        assert!(run_settings(&rebuild_args(&["--max-clock-skew", "10"])).is_ok());
        assert!(run_settings(&rebuild_args(&["--max-clock-skew", "11"])).is_err());
        assert!(run_settings(&rebuild_args(&["--settle-seconds", "19"])).is_err());
        assert!(
            run_settings(&rebuild_args(&[
                "--settle-seconds",
                "10",
                "--max-clock-skew",
                "0"
            ]))
            .is_ok()
        );
    }
}
