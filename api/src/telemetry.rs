//! Logging: one place that reads `RUST_LOG` and chooses the log's format.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// For a person: one line per event, coloured at a terminal.
    #[default]
    Text,
    /// For log shippers (Loki, Elasticsearch, Vector…): one JSON object per
    /// line with `timestamp`, `level`, `target`, `message`, the event's own
    /// fields at the top level and the span it happened in.
    Json,
}

/// Installs a formatter for `tracing` events that writes to stderr in
/// `format`, filtered by `RUST_LOG` (default: `info`). Calling it twice
/// does nothing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colour codes only for a person at a terminal, not in files or pipes.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
