//! What a consumer Lambda function is invoked with: an SQS batch (the default deployment), an
//! Amazon MQ for RabbitMQ batch (`template-amazon-mq.yaml`) or an Amazon MSK / self-managed Kafka
//! batch (`template-msk.yaml`). One function binary takes all three, told apart by their
//! top-level key, and answers each the way its event source mapping reads it.

use serde::{Deserialize, Deserializer, Serialize};

use super::amazon_mq::{self, BatchFailed};
use super::event_source::{BatchHandler, RawMessage, Verdict};
use super::msk::{self, KafkaBatchResponse};
use super::{SqsBatchResponse, SqsEvent, sqs};
use aws_lambda_events::kafka::KafkaEvent;
use aws_lambda_events::rabbitmq::RabbitMqEvent;

/// A consumer function's invocation event.
#[derive(Debug, Clone)]
pub enum Trigger {
    Sqs(SqsEvent),
    AmazonMq(RabbitMqEvent),
    Kafka(KafkaEvent),
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("rmqMessagesByQueue").is_some() {
            serde_json::from_value(value)
                .map(Self::AmazonMq)
                .map_err(D::Error::custom)
        } else if value
            .get("records")
            .is_some_and(serde_json::Value::is_object)
        {
            serde_json::from_value(value)
                .map(Self::Kafka)
                .map_err(D::Error::custom)
        } else if value.get("Records").is_some() {
            serde_json::from_value(value)
                .map(Self::Sqs)
                .map_err(D::Error::custom)
        } else {
            Err(D::Error::custom(
                "neither an SQS event (`Records`), an Amazon MQ event (`rmqMessagesByQueue`) nor a Kafka event (`records`)",
            ))
        }
    }
}

/// What the function answers: the partial batch response for SQS and for Kafka (each in its
/// own shape), `{}` for Amazon MQ.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Sqs(SqsBatchResponse),
    AmazonMq(serde_json::Map<String, serde_json::Value>),
    Kafka(KafkaBatchResponse),
}

/// Hands the batch to the consumer and answers as the trigger expects: SQS gets its partial
/// batch response; Amazon MQ gets `{}` when every message is done, and an error otherwise so
/// that Lambda returns the batch to the broker; Kafka gets its partial batch response by
/// topic-partition and offset.
pub async fn answer(consumer: &dyn BatchHandler, trigger: Trigger) -> Result<Answer, BatchFailed> {
    let answer = answer_batch(consumer, trigger).await;
    // The environment may be frozen once the function answers: the batch's spans go out first.
    crate::traces::flush();
    answer
}

async fn answer_batch(
    consumer: &dyn BatchHandler,
    trigger: Trigger,
) -> Result<Answer, BatchFailed> {
    match trigger {
        Trigger::Sqs(event) => {
            let messages = sqs::raw_messages(&event);
            let verdicts = consumer.handle_batch(&messages).await;
            let mut response = SqsBatchResponse::default();
            for (message, verdict) in messages.iter().zip(verdicts) {
                if !verdict.is_settled() {
                    response.add_failure(message.message_id.clone());
                }
            }
            Ok(Answer::Sqs(response))
        }
        Trigger::AmazonMq(event) => {
            let messages = amazon_mq::raw_messages(&event);
            let verdicts: Vec<Verdict> = consumer.handle_batch(&messages).await;
            amazon_mq::settle(&verdicts).map(|()| Answer::AmazonMq(serde_json::Map::new()))
        }
        Trigger::Kafka(event) => {
            let records = msk::raw_messages(&event);
            let messages: Vec<RawMessage> = records.iter().map(|r| r.message.clone()).collect();
            let verdicts = consumer.handle_batch(&messages).await;
            Ok(Answer::Kafka(msk::settle(&records, &verdicts)))
        }
    }
}
