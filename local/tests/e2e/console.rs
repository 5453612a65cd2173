//! The console in a real browser: Debian's headless Chromium driven through its WebDriver
//! (`chromedriver`, from the `chromium-driver` package that `scripts/install-browser.sh`
//! installs; the client is `webdriver.rs`), on the local stack in memory, on each broker
//! (RabbitMQ, Redis Streams, NATS JetStream, Kafka) and with `--aws` on moto. One flow for all:
//! load the console, create an activity through the API from the page, see the counters move and
//! the activity's journey appear, send a poison message, see it among the dead letters with why
//! it failed, press redrive and see the result; then send a second poison message and redrive
//! the first alone with its row's button (the other stays). In memory the flow also writes the
//! screenshot the README shows (`docs/console.png`).

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::aws_mode::AwsResources;
use crate::local_stack::LocalStack;
use crate::webdriver::Session;

/// Where the README's screenshot is written.
const SCREENSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/console.png");

/// How long the page may take to show what a step expects (moto's queues are the slowest).
const PATIENCE: Duration = Duration::from_secs(45);

/// One browser at a time: Chromium is the heaviest process of the suite, and three at once on a
/// 2-core machine slow moto enough for the other `--aws` tests' SDK calls to time out.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A `chromedriver` of our own on a free loopback port, and a Chromium session through it with
/// a fresh profile; both gone when dropped.
struct Browser {
    driver: Child,
    profile: PathBuf,
    session: Option<Session>,
}

