//! Telemetry settings: metrics, traces, the request log store, and prices.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Dur;
use crate::secret::Secret;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub tracing: TracingConfig,
    #[serde(default)]
    pub log_store: LogStoreConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` and record metrics.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Request headers whose values become labels of the request metrics:
    /// `{"x-team": "team"}` labels requests with `team="<x-team value>"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub header_labels: BTreeMap<String, String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            header_labels: BTreeMap::new(),
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP over HTTP with protobuf bodies (`/v1/traces`).
    #[default]
    Http,
    /// OTLP over gRPC.
    Grpc,
}

/// OpenTelemetry traces. Off unless enabled here or `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the standard `OTEL_*` variables fill what the
/// config leaves out.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Collector endpoint, e.g. `http://localhost:4318` (HTTP) or `http://localhost:4317` (gRPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<OtlpProtocol>,
    /// `service.name` of the spans (default `ferrogate`, or `OTEL_SERVICE_NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Headers for the collector (values may be `env.VAR`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogBackendKind {
    #[default]
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogStoreConfig {
    /// On by default for the server, off by default in-process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub backend: LogBackendKind,
    /// SQLite file.
    #[serde(default = "default_path")]
    pub path: String,
    /// PostgreSQL connection URL (may be `env.VAR`; its password is never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Secret>,
    /// Also store request and response bodies.
    #[serde(default)]
    pub log_content: bool,
    /// How long records are kept.
    #[serde(default = "default_retention")]
    pub retention: Dur,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_flush")]
    pub flush_interval: Dur,
    /// Records waiting to be written at most; beyond, new ones are dropped (and counted).
    #[serde(default = "default_queue")]
    pub queue_size: usize,
}

fn default_path() -> String {
    "ferrogate-logs.db".into()
}
fn default_retention() -> Dur {
    Dur::secs(7 * 86400)
}
fn default_batch() -> usize {
    256
}
fn default_flush() -> Dur {
    Dur::millis(500)
}
fn default_queue() -> usize {
    10_000
}

impl Default for LogStoreConfig {
    fn default() -> Self {
        LogStoreConfig {
            enabled: None,
            backend: LogBackendKind::default(),
            path: default_path(),
            url: None,
            log_content: false,
            retention: default_retention(),
            batch_size: default_batch(),
            flush_interval: default_flush(),
            queue_size: default_queue(),
        }
    }
}

/// `prices` in the config: `provider/model` (or a `prefix*`) -> USD per million tokens.
pub type Prices = BTreeMap<String, crate::telemetry::cost::Price>;
