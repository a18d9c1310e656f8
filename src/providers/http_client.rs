//! The upstream HTTP client: hyper's connections over TCP, TLS with rustls and the platform's
//! trust store, HTTP/1.1 or HTTP/2 as ALPN settles, kept open between requests (`pool.rs`), and
//! proxies from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, as curl
//! reads them).
//!
//! It sits on hyper directly rather than on a general-purpose client because a provider call
//! needs none of the extras (redirects, cookies, decompression) and their layers cost more per
//! request than the rest of the gateway's work: a general-purpose client re-parsed the URL
//! twice and copied the headers on every call.
//!
//! Requests are built with [`RequestBuilder`], whose methods mirror the usual builder style
//! (`header`, `bearer_auth`, `body`); an invalid header is remembered and reported by
//! [`RequestBuilder::send`], so adapters chain without handling errors at each step.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::uri::Scheme;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tower_service::Service;

use super::pool::{Checkout, Conn, Origin, Pool, RequestBody, StreamSlot};
use crate::memo::Recent;
use crate::secret::Secret;

/// An upstream's response; its body is read whole with [`body_bytes`], or as a stream of chunks.
pub type Response = http::Response<ResponseBody>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("ferrogate/", env!("CARGO_PKG_VERSION")));

/// A pooled HTTP client (a reference-counted handle: cheap to clone).
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    connector: hyper_rustls::HttpsConnector<Connector>,
    pool: Pool,
    /// Present only when a proxy variable is set, so the usual case checks nothing per request.
    proxies: Option<Arc<Matcher>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("proxied", &self.inner.proxies.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with TCP_NODELAY on (streamed chunks are small and must not wait for Nagle's
    /// algorithm) and the given connect timeout.
    pub fn new(connect_timeout: Duration) -> Result<HttpClient, String> {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.set_nodelay(true);
        // The TLS layer above hands `https` destinations down for the TCP part.
        tcp.enforce_http(false);
        let proxies = proxies_from_env();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(Connector {
                tcp,
                proxies: proxies.clone(),
            });
        Ok(HttpClient {
            inner: Arc::new(Inner {
                connector,
                pool: Pool::default(),
                proxies,
            }),
        })
    }

    /// A request to an absolute URL. An invalid URL is reported when the request is sent.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let request = parse_url(url).map(|ParsedUrl { uri, target }| {
            let mut request = Request::new(Full::new(Bytes::new()));
            *request.method_mut() = method;
            *request.uri_mut() = uri;
            (request, target)
        });
        RequestBuilder {
            client: self.clone(),
            request,
        }
    }

    pub fn post(&self, url: &str) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    pub fn get(&self, url: &str) -> RequestBuilder {
        self.request(Method::GET, url)
    }
}

/// The TLS settings every client starts from: rustls with the platform's verifier. Building the
/// verifier reads the system's trust store (a few hundred files), so it happens once per
/// process, not for each client (one per worker thread and connect timeout).
fn tls_config() -> Result<rustls::ClientConfig, String> {
    static CONFIG: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls_platform_verifier::ConfigVerifierExt as _;
            super::transport::ensure_crypto_provider();
            rustls::ClientConfig::with_platform_verifier()
                .map_err(|e| format!("cannot load the platform's TLS trust store: {e}"))
        })
        .clone()
}

/// The proxy rules from the environment, when any proxy variable is set.
fn proxies_from_env() -> Option<Arc<Matcher>> {
    const VARS: [&str; 6] = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ];
    VARS.iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
        .then(|| Arc::new(Matcher::from_env()))
}

/// A request being built; see the module documentation.
pub struct RequestBuilder {
    client: HttpClient,
    /// With where it goes, from its URL.
    request: Result<(Request<RequestBody>, Target), String>,
}

