//! `tracing` subscriber set-up. Logs go to stderr so command output on
//! stdout stays machine-readable. Colours only on a terminal: a container
//! log, a file or a pipe gets plain text without ANSI escapes.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSection};

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the
/// configured level. Safe to call twice (the second call is ignored).
pub fn init(log: &LogSection, rust_log: Option<String>) {
    let filter = rust_log
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(&log.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already installed (tests, or a second `serve` in one process): keep it.
    let _ = result;
}
