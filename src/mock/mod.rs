//! A mock LLM provider speaking the providers' real wire formats, for tests and for rehearsing a
//! setup before going live (`ferrogate mock-upstream`). It answers deterministically (see
//! [`reply::plan`]), injects faults on demand (see [`reply::Scenario`]) or at random
//! (`error_rate`), and records what it received (`GET /mock/requests`, `GET /mock/stats`).

mod anthropic;
mod azure;
pub mod bedrock;
mod cohere;
mod gemini;
pub mod google_oauth;
mod openai;
pub mod reply;
pub mod sigv4;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Added before every answer.
    pub latency: Duration,
    /// Fraction of requests (0..=1) answered with `error_status`.
    pub error_rate: f64,
    pub error_status: u16,
    /// When set, requests must carry this key.
    pub api_key: Option<String>,
    /// Pause between streamed chunks.
    pub chunk_delay: Duration,
    /// Embedding size when the request does not ask for `dimensions`.
    pub embedding_dims: usize,
    /// When both are set, Bedrock requests signed with SigV4 must be signed with these.
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    /// The Google service account whose signed assertions the OAuth endpoint accepts (signature
    /// checked); without it, assertions are checked for structure, claims and expiry only.
    pub google_account: Option<google_oauth::MockGoogleAccount>,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            latency: Duration::ZERO,
            error_rate: 0.0,
            error_status: 500,
            api_key: None,
            chunk_delay: Duration::ZERO,
            embedding_dims: 16,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            google_account: None,
        }
    }
}

/// One received request, as `GET /mock/requests` shows it.
#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    /// The last 4 characters of the credential, enough to tell keys apart.
    key_hint: Option<String>,
    headers: BTreeMap<String, String>,
    body: Bytes,
}

const RECORDED_MAX: usize = 200;

pub struct MockState {
    pub options: MockOptions,
    recorded: Mutex<VecDeque<Recorded>>,
    counts: Mutex<BTreeMap<String, u64>>,
    /// OAuth access tokens issued to Vertex AI clients (kept across `/mock/reset`).
    google_tokens: google_oauth::TokenStore,
    faults: Mutex<Vec<FaultRule>>,
}

/// A fault switched on at runtime with `POST /mock/faults`, for requests matching its key and
/// model: an error status (with `Retry-After` for 429), a cut connection, or a delay.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Only requests sent with this credential (the whole value, or its last 4 characters).
    #[serde(default)]
    pub key: Option<String>,
    /// Only requests for this model.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    /// Seconds for `Retry-After` (429 and 503).
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Cut the connection instead of answering.
    #[serde(default)]
    pub drop: bool,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Requests it applies to before it expires; forever when absent.
    #[serde(default)]
    pub remaining: Option<u64>,
}

impl FaultRule {
    fn matches(&self, key: Option<&str>, model: &str) -> bool {
        let key_ok = match (&self.key, key) {
            (None, _) => true,
            (Some(want), Some(got)) => {
                got == want || (want.len() == 4 && got.ends_with(want.as_str()))
            }
            (Some(_), None) => false,
        };
        key_ok && self.model.as_deref().is_none_or(|m| m == model)
    }
}

type Shared = Arc<MockState>;

impl MockState {
    fn new(options: MockOptions) -> Self {
        MockState {
            options,
            recorded: Mutex::new(VecDeque::new()),
            counts: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(Vec::new()),
            google_tokens: google_oauth::TokenStore::default(),
        }
    }