impl RequestBuilder {
    /// Adds a header (several with the same name are all sent). An invalid name or value fails
    /// the request when it is sent; the value is never quoted in that error.
    pub fn header<K, V>(self, name: K, value: V) -> RequestBuilder
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        self.append(name, value, false)
    }

    /// Adds a header carrying a credential (an API key, a signature, a configured secret
    /// header): like [`header`](Self::header), and marked sensitive, so HTTP/2 header
    /// compression never indexes it (a compression table is shared state an attacker can probe).
    pub fn secret_header<K, V>(self, name: K, value: V) -> RequestBuilder
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        self.append(name, value, true)
    }

    fn append<K, V>(mut self, name: K, value: V, sensitive: bool) -> RequestBuilder
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        if let Ok((request, _)) = &mut self.request {
            match HeaderName::try_from(name) {
                Ok(name) => match HeaderValue::try_from(value) {
                    Ok(mut value) => {
                        value.set_sensitive(sensitive);
                        request.headers_mut().append(name, value);
                    }
                    Err(_) => {
                        self.request = Err(format!("invalid value for header `{name}`"));
                    }
                },
                Err(_) => self.request = Err("invalid header name".to_string()),
            }
        }
        self
    }

    /// `Authorization: Bearer <token>`, marked sensitive (never indexed by HTTP/2 compression).
    pub fn bearer_auth(self, token: &str) -> RequestBuilder {
        // `concat` rather than `format!`: no formatting machinery for a plain join.
        self.secret_header(http::header::AUTHORIZATION, ["Bearer ", token].concat())
    }

    /// As [`bearer_auth`](Self::bearer_auth), with the header value the secret keeps for reuse.
    pub fn bearer_secret(mut self, secret: &Secret) -> RequestBuilder {
        if let Ok((request, _)) = &mut self.request {
            match secret.bearer_header() {
                Some(value) => {
                    request
                        .headers_mut()
                        .append(http::header::AUTHORIZATION, value);
                }
                None => self.request = Err("invalid value for header `authorization`".to_string()),
            }
        }
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> RequestBuilder {
        if let Ok((request, _)) = &mut self.request {
            *request.body_mut() = Full::new(body.into());
        }
        self
    }

    /// Sends the request and waits for the response head, on an open connection to the origin
    /// if the pool has one, else on a new one. No deadline here: callers bound the whole
    /// exchange with theirs.
    pub async fn send(self) -> Result<Response, SendError> {
        let (mut request, Target { origin, host }) =
            self.request.map_err(SendError::InvalidRequest)?;
        let headers = request.headers_mut();
        if !headers.contains_key(http::header::USER_AGENT) {
            headers.insert(http::header::USER_AGENT, USER_AGENT);
        }
        let inner = self.client.inner;
        if let Some(proxies) = &inner.proxies
            && request.uri().scheme() == Some(&Scheme::HTTP)
            && let Some(mut auth) = proxies
                .intercept(request.uri())
                .and_then(|p| p.basic_auth().cloned())
        {
            // A plain-HTTP request goes to the proxy itself, which wants the credentials on it.
            auth.set_sensitive(true);
            request
                .headers_mut()
                .insert(http::header::PROXY_AUTHORIZATION, auth);
        }
        let uri = request.uri().clone();
        let mut may_wait = true;
        let mut times_turned_away = 0;
        loop {
            let (conn, opened) = match inner.pool.checkout(&origin, may_wait) {
                Checkout::Ready(conn) => (conn, false),
                Checkout::Wait(elsewhere) => {
                    // Boxed: rare, and it would otherwise add its size to every request's.
                    // After a connection that failed, this request opens its own.
                    may_wait = Box::pin(elsewhere.opened()).await;
                    continue;
                }
                Checkout::Open(opening) => {
                    // Boxed: a connection's handshake (HTTP/2's above all) is a large future,
                    // and inline it would make every request's future that size, copied whole
                    // each time it moves.
                    let conn = Box::pin(inner.connect(&origin, uri.clone())).await;
                    // Shared if HTTP/2, or recorded as HTTP/1: the requests that waited check
                    // out again.
                    if let Some(opening) = opening {
                        opening.settled(conn.is_ok());
                    }
                    (conn?, true)
                }
            };
            match inner.send_on(conn, &origin, request, host.as_ref()).await {
                Ok(response) => return Ok(response),
                // A new connection that closes before taking a request is not tried again:
                // another would likely do the same.
                Err(Attempt::Unsent(_, e)) if opened => return Err(SendError::Http(e)),
                // A pooled connection the upstream has closed since gives the request back
                // unsent: it goes on the next one, or on a new connection.
                Err(Attempt::Unsent(mut unsent, _)) => {
                    *unsent.uri_mut() = uri.clone();
                    request = *unsent;
                }
                // A server closing an HTTP/2 connection gracefully (GOAWAY, which many send
                // every so many requests, and a draining server at once) or refusing a stream
                // turns away requests it has not taken up: they go again, on another connection
                // after a GOAWAY, up to a few times.
                Err(Attempt::TurnedAway(again, e)) => {
                    times_turned_away += 1;
                    if times_turned_away > MAX_TURNED_AWAY {
                        return Err(SendError::Http(e));
                    }
                    request = *again;
                }
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
    }
}

/// How sending on one connection failed.
enum Attempt {
    /// Nothing was sent (the connection had closed): the request may go on another.
    Unsent(Box<Request<RequestBody>>, hyper::Error),
    /// Sent on HTTP/2 and turned away unprocessed by the server: a copy may go on another.
    TurnedAway(Box<Request<RequestBody>>, hyper::Error),
    Failed(SendError),
}

/// How many times a request turned away unprocessed is sent again.
const MAX_TURNED_AWAY: u32 = 3;

/// How the server turned an HTTP/2 request away without processing it, so that it may be sent
/// again as it is (RFC 9113, 8.7).
#[derive(PartialEq)]
enum TurnedAway {
    /// Started after the last stream the server's GOAWAY let through (or after the GOAWAY
    /// itself). Streams it had taken up fail otherwise if the connection then breaks (a broken
    /// pipe, not a GOAWAY).
    GoingAway,
    /// Reset with `REFUSED_STREAM`.
    Refused,
}

fn turned_away(e: &hyper::Error) -> Option<TurnedAway> {
    let e = std::error::Error::source(e)?.downcast_ref::<h2::Error>()?;
    if !e.is_remote() {
        None
    } else if e.is_go_away() {
        Some(TurnedAway::GoingAway)
    } else if e.reason() == Some(h2::Reason::REFUSED_STREAM) {
        Some(TurnedAway::Refused)
    } else {
        None
    }
}

/// A copy of a request to send again; the body's bytes are shared, not copied.
fn copy_of(request: &Request<RequestBody>) -> Request<RequestBody> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

impl Inner {
    /// Opens a connection to `origin` (whose URL is `uri`): HTTP/2 if TLS settled on it, which
    /// the pool then shares, else HTTP/1. The connection's task runs on the calling runtime.
    async fn connect(&self, origin: &Origin, uri: Uri) -> Result<Conn, SendError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(SendError::Connect)?;
        let io = connector.call(uri).await.map_err(SendError::Connect)?;
        let connected = io.connected();
        if connected.is_negotiated_h2() {
            let (sender, connection) =
                hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(io)
                    .await
                    .map_err(|e| SendError::Connect(e.into()))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection closed");
                }
            });
            return Ok(self.pool.put_h2(origin.clone(), sender));
        }
        if origin.0 == Scheme::HTTPS {
            self.pool.settled_on_h1(origin);
        }
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream HTTP/1 connection closed");
            }
        });
        Ok(Conn::H1 {
            sender,
            proxied: connected.is_proxied(),
        })
    }

    /// Sends `request` on `conn`; an HTTP/1 connection goes back to the pool with the response
    /// body ([`ResponseBody`]).
    async fn send_on(
        self: &Arc<Self>,
        conn: Conn,
        origin: &Origin,
        mut request: Request<RequestBody>,
        host: Option<&HeaderValue>,
    ) -> Result<Response, Attempt> {
        let (mut sender, proxied) = match conn {
            Conn::H2(mut sender, slot) => {
                // Kept in case the server turns the request away; HTTP/2 requests go to remote
                // providers, where this costs little beside the TLS and the network.
                let again = copy_of(&request);
                // HTTP/2 takes the URL whole (`:scheme`, `:authority`, `:path`) and no `Host`.
                return match sender.try_send_request(request).await {
                    Ok(response) => Ok(response
                        .map(|body| ResponseBody::new(body, Some(Held::Stream { _slot: slot })))),
                    Err(e) => match (e.message(), turned_away(e.error())) {
                        (None, Some(how)) => {
                            // After a GOAWAY the connection takes no new requests.
                            if how == TurnedAway::GoingAway {
                                self.pool.forget_h2(origin, &slot);
                            }
                            Err(Attempt::TurnedAway(Box::new(again), e.into_error()))
                        }
                        _ => Err(unsent_or_failed(e)),
                    },
                };
            }
            Conn::H1 { sender, proxied } => (sender, proxied),
        };
        if let Some(host) = host {
            request
                .headers_mut()
                .entry(http::header::HOST)
                .or_insert_with(|| host.clone());
        }
        if !proxied {
            origin_form(request.uri_mut());
        }
        // A connection back in the pool may still be finishing its last exchange (reading off
        // the rest of a body nobody read): wait for it, or learn that it closed.
        if let Err(e) = sender.ready().await {
            return Err(Attempt::Unsent(Box::new(request), e));
        }
        match sender.try_send_request(request).await {
            Ok(response) => {
                let release = Release {
                    client: self.clone(),
                    origin: origin.clone(),
                    sender,
                    proxied,
                };
                Ok(response.map(|body| ResponseBody::new(body, Some(Held::Connection(release)))))
            }
            Err(e) => Err(unsent_or_failed(e)),
        }
    }
}

