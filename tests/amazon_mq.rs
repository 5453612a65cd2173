//! The consumer functions behind Amazon MQ for RabbitMQ: every `amazon-mq-*.json` sample through
//! the function's own entry point (`consumer::trigger::answer`, what `main.rs` runs), checked
//! against `expected.json`; and what "no partial batch response" means in practice: the batch
//! fails as a whole, comes back, and its applied messages are absorbed as duplicates.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use activelog::consumer::trigger::{self, Trigger};
use activelog::consumer::{BatchHandler, SqsEvent};
use activelog::domain::PeriodKey;
use activelog_tests::consumer::{
    achievements_consumer, answer, assert_answers_as_expected, samples_named, sqs_samples,
    stats_consumer, trigger_sample,
};
use activelog_tests::samples::Answer;

async fn check_samples(function: &str, consumer: impl Fn() -> Box<dyn BatchHandler>) {
    let samples = samples_named(function, "amazon-mq-");
    assert!(samples.len() >= 2, "{function}: samples {samples:?}");
    for sample in samples {
        assert_answers_as_expected(&*consumer(), &sample).await;
    }
}

#[tokio::test]
async fn every_amazon_mq_sample_answers_as_expected() {
    check_samples("update-stats", || Box::new(stats_consumer().1)).await;
    check_samples("record-achievements", || Box::new(achievements_consumer())).await;
}

#[tokio::test]
async fn the_sqs_samples_answer_through_the_trigger_as_through_the_sqs_edge() {
    for sample in sqs_samples("update-stats") {
        let through_the_trigger = answer(&stats_consumer().1, &sample).await;
        let event: SqsEvent = serde_json::from_value(sample.event.clone()).unwrap();
        let through_the_sqs_edge = stats_consumer().1.handle(event).await;
        let Answer::Response(through_the_trigger) = through_the_trigger else {
            panic!(
                "{}: an SQS event gets a partial batch response",
                sample.label()
            );
        };
        assert_eq!(
            through_the_trigger,
            serde_json::to_value(through_the_sqs_edge).unwrap(),
            "{}",
            sample.label()
        );
    }
}

#[tokio::test]
async fn a_failed_batch_comes_back_whole_and_its_applied_messages_are_not_applied_twice() {
    let (store, consumer) = stats_consumer();
    let first = trigger::answer(
        &consumer,
        trigger_sample("update-stats", "amazon-mq-poison.json"),
    )
    .await;
    assert!(first.is_err(), "poison fails the invocation");
    let after_first = store.snapshot();
    assert!(!after_first.is_empty(), "the good messages were applied");
    // Lambda returns the batch to the broker; it comes back as it was.
    let again = trigger::answer(
        &consumer,
        trigger_sample("update-stats", "amazon-mq-poison.json"),
    )
    .await;
    assert!(again.is_err());
    assert_eq!(store.snapshot(), after_first, "nothing applied twice");
    let counted: i64 = after_first
        .iter()
        .filter(|((_, period), _)| *period == PeriodKey::AllTime)
        .map(|(_, stats)| stats.totals.activities)
        .sum();
    assert!(counted > 0);
}

#[tokio::test]
async fn an_event_of_neither_shape_is_refused() {
    let refused = serde_json::from_value::<Trigger>(serde_json::json!({"detail": {}}));
    assert!(refused.is_err());
}

/// `template-amazon-mq.yaml` deploys exactly the consumer functions, each on the broker queue
/// the RabbitMQ adapter declares for it, with the Amazon MQ event source.
#[test]
fn the_amazon_mq_template_puts_each_consumer_on_the_queue_the_adapter_declares() {
    use activelog::adapters::memory::rules_from_template;
    use activelog::adapters::rabbitmq::Topology;
    use activelog::functions::ConsumerFunction;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let template: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(root.join("template-amazon-mq.yaml")).unwrap(),
    )
    .unwrap();
    let rules =
        rules_from_template(&std::fs::read_to_string(root.join("template.yaml")).unwrap()).unwrap();
    let topology = Topology::from_rules("activelog", &rules, 5).unwrap();
    let resources = template["Resources"].as_mapping().unwrap();
    let mut functions = Vec::new();
    for (_, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap();
        let consumer = ConsumerFunction::ALL
            .into_iter()
            .find(|c| c.name() == binary)
            .unwrap_or_else(|| panic!("{binary} is not a consumer function"));
        let event = &resource["Properties"]["Events"]["Broker"];
        assert_eq!(event["Type"].as_str(), Some("MQ"), "{binary}");
        let parameter = match &event["Properties"]["Queues"][0] {
            serde_norway::Value::Tagged(tagged) => tagged.value.as_str().unwrap().to_owned(),
            other => panic!("{binary}: Queues is not [!Ref <parameter>]: {other:?}"),
        };
        let default = template["Parameters"][parameter.as_str()]["Default"]
            .as_str()
            .unwrap_or_else(|| panic!("{binary}: queue parameter {parameter:?}"));
        assert_eq!(
            default,
            topology.queue(consumer.queue()).unwrap().queue,
            "{binary}"
        );
        functions.push(binary.to_owned());
    }
    functions.sort();
    assert_eq!(functions, ["record-achievements", "update-stats"]);
}
