//! An SQS queue in memory, with the semantics consumers depend on: a received message is hidden
//! for the visibility timeout and comes back if it is not deleted; each receive counts; a message
//! received `max_receive_count` times and still not deleted moves to the dead-letter queue on its
//! next receive, as SQS's redrive policy does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;
use ulid::Ulid;

use crate::application::Clock;

#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub name: String,
    pub visibility_timeout: Duration,
    /// Receives after which an undeleted message goes to the dead-letter queue.
    pub max_receive_count: u32,
}

#[derive(Debug, Clone)]
struct StoredMessage {
    message_id: String,
    body: String,
    sent_at: OffsetDateTime,
    receive_count: u32,
    first_received_at: Option<OffsetDateTime>,
    visible_at: OffsetDateTime,
    /// The handle of the latest receive; only it can delete the message.
    receipt_handle: Option<String>,
}

/// A message as a receive returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub receive_count: u32,
    pub sent_at: OffsetDateTime,
    pub first_received_at: OffsetDateTime,
}

/// How many messages a queue holds, for the local stack's operator endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    pub visible: usize,
    pub in_flight: usize,
    pub dead_lettered: usize,
}

pub struct MemoryQueue {
    settings: QueueSettings,
    clock: Arc<dyn Clock>,
    /// Keyed by (sent time, id) so receives hand out the oldest messages first.
    messages: Mutex<BTreeMap<(OffsetDateTime, String), StoredMessage>>,
    dead_letter: Option<Arc<MemoryQueue>>,
    arrived: Notify,
}

impl MemoryQueue {
    /// A queue whose failed messages move to `dead_letter`.
    pub fn new(
        settings: QueueSettings,
        clock: Arc<dyn Clock>,
        dead_letter: Option<Arc<MemoryQueue>>,
    ) -> Self {
        Self {
            settings,
            clock,
            messages: Mutex::new(BTreeMap::new()),
            dead_letter,
            arrived: Notify::new(),
        }
    }

