//! Upstream connections kept open between requests, by origin (scheme and authority).
//!
//! An HTTP/1 connection carries one exchange at a time: it leaves the pool for a request and is
//! put back when the response's body is dropped (read to its end, or not: hyper then reads off
//! what has already arrived of the rest, or closes the connection, and a connection that closed
//! is skipped when next taken). An HTTP/2 connection, when TLS settles on it, is shared by the
//! requests to its origin, up to [`STREAMS_PER_CONNECTION`] at a time: past that, the next
//! request opens another connection rather than queue behind answers that may take minutes.
//! Connections unused for [`IDLE_TIMEOUT`] are closed by the next sweep, which runs at most
//! every 15 s when the pool is used.
//!
//! Requests to an HTTPS origin that find no connection while another request is opening one
//! wait for it rather than open their own ([`Checkout::Wait`]): when TLS settles on HTTP/2 they
//! all share it, so a burst (at start, or after the upstream closed the connection) costs one
//! handshake, not one per request. An origin whose last connection settled on HTTP/1 is not
//! waited for, since each request needs a connection of its own there; and a request that
//! waited for a connection attempt that failed opens its own, so a failing upstream does not
//! queue everyone behind one attempt after another.
//!
//! It replaces a general-purpose pool that hashed each origin with SipHash several times per
//! request, raced every checkout against a connection attempt and spawned a task per request to
//! put the connection back: a third of what the upstream exchange cost the gateway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use tokio::sync::watch;

pub type RequestBody = Full<Bytes>;

/// Where a connection goes: requests to the same origin share connections.
pub type Origin = (Scheme, Authority);

/// How long an unused connection is kept open.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle HTTP/1 connections kept per origin; past it, connections coming back are closed.
const MAX_IDLE_PER_ORIGIN: usize = 1024;
/// How often the whole pool is swept of expired and closed connections.
const SWEEP_EVERY: Duration = Duration::from_secs(15);
/// Requests sent at once on one HTTP/2 connection before another is opened. hyper does not
/// expose the limit the server announces (SETTINGS_MAX_CONCURRENT_STREAMS), and requests past it
/// would wait on the connection for streams to end; 100 is the least RFC 9113 recommends that
/// servers allow.
pub const STREAMS_PER_CONNECTION: usize = 100;

/// A connection to send a request on.
pub enum Conn {
    H1 {
        sender: http1::SendRequest<RequestBody>,
        /// Requests go to a forwarding proxy, in absolute form.
        proxied: bool,
    },
    H2(http2::SendRequest<RequestBody>, StreamSlot),
}

/// One of an HTTP/2 connection's streams, taken until dropped (with the response's body).
pub struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Shared {
    sender: http2::SendRequest<RequestBody>,
    /// Streams taken ([`StreamSlot`]s alive).
    streams: Arc<AtomicUsize>,
    /// When a request last took a stream.
    used: Instant,
}

impl Shared {
    fn take(&mut self, now: Instant) -> Conn {
        self.streams.fetch_add(1, Ordering::Relaxed);
        self.used = now;
        Conn::H2(self.sender.clone(), StreamSlot(self.streams.clone()))
    }

    fn has_room(&self) -> bool {
        self.streams.load(Ordering::Relaxed) < STREAMS_PER_CONNECTION
    }
}

struct Idle {
    sender: http1::SendRequest<RequestBody>,
    proxied: bool,
    since: Instant,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.saturating_duration_since(self.since) < IDLE_TIMEOUT
    }
}

#[derive(Default)]
struct Connections {
    /// Most recently used last: taken from the end, so the warmest connection serves next and
    /// the coldest ones expire.
    h1: Vec<Idle>,
    /// Open HTTP/2 connections (usually one; more only when requests fill it).
    h2: Vec<Shared>,
    /// TLS settled on HTTP/1 at the origin's last connection: requests do not wait for another's.
    h1_only: bool,
    /// A connection another request is opening, until its [`Opening`] says how it went.
    opening: Option<watch::Receiver<bool>>,
}

