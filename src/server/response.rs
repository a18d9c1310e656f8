//! Rendering answers: JSON bodies and SSE streams with the `x-ferrogate-*` headers, and errors as
//! OpenAI error JSON.

use std::cell::RefCell;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::error::GatewayError;
use crate::gateway::ServedBy;
use crate::memo::Recent;
use crate::providers::ReplyStream;
use crate::schema::StreamChunk;
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
pub(super) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

thread_local! {
    /// Values of the headers that name who served a request (provider, model, deployment, key
    /// name): the same few strings on every response, each validated and copied once per thread
    /// rather than once per response.
    static SERVED_BY_VALUES: RefCell<Recent<HeaderValue, 32>> = const { RefCell::new(Recent::new()) };
}

fn served_by_value(s: &str) -> HeaderValue {
    SERVED_BY_VALUES.with_borrow_mut(|values| values.get_or(s, header_value))
}

/// The kinds of served answer.
#[derive(Clone, Copy)]
enum Answer {
    /// With its length, sent as `content-length`.
    Json(u64),
    EventStream,
}

impl Answer {
    /// The headers every answer of this kind carries as they are.
    fn fixed_headers(self) -> Vec<(HeaderName, HeaderValue)> {
        match self {
            Answer::Json(_) => vec![(header::CONTENT_TYPE, JSON)],
            Answer::EventStream => vec![
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (ACCEL_BUFFERING, HeaderValue::from_static("no")),
            ],
        }
    }

    /// The length, for a JSON answer: set by the gateway, the HTTP server does not add it to
    /// the map (a cloned map has no room to spare, so an insert would reallocate it).
    fn length(self) -> Option<u64> {
        match self {
            Answer::Json(length) => Some(length),
            Answer::EventStream => None,
        }
    }

    /// Where its two templates are in `TEMPLATES`: without, then with the key's name.
    fn templates(self) -> usize {
        match self {
            Answer::Json(_) => 0,
            Answer::EventStream => 2,
        }
    }
}

/// The headers whose values change from one answer to the next, after a JSON answer's length,
/// in the order [`served_response`] fills them; the key's name last, when a named key served.
const PER_ANSWER: [HeaderName; 9] = [
    PROVIDER,
    MODEL,
    DEPLOYMENT,
    ATTEMPTS,
    FALLBACK_INDEX,
    UPSTREAM_MS,
    OVERHEAD_US,
    REQUEST_ID,
    KEY,
];

thread_local! {
    /// Each kind of answer's headers, without and with the key's name (the values that change
    /// left empty), per thread: an answer clones its map and fills the values in place, where
    /// inserting the headers one by one would hash every name on every response.
    static TEMPLATES: [HeaderMap; 4] = [
        template(Answer::Json(0), false),
        template(Answer::Json(0), true),
        template(Answer::EventStream, false),
        template(Answer::EventStream, true),
    ];
}

/// The changing headers first, in the order their values come, then the fixed ones.
fn template(answer: Answer, with_key: bool) -> HeaderMap {
    let length = answer.length().map(|_| header::CONTENT_LENGTH);
    let changing = &PER_ANSWER[..PER_ANSWER.len() - usize::from(!with_key)];
    let fixed = answer.fixed_headers();
    let mut headers = HeaderMap::with_capacity(1 + changing.len() + fixed.len());
    for name in length.iter().chain(changing) {
        headers.insert(name.clone(), HeaderValue::from_static(""));
    }
    for (name, value) in fixed {
        headers.insert(name, value);
    }
    headers
}

/// A 200 answer with the headers that say who served the request and what the gateway itself
/// cost.
fn served_response(
    body: Body,
    answer: Answer,
    request_id: &str,
    meta: &ServedBy,
    started: Instant,
) -> Response {
    let overhead = started.elapsed().saturating_sub(meta.upstream);
    let template = answer.templates() + usize::from(meta.key_name.is_some());
    let mut headers = TEMPLATES.with(|t| t[template].clone());
    let values = answer
        .length()
        .map(HeaderValue::from)
        .into_iter()
        .chain([
            served_by_value(&meta.provider),
            served_by_value(&meta.model),
            served_by_value(&meta.deployment),
            HeaderValue::from(meta.attempts),
            HeaderValue::from(meta.fallback_index),
            millis_value(meta.upstream),
            HeaderValue::from(overhead.as_micros() as u64),
            header_value(request_id),
        ])
        .chain(meta.key_name.as_deref().map(served_by_value));
    // A map iterates its entries in the order they were inserted (each name once here): the
    // changing ones come first, and the fixed ones after them are left as they are.
    for (slot, value) in headers.values_mut().zip(values) {
        *slot = value;
    }
    let mut response = Response::new(body);
    *response.headers_mut() = headers;
    response
}

