//! The local stack's end-to-end tests in one binary (zero-to-production's `tests/api/main.rs`
//! shape): the real `activelog-local` binary started and spoken to over HTTP, in memory, with
//! `--aws` against moto, and through each broker (one module per broker); the console in a
//! headless browser on every one of them (`console`).

mod aws_mode;
mod console;
mod kafka;
mod local_stack;
mod maintenance;
mod nats;
mod rabbitmq;
mod redis;
mod traces;
mod webdriver;
