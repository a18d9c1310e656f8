//! Observability: structured logs, Prometheus metrics, OpenTelemetry traces, the request log
//! store and cost accounting.

pub mod cost;
pub mod logstore;
pub mod metrics;
pub mod observe;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

/// Logs a request refused before it reached the plugin pipeline (which logs every other request
/// once, in the observability plugin), and passes the error on.
pub fn rejected(err: crate::error::GatewayError) -> crate::error::GatewayError {
    tracing::info!(
        target: "ferrogate::request",
        status = err.status,
        error_type = err.kind.as_str(),
        error = %err.message,
        "request rejected"
    );
    err
}

/// Installs the global log subscriber once. `FERROGATE_LOG` (a tracing filter such as
/// `info,ferrogate=debug`) overrides the configured level. Returns false if a subscriber was
/// already installed (e.g. by an embedding application), which is then left alone.
pub fn init_logging(config: &LoggingConfig) -> bool {
    let filter = std::env::var("FERROGATE_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&config.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
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
