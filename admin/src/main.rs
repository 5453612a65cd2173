//! `activelog-admin`: the operator's commands (`stats rebuild`, `achievements rebuild`, `replay`),
//! on the AWS adapters (DynamoDB, EventBridge) — against AWS, or moto with `AWS_ENDPOINT_URL`.
//! Parsing is in `cli.rs`, the commands in `commands.rs`; see `docs/operations.md`.

use std::process::ExitCode;

use activelog::telemetry::{self, LogFormat};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = activelog_admin::cli::Cli::parse();
    telemetry::init(LogFormat::Pretty);
    match activelog_admin::commands::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("activelog-admin: {error}");
            ExitCode::FAILURE
        }
    }
}
