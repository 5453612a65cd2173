//! The baseline the cold-start harness compares every function with: what `lambda_runtime` costs
//! on its own, with nothing of activelog in it. Built with the same profile as the functions, so a
//! ratio to it measures only what activelog adds (adapters, telemetry, start-up wiring).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn greet(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({ "message": "hello, world" }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(greet)).await
}