fn unsent_or_failed(mut e: TrySendError<Request<RequestBody>>) -> Attempt {
    match e.take_message() {
        Some(request) => Attempt::Unsent(Box::new(request), e.into_error()),
        None => Attempt::Failed(SendError::Http(e.into_error())),
    }
}

/// The path and query of `uri` only, as HTTP/1 sends it to an origin server.
fn origin_form(uri: &mut Uri) {
    *uri = match uri.path_and_query() {
        Some(path) if path.as_str() != "/" => Uri::from(path.clone()),
        _ => Uri::from_static("/"),
    };
}

/// An upstream response's body. The HTTP/1 connection it came on goes back to the pool when it
/// is dropped, unless reading it failed (the connection is then broken); the HTTP/2 stream it
/// came on is given back to its connection.
///
/// Read whole with [`body_bytes`], or as a stream of data chunks (trailers skipped).
pub struct ResponseBody {
    /// Until its end has been read (or, when the body is dropped before, until its drop hands
    /// it to a task reading off the rest).
    inner: Option<Incoming>,
    /// What it holds of its connection, given back on drop.
    held: Option<Held>,
    /// See [`ResponseBody::read_rest_when_dropped`].
    read_rest: bool,
}

/// How long a body whose message is over may take to end before its connection is given up.
const REST_GRACE: Duration = Duration::from_secs(1);
/// How much of such a body is read off at most; an upstream still sending past it is still
/// answering, and its connection is closed instead.
const REST_LIMIT: usize = 64 * 1024;