/// A duration in milliseconds with three decimals (`12.345`), written without float formatting.
fn millis_value(d: std::time::Duration) -> HeaderValue {
    let micros = d.as_micros();
    let mut digits = itoa::Buffer::new();
    let mut out = [0u8; 48];
    let whole = digits.format(micros / 1000).as_bytes();
    out[..whole.len()].copy_from_slice(whole);
    let frac = (micros % 1000) as u16;
    let tail = [
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    let len = whole.len() + tail.len();
    out[whole.len()..len].copy_from_slice(&tail);
    HeaderValue::from_bytes(&out[..len]).unwrap_or_else(|_| HeaderValue::from_static("0.000"))
}

/// A response body as JSON, in a buffer sized up front: answers are a few hundred bytes to a few
/// KB, and growing from a 128-byte start reallocates and copies several times.
pub fn encode_body<T: serde::Serialize + ?Sized>(value: &T) -> crate::error::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1024);
    crate::schema::write_json(&mut out, value)
        .map_err(|e| GatewayError::internal(format!("cannot encode response: {e}")))?;
    Ok(out)
}

pub fn json_response(
    body: impl Into<Bytes>,
    request_id: &str,
    meta: &ServedBy,
    started: Instant,
) -> Response {
    let body: Bytes = body.into();
    let answer = Answer::Json(body.len() as u64);
    served_response(Body::from(body), answer, request_id, meta, started)
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
    stream: ReplyStream,
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

/// Encodes chunks as `data:` events (a chunk still in the upstream's JSON is framed as it came)
/// and ends with `data: [DONE]`. An upstream failure after the
/// head has been sent cannot change the status any more: it is sent as a final `data:` event with
/// an OpenAI error object (which the official SDKs raise), and the stream ends without `[DONE]` so
/// no client mistakes it for a complete answer.
pub struct SseBody {
    inner: ReplyStream,
    finished: bool,
    request_id: String,
    /// The previous event's size: chunks of one stream are alike, so the next buffer is sized
    /// from it rather than grown.
    last_len: usize,
}

impl SseBody {
    pub fn new(inner: ReplyStream, request_id: String) -> Self {
        SseBody {
            inner,
            finished: false,
            request_id,
            last_len: 0,
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
            Poll::Ready(Some(Ok(StreamChunk::Raw(raw)))) => {
                Poll::Ready(Some(Ok(sse::data_event(&raw.data))))
            }
            Poll::Ready(Some(Ok(StreamChunk::Parsed(chunk)))) => {
                match sse::encode_json_data(&chunk, self.last_len) {
                    Ok(event) => {
                        self.last_len = event.len();
                        Poll::Ready(Some(Ok(event)))
                    }
                    Err(e) => {
                        self.finished = true;
                        let err = GatewayError::internal(format!("cannot encode chunk: {e}"));
                        Poll::Ready(Some(Ok(error_event(&err))))
                    }
                }
            }
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
    sse::encode_json_data(&err.to_openai_json(), 0).unwrap_or_default()
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
    served_response(
        Body::from_stream(body),
        Answer::EventStream,
        request_id,
        meta,
        started,
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn millis_have_three_decimals() {
        let ms = |d: Duration| millis_value(d).to_str().unwrap().to_string();
        assert_eq!(ms(Duration::ZERO), "0.000");
        assert_eq!(ms(Duration::from_nanos(12_345_678)), "12.345");
        assert_eq!(ms(Duration::from_micros(999)), "0.999");
        assert_eq!(ms(Duration::from_millis(1_500)), "1500.000");
        assert_eq!(ms(Duration::from_secs(86_400 * 365)), "31536000000.000");
    }

    #[test]
    fn served_headers_carry_each_value_under_its_own_name() {
        let meta = |key: Option<&str>| ServedBy {
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            deployment: "primary".into(),
            key_name: key.map(Into::into),
            attempts: 2,
            fallback_index: 1,
            upstream: Duration::from_micros(12_345),
        };
        let started = Instant::now() - Duration::from_millis(20);
        for (answer, fixed) in [
            (
                Answer::Json(321),
                vec![
                    ("content-type", "application/json"),
                    ("content-length", "321"),
                ],
            ),
            (
                Answer::EventStream,
                vec![
                    ("content-type", "text/event-stream"),
                    ("cache-control", "no-cache"),
                    ("x-accel-buffering", "no"),
                ],
            ),
        ] {
            for key in [None, Some("team-a")] {
                let response =
                    served_response(Body::empty(), answer, "req-42", &meta(key), started);
                let mut got: Vec<(String, String)> = response
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                    .collect();
                let overhead = got
                    .iter()
                    .position(|(n, _)| n == "x-ferrogate-overhead-us")
                    .map(|i| got.remove(i).1.parse::<u64>().unwrap())
                    .unwrap();
                // Measured from `started`, 20 ms ago, less the upstream's 12.3 ms.
                assert!((7_000..1_000_000).contains(&overhead), "{overhead}");
                let mut want: Vec<(String, String)> = fixed
                    .iter()
                    .chain(&[
                        ("x-ferrogate-provider", "openai"),
                        ("x-ferrogate-model", "gpt-4o-mini"),
                        ("x-ferrogate-deployment", "primary"),
                        ("x-ferrogate-attempts", "2"),
                        ("x-ferrogate-fallback-index", "1"),
                        ("x-ferrogate-upstream-ms", "12.345"),
                        ("x-request-id", "req-42"),
                    ])
                    .chain(key.as_ref().map(|k| ("x-ferrogate-key", *k)).as_slice())
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                got.sort();
                want.sort();
                assert_eq!(got, want);
            }
        }
    }
}