impl Connections {
    /// The connection being opened, unless its opener has said how it went (a change) or is
    /// gone (an error).
    fn opening(&self) -> Option<&watch::Receiver<bool>> {
        self.opening
            .as_ref()
            .filter(|o| matches!(o.has_changed(), Ok(false)))
    }
}

/// What a request does for a connection.
pub enum Checkout {
    /// Send on this open connection.
    Ready(Conn),
    /// Another request is opening a connection likely to be HTTP/2: wait until it is settled,
    /// then check out again.
    Wait(OpeningElsewhere),
    /// Open a connection. Held while connecting when given, so that requests coming meanwhile
    /// wait for this connection rather than open theirs.
    Open(Option<Opening>),
}

/// Held by the request opening a connection, to say how it went: opened (shared if HTTP/2,
/// or known to be HTTP/1) or not. Dropped without a word (its request was cancelled), it counts
/// as not opened. Either wakes the requests waiting for it.
pub struct Opening(watch::Sender<bool>);

impl Opening {
    pub fn settled(self, opened: bool) {
        self.0.send_replace(opened);
    }
}

/// A connection being opened by another request.
pub struct OpeningElsewhere(watch::Receiver<bool>);

impl OpeningElsewhere {
    /// Waits until the connection is settled; whether it opened.
    pub async fn opened(mut self) -> bool {
        // An error: the opener is gone without a word.
        self.0.changed().await.is_ok() && *self.0.borrow()
    }
}

/// The open connections of one client.
pub struct Pool {
    state: Mutex<State>,
}

struct State {
    /// foldhash: seeded per map, and origins come from the configuration, not from clients.
    origins: HashMap<Origin, Connections, foldhash::fast::RandomState>,
    last_sweep: Instant,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            state: Mutex::new(State {
                origins: HashMap::default(),
                last_sweep: Instant::now(),
            }),
        }
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; should something, the map is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An open connection to `origin` if the pool has one, else whether to wait for one being
    /// opened (only when `may_wait`) or open one.
    pub fn checkout(&self, origin: &Origin, may_wait: bool) -> Checkout {
        let now = Instant::now();
        let mut state = self.lock();
        state.sweep_if_due(now);
        if let Some(conns) = state.origins.get_mut(origin) {
            if !conns.h2.is_empty() {
                conns.h2.retain(|shared| !shared.sender.is_closed());
                if let Some(shared) = conns.h2.iter_mut().find(|shared| shared.has_room()) {
                    return Checkout::Ready(shared.take(now));
                }
            }
            while let Some(idle) = conns.h1.pop() {
                if idle.usable(now) {
                    return Checkout::Ready(Conn::H1 {
                        sender: idle.sender,
                        proxied: idle.proxied,
                    });
                }
            }
        }
        // Only TLS negotiates HTTP/2 here (no cleartext HTTP/2 by prior knowledge).
        if !may_wait || origin.0 != Scheme::HTTPS {
            return Checkout::Open(None);
        }
        let conns = state.origins.entry(origin.clone()).or_default();
        if conns.h1_only {
            return Checkout::Open(None);
        }
        if let Some(opening) = conns.opening() {
            return Checkout::Wait(OpeningElsewhere(opening.clone()));
        }
        let (sender, receiver) = watch::channel(false);
        conns.opening = Some(receiver);
        Checkout::Open(Some(Opening(sender)))
    }

    /// Records that TLS settled on HTTP/1 with `origin`: its requests stop waiting for one
    /// another's connections (until a connection settles on HTTP/2 again).
    pub fn settled_on_h1(&self, origin: &Origin) {
        self.lock()
            .origins
            .entry(origin.clone())
            .or_default()
            .h1_only = true;
    }

    /// Keeps an HTTP/1 connection whose exchange is over for the next request to `origin`.
    pub fn put_h1(&self, origin: Origin, sender: http1::SendRequest<RequestBody>, proxied: bool) {
        if sender.is_closed() {
            return;
        }
        let since = Instant::now();
        let mut state = self.lock();
        let conns = state.origins.entry(origin).or_default();
        if conns.h1.len() < MAX_IDLE_PER_ORIGIN {
            conns.h1.push(Idle {
                sender,
                proxied,
                since,
            });
        }
    }

    /// Shares a new HTTP/2 connection to `origin` with the requests that follow, and takes its
    /// first stream for the request that opened it.
    pub fn put_h2(&self, origin: Origin, sender: http2::SendRequest<RequestBody>) -> Conn {
        let mut shared = Shared {
            sender,
            streams: Arc::new(AtomicUsize::new(0)),
            used: Instant::now(),
        };
        let conn = shared.take(shared.used);
        let mut state = self.lock();
        let conns = state.origins.entry(origin).or_default();
        conns.h2.push(shared);
        conns.h1_only = false;
        conn
    }

    /// Stops sharing the HTTP/2 connection `slot` is a stream of (the server is closing it).
    pub fn forget_h2(&self, origin: &Origin, slot: &StreamSlot) {
        if let Some(conns) = self.lock().origins.get_mut(origin) {
            conns
                .h2
                .retain(|shared| !Arc::ptr_eq(&shared.streams, &slot.0));
        }
    }

    /// Idle HTTP/1 connections and shared HTTP/2 ones, for tests.
    #[cfg(test)]
    pub fn open(&self, origin: &Origin) -> (usize, usize) {
        let state = self.lock();
        state.origins.get(origin).map_or((0, 0), |c| {
            (
                c.h1.iter().filter(|i| !i.sender.is_closed()).count(),
                c.h2.iter().filter(|s| !s.sender.is_closed()).count(),
            )
        })
    }
}

