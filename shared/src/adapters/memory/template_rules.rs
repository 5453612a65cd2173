//! Reads the event routing out of `template.yaml`: every `AWS::Events::Rule`'s `EventPattern` and
//! the queue its target names. The local bus routes with exactly these patterns, so a rule changed
//! in the template changes local routing too.

use serde_norway::Value;

/// One EventBridge rule as the template declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingRule {
    /// The rule's logical id in the template.
    pub name: String,
    pub event_pattern: serde_json::Value,
    /// The logical id of the SQS queue the rule targets.
    pub target_queue: String,
}

impl RoutingRule {
    /// The event types the rule routes, for a broker that routes (or filters) by event type: the
    /// pattern may name `source` and `detail-type` (lists of strings) and nothing else, which is
    /// what a routing key or a filter on the event type can express. Otherwise, why not.
    pub fn detail_types(&self) -> Result<Vec<String>, String> {
        let pattern = self
            .event_pattern
            .as_object()
            .ok_or("the event pattern is not an object")?;
        if let Some(other) = pattern
            .keys()
            .find(|key| *key != "source" && *key != "detail-type")
        {
            return Err(format!("it matches on `{other}`"));
        }
        pattern
            .get("detail-type")
            .and_then(serde_json::Value::as_array)
            .ok_or("it has no list of detail-types")?
            .iter()
            .map(|key| {
                key.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "a detail-type is not a string".to_owned())
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("template is not valid YAML: {0}")]
    Yaml(String),
    #[error("rule `{rule}`: {reason}")]
    Rule { rule: String, reason: String },
}

/// The rules of a SAM/CloudFormation template, in the template's order.
pub fn rules_from_template(template: &str) -> Result<Vec<RoutingRule>, RoutingError> {
    let root: Value =
        serde_norway::from_str(template).map_err(|e| RoutingError::Yaml(e.to_string()))?;
    let Some(resources) = root.get("Resources").and_then(Value::as_mapping) else {
        return Ok(Vec::new());
    };
    let mut rules = Vec::new();
    for (name, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Events::Rule") {
            continue;
        }
        let name = name.as_str().unwrap_or_default().to_owned();
        let error = |reason: &str| RoutingError::Rule {
            rule: name.clone(),
            reason: reason.to_owned(),
        };
        let properties = resource
            .get("Properties")
            .ok_or_else(|| error("has no Properties"))?;
        let pattern = properties
            .get("EventPattern")
            .ok_or_else(|| error("has no EventPattern"))?;
        let event_pattern =
            serde_json::to_value(pattern).map_err(|e| error(&format!("EventPattern: {e}")))?;
        let arn = properties
            .get("Targets")
            .and_then(Value::as_sequence)
            .and_then(|targets| targets.first())
            .and_then(|target| target.get("Arn"))
            .ok_or_else(|| error("has no target Arn"))?;
        let target_queue = get_att_resource(arn)
            .ok_or_else(|| error("target Arn is not a !GetAtt <Queue>.Arn"))?;
        rules.push(RoutingRule {
            name,
            event_pattern,
            target_queue,
        });
    }
    Ok(rules)
}

/// One consumer queue of the template and the event types its rules send it: what a broker that
/// routes by event type (a topic binding, a stream per consumer, a subject filter) can express.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRoute {
    /// The queue's logical id in `template.yaml` (`StatsQueue`).
    pub logical_id: String,
    pub event_types: Vec<String>,
}

/// A rule whose pattern routing by event type cannot express.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("rule `{rule}` cannot be routed by event type on a broker: {reason}")]
pub struct TopologyError {
    pub rule: String,
    pub reason: String,
}

/// The consumer queues of these rules, each with the event types routed to it, in the rules'
/// order. A pattern may name `source` and `detail-type` (lists of strings) and nothing else:
/// that is what a broker routing by event type can express; anything finer is refused rather
/// than routed more widely than the template says.
pub fn consumer_routes(rules: &[RoutingRule]) -> Result<Vec<ConsumerRoute>, TopologyError> {
    let mut routes: Vec<ConsumerRoute> = Vec::new();
    for rule in rules {
        let event_types = rule.detail_types().map_err(|reason| TopologyError {
            rule: rule.name.clone(),
            reason,
        })?;
        match routes
            .iter_mut()
            .find(|route| route.logical_id == rule.target_queue)
        {
            Some(route) => route.event_types.extend(event_types),
            None => routes.push(ConsumerRoute {
                logical_id: rule.target_queue.clone(),
                event_types,
            }),
        }
    }
    Ok(routes)
}

/// The resource a `!GetAtt X.Arn` or `{"Fn::GetAtt": [X, Arn]}` refers to.
fn get_att_resource(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" || tagged.tag == "!GetAtt" => tagged
            .value
            .as_str()
            .and_then(|s| s.strip_suffix(".Arn"))
            .map(str::to_owned),
        Value::Mapping(map) => {
            let args = map.get("Fn::GetAtt")?.as_sequence()?;
            (args.get(1)?.as_str()? == "Arn").then(|| args.first()?.as_str().map(str::to_owned))?
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rules_in_both_get_att_forms() {
        let template = r#"
Resources:
  StatsRule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern:
        source: [activelog.activities]
        detail-type: [activity.created, activity.deleted]
      Targets:
        - Id: stats
          Arn: !GetAtt StatsQueue.Arn
  OtherRule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {"source": ["x"]}
      Targets:
        - Id: other
          Arn:
            Fn::GetAtt: [OtherQueue, Arn]
  StatsQueue:
    Type: AWS::SQS::Queue
"#;
        let rules = rules_from_template(template).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].name, "StatsRule");
        assert_eq!(rules[0].target_queue, "StatsQueue");
        assert_eq!(
            rules[0].event_pattern,
            serde_json::json!({"source": ["activelog.activities"], "detail-type": ["activity.created", "activity.deleted"]})
        );
        assert_eq!(rules[1].target_queue, "OtherQueue");
    }
}