    fn record(
        &self,
        path: &str,
        headers: &HeaderMap,
        key: Option<&str>,
        model: Option<&str>,
        body: &Bytes,
    ) {
        let kept_headers = headers
            .iter()
            .filter(|(name, _)| {
                let n = name.as_str();
                n != "authorization"
                    && n != "x-api-key"
                    && n != "api-key"
                    && n != "x-goog-api-key"
                    && n != "x-amz-security-token"
            })
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
            .collect();
        {
            let mut rec = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
            if rec.len() == RECORDED_MAX {
                rec.pop_front();
            }
            rec.push_back(Recorded {
                path: path.to_string(),
                key_hint: key.map(|k| {
                    k.chars()
                        .rev()
                        .take(4)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect()
                }),
                headers: kept_headers,
                body: body.clone(),
            });
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(format!("path:{path}")).or_default() += 1;
        if let Some(m) = model {
            *counts.entry(format!("model:{m}")).or_default() += 1;
        }
        *counts.entry("total".into()).or_default() += 1;
    }

    /// Whether this request should get a random fault.
    fn random_fault(&self) -> Option<u16> {
        (self.options.error_rate > 0.0 && fastrand::f64() < self.options.error_rate)
            .then_some(self.options.error_status)
    }
}

/// The mock's routes, for every wire format it speaks.
pub fn app(options: MockOptions) -> Router {
    let state: Shared = Arc::new(MockState::new(options));
    Router::new()
        .merge(openai::routes())
        .merge(anthropic::routes())
        .merge(bedrock::routes())
        .merge(cohere::routes())
        .merge(azure::routes())
        .merge(gemini::routes())
        .route("/mock/requests", get(recorded))
        .route("/mock/stats", get(stats))
        .route("/mock/reset", post(reset))
        .route(
            "/mock/faults",
            post(add_faults).get(list_faults).delete(clear_faults),
        )
        .route("/health", get(|| async { "ok" }))
        .with_state(state)
}

async fn recorded(State(state): State<Shared>) -> Response {
    let rec = state.recorded.lock().unwrap_or_else(|p| p.into_inner());
    let items: Vec<Value> = rec
        .iter()
        .map(|r| {
            let body = serde_json::from_slice::<Value>(&r.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&r.body).into_owned()));
            json!({"path": r.path, "key_hint": r.key_hint, "headers": r.headers, "body": body})
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "requests": items }))
}

async fn add_faults(State(state): State<Shared>, body: Bytes) -> Response {
    let rules: Vec<FaultRule> = match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Array(_)) => match serde_json::from_value(v) {
            Ok(r) => r,
            Err(e) => {
                return json_response(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()}));
            }
        },
        Ok(v) => match serde_json::from_value(v) {
            Ok(r) => vec![r],
            Err(e) => {
                return json_response(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()}));
            }
        },
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()})),
    };
    let mut faults = state.faults.lock().unwrap_or_else(|p| p.into_inner());
    faults.extend(rules);
    json_response(StatusCode::OK, &json!({"faults": faults.len()}))
}

async fn list_faults(State(state): State<Shared>) -> Response {
    let faults = state
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    json_response(StatusCode::OK, &json!({"faults": faults}))
}

async fn clear_faults(State(state): State<Shared>) -> Response {
    state
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    json_response(StatusCode::OK, &json!({"faults": 0}))
}

async fn stats(State(state): State<Shared>) -> Response {
    let counts = state
        .counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    json_response(StatusCode::OK, &json!(counts))
}

async fn reset(State(state): State<Shared>) -> Response {
    state
        .recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    state
        .counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    json_response(StatusCode::OK, &json!({"reset": true}))
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(value).unwrap_or_default()))
        .expect("static response parts are valid")
}

/// A 200 whose body breaks off: the head is sent, then the connection is cut.
fn dropped_response(content_type: &'static str, prefix: Bytes) -> Response {
    let stream = futures_util::stream::iter(vec![
        Ok(prefix),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "mock dropped the connection",
        )),
    ]);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .expect("static response parts are valid")
}

fn garbage_response() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            "<html><body>502 Bad Gateway (not JSON)</body></html>",
        ))
        .expect("static response parts are valid")
}

