//! Upstream connections kept open between requests, by origin (scheme and authority).
//!
//! An HTTP/1 connection carries one exchange at a time: it leaves the pool for a request and is
//! put back when the response's body is dropped (read to its end, or not: hyper then reads off
//! what has already arrived of the rest, or closes the connection, and a connection that closed
//! is skipped when next taken). An HTTP/2 connection, when TLS settles on it, is shared by every
//! request to its origin. Connections unused for [`IDLE_TIMEOUT`] are closed by the next sweep,
//! which runs at most every 15 s when the pool is used.
//!
//! Requests to an HTTPS origin that find no connection while another request is opening one
//! wait for it rather than open their own ([`Checkout::Wait`]): when TLS settles on HTTP/2 they
//! all share it, so a burst (at start, or after the upstream closed the connection) costs one
//! handshake, not one per request. An origin whose last connection settled on HTTP/1 is not
//! waited for, since each request needs a connection of its own there; and a request waits at
//! most once, so a connection attempt that fails is not queued behind by everyone else.
//!
//! It replaces a general-purpose pool that hashed each origin with SipHash several times per
//! request, raced every checkout against a connection attempt and spawned a task per request to
//! put the connection back: a third of what the upstream exchange cost the gateway.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
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

/// A connection to send a request on.
pub enum Conn {
    H1 {
        sender: http1::SendRequest<RequestBody>,
        /// Requests go to a forwarding proxy, in absolute form.
        proxied: bool,
    },
    H2(http2::SendRequest<RequestBody>),
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
    /// With when it was last taken.
    h2: Option<(http2::SendRequest<RequestBody>, Instant)>,
    /// TLS settled on HTTP/1 at the origin's last connection: requests do not wait for another's.
    h1_only: bool,
    /// A connection another request is opening, live while its [`Opening`] is held.
    opening: Option<watch::Receiver<()>>,
}

impl Connections {
    fn is_opening(&self) -> bool {
        // The channel closes when the opener's sender is dropped; nothing is ever sent on it.
        self.opening
            .as_ref()
            .is_some_and(|o| o.has_changed().is_ok())
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

/// Held by the request opening a connection; dropped once it is settled (shared if HTTP/2,
/// known to be HTTP/1, or failed), which wakes the requests waiting for it.
pub struct Opening {
    _settled_when_dropped: watch::Sender<()>,
}

/// A connection being opened by another request.
pub struct OpeningElsewhere(watch::Receiver<()>);

impl OpeningElsewhere {
    /// Returns once the connection is settled, however it went.
    pub async fn settled(mut self) {
        // Nothing is sent: this returns with an error when the opener drops its side.
        let _ = self.0.changed().await;
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
            if let Some((h2, used)) = &mut conns.h2 {
                if !h2.is_closed() {
                    *used = now;
                    return Checkout::Ready(Conn::H2(h2.clone()));
                }
                conns.h2 = None;
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
        if let Some(opening) = conns.opening.as_ref().filter(|_| conns.is_opening()) {
            return Checkout::Wait(OpeningElsewhere(opening.clone()));
        }
        let (sender, receiver) = watch::channel(());
        conns.opening = Some(receiver);
        Checkout::Open(Some(Opening {
            _settled_when_dropped: sender,
        }))
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

    /// Shares a new HTTP/2 connection to `origin` with the requests that follow. One made at
    /// the same time by another request replaces it; the replaced one closes once its requests
    /// are done.
    pub fn put_h2(&self, origin: Origin, sender: http2::SendRequest<RequestBody>) {
        let mut state = self.lock();
        let conns = state.origins.entry(origin).or_default();
        conns.h2 = Some((sender, Instant::now()));
        conns.h1_only = false;
    }

    /// Idle HTTP/1 connections and shared HTTP/2 ones, for tests.
    #[cfg(test)]
    pub fn open(&self, origin: &Origin) -> (usize, bool) {
        let state = self.lock();
        state.origins.get(origin).map_or((0, false), |c| {
            (
                c.h1.iter().filter(|i| !i.sender.is_closed()).count(),
                c.h2.is_some(),
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
            if conns.h2.as_ref().is_some_and(|(h2, used)| {
                h2.is_closed() || now.saturating_duration_since(*used) >= IDLE_TIMEOUT
            }) {
                conns.h2 = None;
            }
            // An origin's entry goes with its connections, and with it what TLS settled on last
            // (learnt again at the next connection), but not while a connection is being opened.
            !conns.h1.is_empty() || conns.h2.is_some() || conns.is_opening()
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

    #[tokio::test]
    async fn requests_to_an_https_origin_wait_for_the_connection_being_opened() {
        let pool = Pool::default();
        let api = origin("https://api.example.com");
        let first = opening(pool.checkout(&api, true)).expect("the first opens and says so");
        let Checkout::Wait(second) = pool.checkout(&api, true) else {
            panic!("the second should wait for the first's connection");
        };
        let Checkout::Wait(third) = pool.checkout(&api, true) else {
            panic!("so should the third");
        };
        // Another origin is not held up by it.
        assert!(opening(pool.checkout(&origin("https://other.example.com"), true)).is_some());
        // A request that already waited once opens its own, and holds nobody up.
        assert!(opening(pool.checkout(&api, false)).is_none());
        let mut second = Box::pin(second.settled());
        assert!(
            (&mut second).now_or_never().is_none(),
            "settled before the opener is done"
        );
        drop(first);
        second.await;
        third.settled().await;
        // The opener gone without a connection: the next request opens again.
        let again = opening(pool.checkout(&api, true)).expect("a new opener");
        assert!(matches!(pool.checkout(&api, true), Checkout::Wait(_)));
        drop(again);
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
        drop(first);
        // Each request needs its own HTTP/1 connection: none waits for another's.
        assert!(opening(pool.checkout(&tls, true)).is_none());
        assert!(opening(pool.checkout(&tls, true)).is_none());
    }
}