impl State {
    fn sweep_if_due(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_sweep) < SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        self.origins.retain(|_, conns| {
            conns.h1.retain(|idle| idle.usable(now));
            // One no request took a stream of for a while goes (its streams still open finish).
            conns.h2.retain(|shared| {
                !shared.sender.is_closed()
                    && now.saturating_duration_since(shared.used) < IDLE_TIMEOUT
            });
            // An origin's entry goes with its connections, but not while one is being opened,
            // nor when it is known to speak HTTP/1 only: its requests would otherwise wait once
            // more for one another's connections (origins come from the configuration: few).
            !conns.h1.is_empty()
                || !conns.h2.is_empty()
                || conns.opening().is_some()
                || conns.h1_only
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;

    fn origin(url: &str) -> Origin {
        let uri: http::Uri = url.parse().unwrap();
        (
            uri.scheme().unwrap().clone(),
            uri.authority().unwrap().clone(),
        )
    }

    fn opening(checkout: Checkout) -> Option<Opening> {
        match checkout {
            Checkout::Open(opening) => opening,
            Checkout::Ready(_) => panic!("no connection was put in the pool"),
            Checkout::Wait(_) => panic!("waits where it should open"),
        }
    }

    fn waits(checkout: Checkout) -> OpeningElsewhere {
        match checkout {
            Checkout::Wait(elsewhere) => elsewhere,
            _ => panic!("should wait for the connection being opened"),
        }
    }

    /// An HTTP/2 connection's sending half, over an in-memory pipe whose other end is kept
    /// (nothing answers: the pool only counts what is sent on it).
    async fn h2_sender() -> (http2::SendRequest<RequestBody>, tokio::io::DuplexStream) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (sender, connection) = http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(client),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        (sender, server)
    }

    #[tokio::test]
    async fn requests_to_an_https_origin_wait_for_the_connection_being_opened() {
        let pool = Pool::default();
        let api = origin("https://api.example.com");
        let first = opening(pool.checkout(&api, true)).expect("the first opens and says so");
        let second = waits(pool.checkout(&api, true));
        let third = waits(pool.checkout(&api, true));
        // Another origin is not held up by it.
        assert!(opening(pool.checkout(&origin("https://other.example.com"), true)).is_some());
        // A request whose wait ended in a failure opens its own, and holds nobody up.
        assert!(opening(pool.checkout(&api, false)).is_none());
        let mut second = Box::pin(second.opened());
        assert!(
            (&mut second).now_or_never().is_none(),
            "settled before the opener is done"
        );
        first.settled(false);
        assert!(!second.await, "the opener said it failed");
        assert!(!third.opened().await);
        // The next request opens again; when the opener is dropped without a word (its request
        // cancelled), the waiting ones learn that too.
        let again = opening(pool.checkout(&api, true)).expect("a new opener");
        let waiting = waits(pool.checkout(&api, true));
        drop(again);
        assert!(!waiting.opened().await);
        // One that opened wakes them with the news.
        let (sender, _server) = h2_sender().await;
        let opener = opening(pool.checkout(&api, true)).expect("a new opener");
        let waiting = waits(pool.checkout(&api, true));
        let _stream = pool.put_h2(api.clone(), sender);
        opener.settled(true);
        assert!(waiting.opened().await);
        assert!(matches!(
            pool.checkout(&api, true),
            Checkout::Ready(Conn::H2(..))
        ));
    }

    #[test]
    fn plain_http_and_http1_origins_never_wait() {
        let pool = Pool::default();
        let plain = origin("http://127.0.0.1:8080");
        assert!(opening(pool.checkout(&plain, true)).is_none());
        assert!(opening(pool.checkout(&plain, true)).is_none());
        let tls = origin("https://vllm.internal");
        let first = opening(pool.checkout(&tls, true)).expect("not yet known to be HTTP/1");
        pool.settled_on_h1(&tls);
        first.settled(true);
        // Each request needs its own HTTP/1 connection: none waits for another's.
        assert!(opening(pool.checkout(&tls, true)).is_none());
        assert!(opening(pool.checkout(&tls, true)).is_none());
        // Still known after a sweep, though it has no idle connection (all busy, say).
        pool.lock().last_sweep = Instant::now().checked_sub(SWEEP_EVERY).unwrap();
        assert!(opening(pool.checkout(&tls, true)).is_none());
        assert!(pool.lock().origins.contains_key(&tls));
    }

    #[tokio::test]
    async fn a_full_http2_connection_makes_the_next_request_open_another() {
        let pool = Pool::default();
        let api = origin("https://api.example.com");
        let (sender, _server) = h2_sender().await;
        let mut streams = vec![pool.put_h2(api.clone(), sender)];
        for _ in 1..STREAMS_PER_CONNECTION {
            match pool.checkout(&api, true) {
                Checkout::Ready(conn @ Conn::H2(..)) => streams.push(conn),
                _ => panic!("the connection has room"),
            }
        }
        // Full: the next opens a second connection (and those after it wait for that one).
        let opener = opening(pool.checkout(&api, true)).expect("opens another");
        let _waiting = waits(pool.checkout(&api, true));
        let (second, _server2) = h2_sender().await;
        streams.push(pool.put_h2(api.clone(), second));
        opener.settled(true);
        assert_eq!(pool.open(&api), (0, 2));
        // The second has room now; and a stream given back on the first makes room there too.
        assert!(matches!(
            pool.checkout(&api, true),
            Checkout::Ready(Conn::H2(..))
        ));
        streams.truncate(STREAMS_PER_CONNECTION - 1);
        let Checkout::Ready(Conn::H2(_, slot)) = pool.checkout(&api, true) else {
            panic!("a stream was given back");
        };
        assert!(Arc::ptr_eq(
            &slot.0,
            &pool.lock().origins[&api].h2[0].streams
        ));
    }
}
