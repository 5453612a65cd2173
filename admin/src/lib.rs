//! The operator's commands as a library, so that their parsing and wiring are tested without a
//! process: `cli` (clap), `commands` (the use cases of `activelog::application` on the AWS
//! adapters), `progress` (the progress bar) and `checkpoint` (the resume file).

pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod progress;
