//! The `/_local/` operator endpoints (depths, dead letters, redrive all or one, send) over a
//! broker adapter's dead-letter tool. Every broker's tool offers the same six calls with types of its
//! own — a queue, stream, subjects or consumer group found by logical id, its depth, its dead
//! letters — so one definition serves them all instead of one copy per broker.

/// Defines `$operator`, the operator endpoints over the dead-letter tool `$tool`:
/// `$lookup(logical id)` finds a consumer's `$queue` in it, and `$depth` turns one queue's depth
/// into the JSON `/_local/queues` shows. A macro rather than a generic type because the six
/// calls are inherent methods of each adapter (no trait of theirs to be generic over), and a
/// trait here would only move the same six delegations into four impls.
macro_rules! dead_letter_operator {
    ($operator:ident, $tool:ty, $queue:ty, $lookup:ident, $depth:expr) => {
        /// The operator endpoints over the broker's dead letters.
        struct $operator {
            dead_letters: $tool,
        }

        impl $operator {
            fn queue(&self, name: &str) -> Result<$queue, crate::operator::OperatorError> {
                self.dead_letters
                    .$lookup(name)
                    .cloned()
                    .ok_or_else(|| crate::operator::OperatorError::UnknownQueue(name.to_owned()))
            }

            fn failed(error: impl std::fmt::Display) -> crate::operator::OperatorError {
                crate::operator::OperatorError::Failed(error.to_string())
            }
        }

        #[async_trait::async_trait]
        impl crate::operator::Operator for $operator {
            async fn depths(&self) -> Result<serde_json::Value, crate::operator::OperatorError> {
                let depths: serde_json::Map<String, serde_json::Value> = self
                    .dead_letters
                    .depths()
                    .await
                    .map_err(Self::failed)?
                    .into_iter()
                    .map(|(name, depth)| (name, ($depth)(depth)))
                    .collect();
                Ok(serde_json::Value::Object(depths))
            }

            async fn dead_letters(
                &self,
                queue: &str,
            ) -> Result<serde_json::Value, crate::operator::OperatorError> {
                let queue = self.queue(queue)?;
                let letters = self
                    .dead_letters
                    .peek(&queue, 100)
                    .await
                    .map_err(Self::failed)?;
                Ok(serde_json::json!({"messages": letters}))
            }

            async fn redrive(
                &self,
                queue: &str,
            ) -> Result<serde_json::Value, crate::operator::OperatorError> {
                let queue = self.queue(queue)?;
                let moved = self
                    .dead_letters
                    .redrive(&queue)
                    .await
                    .map_err(Self::failed)?;
                Ok(serde_json::json!({"redriven": moved}))
            }

            async fn redrive_one(
                &self,
                queue: &str,
                message_id: &str,
            ) -> Result<serde_json::Value, crate::operator::OperatorError> {
                let found = self.queue(queue)?;
                match self
                    .dead_letters
                    .redrive_one(&found, message_id)
                    .await
                    .map_err(Self::failed)?
                {
                    true => Ok(serde_json::json!({"redriven": 1})),
                    false => Err(crate::operator::OperatorError::UnknownDeadLetter {
                        queue: queue.to_owned(),
                        message_id: message_id.to_owned(),
                    }),
                }
            }

            async fn send(
                &self,
                queue: &str,
                body: String,
            ) -> Result<String, crate::operator::OperatorError> {
                let queue = self.queue(queue)?;
                self.dead_letters
                    .send(&queue, &body)
                    .await
                    .map_err(Self::failed)
            }
        }
    };
}

pub(super) use dead_letter_operator;