/// What a response body holds of the connection it came on.
enum Held {
    /// HTTP/1: the whole connection, back to the pool when the body is dropped.
    Connection(Release),
    /// HTTP/2: one stream of a shared connection, given back when the body is dropped.
    Stream { _slot: StreamSlot },
}

impl ResponseBody {
    fn new(inner: Incoming, held: Option<Held>) -> Self {
        ResponseBody {
            inner: Some(inner),
            held,
            read_rest: false,
        }
    }

    /// Says that the caller has the whole message by its own format (an event stream's end
    /// event, say) and will drop the body without reading its end. Dropped that way, the body's
    /// remaining bytes (typically the terminating chunk the upstream writes just after its last
    /// event) are read off in the background before its connection goes back to the pool:
    /// hyper closes a connection whose body is dropped before its end has arrived, and a
    /// server that flushes each event writes the end separately.
    pub fn read_rest_when_dropped(&mut self) {
        self.read_rest = true;
    }

    /// Polls the body, noting its end and whether reading it failed.
    fn poll_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.inner = None,
            // A broken HTTP/1 connection is not put back.
            Poll::Ready(Some(Err(_))) => self.held = None,
            _ => {}
        }
        polled
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("pooled", &self.held.is_some())
            .finish()
    }
}

struct Release {
    client: Arc<Inner>,
    origin: Origin,
    sender: hyper::client::conn::http1::SendRequest<RequestBody>,
    proxied: bool,
}

impl Release {
    fn put_back(self) {
        self.client
            .pool
            .put_h1(self.origin, self.sender, self.proxied);
    }

    /// Reads off the rest of `body` in a task of its own and puts the connection back if the
    /// body ends within [`REST_GRACE`] and [`REST_LIMIT`]; otherwise both are dropped and the
    /// connection closes.
    fn after_rest_of(self, mut body: Incoming) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to read on (the process is shutting down): hyper reads off what
            // already arrived, or closes the connection.
            return self.put_back();
        };
        runtime.spawn(async move {
            // By the time this runs the end has mostly arrived (it came with the last event, or
            // just after it): no timer needed then.
            let mut reading = std::pin::pin!(read_off(&mut body));
            let ended = match reading.as_mut().now_or_never() {
                Some(ended) => ended,
                None => tokio::time::timeout(REST_GRACE, reading)
                    .await
                    .unwrap_or(false),
            };
            if ended {
                self.put_back();
            }
        });
    }
}

