//! `EventArchive` over EventBridge: `StartReplay` from the bus archive back onto the bus, with
//! `Destination.FilterArns` naming the one rule that targets the consumer's queue, so only that
//! consumer receives the replayed events (each marked `replay-name`); `DescribeReplay` for
//! progress (`State`, `EventLastReplayedTime`). EventBridge counts no events, so neither does this.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::{ReplayDestination, ReplayState as AwsReplayState};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::adapters::aws_call;
use crate::adapters::aws_error::{AwsFailure, classify};
use crate::application::{EventArchive, ReplayError, ReplayProgress, ReplayRequest, ReplayState};
use crate::functions::ConsumerFunction;

/// The archive, the bus it replays onto, and each consumer's rule.
#[derive(Clone)]
pub struct EventBridgeArchive {
    client: Client,
    archive_arn: String,
    bus_arn: String,
    rules: BTreeMap<&'static str, String>,
}

impl EventBridgeArchive {
    /// `rules` maps each consumer to the ARN of the rule that targets its queue (the stack's
    /// `StatsRuleArn` and `AchievementsRuleArn` outputs).
    pub fn new(
        client: Client,
        archive_arn: impl Into<String>,
        bus_arn: impl Into<String>,
        rules: impl IntoIterator<Item = (ConsumerFunction, String)>,
    ) -> Self {
        Self {
            client,
            archive_arn: archive_arn.into(),
            bus_arn: bus_arn.into(),
            rules: rules.into_iter().map(|(c, arn)| (c.name(), arn)).collect(),
        }
    }
}

fn date_time(at: OffsetDateTime) -> DateTime {
    DateTime::from_nanos(at.unix_timestamp_nanos()).unwrap_or(DateTime::from_secs(0))
}

fn replay_error<E>(
    error: &aws_sdk_eventbridge::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> ReplayError
where
    E: aws_sdk_eventbridge::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match classify(error) {
        AwsFailure::Transient(message) => ReplayError::Unavailable(message),
        AwsFailure::Permanent(message) => ReplayError::Refused(message),
    }
}

#[async_trait]
impl EventArchive for EventBridgeArchive {
    async fn start_replay(&self, request: &ReplayRequest) -> Result<(), ReplayError> {
        let rule = self.rules.get(request.consumer.name()).ok_or_else(|| {
            ReplayError::Refused(format!(
                "no rule ARN given for consumer {}",
                request.consumer.name()
            ))
        })?;
        let destination = ReplayDestination::builder()
            .arn(&self.bus_arn)
            .filter_arns(rule)
            .build()
            .map_err(|e| ReplayError::Refused(e.to_string()))?;
        self.client
            .start_replay()
            .replay_name(&request.name)
            .event_source_arn(&self.archive_arn)
            .event_start_time(date_time(request.from))
            .event_end_time(date_time(request.to))
            .destination(destination)
            .description(format!(
                "activelog-admin replay to {}",
                request.consumer.name()
            ))
            .send()
            .instrument(aws_call::eventbridge_replay(
                "StartReplay",
                &self.archive_arn,
                &request.name,
            ))
            .await
            .map_err(|e| replay_error(&e))?;
        Ok(())
    }

    async fn replay_progress(&self, name: &str) -> Result<ReplayProgress, ReplayError> {
        let output = self
            .client
            .describe_replay()
            .replay_name(name)
            .send()
            .instrument(aws_call::eventbridge_replay(
                "DescribeReplay",
                &self.archive_arn,
                name,
            ))
            .await
            .map_err(|e| replay_error(&e))?;
        let state = match output.state() {
            Some(AwsReplayState::Completed) => ReplayState::Completed,
            Some(AwsReplayState::Cancelled) => ReplayState::Cancelled,
            Some(AwsReplayState::Failed) => ReplayState::Failed(
                output
                    .state_reason()
                    .unwrap_or("no reason given")
                    .to_owned(),
            ),
            _ => ReplayState::Running,
        };
        let replayed_through = output
            .event_last_replayed_time()
            .and_then(|t| OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).ok());
        Ok(ReplayProgress {
            state,
            replayed_through,
            events: None,
        })
    }
}
