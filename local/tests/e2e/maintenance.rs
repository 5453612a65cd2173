//! The local stack's maintenance routes end to end, on the real binary in memory:
//! `POST /_local/rebuild/stats` finds (dry run) and corrects statistics that a stray event
//! corrupted, and `POST /_local/replay` replays the in-memory archive to one consumer, whose
//! idempotence leaves the statistics as they were.

// A setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::local_stack::LocalStack;

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

/// Waits until the stats queue holds nothing waiting or in flight.
async fn stats_queue_settled(stack: &LocalStack) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, depths) = stack.call(Method::GET, "/_local/queues", None, None).await;
        let queue = &depths["StatsQueue"];
        if queue["visible"] == 0 && queue["in_flight"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the stats queue never settled: {depths}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn all_time_activities(stack: &LocalStack, user: &str) -> Value {
    let (_, body) = stack
        .call(Method::GET, "/stats?period=all", Some(user), None)
        .await;
    body["totals"]["activities"].clone()
}

#[tokio::test]
async fn the_rebuild_and_replay_routes_correct_and_replay_the_statistics() {
    let stack = LocalStack::start(1);
    let user = "maintained";
    for (kind, date) in [("running", "2026-11-02"), ("cycling", "2026-11-03")] {
        let (status, body) = stack
            .call(
                Method::POST,
                "/activities",
                Some(user),
                Some(json!({"type": kind, "title": "e2e", "duration_minutes": 30, "activity_date": date})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    stack
        .eventually("/stats?period=all", Some(user), |b| {
            b["totals"]["activities"] == 2
        })
        .await;
    stats_queue_settled(&stack).await;

    // The projection goes wrong: an event for an activity that was never stored is applied.
    let stray = json!({
        "version": "0", "id": "e2e-stray", "detail-type": "activity.created",
        "source": "activelog.activities", "account": "123456789012",
        "time": "2026-11-04T07:00:00Z", "region": "eu-west-1", "resources": [],
        "detail": {
            "event_id": ulid::Ulid::new().to_string(), "event_type": "activity.created",
            "event_version": 2, "occurred_at": "2026-11-04T07:00:00Z",
            "aggregate_id": ulid::Ulid::new().to_string(), "user_id": user,
            "correlation_id": "e2e-stray",
            "data": {"title": "stray", "type": "swimming", "duration_minutes": 40,
                     "activity_date": "2026-11-04", "tags": []}
        }
    });
    let (status, body) = stack
        .call(
            Method::POST,
            "/_local/queues/StatsQueue/messages",
            None,
            Some(stray),
        )
        .await;
    assert!((200..300).contains(&status), "{status} {body}");
    stack
        .eventually("/stats?period=all", Some(user), |b| {
            b["totals"]["activities"] == 3
        })
        .await;

    let rebuild = |dry_run: bool| json!({"users": [user], "dry_run": dry_run, "settle_ms": 0});
    let (status, dry) = stack
        .call(
            Method::POST,
            "/_local/rebuild/stats",
            None,
            Some(rebuild(true)),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["corrected"], 1, "{dry}");
    let periods = dry["differences"][0]["periods"].as_array().unwrap();
    assert!(periods.contains(&json!("all")), "{dry}");
    assert_eq!(
        all_time_activities(&stack, user).await,
        3,
        "a dry run writes nothing"
    );

    let (status, done) = stack
        .call(
            Method::POST,
            "/_local/rebuild/stats",
            None,
            Some(rebuild(false)),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["corrected"], 1, "{done}");
    assert_eq!(
        all_time_activities(&stack, user).await,
        2,
        "rebuilt from the activities"
    );

    // A replay of the whole window: every event delivered again, nothing counted twice.
    let now = OffsetDateTime::now_utc();
    let (status, replay) = stack
        .call(
            Method::POST,
            "/_local/replay",
            None,
            Some(json!({
                "consumer": "update-stats",
                "from": rfc3339(now - time::Duration::hours(1)),
                "to": rfc3339(now + time::Duration::minutes(1)),
            })),
        )
        .await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["state"], "completed", "{replay}");
    assert_eq!(replay["consumer"], "update-stats");
    assert_eq!(
        replay["events"], 2,
        "the two creates in the archive: {replay}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stats_queue_settled(&stack).await;
    assert_eq!(all_time_activities(&stack, user).await, 2);

    let (status, refused) = stack
        .call(
            Method::POST,
            "/_local/replay",
            None,
            Some(json!({"consumer": "nobody", "from": rfc3339(now), "to": rfc3339(now)})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
}
