//! HTTP plumbing shared by every adapter: the pooled client, sending with deadlines, mapping
//! transport failures and upstream error statuses onto [`GatewayError`], and a body stream that
//! enforces the first-byte and idle timeouts of streamed responses.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::HeaderMap;
use tokio::time::{Instant, Sleep};

use super::Call;
use super::http_client::{self, HttpClient, RequestBuilder, Response, SendError};
use crate::error::{ErrorKind, GatewayError, Result};

static CRYPTO: Once = Once::new();

/// Installs the TLS crypto provider (ring) once; every TLS client needs it first.
pub fn ensure_crypto_provider() {
    CRYPTO.call_once(|| {
        // Another library in the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

thread_local! {
    /// Set on the threads of a thread-per-core server: that thread's own clients, one per
    /// connect timeout, so its upstream connections are driven by the thread that uses them.
    static THREAD_CLIENTS: RefCell<Option<Vec<(Duration, HttpClient)>>> =
        const { RefCell::new(None) };
}

/// Gives the calling thread its own connection pools from now on (see [`UpstreamClient`]).
/// Called once by each worker thread of a thread-per-core server.
pub fn use_thread_local_pools() {
    THREAD_CLIENTS.with(|c| c.borrow_mut().get_or_insert_with(Vec::new).clear());
}

/// The HTTP client of a provider: one per distinct connect timeout.
///
/// A connection is driven by a task on the runtime that opened it. On a thread-per-core server
/// a connection opened by one thread and reused by another would hand every request across
/// threads, so each such thread gets its own pools ([`use_thread_local_pools`]); elsewhere
/// (the Python extension, tests, a work-stealing runtime) everything shares one.
///
/// The client does not retry on its own: retries belong to the gateway's attempt loop, which
/// counts them, reports them and keeps them within the request's deadline.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    connect_timeout: Duration,
    shared: HttpClient,
}

impl UpstreamClient {
    pub fn new(connect_timeout: Duration) -> std::result::Result<UpstreamClient, String> {
        Ok(UpstreamClient {
            connect_timeout,
            shared: HttpClient::new(connect_timeout)?,
        })
    }

    /// The client to use on the calling thread (a reference-counted handle: cheap to clone).
    pub fn current(&self) -> HttpClient {
        THREAD_CLIENTS.with(|cell| {
            let mut slot = cell.borrow_mut();
            let Some(clients) = slot.as_mut() else {
                return self.shared.clone();
            };
            if let Some((_, c)) = clients.iter().find(|(t, _)| *t == self.connect_timeout) {
                return c.clone();
            }
            // Same settings as the shared client, which was built successfully.
            match HttpClient::new(self.connect_timeout) {
                Ok(c) => {
                    clients.push((self.connect_timeout, c.clone()));
                    c
                }
                Err(_) => self.shared.clone(),
            }
        })
    }
}

/// A request builder for `{base_url}{path}` with the provider's static headers and the caller's
/// extra headers. Authentication is added by the adapter, since each API does it differently.
pub fn request(call: &Call<'_>, method: http::Method, path: &str) -> RequestBuilder {
    let mut url = String::with_capacity(call.base_url.len() + path.len());
    url.push_str(call.base_url);
    url.push_str(path);
    let mut builder = call.provider.client.current().request(method, &url);
    for (name, value) in &call.provider.headers {
        builder = builder.secret_header(name.as_str(), value.expose());
    }
    for (name, value) in call.extra_headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
}

/// Header values every request of a kind carries, made once (a string would be validated and
/// copied on each request).
pub const JSON: http::HeaderValue = http::HeaderValue::from_static("application/json");
pub const EVENT_STREAM: http::HeaderValue = http::HeaderValue::from_static("text/event-stream");

/// A native request body as JSON (see [`crate::schema::to_json_vec`]).
pub fn request_body<T: serde::Serialize + ?Sized>(body: &T) -> Result<Vec<u8>> {
    crate::schema::to_json_vec(body)
        .map_err(|e| GatewayError::internal(format!("cannot encode request: {e}")))
}

pub fn json_post(call: &Call<'_>, path: &str, body: Vec<u8>) -> RequestBuilder {
    request(call, http::Method::POST, path)
        .header(http::header::CONTENT_TYPE, JSON)
        .body(body)
}

/// A complete upstream answer.
pub struct Fetched {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends and reads the whole body, all within the request timeout.
pub async fn fetch(call: &Call<'_>, builder: RequestBuilder) -> Result<Fetched> {
    let limit = call.timeouts.request.0;
    let work = async {
        let resp = builder.send().await.map_err(|e| transport_error(call, e))?;
        let (head, body) = resp.into_parts();
        let body = http_client::body_bytes(body)
            .await
            .map_err(|e| body_error(call, &e))?;
        Ok(Fetched {
            status: head.status.as_u16(),
            headers: head.headers,
            body,
        })
    };
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => Err(timeout_error(call, limit)),
    }
}

/// Sends and waits for the response head within the request timeout. The returned deadline is
/// when the first body byte must have arrived (the rest of the same budget).
pub async fn open(call: &Call<'_>, builder: RequestBuilder) -> Result<(Response, Instant)> {
    let limit = call.timeouts.request.0;
    let deadline = Instant::now() + limit;
    match tokio::time::timeout_at(deadline, builder.send()).await {
        Ok(Ok(resp)) => Ok((resp, deadline)),
        Ok(Err(e)) => Err(transport_error(call, e)),
        Err(_) => Err(timeout_error(call, limit)),
    }
}

/// Reads an error body (bounded by the request timeout) after a non-2xx streamed response head.
pub async fn read_error_body(call: &Call<'_>, resp: Response) -> Fetched {
    let (head, body) = resp.into_parts();
    let body = tokio::time::timeout(call.timeouts.request.0, http_client::body_bytes(body))
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    Fetched {
        status: head.status.as_u16(),
        headers: head.headers,
        body,
    }
}

pub fn timeout_error(call: &Call<'_>, limit: Duration) -> GatewayError {
    GatewayError::new(
        ErrorKind::Timeout,
        format!(
            "provider `{}` did not answer within {:.1}s",
            call.provider.name,
            limit.as_secs_f64()
        ),
    )
    .with_provider(call.provider.name.clone())
}

/// Maps a failure to get a response. The client's errors never quote URLs (some APIs carry keys
/// in them) nor header values.
pub fn transport_error(call: &Call<'_>, err: SendError) -> GatewayError {
    let provider = &call.provider.name;
    if let SendError::InvalidRequest(why) = &err {
        // A base URL or header from the configuration that cannot be sent as is.
        return GatewayError::new(
            ErrorKind::InvalidRequest,
            format!("cannot send a request to provider `{provider}`: {why}"),
        )
        .with_provider(provider.clone());
    }
    let kind_and_message = if err.is_timeout() {
        (
            ErrorKind::Timeout,
            format!("provider `{provider}` timed out"),
        )
    } else if err.is_connect() {
        (
            ErrorKind::UpstreamConnection,
            format!(
                "cannot connect to provider `{provider}` at {}: {}",
                redact_url(call.base_url),
                send_error_detail(&err)
            ),
        )
    } else {
        (
            ErrorKind::UpstreamConnection,
            format!(
                "connection to provider `{provider}` failed: {}",
                send_error_detail(&err)
            ),
        )
    };
    GatewayError::new(kind_and_message.0, kind_and_message.1).with_provider(provider.clone())
}

/// What went wrong, innermost causes included. The client's own outer layer ("cannot connect")
/// says less than its causes, so the chain starts below it.
pub fn send_error_detail(err: &SendError) -> String {
    match err {
        SendError::Connect(e) => error_chain(e.as_ref()),
        SendError::Http(e) => error_chain(e),
        SendError::InvalidRequest(why) => why.clone(),
    }
}

/// The connection broke while the response body was being read.
fn body_error(call: &Call<'_>, err: &hyper::Error) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamConnection,
        format!(
            "connection to provider `{}` broke while reading the response: {}",
            call.provider.name,
            error_chain(err)
        ),
    )
    .with_provider(call.provider.name.clone())
}

/// The error and its sources, `outer: inner: innermost`, which is where the useful part
/// ("connection refused") usually is.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Scheme, host and port of a URL; never its query (which may hold a key).
pub fn redact_url(url: &str) -> String {
    match http::Uri::try_from(url) {
        Ok(u) if u.scheme().is_some() && u.host().is_some() => format!(
            "{}://{}{}",
            u.scheme_str().unwrap_or_default(),
            u.host().unwrap_or_default(),
            u.port_u16().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        _ => "(invalid URL)".into(),
    }
}

/// The wait an upstream asked for: `retry-after-ms`, else `retry-after` in seconds.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    get("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// What an adapter could read out of an upstream error body.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UpstreamErrorBody {
    pub message: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
    /// A more precise kind than the status alone gives (context window, content filter...).
    pub kind: Option<ErrorKind>,
}

/// Builds the error for a non-2xx upstream answer. The status is kept so callers see what the
/// provider said; the provider's message is kept, minus any key it may echo.
pub fn status_error(call: &Call<'_>, fetched: &Fetched, parsed: UpstreamErrorBody) -> GatewayError {
    let status = fetched.status;
    let kind = parsed
        .kind
        .unwrap_or_else(|| ErrorKind::from_status(status));
    let message = parsed.message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&fetched.body);
        let text = text.trim();
        if text.is_empty() {
            format!(
                "provider `{}` answered HTTP {status} with an empty body",
                call.provider.name
            )
        } else {
            format!(
                "provider `{}` answered HTTP {status}: {}",
                call.provider.name,
                truncate(text, 500)
            )
        }
    });
    let mut err = GatewayError::new(kind, message)
        .with_status(status)
        .with_provider(call.provider.name.clone())
        .with_retry_after(retry_after(&fetched.headers));
    // The same situation gets the same code whatever the provider called it.
    err.code = match kind {
        ErrorKind::ContextWindowExceeded => Some("context_length_exceeded".into()),
        ErrorKind::ContentFiltered => Some("content_filter".into()),
        _ => parsed.code,
    };
    err.param = parsed.param;
    scrub_call_secrets(err, call)
}