/// A running mock (for tests and the CLI).
pub struct RunningMock {
    pub addr: SocketAddr,
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl RunningMock {
    pub async fn start(options: MockOptions, host: &str, port: u16) -> io::Result<RunningMock> {
        let listener = TcpListener::bind((host, port)).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("mock cannot listen on {host}:{port}: {e}"),
            )
        })?;
        Self::start_on(options, listener).await
    }

    pub async fn start_on(options: MockOptions, listener: TcpListener) -> io::Result<RunningMock> {
        use axum::serve::ListenerExt;
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let stop = Arc::new(Notify::new());
        let signal = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app(options))
                .with_graceful_shutdown(async move { signal.notified().await })
                .await
        });
        Ok(RunningMock { addr, stop, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops at once: open connections are dropped, as when a real upstream dies.
    pub fn kill(self) {
        self.task.abort();
    }

    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// A fault decided before answering.
pub(crate) enum Fault {
    Status(u16),
    Garbage,
    Drop,
}

/// The first runtime fault rule matching this request (delays are applied here), consuming one
/// use of it. Returns the fault and the `Retry-After` to send with it.
pub(crate) async fn runtime_fault(
    state: &MockState,
    key: Option<&str>,
    model: &str,
) -> Option<(Fault, Option<u64>)> {
    let rule = {
        let mut faults = state.faults.lock().unwrap_or_else(|p| p.into_inner());
        let i = faults.iter().position(|r| r.matches(key, model))?;
        let rule = faults[i].clone();
        if let Some(n) = &mut faults[i].remaining {
            *n = n.saturating_sub(1);
            if *n == 0 {
                faults.remove(i);
            }
        }
        rule
    };
    if let Some(ms) = rule.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if rule.drop {
        return Some((Fault::Drop, None));
    }
    rule.status.map(|s| (Fault::Status(s), rule.retry_after))
}

/// The answer to a fault, in the API's own shapes: `error` renders a status as that API's error
/// body, `partial_body` is what a dropped connection sends before it is cut.
pub(crate) fn fault_response(
    fault: Fault,
    retry_after: Option<u64>,
    error: impl FnOnce(u16) -> Response,
    partial_body: &'static [u8],
) -> Response {
    match fault {
        Fault::Status(s) => with_retry_after(error(s), retry_after),
        Fault::Garbage => garbage_response(),
        Fault::Drop => dropped_response("application/json", Bytes::from_static(partial_body)),
    }
}

/// The answer to a runtime fault rule (`POST /mock/faults`) matching this request, if any.
pub(crate) async fn runtime_fault_answer(
    state: &MockState,
    key: Option<&str>,
    model: &str,
    error: impl FnOnce(u16) -> Response,
    partial_body: &'static [u8],
) -> Option<Response> {
    let (fault, retry_after) = runtime_fault(state, key, model).await?;
    Some(fault_response(fault, retry_after, error, partial_body))
}

/// Every fault check before a chat answer: a runtime rule first, then the scenario the model name
/// asks for (its latency and delays are applied here). `None`: answer normally.
pub(crate) async fn fault_answer(
    state: &MockState,
    key: Option<&str>,
    model: &str,
    scenario: &reply::Scenario,
    streaming: bool,
    error: impl FnOnce(u16) -> Response,
    partial_body: &'static [u8],
) -> Option<Response> {
    let (fault, retry_after) = match runtime_fault(state, key, model).await {
        Some(found) => found,
        None => (before_answer(state, scenario, streaming).await?, None),
    };
    Some(fault_response(fault, retry_after, error, partial_body))
}

/// Sets `Retry-After` on an error response when a fault rule asked for a specific value.
pub(crate) fn with_retry_after(mut resp: Response, retry_after: Option<u64>) -> Response {
    if let Some(secs) = retry_after
        && let Ok(v) = secs.to_string().parse()
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Applies latency and the scenario's delays, hangs forever for `hang`, and returns the fault to
/// answer with, if any.
pub(crate) async fn before_answer(
    state: &MockState,
    scenario: &reply::Scenario,
    streaming: bool,
) -> Option<Fault> {
    let delay = state.options.latency + scenario.slow.unwrap_or_default();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if scenario.hang {
        std::future::pending::<()>().await;
    }
    if let Some(status) = scenario.fail.or_else(|| state.random_fault()) {
        return Some(Fault::Status(status));
    }
    if scenario.garbage {
        return Some(Fault::Garbage);
    }
    // A streamed answer breaks off mid-stream instead (see `sse_body`).
    (scenario.drop && !streaming).then_some(Fault::Drop)
}

/// An SSE response sending `events` with `delay` between them, then `terminator`. A `drop`
/// scenario cuts the connection after two events; `stall` goes silent after the first.
pub(crate) fn sse_body(
    events: Vec<Bytes>,
    delay: Duration,
    scenario: &reply::Scenario,
    terminator: Option<Bytes>,
) -> Response {
    let mut items = events;
    if let Some(t) = terminator {
        items.push(t);
    }
    let mut resp = streamed_body("text/event-stream", items, delay, scenario);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, "no-cache".parse().expect("valid"));
    resp
}

/// A 200 streaming `items` (SSE events, event-stream frames...) with `delay` between them, with
/// the scenario's stream faults: `drop` cuts the connection after two items, `stall` goes silent
/// after the first.
pub(crate) fn streamed_body(
    content_type: &'static str,
    items: Vec<Bytes>,
    delay: Duration,
    scenario: &reply::Scenario,
) -> Response {
    let drop_after = scenario.drop.then_some(2);
    let stall_after = scenario.stall.then_some(1);
    let stream = futures_util::stream::unfold((0usize, items), move |(i, items)| async move {
        if drop_after == Some(i) {
            // Let what was sent so far reach the client, so the cut is really mid-stream.
            tokio::time::sleep(Duration::from_millis(30)).await;
            let err = io::Error::new(io::ErrorKind::ConnectionReset, "mock dropped the stream");
            return Some((Err(err), (usize::MAX, items)));
        }
        if stall_after == Some(i) {
            std::future::pending::<()>().await;
        }
        let item = items.get(i)?.clone();
        if i > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<Bytes, io::Error>(item), (i + 1, items)))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .expect("static response parts are valid")
}