    /// A queue with its own dead-letter queue named `<name>-dlq`.
    pub fn with_dead_letter_queue(settings: QueueSettings, clock: Arc<dyn Clock>) -> Arc<Self> {
        let dlq = Arc::new(Self::new(
            QueueSettings {
                name: format!("{}-dlq", settings.name),
                visibility_timeout: settings.visibility_timeout,
                max_receive_count: u32::MAX,
            },
            clock.clone(),
            None,
        ));
        Arc::new(Self::new(settings, clock, Some(dlq)))
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    pub fn dead_letter_queue(&self) -> Option<&Arc<MemoryQueue>> {
        self.dead_letter.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(OffsetDateTime, String), StoredMessage>> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enqueues a message and returns its id.
    pub fn send(&self, body: impl Into<String>) -> String {
        let now = self.clock.now();
        let message_id = Ulid::new().to_string();
        self.insert(StoredMessage {
            message_id: message_id.clone(),
            body: body.into(),
            sent_at: now,
            receive_count: 0,
            first_received_at: None,
            visible_at: now,
            receipt_handle: None,
        });
        message_id
    }

    fn insert(&self, message: StoredMessage) {
        self.lock()
            .insert((message.sent_at, message.message_id.clone()), message);
        self.arrived.notify_waiters();
        self.arrived.notify_one();
    }

    /// Waits until a message is sent (or a spurious wake-up); pollers use it to avoid busy loops.
    pub async fn wait_for_message(&self) {
        self.arrived.notified().await;
    }

    /// Receives up to `max` visible messages, hiding each for the visibility timeout. Messages
    /// that have used up their receives move to the dead-letter queue instead.
    pub fn receive(&self, max: usize) -> Vec<ReceivedMessage> {
        let now = self.clock.now();
        let mut received = Vec::new();
        let mut exhausted = Vec::new();
        {
            let mut messages = self.lock();
            for (key, message) in messages.iter_mut() {
                if received.len() == max {
                    break;
                }
                if message.visible_at > now {
                    continue;
                }
                if self.dead_letter.is_some()
                    && message.receive_count >= self.settings.max_receive_count
                {
                    exhausted.push(key.clone());
                    continue;
                }
                let handle = Ulid::new().to_string();
                message.receive_count += 1;
                message.visible_at = now + self.settings.visibility_timeout;
                message.receipt_handle = Some(handle.clone());
                let first_received_at = *message.first_received_at.get_or_insert(now);
                received.push(ReceivedMessage {
                    message_id: message.message_id.clone(),
                    receipt_handle: handle,
                    body: message.body.clone(),
                    receive_count: message.receive_count,
                    sent_at: message.sent_at,
                    first_received_at,
                });
            }
            for key in &exhausted {
                if let (Some(message), Some(dlq)) = (messages.remove(key), &self.dead_letter) {
                    tracing::warn!(queue = %self.settings.name, message_id = %message.message_id, receive_count = message.receive_count, "message moved to the dead-letter queue");
                    dlq.lock().insert(
                        (message.sent_at, message.message_id.clone()),
                        StoredMessage {
                            visible_at: now,
                            receipt_handle: None,
                            ..message
                        },
                    );
                }
            }
        }
        received
    }

    /// Deletes a received message; a stale receipt handle (the message was received again since)
    /// deletes nothing, as in SQS.
    pub fn delete(&self, receipt_handle: &str) -> bool {
        let mut messages = self.lock();
        let key = messages
            .iter()
            .find(|(_, m)| m.receipt_handle.as_deref() == Some(receipt_handle))
            .map(|(k, _)| k.clone());
        key.and_then(|k| messages.remove(&k)).is_some()
    }

    /// Every message, visible or not, without receiving it (ids and bodies).
    pub fn peek_all(&self) -> Vec<(String, String, u32)> {
        self.lock()
            .values()
            .map(|m| (m.message_id.clone(), m.body.clone(), m.receive_count))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn depth(&self) -> QueueDepth {
        let now = self.clock.now();
        let messages = self.lock();
        let visible = messages.values().filter(|m| m.visible_at <= now).count();
        QueueDepth {
            visible,
            in_flight: messages.len() - visible,
            dead_lettered: self.dead_letter.as_ref().map_or(0, |dlq| dlq.len()),
        }
    }

    /// Moves every dead-lettered message back to this queue with a fresh receive count, as an SQS
    /// redrive does. Returns how many moved.
    pub fn redrive_dead_letters(&self) -> usize {
        let Some(dlq) = &self.dead_letter else {
            return 0;
        };
        let moved: Vec<StoredMessage> = std::mem::take(&mut *dlq.lock()).into_values().collect();
        let count = moved.len();
        for message in moved {
            self.requeue_redriven(message);
        }
        count
    }

    /// Puts a dead letter back on this queue as an SQS redrive does: visible now, with a fresh
    /// receive count and no receipt handle.
    fn requeue_redriven(&self, message: StoredMessage) {
        self.insert(StoredMessage {
            receive_count: 0,
            first_received_at: None,
            visible_at: self.clock.now(),
            receipt_handle: None,
            ..message
        });
    }

    /// Moves the one dead-lettered message with this id back to the queue, as
    /// [`Self::redrive_dead_letters`] moves them all; `false` when the dead-letter queue holds no
    /// such message (never had it, or it was redriven already).
    pub fn redrive_dead_letter(&self, message_id: &str) -> bool {
        let Some(dlq) = &self.dead_letter else {
            return false;
        };
        let moved = {
            let mut letters = dlq.lock();
            let key = letters
                .iter()
                .find(|(_, m)| m.message_id == message_id)
                .map(|(key, _)| key.clone());
            key.and_then(|key| letters.remove(&key))
        };
        let Some(message) = moved else {
            return false;
        };
        self.requeue_redriven(message);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::ManualClock;
    use time::macros::datetime;

    fn queue(clock: Arc<ManualClock>) -> Arc<MemoryQueue> {
        MemoryQueue::with_dead_letter_queue(
            QueueSettings {
                name: "stats".into(),
                visibility_timeout: Duration::seconds(30),
                max_receive_count: 3,
            },
            clock,
        )
    }

    #[test]
    fn a_received_message_is_hidden_until_its_visibility_timeout() {
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-26 12:00 UTC)));
        let q = queue(clock.clone());
        q.send("a");
        assert_eq!(q.receive(10).len(), 1);
        assert!(q.receive(10).is_empty());
        clock.advance(Duration::seconds(31));
        let again = q.receive(10);
        assert_eq!(again[0].receive_count, 2);
    }

    #[test]
    fn deleting_with_a_stale_handle_deletes_nothing() {
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-26 12:00 UTC)));
        let q = queue(clock.clone());
        q.send("a");
        let first = q.receive(1).remove(0);
        clock.advance(Duration::seconds(31));
        let second = q.receive(1).remove(0);
        assert!(!q.delete(&first.receipt_handle));
        assert!(q.delete(&second.receipt_handle));
        assert!(q.is_empty());
    }

    #[test]
    fn an_exhausted_message_moves_to_the_dead_letter_queue_and_can_be_redriven() {
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-26 12:00 UTC)));
        let q = queue(clock.clone());
        q.send("poison");
        for _ in 0..3 {
            assert_eq!(q.receive(10).len(), 1);
            clock.advance(Duration::seconds(31));
        }
        assert!(
            q.receive(10).is_empty(),
            "the fourth receive dead-letters it"
        );
        assert_eq!(q.depth().dead_lettered, 1);
        assert_eq!(q.redrive_dead_letters(), 1);
        assert_eq!(q.depth().dead_lettered, 0);
        assert_eq!(q.receive(10)[0].receive_count, 1);
    }

    #[test]
    fn one_dead_letter_is_redriven_by_its_id_and_the_others_stay() {
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-26 12:00 UTC)));
        let q = queue(clock.clone());
        let first = q.send("poison 1");
        let second = q.send("poison 2");
        for _ in 0..4 {
            q.receive(10);
            clock.advance(Duration::seconds(31));
        }
        assert_eq!(q.depth().dead_lettered, 2);
        assert!(q.redrive_dead_letter(&first));
        assert!(!q.redrive_dead_letter(&first), "moved already");
        assert!(!q.redrive_dead_letter("no-such-id"));
        let dead: Vec<String> = q
            .dead_letter_queue()
            .unwrap()
            .peek_all()
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        assert_eq!(dead, vec![second]);
        let back = q.receive(10);
        assert_eq!(back.len(), 1);
        assert_eq!(
            (back[0].message_id.as_str(), back[0].receive_count),
            (first.as_str(), 1)
        );
    }
}
