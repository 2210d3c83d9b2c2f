//! A real browser for the tests that need one, and the checks every page they visit must pass.
//!
//! `Chromium::start()` runs headless Chromium through chromedriver. After each navigation a
//! test calls `check_page` (or `visit`, which navigates and checks): axe-core, injected
//! through WebDriver, must find no accessibility violation of any impact, at desktop width and
//! again at a 375 px phone width, where nothing may scroll sideways and no word of the header
//! may break across lines.
//!
//! The browser, chromedriver and axe-core come from `./scripts/test` (which installs them when
//! missing); `CHROMIUM`, `CHROMEDRIVER` and `AXE_CORE` point elsewhere.

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use serde::Deserialize;
use tokio::process::{Child, Command};

/// The desktop window every page is checked at first.
const DESKTOP: (u32, u32) = (1280, 900);
/// The narrow phone every page is checked at too.
pub(crate) const PHONE_WIDTH: u32 = 375;
const PHONE_HEIGHT: u32 = 800;

/// A failed check, as the error the test's `async` block returns: the browser is then still
/// closed before the test fails.
pub(crate) fn failure(message: impl Into<String>) -> CmdError {
    CmdError::NotW3C(serde_json::Value::String(message.into()))
}

/// Fails the test with the checks' message as it was written (line breaks and all), after the
/// browser was closed.
pub(crate) fn expect_ok(result: Result<(), CmdError>) {
    match result {
        Ok(()) => {}
        Err(CmdError::NotW3C(serde_json::Value::String(message))) => panic!("{message}"),
        Err(e) => panic!("browser: {e}"),
    }
}

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A fresh Chromium profile folder. Dropping it also ends any Chromium still running on it (a
/// test that failed before closing its session), found by the folder's unique path.
struct Profile(tempfile::TempDir);

impl Drop for Profile {
    fn drop(&mut self) {
        let pattern = format!("user-data-dir={}", self.0.path().display());
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", "--"])
            .arg(pattern)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One headless Chromium session; use it as a fantoccini `Client`. Call `close` at the end.
pub(crate) struct Chromium {
    client: Client,
    _profile: Profile,
    _driver: Driver,
}

impl std::ops::Deref for Chromium {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Chromium {
    pub(crate) async fn start() -> Self {
        let driver = start_chromedriver().await;
        let profile = Profile(tempfile::tempdir().unwrap());
        let client = connect(&driver, profile.0.path()).await;
        Self { client, _profile: profile, _driver: driver }
    }

    /// Ends the browser session (the driver and the profile go when this is dropped).
    pub(crate) async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_chromedriver() -> Driver {
    let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
    let port = free_port();
    let child = Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary} ({e}); the README's test command installs chromium-driver"));
    let url = format!("http://127.0.0.1:{port}");
    // Wait until chromedriver answers its status endpoint (bounded: 200 × 50 ms).
    let probe = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = probe.get(format!("{url}/status")).send().await {
            if r.status().is_success() {
                return Driver { child, url };
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not come up on {url}");
}

async fn connect(driver: &Driver, profile: &std::path::Path) -> Client {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("chromedriver starts a headless Chromium session")
}

/// axe-core's script, read once: from `AXE_CORE`, or where `./scripts/test` installs it.
fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = std::env::var("AXE_CORE").unwrap_or_else(|_| {
            format!("{}/tests/browser-deps/node_modules/axe-core/axe.min.js", env!("CARGO_MANIFEST_DIR"))
        });
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read axe-core at {path} ({e}); ./scripts/test installs it"))
    })
}

/// Waits until the element shows `expected` (a page navigation may still be under way: the old
/// page's element can be found, or go stale, in between). Bounded: 200 × 50 ms.
pub(crate) async fn wait_for_text(c: &Client, css: &str, expected: &str) -> Result<(), CmdError> {
    let mut last = String::new();
    for _ in 0..200 {
        if let Ok(element) = c.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if text == expected {
                    return Ok(());
                }
                last = text;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(failure(format!("{css} never showed {expected:?} (last: {last:?})")))
}

/// Waits until the browser is on `path` of any origin and that page has loaded. Bounded.
pub(crate) async fn wait_for_path(c: &Client, path: &str) -> Result<(), CmdError> {
    let mut last = String::new();
    for _ in 0..200 {
        let url = c.current_url().await?;
        if url.path() == path && document_ready(c).await? {
            return Ok(());
        }
        last = url.to_string();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(failure(format!("never reached {path} (last: {last})")))
}

async fn document_ready(c: &Client) -> Result<bool, CmdError> {
    Ok(c.execute("return document.readyState", vec![]).await? == "complete")
}

/// Goes to `url` and checks the page it lands on.
pub(crate) async fn visit(c: &Client, url: &str) -> Result<(), CmdError> {
    c.goto(url).await?;
    check_page(c).await
}

/// The checks every page must pass, at desktop width and at 375 px: no axe-core violation; on
/// the phone, no sideways scrolling and no header word broken across lines. The window is
/// back at desktop width afterwards.
pub(crate) async fn check_page(c: &Client) -> Result<(), CmdError> {
    for _ in 0..200 {
        if document_ready(c).await? {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = c.current_url().await?;
    c.set_window_size(DESKTOP.0, DESKTOP.1).await?;
    let mut problems = axe_violations(c).await?;
    c.set_window_size(PHONE_WIDTH, PHONE_HEIGHT).await?;
    let phone = async {
        let width = c.execute("return window.innerWidth", vec![]).await?;
        if width != PHONE_WIDTH {
            return Err(failure(format!("the window did not narrow to {PHONE_WIDTH} px (innerWidth {width})")));
        }
        let mut problems: Vec<String> =
            axe_violations(c).await?.into_iter().map(|p| format!("at {PHONE_WIDTH} px: {p}")).collect();
        problems.extend(sideways_scroll(c).await?);
        problems.extend(broken_header_words(c).await?);
        Ok(problems)
    }
    .await;
    c.set_window_size(DESKTOP.0, DESKTOP.1).await?;
    problems.extend(phone?);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(failure(format!("{url} fails its page checks:\n{}", problems.join("\n"))))
    }
}

#[derive(Deserialize)]
struct Violation {
    id: String,
    impact: Option<String>,
    help: String,
    #[serde(rename = "helpUrl")]
    help_url: String,
    targets: Vec<String>,
}

/// Runs axe-core on the page (injected when the page lacks it); one line per violation.
async fn axe_violations(c: &Client) -> Result<Vec<String>, CmdError> {
    if c.execute("return typeof window.axe", vec![]).await? != "object" {
        c.execute(axe_source(), vec![]).await?;
    }
    let run = r#"
        const done = arguments[arguments.length - 1];
        window.axe.run(document, { resultTypes: ["violations"] })
            .then(r => done({ violations: r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                targets: v.nodes.map(n => n.target.join(" ")),
            })) }))
            .catch(e => done({ error: String(e) }));
    "#;
    let answer = c.execute_async(run, vec![]).await?;
    if let Some(error) = answer.get("error") {
        return Err(failure(format!("axe-core did not run: {error}")));
    }
    let violations: Vec<Violation> = serde_json::from_value(answer["violations"].clone())
        .map_err(|e| failure(format!("axe-core's answer does not read: {e}: {answer}")))?;
    Ok(violations
        .into_iter()
        .map(|v| {
            format!(
                "axe {} ({}): {} — {} — at {}",
                v.id,
                v.impact.unwrap_or_default(),
                v.help,
                v.help_url,
                v.targets.join(", ")
            )
        })
        .collect())
}

/// The page is wider than the window: which elements stick out.
async fn sideways_scroll(c: &Client) -> Result<Vec<String>, CmdError> {
    let script = r##"
        const root = document.documentElement;
        if (root.scrollWidth <= window.innerWidth) return [];
        const wide = [...document.body.querySelectorAll("*")]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .slice(0, 8)
            .map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
                (e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\s+/).join(".") : "") +
                " (right edge " + Math.round(e.getBoundingClientRect().right) + ")");
        return ["scrolls sideways: " + root.scrollWidth + " px wide in a " + window.innerWidth +
            " px window; sticking out: " + wide.join(", ")];
    "##;
    strings(c.execute(script, vec![]).await?)
}

/// Words of the header that the layout broke across two lines.
async fn broken_header_words(c: &Client) -> Result<Vec<String>, CmdError> {
    let script = r#"
        const header = document.querySelector("body > header");
        if (!header) return [];
        const broken = [];
        const walker = document.createTreeWalker(header, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
            const node = walker.currentNode;
            for (const m of node.textContent.matchAll(/\S+/g)) {
                const range = document.createRange();
                range.setStart(node, m.index);
                range.setEnd(node, m.index + m[0].length);
                const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
                if (lines.size > 1) broken.push("header word broken across lines: " + m[0]);
            }
        }
        return broken;
    "#;
    strings(c.execute(script, vec![]).await?)
}

fn strings(value: serde_json::Value) -> Result<Vec<String>, CmdError> {
    serde_json::from_value(value.clone()).map_err(|e| failure(format!("unexpected answer {value}: {e}")))
}
