//! Observability: structured logs, Prometheus metrics, OpenTelemetry traces, the request log
//! store and cost accounting.

pub mod cost;
pub mod logstore;
pub mod metrics;
pub mod observe;
pub mod otel;

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
    init(Some(config), None).unwrap_or(false)
}

/// Installs the global subscriber once: structured logs when `logging` is given, OpenTelemetry
/// export when `tracing` asks for it (then this must run inside the tokio runtime). Returns
/// whether it was installed.
pub fn init(
    logging: Option<&LoggingConfig>,
    tracing_cfg: Option<&crate::config::TracingConfig>,
) -> Result<bool, String> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;
    let fmt_layer: Option<Boxed> = logging.map(|config| {
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
        let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
        if json {
            layer
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_filter(filter)
                .boxed()
        } else {
            layer.compact().with_filter(filter).boxed()
        }
    });
    let otel_layer: Option<Boxed> = match tracing_cfg {
        Some(cfg) => otel::layer(cfg)?.map(|l| {
            l.with_filter(Targets::new().with_target(otel::SPAN_TARGET, tracing::Level::INFO))
                .boxed()
        }),
        None => None,
    };
    let layers: Vec<Boxed> = fmt_layer.into_iter().chain(otel_layer).collect();
    if layers.is_empty() {
        return Ok(false);
    }
    Ok(tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_ok())
}
