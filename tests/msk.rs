//! The consumer functions behind Amazon MSK or a self-managed Kafka cluster: every `msk-*.json`
//! sample through the function's own entry point (`consumer::trigger::answer`, what `main.rs`
//! runs), checked against `expected.json`; what the partial batch response means in practice (the
//! failed record alone comes back, and nothing is applied twice); and `template-msk.yaml` wiring
//! each consumer to the topic and consumer group the Kafka adapter uses, with the partial batch
//! response turned on (without it Lambda would count a failed record as done).

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use activelog::consumer::BatchHandler;
use activelog::consumer::trigger::{self, Answer, Trigger};
use activelog::domain::PeriodKey;
use activelog_tests::consumer::{
    achievements_consumer, assert_answers_as_expected, samples_named, stats_consumer,
    trigger_sample,
};

async fn check_samples(function: &str, consumer: impl Fn() -> Box<dyn BatchHandler>) {
    let samples = samples_named(function, "msk-");
    assert!(samples.len() >= 2, "{function}: samples {samples:?}");
    for sample in samples {
        let event: Trigger = serde_json::from_value(sample.event.clone()).unwrap();
        assert!(matches!(event, Trigger::Kafka(_)), "{}", sample.label());
        assert_answers_as_expected(&*consumer(), &sample).await;
    }
}

#[tokio::test]
async fn every_msk_sample_answers_as_expected() {
    check_samples("update-stats", || Box::new(stats_consumer().1)).await;
    check_samples("record-achievements", || Box::new(achievements_consumer())).await;
}

#[tokio::test]
async fn a_failed_record_comes_back_alone_and_nothing_is_applied_twice() {
    let (store, consumer) = stats_consumer();
    let first = trigger::answer(&consumer, trigger_sample("update-stats", "msk-poison.json"))
        .await
        .unwrap();
    let Answer::Kafka(response) = &first else {
        panic!("{first:?}");
    };
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "only the poison record"
    );
    let after_first = store.snapshot();
    let counted: i64 = after_first
        .iter()
        .filter(|((_, period), _)| *period == PeriodKey::AllTime)
        .map(|(_, stats)| stats.totals.activities)
        .sum();
    assert_eq!(counted, 2, "the good records of the batch were applied");
    // Lambda may hand the whole batch again (a retry from the failed offset on): the applied
    // records are duplicates, and the poison record fails alone again.
    let again = trigger::answer(&consumer, trigger_sample("update-stats", "msk-poison.json"))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(store.snapshot(), after_first, "nothing applied twice");
}

/// `template-msk.yaml` deploys exactly the consumer functions, each reading the topic the Kafka
/// adapter publishes to, in the consumer group the adapter uses for it, filtered to its rule's
/// event types, with the partial batch response turned on and an on-failure destination.
#[test]
fn the_msk_template_reads_the_adapters_topic_in_each_consumers_group_with_partial_responses() {
    use activelog::adapters::kafka::KafkaTopology;
    use activelog::adapters::memory::rules_from_template;
    use activelog::functions::ConsumerFunction;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let template: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(root.join("template-msk.yaml")).unwrap())
            .unwrap();
    let rules =
        rules_from_template(&std::fs::read_to_string(root.join("template.yaml")).unwrap()).unwrap();
    let topology = KafkaTopology::from_rules("activelog", &rules, 5).unwrap();
    let default_of = |value: &serde_norway::Value| -> String {
        let serde_norway::Value::Tagged(tagged) = value else {
            panic!("not a !Ref <parameter>: {value:?}");
        };
        let parameter = tagged.value.as_str().unwrap();
        template["Parameters"][parameter]["Default"]
            .as_str()
            .unwrap_or_else(|| panic!("parameter {parameter} has no default"))
            .to_owned()
    };
    let mut functions = Vec::new();
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
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
        let group = topology.group(consumer.queue()).unwrap();
        let event = &resource["Properties"]["Events"]["Kafka"];
        let properties = &event["Properties"];
        assert_eq!(event["Type"].as_str(), Some("MSK"), "{binary}");
        assert_eq!(
            default_of(&properties["Topics"][0]),
            topology.events_topic,
            "{binary}"
        );
        assert_eq!(
            default_of(&properties["ConsumerGroupId"]),
            group.group_id,
            "{binary}"
        );
        let pattern: serde_json::Value = serde_json::from_str(
            properties["FilterCriteria"]["Filters"][0]["Pattern"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            pattern,
            serde_json::json!({"value": {"detail-type": group.event_types}}),
            "{binary}: the filter is the rule's event types"
        );
        assert_eq!(
            properties["FunctionResponseTypes"][0].as_str(),
            Some("ReportBatchItemFailures"),
            "{binary}: without it Lambda counts a failed record as done"
        );
        assert!(
            properties["ProvisionedPollerConfig"].is_mapping(),
            "{binary}: the partial batch response needs provisioned mode"
        );
        assert!(
            !properties["DestinationConfig"]["OnFailure"]["Destination"].is_null(),
            "{binary}: records Lambda gives up on go somewhere"
        );
        functions.push(binary.to_owned());
    }
    functions.sort();
    assert_eq!(functions, ["record-achievements", "update-stats"]);
}