impl Browser {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let chromedriver =
            std::env::var("ACTIVELOG_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "{chromedriver} does not start ({error}): install Chromium and its driver with \
                     `bash scripts/install-browser.sh` (Debian's chromium and chromium-driver)"
                )
            });
        let profile = std::env::temp_dir().join(format!("activelog-console-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&profile).unwrap();
        let chromium =
            std::env::var("ACTIVELOG_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,1750",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let mut browser = Self {
            driver,
            profile,
            session: None,
        };
        // chromedriver takes a moment to listen; until then the session cannot open.
        let deadline = Instant::now() + Duration::from_secs(30);
        let session = loop {
            match Session::new(&format!("http://127.0.0.1:{port}"), capabilities.clone()).await {
                Ok(session) => break session,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("no Chromium session through chromedriver: {error}"),
            }
        };
        browser.session = Some(session);
        browser
    }

    fn client(&self) -> &Session {
        self.session.as_ref().unwrap()
    }

    /// The text of the first element `css` selects once `accept` holds for it, within [`PATIENCE`].
    async fn text_when(&self, css: &str, accept: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::from("(no such element)");
        loop {
            if let Ok(element) = self.client().find(css).await
                && let Ok(text) = element.text().await
            {
                if accept(&text) {
                    return text;
                }
                last = text;
            }
            assert!(
                Instant::now() < deadline,
                "`{css}` never showed what was expected; last: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn click(&self, css: &str) {
        self.client()
            .find(css)
            .await
            .unwrap_or_else(|e| panic!("no `{css}` to click: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn screenshot(&self, path: &Path) {
        let png = self.client().screenshot().await.unwrap();
        std::fs::write(path, png).unwrap();
    }

    async fn close(mut self) {
        if let Some(client) = self.session.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The stats queue's poison verdicts so far, as `/_local/journal/counters` counts them.
async fn poison_verdicts(base: &str, token: Option<&str>) -> u64 {
    let mut request = reqwest::Client::new().get(format!("{base}/_local/journal/counters"));
    if let Some(token) = token {
        request = request.header("x-activelog-local-token", token);
    }
    let snapshot: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
    snapshot["counters"]["queues"]["StatsQueue"]["poison"]
        .as_u64()
        .unwrap_or(0)
}

/// The console's flow on a stack serving at `base` (with its operator token, if any): everything
/// the issue asks the page to show, pressed and read as a user would.
async fn the_console_follows_an_event_and_redrives_a_dead_letter(
    base: &str,
    token: Option<&str>,
    adapters: &str,
    screenshot: Option<&Path>,
) {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let browser = Browser::start().await;
    let page = match token {
        // The token in the fragment, as the listening line prints the console's address.
        Some(token) => format!("{base}/_console/#token={token}"),
        None => format!("{base}/_console/"),
    };
    browser.client().goto(&page).await.unwrap();
    browser.text_when("#status", |t| t == "live").await;
    browser.text_when("#adapters", |t| t == adapters).await;
    if token.is_some() {
        let url = browser.client().current_url().await.unwrap();
        assert!(
            !url.contains('#'),
            "the page takes the token out of its address: {url}"
        );
    }

    // An activity created through the API, from the page.
    let user = format!("console-{}", ulid::Ulid::new());
    let field = browser.client().find("#user").await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(&user).await.unwrap();
    browser.click("#create").await;
    let created = browser
        .text_when("#create-result", |t| t.starts_with("201"))
        .await;
    let activity_id = created.rsplit(' ').next().unwrap().to_owned();

    // The counters move and the journey appears, step by step, without a reload.
    browser.text_when("#n-published", |t| t != "0").await;
    browser
        .text_when("#n-StatsQueue-settled", |t| t.starts_with('1'))
        .await;
    for step in ["request", "outbox", "publish", "delivery", "stats_change"] {
        browser
            .text_when(&format!("#journey li[data-step={step}]"), |_| true)
            .await;
    }
    let applied = browser
        .text_when(
            "#journey li[data-step=verdict][data-outcome=applied]",
            |_| true,
        )
        .await;
    assert!(applied.contains(&activity_id), "{applied}");
    // The user's statistics, as the API returns them.
    browser
        .text_when(
            "#stats-table tr[data-type='all types'] td.activities",
            |t| t == "1",
        )
        .await;

    // A poison message: dead-lettered, with the consumer's reason.
    browser.click("#send-queue option[value=StatsQueue]").await;
    browser.click("#send").await;
    browser
        .text_when("#send-result", |t| t.starts_with("sent message"))
        .await;
    let why = browser
        .text_when("#dead-letters tr.dead-letter td.why", |t| !t.is_empty())
        .await;
    assert!(
        why.contains("not an EventBridge event"),
        "the dead letter says why it failed: {why}"
    );

    // Redrive, and the result.
    browser.click("#redrive-StatsQueue").await;
    let result = browser
        .text_when("#redrive-result-StatsQueue", |t| !t.is_empty())
        .await;
    assert!(
        result == "redriven 1" || result.starts_with("move task started"),
        "{result}"
    );
    // The poison verdicts are in the live feed of latest steps too.
    browser
        .text_when("#feed li[data-step=verdict][data-outcome=poison]", |_| true)
        .await;
    // Still poison: after the redrive it fails again and is back among the dead letters.
    browser
        .text_when("#dead-letters tr.dead-letter td.why", |t| !t.is_empty())
        .await;

    // Two more poison messages (fresh ones: a redrive may give a message a new id, as SQS's
    // does); then the first of them alone is redriven with its own button: the consumer reads
    // it again (the queue's poison count goes up, it is still poison) and the second stays
    // among the dead letters.
    let mut sent = browser
        .text_when("#send-result", |t| t.starts_with("sent message"))
        .await;
    let mut fresh = Vec::new();
    for _ in 0..2 {
        browser.click("#send").await;
        let previous = sent;
        sent = browser
            .text_when("#send-result", |t| {
                t.starts_with("sent message") && t != previous
            })
            .await;
        let id = sent.split(' ').nth(2).unwrap().to_owned();
        browser
            .text_when(
                &format!("#dead-letters tr.dead-letter[data-message-id='{id}'] td.why"),
                |t| !t.is_empty(),
            )
            .await;
        fresh.push(id);
    }
    let (first, second) = (&fresh[0], &fresh[1]);
    // Asked of the stack, not read off the page, whose counters may lag a second behind: a
    // dead letter is listed only after its verdict was recorded.
    let before = poison_verdicts(base, token).await;
    browser
        .click(&format!(
            "#dead-letters tr.dead-letter[data-message-id='{first}'] button.redrive-one"
        ))
        .await;
    browser
        .text_when("#redrive-result-StatsQueue", |t| {
            t == format!("redriven {first}")
        })
        .await;
    browser
        .text_when("#n-StatsQueue-failed", |t| {
            t.rsplit('/')
                .next()
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n > before)
        })
        .await;
    browser
        .text_when("#dead-letters tbody", |t| t.contains(second.as_str()))
        .await;
    if let Some(path) = screenshot {
        // The README's picture: the activity's journey beside the dead letter and the redrive.
        let follow = browser.client().find("#follow-id").await.unwrap();
        follow.clear().await.unwrap();
        follow.send_keys(&activity_id).await.unwrap();
        browser.click("#follow").await;
        browser
            .text_when("#journey li[data-step=stats_change]", |_| true)
            .await;
        browser.screenshot(path).await;
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_in_memory() {
    let stack = LocalStack::start(1);
    the_console_follows_an_event_and_redrives_a_dead_letter(
        stack.base(),
        stack.operator_token(),
        "memory",
        Some(Path::new(SCREENSHOT)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_on_rabbitmq() {
    let vhost = activelog_tests::rabbitmq::Vhost::new().await;
    let stack = LocalStack::start_with(1, &["--broker", &vhost.amqp_url()]);
    the_console_follows_an_event_and_redrives_a_dead_letter(
        stack.base(),
        stack.operator_token(),
        "memory+rabbitmq",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_on_redis() {
    let url = activelog_tests::redis::shared_url();
    let namespace = activelog_tests::redis::Namespace::new(&url);
    let stack = LocalStack::start_with(
        1,
        &["--broker", &url, "--broker-namespace", &namespace.name],
    );
    the_console_follows_an_event_and_redrives_a_dead_letter(
        stack.base(),
        stack.operator_token(),
        "memory+redis",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_on_nats() {
    let url = activelog_tests::nats::shared_url();
    let namespace = activelog_tests::nats::Namespace::new(&url);
    let stack = LocalStack::start_with(
        1,
        &["--broker", &url, "--broker-namespace", &namespace.name],
    );
    the_console_follows_an_event_and_redrives_a_dead_letter(
        stack.base(),
        stack.operator_token(),
        "memory+nats",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_on_kafka() {
    let broker = activelog_tests::kafka::Tansu::start();
    let stack = LocalStack::start_with(1, &["--broker", &broker.url().to_string()]);
    the_console_follows_an_event_and_redrives_a_dead_letter(
        stack.base(),
        stack.operator_token(),
        "memory+kafka",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_with_aws_on_moto() {
    // A moto of its own: moto rolls a failed transaction back by restoring a snapshot taken when
    // it started, erasing what other tests wrote meanwhile (see the fault proxy's
    // `dynamodb_gate`), so sharing the binary's moto made this test and the SIGKILL one fail
    // each other.
    let moto = activelog_tests::moto::MotoServer::start().unwrap();
    let clients = activelog_tests::moto::Clients::at(moto.endpoint());
    let resources = AwsResources::create(&clients, 1, 2).await;
    let (running, token) = resources.start();
    the_console_follows_an_event_and_redrives_a_dead_letter(
        &running.base,
        Some(&token),
        "aws",
        None,
    )
    .await;
}
