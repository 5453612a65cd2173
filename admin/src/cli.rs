//! The command line: `stats rebuild`, `achievements rebuild` and `replay`, each with `--help`.
//! Values are parsed here, once: user ids, consumer names and RFC 3339 times.

use std::path::PathBuf;

use activelog::domain::{ProjectionVersion, UserId};
use activelog::functions::ConsumerFunction;
use clap::{Args, Parser, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Parser)]
#[command(
    name = "activelog-admin",
    version,
    about = "Rebuild activelog's projections from the activities, and replay the bus archive",
    long_about = "Rebuild activelog's projections from the activities, and replay the bus archive.\n\n\
        Runs on the AWS adapters: region and credentials come from the usual AWS environment, and \
        AWS_ENDPOINT_URL points it at moto. See docs/operations.md for example sessions."
)]
pub struct Cli {
    /// The DynamoDB table (the stack's `TableName` output).
    #[arg(long, env = "TABLE_NAME", global = true)]
    pub table: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The per-user statistics projection.
    #[command(subcommand)]
    Stats(RebuildCommand),
    /// The achievements projection (progress and awards).
    #[command(subcommand)]
    Achievements(RebuildCommand),
    /// Replays a time window of the bus archive to one consumer's queue (EventBridge StartReplay
    /// filtered to that consumer's rule), and follows it to its end.
    Replay(ReplayArgs),
}

#[derive(Debug, Subcommand)]
pub enum RebuildCommand {
    /// Recomputes the projection from the stored activities and corrects it, user by user,
    /// atomically per user, while the consumers keep running.
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["user", "all"])))]
pub struct RebuildArgs {
    /// Rebuild this user only (repeatable).
    #[arg(long, value_parser = parse_user)]
    pub user: Vec<UserId>,
    /// Rebuild every user: a parallel scan of the table.
    #[arg(long)]
    pub all: bool,
    /// Show the differences against the stored projection; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Parallel scan segments.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub segments: u32,
    /// Items read per second at most (scan and per-user reads together); unlimited if absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Items one scan page reads at most.
    #[arg(long, default_value_t = 100)]
    pub page_items: usize,
    /// Seconds between a user's two snapshots: at least 2 × --max-clock-skew plus the time a
    /// change takes to commit after its event is stamped (10 s: the HTTP functions' timeout).
    #[arg(long, default_value_t = 30.0)]
    pub settle_seconds: f64,
    /// Seconds the clocks of the API functions and of this machine may differ at most; the
    /// rebuild's fence is set this far ahead of this machine's clock.
    #[arg(long, default_value_t = 5.0)]
    pub max_clock_skew: f64,
    /// Rounds a user who keeps changing is tried before it is reported as busy.
    #[arg(long, default_value_t = 3)]
    pub attempts: u32,
    /// Where `--all` keeps its progress, page by page (default:
    /// `activelog-<projection>-rebuild.checkpoint.json`, `….dry-run.checkpoint.json` for a dry
    /// run). A resume of another table, or of a dry run by a real one, is refused.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue an interrupted `--all` run from its checkpoint file.
    #[arg(long)]
    pub resume: bool,
    /// Statistics only: the projection version to rebuild (1, the one deployed first, by
    /// default). Rebuild a new version beside the old one while its own consumer runs, then
    /// switch the readers over (docs/operations.md).
    #[arg(long, default_value = "1")]
    pub projection_version: ProjectionVersion,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The consumer to replay to: update-stats or record-achievements.
    #[arg(long, value_parser = parse_consumer)]
    pub consumer: ConsumerFunction,
    /// The window's start (RFC 3339, e.g. 2026-12-01T00:00:00Z).
    #[arg(long, value_parser = parse_time)]
    pub from: OffsetDateTime,
    /// The window's end (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub to: OffsetDateTime,
    /// The archive (the stack's `EventArchiveArn` output).
    #[arg(long, env = "EVENT_ARCHIVE_ARN")]
    pub archive_arn: String,
    /// The ARN of the rule that targets the consumer's queue (`StatsRuleArn` or
    /// `AchievementsRuleArn`); the replay goes to that rule only.
    #[arg(long)]
    pub rule_arn: String,
    /// The replay's name; a fresh one if absent.
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds between progress questions.
    #[arg(long, default_value_t = 5.0)]
    pub poll_seconds: f64,
}

fn parse_user(raw: &str) -> Result<UserId, String> {
    UserId::parse(raw).map_err(|e| e.to_string())
}

fn parse_consumer(raw: &str) -> Result<ConsumerFunction, String> {
    ConsumerFunction::ALL
        .into_iter()
        .find(|c| c.name() == raw)
        .ok_or_else(|| {
            let names: Vec<&str> = ConsumerFunction::ALL.iter().map(|c| c.name()).collect();
            format!("unknown consumer `{raw}`; one of {}", names.join(", "))
        })
}

fn parse_time(raw: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(raw, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

/// The bus ARN a rule ARN belongs to: `arn:…:rule/<bus>/<rule>` → `arn:…:event-bus/<bus>`
/// (a rule on the default bus has no bus part).
pub fn bus_arn_of_rule(rule_arn: &str) -> Option<String> {
    let (prefix, resource) = rule_arn.split_once(":rule/")?;
    let bus = match resource.split_once('/') {
        Some((bus, _)) => bus,
        None => "default",
    };
    Some(format!("{prefix}:event-bus/{bus}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_rebuild_names_its_users_or_all_of_them() {
        assert!(Cli::try_parse_from(["activelog-admin", "stats", "rebuild"]).is_err());
        let cli = Cli::try_parse_from([
            "activelog-admin",
            "stats",
            "rebuild",
            "--all",
            "--segments",
            "8",
            "--rate",
            "500",
            "--dry-run",
        ])
        .unwrap();
        let Command::Stats(RebuildCommand::Rebuild(args)) = cli.command else {
            panic!("not a stats rebuild");
        };
        assert!(args.all && args.dry_run);
        assert_eq!((args.segments, args.rate), (8, Some(500.0)));
    }

    #[test]
    fn a_replay_parses_its_consumer_and_window() {
        let cli = Cli::try_parse_from([
            "activelog-admin",
            "replay",
            "--consumer",
            "update-stats",
            "--from",
            "2026-12-01T00:00:00Z",
            "--to",
            "2026-12-02T00:00:00Z",
            "--archive-arn",
            "arn:aws:events:us-east-1:123456789012:archive/a",
            "--rule-arn",
            "arn:aws:events:us-east-1:123456789012:rule/activelog-prod/StatsRule",
        ])
        .unwrap();
        let Command::Replay(args) = cli.command else {
            panic!("not a replay");
        };
        assert_eq!(args.consumer, ConsumerFunction::UpdateStats);
        assert_eq!(
            bus_arn_of_rule(&args.rule_arn).as_deref(),
            Some("arn:aws:events:us-east-1:123456789012:event-bus/activelog-prod")
        );
        assert!(
            Cli::try_parse_from(["activelog-admin", "replay", "--consumer", "nobody"]).is_err()
        );
    }
}
