//! OpenTelemetry traces over OTLP (HTTP/protobuf or gRPC), configured by the config's
//! `telemetry.tracing` or the standard `OTEL_*` variables. Each request gets a span
//! (`chat <model>`) with a child span per upstream attempt, carrying the GenAI semantic
//! convention attributes; an incoming W3C `traceparent` is continued.
//!
//! Spans are created only when export is on, so tracing costs nothing otherwise.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{OtlpProtocol, TracingConfig};

/// The target of the spans exported to OpenTelemetry.
pub const SPAN_TARGET: &str = "ferrogate::span";

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are being exported.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether the config or the environment asks for traces.
pub fn wanted(cfg: &TracingConfig) -> bool {
    cfg.enabled.unwrap_or_else(|| {
        [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
    })
}

/// OTLP/HTTP through the gateway's own HTTP client (rustls), on its tokio runtime.
#[derive(Debug, Clone)]
struct OtlpHttpClient {
    client: reqwest::Client,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let mut req = self
            .client
            .request(parts.method, parts.uri.to_string())
            .body(body);
        for (name, value) in &parts.headers {
            req = req.header(name, value);
        }
        let resp = req.send().await?;
        let mut out = http::Response::builder().status(resp.status().as_u16());
        for (name, value) in resp.headers() {
            out = out.header(name, value);
        }
        Ok(out.body(resp.bytes().await?)?)
    }
}

/// Builds the tracer provider (must run inside a tokio runtime: export runs on its tasks) and
/// returns the layer that feeds it. `None` when traces are not wanted.
pub fn layer<S>(cfg: &TracingConfig) -> Result<Option<impl tracing_subscriber::Layer<S>>, String>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    if !wanted(cfg) {
        return Ok(None);
    }
    let protocol = cfg.protocol.unwrap_or_else(|| {
        match std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            Ok(p) if p == "grpc" => OtlpProtocol::Grpc,
            _ => OtlpProtocol::Http,
        }
    });
    let headers: HashMap<String, String> = cfg
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_string()))
        .collect();
    let exporter = match protocol {
        OtlpProtocol::Http => {
            crate::providers::transport::ensure_crypto_provider();
            let client = reqwest::Client::builder()
                .build()
                .map_err(|e| format!("cannot build the OTLP HTTP client: {e}"))?;
            let mut b = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(OtlpHttpClient { client })
                .with_headers(headers);
            if let Some(endpoint) = &cfg.endpoint {
                let endpoint = endpoint.trim_end_matches('/');
                let full = if endpoint.ends_with("/v1/traces") {
                    endpoint.to_string()
                } else {
                    format!("{endpoint}/v1/traces")
                };
                b = b.with_endpoint(full);
            }
            b.build()
        }
        OtlpProtocol::Grpc => {
            let mut map = http::HeaderMap::new();
            for (k, v) in &headers {
                let name = http::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("telemetry.tracing.headers: invalid header name {k:?}"))?;
                let value = http::HeaderValue::from_str(v)
                    .map_err(|_| format!("telemetry.tracing.headers.{k}: invalid header value"))?;
                map.insert(name, value);
            }
            let metadata =
                opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map);
            let mut b = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_metadata(metadata);
            if let Some(endpoint) = &cfg.endpoint {
                b = b.with_endpoint(endpoint.clone());
            }
            b.build()
        }
    }
    .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
    let service = cfg
        .service_name
        .clone()
        .or_else(|| std::env::var("OTEL_SERVICE_NAME").ok())
        .unwrap_or_else(|| "ferrogate".into());
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    let tracer = provider.tracer("ferrogate");
    let _ = PROVIDER.set(provider);
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer)))
}

/// Exports what is buffered (at shutdown).
pub fn shutdown() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
    }
}

/// The span of one request. `traceparent` (W3C) continues the caller's trace.
pub fn request_span(
    operation: &'static str,
    model: &str,
    request_id: &str,
    traceparent: Option<&str>,
) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "request",
        otel.name = %format!("{operation} {model}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = operation,
        gen_ai.request.model = %model,
        gen_ai.system = tracing::field::Empty,
        gen_ai.provider.name = tracing::field::Empty,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.response.finish_reasons = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        ferrogate.request_id = %request_id,
        ferrogate.deployment = tracing::field::Empty,
        ferrogate.attempts = tracing::field::Empty,
        ferrogate.cost_usd = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    if let Some(tp) = traceparent {
        let mut carrier = HashMap::new();
        carrier.insert("traceparent".to_string(), tp.to_string());
        let cx = TraceContextPropagator::new().extract(&carrier);
        let _ = span.set_parent(cx);
    }
    span
}

/// The child span of one upstream attempt.
pub fn attempt_span(
    provider: &str,
    model: &str,
    deployment: &str,
    key: Option<&str>,
) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        target: SPAN_TARGET,
        "attempt",
        otel.name = %format!("upstream {provider}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        gen_ai.system = %provider,
        gen_ai.provider.name = %provider,
        gen_ai.request.model = %model,
        ferrogate.deployment = %deployment,
        ferrogate.key = key.unwrap_or(""),
        error.type = tracing::field::Empty,
    )
}

/// A stream that enters its span while it is polled and closes it when dropped, so a streamed
/// request's span covers the whole stream.
pub struct SpannedStream<S> {
    inner: S,
    span: tracing::Span,
}

impl<S> SpannedStream<S> {
    pub fn new(inner: S, span: tracing::Span) -> Self {
        SpannedStream { inner, span }
    }
}

impl<S: Stream + Unpin> Stream for SpannedStream<S> {
    type Item = S::Item;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        Pin::new(&mut this.inner).poll_next(cx)
    }
}