/// Removes every credential the call used or could have used from an error message.
pub fn scrub_call_secrets(err: GatewayError, call: &Call<'_>) -> GatewayError {
    let mut secrets: Vec<String> = call.credential.map(|c| c.secrets()).unwrap_or_default();
    for key in call.provider.keys.all() {
        secrets.extend(key.credential.secrets());
    }
    secrets.extend(
        call.provider
            .headers
            .iter()
            .map(|(_, v)| v.expose().to_string()),
    );
    err.scrub(secrets.iter().map(String::as_str))
}

/// A 2xx answer's body read as the API's `T`; a body that is not one is a [`bad_response`]
/// naming `what`.
pub fn parse_answer<'a, T: serde::Deserialize<'a>>(
    call: &Call<'_>,
    body: &'a [u8],
    what: &str,
) -> Result<T> {
    crate::schema::json_from_bytes(body).map_err(|e| bad_response(call, what, e))
}

/// A 2xx answer whose body is not what the API promises.
pub fn bad_response(call: &Call<'_>, what: &str, detail: impl std::fmt::Display) -> GatewayError {
    GatewayError::new(
        ErrorKind::BadUpstreamResponse,
        format!(
            "provider `{}` returned an invalid {what}: {detail}",
            call.provider.name
        ),
    )
    .with_provider(call.provider.name.clone())
}

