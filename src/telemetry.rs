//! Logging. Our own lines never carry a secret; dependencies that would print request or
//! response bytes at their most verbose levels are held to `info` whatever `RUST_LOG` asks.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Directives appended after `RUST_LOG`, so they win over a blanket `trace`.
pub const QUIET_DEPENDENCIES: &[&str] = &[
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "reqwest=info",
    "rustls=info",
    "actix_http=info",
    "actix_server=info",
    "mio=info",
    "want=info",
];

pub fn filter(requested: &str) -> EnvFilter {
    let mut filter = EnvFilter::new(requested);
    for directive in QUIET_DEPENDENCIES {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Logs go to standard error, so that what a command prints on standard output (`admin list`,
/// `keys generate`) stays clean to pipe; coloured only when standard error is a terminal, so
/// a file, a pipe or a log collector gets plain text without escape codes.
pub fn init() {
    let requested = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(&requested))
        .with_target(true)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