/// Reads `body` to its end, discarding it; false if it fails or exceeds [`REST_LIMIT`].
async fn read_off(body: &mut Incoming) -> bool {
    let mut left = REST_LIMIT;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return false };
        let len = frame.data_ref().map_or(0, Bytes::len);
        if len > left {
            return false;
        }
        left -= len;
    }
    true
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        let Some(Held::Connection(release)) = self.held.take() else {
            return;
        };
        match self.inner.take() {
            Some(rest) if self.read_rest && !rest.is_end_stream() => release.after_rest_of(rest),
            _ => release.put_back(),
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        self.get_mut().poll_inner(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

/// The body's data chunks as they arrive; trailers are skipped.
impl futures_util::Stream for ResponseBody {
    type Item = Result<Bytes, hyper::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            return match this.poll_inner(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Poll::Ready(Some(Ok(data))),
                    Err(_trailers) => continue,
                },
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

/// An absolute URL parsed, with its `Host` header.
#[derive(Debug, Clone)]
struct ParsedUrl {
    uri: Uri,
    target: Target,
}

/// Where a request goes, as its connection and its HTTP/1 `Host` header need it.
#[derive(Debug, Clone)]
struct Target {
    origin: Origin,
    host: Option<HeaderValue>,
}

thread_local! {
    /// The thread's recently parsed URLs: a gateway sends to a handful (a deployment's base URL
    /// and an endpoint path), and parsing one into a `Uri` and a `Host` value costs more than the
    /// rest of building the request; a clone shares the parsed parts.
    static URLS: RefCell<Recent<ParsedUrl, 16>> = const { RefCell::new(Recent::new()) };
}

fn parse_url(url: &str) -> Result<ParsedUrl, String> {
    URLS.with_borrow_mut(|parsed| {
        parsed.get_or_try(url, |url| match Uri::try_from(url) {
            Ok(uri) => match (uri.scheme(), uri.authority()) {
                (Some(scheme), Some(authority)) => Ok(ParsedUrl {
                    target: Target {
                        origin: (scheme.clone(), authority.clone()),
                        host: host_header(authority),
                    },
                    uri,
                }),
                // The URL may carry a key in its query: only say what is wrong with it.
                _ => Err("the upstream URL is not absolute (scheme and host needed)".to_string()),
            },
            Err(e) => Err(format!("the upstream URL is invalid: {e}")),
        })
    })
}

/// `Host` for an HTTP/1 request to `authority`: its authority as written (`host` or `host:port`),
/// unless it holds credentials (`user:pass@host`), which must not go into a header (nor does it
/// go on HTTP/2, which carries the authority in `:authority`).
fn host_header(authority: &http::uri::Authority) -> Option<HeaderValue> {
    let authority = authority.as_str();
    if authority.contains('@') {
        return None;
    }
    HeaderValue::from_str(authority).ok()
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request could not be built (an invalid URL or header); nothing was sent.
    #[error("{0}")]
    InvalidRequest(String),
    /// No connection could be made (refused, unresolvable, timed out, TLS handshake, proxy
    /// refused).
    #[error("cannot connect")]
    Connect(#[source] BoxError),
    /// The connection failed during the exchange.
    #[error("the connection failed")]
    Http(#[source] hyper::Error),
}

impl SendError {
    /// The connection could not be made (refused, unresolvable, TLS handshake, proxy refused).
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }

    /// Somewhere in the chain, an operation timed out (the connect timeout, mostly).
    pub fn is_timeout(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = source {
            if err
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut)
            {
                return true;
            }
            source = err.source();
        }
        false
    }
}

/// Reads a whole response body.
pub async fn body_bytes(body: ResponseBody) -> Result<Bytes, hyper::Error> {
    Ok(body.collect().await?.to_bytes())
}

/// Opens TCP connections, directly or through the proxy the environment names for the
/// destination. TLS, when the destination wants it, is added above this (end to end, so through
/// a proxy's tunnel too).
#[derive(Clone)]
struct Connector {
    tcp: HttpConnector,
    proxies: Option<Arc<Matcher>>,
}

impl Service<Uri> for Connector {
    type Response = ProxiedOrDirect;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ProxiedOrDirect, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let proxy = self.proxies.as_ref().and_then(|m| m.intercept(&dst));
        let mut tcp = self.tcp.clone();
        Box::pin(async move {
            let Some(proxy) = proxy else {
                let io = tcp.call(dst).await?;
                return Ok(ProxiedOrDirect { io, proxied: false });
            };
            if proxy.uri().scheme() != Some(&Scheme::HTTP) {
                return Err(format!(
                    "proxy scheme `{}` is not supported (use an http:// proxy URL)",
                    proxy.uri().scheme_str().unwrap_or("")
                )
                .into());
            }
            let via = ViaProxy::new(proxy.uri());
            if dst.scheme() == Some(&Scheme::HTTPS) {
                // CONNECT through the proxy; TLS then runs end to end inside the tunnel.
                let mut tunnel = Tunnel::new(proxy.uri().clone(), tcp);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let io = tunnel.call(dst).await.map_err(|e| via.error(e))?;
                Ok(ProxiedOrDirect { io, proxied: false })
            } else {
                // Plain HTTP is sent to the proxy itself, in absolute form.
                let io = tcp
                    .call(proxy.uri().clone())
                    .await
                    .map_err(|e| via.error(e))?;
                Ok(ProxiedOrDirect { io, proxied: true })
            }
        })
    }
}

/// A failure to connect through a proxy, naming the proxy (host and port only: its URL may hold
/// credentials) so that it is not mistaken for the upstream's.
#[derive(Debug)]
struct ViaProxy {
    proxy: String,
    source: Option<BoxError>,
}

impl ViaProxy {
    fn new(proxy: &Uri) -> ViaProxy {
        let proxy = match (proxy.host(), proxy.port_u16()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => "(unnamed)".to_string(),
        };
        ViaProxy {
            proxy,
            source: None,
        }
    }

    fn error(&self, source: impl Into<BoxError>) -> BoxError {
        Box::new(ViaProxy {
            proxy: self.proxy.clone(),
            source: Some(source.into()),
        })
    }
}

impl std::fmt::Display for ViaProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "through the proxy {} (from the environment's proxy variables)",
            self.proxy
        )
    }
}

