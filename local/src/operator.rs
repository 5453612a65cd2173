//! Operator endpoints under `/_local/` (not part of the public API): queue depths, dead-lettered
//! messages, redrive (all of a queue's dead letters, or one by its message id), and sending a raw
//! message to a queue (to try a poison message). They work the same over the in-memory queues,
//! over each broker (`broker/operator.rs`) and, with `--aws`, over the real SQS queues.

use std::sync::Arc;

use activelog::startup::InMemoryStack;
use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{Response, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::json_response::json_response;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("no queue named `{0}`")]
    UnknownQueue(String),
    #[error("no dead letter `{message_id}` in queue `{queue}`")]
    UnknownDeadLetter { queue: String, message_id: String },
    #[error("{0}")]
    Failed(String),
}

/// What the operator endpoints need from a set of queues.
#[async_trait]
pub trait Operator: Send + Sync {
    /// Every queue with its depth.
    async fn depths(&self) -> Result<Value, OperatorError>;
    async fn dead_letters(&self, queue: &str) -> Result<Value, OperatorError>;
    /// Moves a queue's dead-lettered messages back to it: `{"redriven": n}`, or
    /// `{"move_task": handle}` where SQS moves them asynchronously.
    async fn redrive(&self, queue: &str) -> Result<Value, OperatorError>;
    /// Moves the one dead letter of a queue listed with `message_id` back to it:
    /// `{"redriven": 1}`, or `UnknownDeadLetter`.
    async fn redrive_one(&self, queue: &str, message_id: &str) -> Result<Value, OperatorError>;
    /// Sends a raw message body; returns the message id.
    async fn send(&self, queue: &str, body: String) -> Result<String, OperatorError>;
    /// The archive replay and projection rebuild of `maintenance.rs`, where this stack has them.
    fn maintenance(&self) -> Option<crate::maintenance::Maintenance> {
        None
    }
}

pub fn router<S: Clone + Send + Sync + 'static>(operator: Arc<dyn Operator>) -> Router<S> {
    let maintenance = crate::maintenance::router(operator.maintenance());
    Router::new()
        .route("/queues", get(depths))
        .route("/queues/{queue}/dead-letters", get(dead_letters))
        .route("/queues/{queue}/redrive", post(redrive))
        .route(
            "/queues/{queue}/dead-letters/{message_id}/redrive",
            post(redrive_one),
        )
        .route("/queues/{queue}/messages", post(send))
        .with_state(operator)
        .merge(maintenance)
}

fn answer(result: Result<Value, OperatorError>) -> Response<Body> {
    match result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(error) => error_response(error),
    }
}

/// The one mapping of an operator error to its answer, for these endpoints and the console's.
pub fn error_response(error: OperatorError) -> Response<Body> {
    match error {
        OperatorError::UnknownQueue(queue) => json_response(
            StatusCode::NOT_FOUND,
            json!({"message": format!("no queue named `{queue}`")}),
        ),
        error @ OperatorError::UnknownDeadLetter { .. } => {
            json_response(StatusCode::NOT_FOUND, json!({"message": error.to_string()}))
        }
        OperatorError::Failed(reason) => {
            tracing::error!(%reason, "operator request failed");
            json_response(StatusCode::BAD_GATEWAY, json!({"message": reason}))
        }
    }
}

async fn depths(State(operator): State<Arc<dyn Operator>>) -> Response<Body> {
    answer(operator.depths().await)
}

async fn dead_letters(
    State(operator): State<Arc<dyn Operator>>,
    Path(queue): Path<String>,
) -> Response<Body> {
    answer(operator.dead_letters(&queue).await)
}

async fn redrive(
    State(operator): State<Arc<dyn Operator>>,
    Path(queue): Path<String>,
) -> Response<Body> {
    let result = operator.redrive(&queue).await;
    if let Ok(outcome) = &result {
        tracing::info!(%queue, %outcome, "dead-lettered messages redriven");
    }
    answer(result)
}

async fn redrive_one(
    State(operator): State<Arc<dyn Operator>>,
    Path((queue, message_id)): Path<(String, String)>,
) -> Response<Body> {
    let result = operator.redrive_one(&queue, &message_id).await;
    if let Ok(outcome) = &result {
        tracing::info!(%queue, %message_id, %outcome, "dead-lettered message redriven");
    }
    answer(result)
}

async fn send(
    State(operator): State<Arc<dyn Operator>>,
    Path(queue): Path<String>,
    body: Bytes,
) -> Response<Body> {
    let body = String::from_utf8_lossy(&body).into_owned();
    answer(
        operator
            .send(&queue, body)
            .await
            .map(|id| json!({"message_id": id})),
    )
}

/// The operator over the in-memory stack's queues.
pub struct MemoryOperator {
    pub stack: Arc<InMemoryStack>,
}

impl MemoryOperator {
    fn queue(
        &self,
        name: &str,
    ) -> Result<&Arc<activelog::adapters::memory::MemoryQueue>, OperatorError> {
        self.stack
            .queue(name)
            .ok_or_else(|| OperatorError::UnknownQueue(name.to_owned()))
    }
}

#[async_trait]
impl Operator for MemoryOperator {
    async fn depths(&self) -> Result<Value, OperatorError> {
        let depths: serde_json::Map<String, Value> = self
            .stack
            .queues
            .iter()
            .map(|(name, queue)| (name.clone(), json!(queue.depth())))
            .collect();
        Ok(Value::Object(depths))
    }

    async fn dead_letters(&self, queue: &str) -> Result<Value, OperatorError> {
        let queue = self.queue(queue)?;
        let messages: Vec<Value> = queue
            .dead_letter_queue()
            .map(|dlq| dlq.peek_all())
            .unwrap_or_default()
            .into_iter()
            .map(|(message_id, body, receive_count)| {
                json!({"message_id": message_id, "body": body, "receive_count": receive_count})
            })
            .collect();
        Ok(json!({"messages": messages}))
    }

    async fn redrive(&self, queue: &str) -> Result<Value, OperatorError> {
        Ok(json!({"redriven": self.queue(queue)?.redrive_dead_letters()}))
    }

    async fn redrive_one(&self, queue: &str, message_id: &str) -> Result<Value, OperatorError> {
        match self.queue(queue)?.redrive_dead_letter(message_id) {
            true => Ok(json!({"redriven": 1})),
            false => Err(OperatorError::UnknownDeadLetter {
                queue: queue.to_owned(),
                message_id: message_id.to_owned(),
            }),
        }
    }

    async fn send(&self, queue: &str, body: String) -> Result<String, OperatorError> {
        Ok(self.queue(queue)?.send(body))
    }

    fn maintenance(&self) -> Option<crate::maintenance::Maintenance> {
        Some(crate::maintenance::Maintenance::in_memory(&self.stack))
    }
}
