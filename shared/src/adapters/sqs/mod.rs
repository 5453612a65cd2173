//! The SQS adapter: a poller that drives a consumer from a real queue the way a Lambda event
//! source mapping does (the local stack's `--aws` mode), and dead-letter queue tooling (look at
//! what failed, send it back to its source queue).

mod dead_letters;
mod poller;

pub use dead_letters::{
    DeadLetter, DeadLetterError, DeadLetterQueue, RedriveOutcome, TARGET_ARN_ATTRIBUTE,
    TargetRedrive,
};
pub use poller::{SqsPoller, SqsPollerError};