impl std::error::Error for ViaProxy {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// A TCP connection, saying whether requests on it go to a forwarding proxy (which makes the
/// client write absolute URIs).
struct ProxiedOrDirect {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for ProxiedOrDirect {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for ProxiedOrDirect {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for ProxiedOrDirect {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> HttpClient {
        HttpClient::new(Duration::from_secs(1)).unwrap()
    }

    #[tokio::test]
    async fn bad_urls_and_headers_fail_at_send_without_quoting_values() {
        let err = client()
            .get("/relative/path")
            .send()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not absolute"), "{err}");

        let err = client()
            .get("http://exa mple.com/?key=SECRET")
            .send()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");

        let err = client()
            .get("http://127.0.0.1:9/")
            .header("x-api-key", "SECRET\nInjected: 1")
            .send()
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::InvalidRequest(_)), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("x-api-key") && !err.contains("SECRET"),
            "{err}"
        );

        let err = client()
            .get("http://127.0.0.1:9/")
            .bearer_auth("SECRET\r\n")
            .send()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("authorization") && !err.contains("SECRET"),
            "{err}"
        );
    }

    #[test]
    fn parsed_urls_are_reused_and_bounded() {
        let url = "http://127.0.0.1:8080/v1/chat/completions";
        let first = parse_url(url).unwrap();
        let again = parse_url(url).unwrap();
        assert_eq!(again.uri, first.uri);
        assert_eq!(again.target.host.unwrap(), "127.0.0.1:8080");
        for i in 0..40 {
            let other = format!("https://h{i}.example/v1/x?key={i}");
            let parsed = parse_url(&other).unwrap();
            assert_eq!(parsed.uri.to_string(), other);
            assert_eq!(
                parsed.target.host.unwrap(),
                format!("h{i}.example").as_str()
            );
        }
        URLS.with_borrow(|kept| assert_eq!(kept.len(), 16));
        // Replaced by then, and parsed again the same.
        assert_eq!(parse_url(url).unwrap().uri, first.uri);
        // Failures are not kept: each is reported again.
        for _ in 0..2 {
            assert!(parse_url("/relative").unwrap_err().contains("not absolute"));
        }
        assert!(
            parse_url("http://user:pass@h.example/")
                .unwrap()
                .target
                .host
                .is_none()
        );
    }

