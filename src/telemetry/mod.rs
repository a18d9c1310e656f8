//! Logs (and, later in this module, metrics and traces).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

/// Installs the global log subscriber once. `FERROGATE_LOG` (a tracing filter such as
/// `info,ferrogate=debug`) overrides the configured level. Returns false if a subscriber was
/// already installed (e.g. by an embedding application), which is then left alone.
pub fn init_logging(config: &LoggingConfig) -> bool {
    let filter = std::env::var("FERROGATE_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&config.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
        // The AWS signer's trace output describes the credentials it signs with.
        .add_directive("aws_sigv4=off".parse().expect("a valid directive"));
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
    result.is_ok()
}
