//! Rendering answers: JSON bodies and SSE streams with the `x-ferrogate-*` headers, and errors as
//! OpenAI error JSON.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderName, HeaderValue, StatusCode, header};

use crate::error::GatewayError;
use crate::gateway::ServedBy;
use crate::providers::ChunkStream;
use crate::sse;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
// Header names as constants: a name given as a string is parsed and validated on every use.
const PROVIDER: HeaderName = HeaderName::from_static("x-ferrogate-provider");
const MODEL: HeaderName = HeaderName::from_static("x-ferrogate-model");
const DEPLOYMENT: HeaderName = HeaderName::from_static("x-ferrogate-deployment");
const ATTEMPTS: HeaderName = HeaderName::from_static("x-ferrogate-attempts");
const FALLBACK_INDEX: HeaderName = HeaderName::from_static("x-ferrogate-fallback-index");
const UPSTREAM_MS: HeaderName = HeaderName::from_static("x-ferrogate-upstream-ms");
const OVERHEAD_US: HeaderName = HeaderName::from_static("x-ferrogate-overhead-us");
const KEY: HeaderName = HeaderName::from_static("x-ferrogate-key");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Adds the headers that say who served the request and what the gateway itself cost.
fn served_headers(
    builder: http::response::Builder,
    meta: &ServedBy,
    started: Instant,
) -> http::response::Builder {
    let overhead = started.elapsed().saturating_sub(meta.upstream);
    let mut b = builder
        .header(PROVIDER, header_value(&meta.provider))
        .header(MODEL, header_value(&meta.model))
        .header(DEPLOYMENT, header_value(&meta.deployment))
        .header(ATTEMPTS, meta.attempts)
        .header(FALLBACK_INDEX, meta.fallback_index)
        .header(
            UPSTREAM_MS,
            format!("{:.3}", meta.upstream.as_secs_f64() * 1000.0),
        )
        .header(OVERHEAD_US, overhead.as_micros() as u64);
    if let Some(key) = &meta.key_name {
        b = b.header(KEY, header_value(key));
    }
    b
}

pub fn json_response(
    body: Vec<u8>,
    request_id: &str,
    meta: &ServedBy,
    started: Instant,
) -> Response {
    served_headers(Response::builder(), meta, started)
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, JSON)
        .header(REQUEST_ID, header_value(request_id))
        .body(Body::from(body))
        .unwrap_or_else(internal)
}

/// A plain JSON answer that no upstream served (models list, health).
pub fn local_json(body: Vec<u8>, request_id: &str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, JSON)
        .header(REQUEST_ID, header_value(request_id))
        .body(Body::from(body))
        .unwrap_or_else(internal)
}

pub fn error_response(err: &GatewayError, request_id: &str) -> Response {
    error_json(
        err,
        request_id,
        serde_json::to_vec(&err.to_openai_json()).unwrap_or_default(),
    )
}

fn internal(e: http::Error) -> Response {
    let mut r = Response::new(Body::from(format!(
        "{{\"error\":{{\"message\":\"cannot build response: {e}\",\"type\":\"server_error\",\"param\":null,\"code\":null}}}}"
    )));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

pub fn sse_response(
    stream: ChunkStream,
    request_id: &str,
    meta: &ServedBy,
    started: Instant,
) -> Response {
    event_stream_response(
        SseBody::new(stream, request_id.to_string()),
        request_id,
        meta,
        started,
    )
}

/// Encodes chunks as `data:` events and ends with `data: [DONE]`. An upstream failure after the
/// head has been sent cannot change the status any more: it is sent as a final `data:` event with
/// an OpenAI error object (which the official SDKs raise), and the stream ends without `[DONE]` so
/// no client mistakes it for a complete answer.
pub struct SseBody {
    inner: ChunkStream,
    finished: bool,
    request_id: String,
}

impl SseBody {
    pub fn new(inner: ChunkStream, request_id: String) -> Self {
        SseBody {
            inner,
            finished: false,
            request_id,
        }
    }
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match serde_json::to_vec(&chunk) {
                Ok(json) => Poll::Ready(Some(Ok(sse::encode_data(&json)))),
                Err(e) => {
                    self.finished = true;
                    let err = GatewayError::internal(format!("cannot encode chunk: {e}"));
                    Poll::Ready(Some(Ok(error_event(&err))))
                }
            },
            Poll::Ready(Some(Err(err))) => {
                self.finished = true;
                tracing::warn!(request_id = %self.request_id, error = %err, "stream failed after it started");
                Poll::Ready(Some(Ok(error_event(&err))))
            }
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(Some(Ok(Bytes::from_static(sse::DONE))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

fn error_event(err: &GatewayError) -> Bytes {
    sse::encode_data(&serde_json::to_vec(&err.to_openai_json()).unwrap_or_default())
}

/// Logs the outcome of a request and renders an error with `render` (each API has its own error
/// shape).
pub fn finish(
    route: &'static str,
    rid: &str,
    started: Instant,
    result: crate::error::Result<Response>,
    render: fn(&GatewayError, &str) -> Response,
) -> Response {
    let elapsed_us = started.elapsed().as_micros() as u64;
    // The engine logs each request it handled; this line is for debugging the HTTP layer.
    match result {
        Ok(resp) => {
            crate::telemetry::metrics::http(route, resp.status().as_u16());
            tracing::debug!(target: "ferrogate::http", request_id = rid, route, status = resp.status().as_u16(), latency_us = elapsed_us);
            resp
        }
        Err(err) => {
            crate::telemetry::metrics::http(route, err.status);
            tracing::debug!(target: "ferrogate::http", request_id = rid, route, status = err.status, error = %err.message, latency_us = elapsed_us);
            render(&err, rid)
        }
    }
}

/// An event-stream response whose body is already encoded by `body`.
pub fn event_stream_response<S>(
    body: S,
    request_id: &str,
    meta: &ServedBy,
    started: Instant,
) -> Response
where
    S: Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    served_headers(Response::builder(), meta, started)
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header(ACCEL_BUFFERING, "no")
        .header(REQUEST_ID, header_value(request_id))
        .body(Body::from_stream(body))
        .unwrap_or_else(internal)
}

/// An error as JSON in a given API's shape, with the usual headers.
pub fn error_json(err: &GatewayError, request_id: &str, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, JSON)
        .header(REQUEST_ID, header_value(request_id));
    if let Some(after) = err.retry_after {
        b = b.header(header::RETRY_AFTER, after.as_secs_f64().ceil() as u64);
    }
    if let Some(p) = &err.provider {
        b = b.header(PROVIDER, header_value(p));
    }
    b.body(Body::from(body)).unwrap_or_else(internal)
}