    /// An HTTP/1 server on 127.0.0.1 that answers each request on a connection with `answer`
    /// (given the connection's and the request's numbers, from 1), then does what it returns;
    /// it counts the connections it accepted.
    async fn counting_server(
        answer: impl Fn(usize, usize) -> (String, AfterAnswer) + Send + Sync + 'static,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/things", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let conn = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    for request in 1.. {
                        while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
                            match sock.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&buf[..n]),
                            }
                        }
                        let end = String::from_utf8_lossy(&seen).find("\r\n\r\n").unwrap() + 4;
                        seen.drain(..end);
                        let (response, after) = answer(conn, request);
                        if sock.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                        match after {
                            AfterAnswer::KeepOpen => {}
                            AfterAnswer::Finish(after, rest) => {
                                tokio::time::sleep(after).await;
                                if sock.write_all(rest.as_bytes()).await.is_err() {
                                    return;
                                }
                            }
                            AfterAnswer::Close => return,
                            AfterAnswer::Hang => {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    #[derive(Clone, Copy)]
    enum AfterAnswer {
        KeepOpen,
        /// Writes the rest of the answer after a while, and keeps the connection open.
        Finish(Duration, &'static str),
        Close,
        Hang,
    }

    /// A [`counting_server`] whose first connection answers its first request with `first` and
    /// then does `after`; every other answer is its connection's and request's numbers.
    async fn first_answer_then_numbers(
        first: &'static str,
        after: AfterAnswer,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        counting_server(move |conn, req| match (conn, req) {
            (1, 1) => (first.to_string(), after),
            _ => (ok(&format!("{conn}.{req}")), AfterAnswer::KeepOpen),
        })
        .await
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn origin_of(url: &str) -> Origin {
        let uri: Uri = url.parse().unwrap();
        (
            uri.scheme().unwrap().clone(),
            uri.authority().unwrap().clone(),
        )
    }

    async fn get_text(client: &HttpClient, url: &str) -> Result<String, String> {
        let response = client.get(url).send().await.map_err(|e| e.to_string())?;
        let body = body_bytes(response.into_body())
            .await
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn requests_one_after_another_share_one_connection() {
        let (url, accepted) =
            counting_server(|conn, req| (ok(&format!("{conn}.{req}")), AfterAnswer::KeepOpen))
                .await;
        let client = client();
        for expected in ["1.1", "1.2", "1.3"] {
            assert_eq!(get_text(&client, &url).await.unwrap(), expected);
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(client.inner.pool.open(&origin_of(&url)), (1, 0));

        // Two at once need two connections; both are kept for the requests that follow.
        let (a, b) = tokio::join!(get_text(&client, &url), get_text(&client, &url));
        let mut got = [a.unwrap(), b.unwrap()];
        got.sort();
        assert_eq!(got, ["1.4", "2.1"]);
        assert_eq!(client.inner.pool.open(&origin_of(&url)), (2, 0));
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_used_again() {
        // Each connection answers once, then the server closes it (as an upstream does when its
        // keep-alive timeout passes).
        let (url, accepted) =
            counting_server(|conn, _| (ok(&conn.to_string()), AfterAnswer::Close)).await;
        let client = client();
        for expected in ["1", "2", "3"] {
            assert_eq!(get_text(&client, &url).await.unwrap(), expected);
            // The client notices the close while the connection is idle.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(client.inner.pool.open(&origin_of(&url)), (0, 0));
    }

    #[tokio::test]
    async fn a_body_left_unread_does_not_reach_the_next_request() {
        // The first answer promises more body than it sends and the server then goes quiet: a
        // caller that drops the body must not leave the rest to be read as the next answer.
        let (url, accepted) = first_answer_then_numbers(
            "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial",
            AfterAnswer::Hang,
        )
        .await;
        let client = client();
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        drop(response);
        assert_eq!(get_text(&client, &url).await.unwrap(), "2.1");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);

        // A body read to its end leaves its connection to the next request, even when the
        // caller stops before the end of the stream is seen.
        let response = client.get(&url).send().await.unwrap();
        let mut frames = response.into_body();
        use futures_util::StreamExt;
        assert_eq!(frames.next().await.unwrap().unwrap(), "2.2");
        drop(frames);
        assert_eq!(get_text(&client, &url).await.unwrap(), "2.3");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_stream_over_by_its_format_keeps_its_connection_when_its_end_comes_late() {
        use futures_util::StreamExt;
        use std::sync::atomic::Ordering;
        // The answer's last event, then its terminating chunk 50 ms later (a server that flushes
        // each event writes the end on its own).
        let (url, accepted) = counting_server(|conn, req| match req {
            1 => (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nlast.\r\n".to_string(),
                AfterAnswer::Finish(Duration::from_millis(50), "0\r\n\r\n"),
            ),
            _ => (ok(&format!("{conn}.{req}")), AfterAnswer::KeepOpen),
        })
        .await;
        let client = client();
        let last_event = |read_rest: bool| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let mut body = client.get(&url).send().await.unwrap().into_body();
                assert_eq!(body.next().await.unwrap().unwrap(), "last.");
                if read_rest {
                    body.read_rest_when_dropped();
                }
                drop(body);
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        };
        // Dropped as it is, before its end arrived: hyper gives the connection up.
        last_event(false).await;
        assert_eq!(client.inner.pool.open(&origin_of(&url)), (0, 0));
        // Said to be over, its end is read off and the connection kept for the next request.
        last_event(true).await;
        assert_eq!(client.inner.pool.open(&origin_of(&url)), (1, 0));
        assert_eq!(get_text(&client, &url).await.unwrap(), "2.2");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_stream_whose_end_never_comes_gives_its_connection_up() {
        use futures_util::StreamExt;
        use std::sync::atomic::Ordering;
        // The last event, then nothing: the body never ends.
        let (url, accepted) = first_answer_then_numbers(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nlast.\r\n",
            AfterAnswer::Hang,
        )
        .await;
        let client = client();
        let mut body = client.get(&url).send().await.unwrap().into_body();
        assert_eq!(body.next().await.unwrap().unwrap(), "last.");
        body.read_rest_when_dropped();
        drop(body);
        // Not kept past the grace period, and never handed to another request meanwhile.
        assert_eq!(get_text(&client, &url).await.unwrap(), "2.1");
        tokio::time::sleep(REST_GRACE + Duration::from_millis(200)).await;
        assert_eq!(client.inner.pool.open(&origin_of(&url)), (1, 0));
        assert_eq!(get_text(&client, &url).await.unwrap(), "2.2");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_that_breaks_is_an_error_and_its_connection_is_dropped() {
        let (url, accepted) = counting_server(|conn, _| match conn {
            1 => (
                "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\ncut short".to_string(),
                AfterAnswer::Close,
            ),
            _ => (ok("whole"), AfterAnswer::KeepOpen),
        })
        .await;
        let client = client();
        let err = get_text(&client, &url).await.unwrap_err();
        assert!(!err.is_empty());
        assert_eq!(get_text(&client, &url).await.unwrap(), "whole");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn refused_connection_is_a_connect_error() {
        // Bind then drop a listener: its port is (almost certainly) closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = client()
            .get(&format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        assert!(!err.is_timeout(), "{err:?}");
    }

    #[test]
    fn credential_headers_are_marked_sensitive() {
        let builder = client()
            .post("http://127.0.0.1:1/v1/things")
            .header("x-plain", "a")
            .secret_header("x-api-key", "k")
            .bearer_auth("t");
        let headers = builder.request.as_ref().unwrap().0.headers();
        assert!(!headers["x-plain"].is_sensitive());
        assert!(headers["x-api-key"].is_sensitive());
        assert!(headers["authorization"].is_sensitive());
    }

    #[tokio::test]
    async fn sends_headers_body_and_user_agent_and_reads_the_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // Head and the 5-byte body.
            while !String::from_utf8_lossy(&seen).ends_with("hello") {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed early");
                seen.extend_from_slice(&buf[..n]);
            }
            sock.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nx-up: 1\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8(seen).unwrap()
        });
        let resp = client()
            .post(&format!("http://{addr}/v1/things"))
            .header("x-one", "1")
            .header("x-one", "2")
            .bearer_auth("tok")
            .body(b"hello".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["x-up"], "1");
        assert_eq!(body_bytes(resp.into_body()).await.unwrap(), "ok");
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(
            request.starts_with("post /v1/things http/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("x-one: 1\r\n") && request.contains("x-one: 2\r\n"));
        assert!(
            request.contains("authorization: bearer tok\r\n"),
            "{request}"
        );
        assert!(request.contains("content-length: 5\r\n"), "{request}");
        assert!(request.contains("user-agent: ferrogate/"), "{request}");
        assert!(request.contains(&format!("host: {addr}\r\n")), "{request}");
    }
}