/// A streamed chunk that does not parse.
pub fn invalid_chunk(
    provider: &std::sync::Arc<str>,
    detail: impl std::fmt::Display,
) -> GatewayError {
    GatewayError::new(
        ErrorKind::BadUpstreamResponse,
        format!("provider `{provider}` sent an invalid stream chunk: {detail}"),
    )
    .with_provider(provider.clone())
}

pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The body of a streamed response, failing with a timeout when the first byte is later than the
/// request deadline or when the upstream goes silent for longer than the idle timeout.
pub struct TimedBody {
    inner: http_client::ResponseBody,
    /// Armed for the first byte's deadline, then for the idle deadline. Not moved at each
    /// chunk (resetting a timer costs more than reading the clock): when it fires, it is moved
    /// to the last chunk's arrival plus the idle timeout if that is still ahead.
    sleep: Pin<Box<Sleep>>,
    idle: Duration,
    /// When the last chunk arrived; none yet while waiting for the first byte.
    last_data: Option<Instant>,
    provider: std::sync::Arc<str>,
    finished: bool,
}

impl TimedBody {
    pub fn new(call: &Call<'_>, resp: Response, first_byte_deadline: Instant) -> TimedBody {
        TimedBody {
            inner: resp.into_body(),
            sleep: Box::pin(tokio::time::sleep_until(first_byte_deadline)),
            idle: call.timeouts.stream_idle.0,
            last_data: None,
            provider: call.provider.name.clone(),
            finished: false,
        }
    }

    /// The caller has the whole answer by the stream's own format (its end event) and will drop
    /// the body without reading its end ([`http_client::ResponseBody::read_rest_when_dropped`]).
    pub fn answer_complete(&mut self) {
        self.inner.read_rest_when_dropped();
    }

    /// Whether the timer's firing means the stream timed out; if data came since it was armed,
    /// it is armed again for the idle deadline that follows from the last chunk.
    fn timed_out(&mut self) -> bool {
        let Some(last_data) = self.last_data else {
            return true;
        };
        let deadline = last_data + self.idle;
        if deadline <= Instant::now() {
            return true;
        }
        self.sleep.as_mut().reset(deadline);
        false
    }
}

impl Stream for TimedBody {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                let now = Instant::now();
                if self.last_data.replace(now).is_none() {
                    // From the first byte's deadline (the request's, possibly far) to the
                    // idle timeout's.
                    let next = now + self.idle;
                    self.sleep.as_mut().reset(next);
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.finished = true;
                let err = GatewayError::new(
                    ErrorKind::UpstreamConnection,
                    format!(
                        "stream from provider `{}` broke: {}",
                        self.provider,
                        error_chain(&e)
                    ),
                )
                .with_provider(self.provider.clone());
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(None)
            }
            Poll::Pending => loop {
                match self.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) if self.timed_out() => {
                        self.finished = true;
                        let what = if self.last_data.is_none() {
                            "sent no data before the request timeout".to_string()
                        } else {
                            format!("went silent for {:.1}s mid-stream", self.idle.as_secs_f64())
                        };
                        let err = GatewayError::new(
                            ErrorKind::Timeout,
                            format!("stream from provider `{}` {what}", self.provider),
                        )
                        .with_provider(self.provider.clone());
                        return Poll::Ready(Some(Err(err)));
                    }
                    // Armed again for a later deadline: polled again to wait for it.
                    Poll::Ready(()) => continue,
                    Poll::Pending => return Poll::Pending,
                }
            },
        }
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn redacts_query() {
        assert_eq!(
            redact_url("https://h.example:8443/v1?key=SECRET"),
            "https://h.example:8443"
        );
    }
}
