//! Upstream connections kept open between requests, by origin (scheme and authority).
//!
//! An HTTP/1 connection carries one exchange at a time: it leaves the pool for a request and is
//! put back when the response's body is dropped (read to its end, or not: hyper then reads off
//! what has already arrived of the rest, or closes the connection, and a connection that closed
//! is skipped when next taken). An HTTP/2 connection, when TLS settles on it, is shared by every
//! request to its origin. Connections unused for [`IDLE_TIMEOUT`] are closed by the next sweep,
//! which runs at most every 15 s when the pool is used.
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

    /// An open connection to `origin`, if the pool has one.
    pub fn checkout(&self, origin: &Origin) -> Option<Conn> {
        let now = Instant::now();
        let mut state = self.lock();
        state.sweep_if_due(now);
        let conns = state.origins.get_mut(origin)?;
        if let Some((h2, used)) = &mut conns.h2 {
            if !h2.is_closed() {
                *used = now;
                return Some(Conn::H2(h2.clone()));
            }
            conns.h2 = None;
        }
        while let Some(idle) = conns.h1.pop() {
            if idle.usable(now) {
                return Some(Conn::H1 {
                    sender: idle.sender,
                    proxied: idle.proxied,
                });
            }
        }
        None
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
        self.lock().origins.entry(origin).or_default().h2 = Some((sender, Instant::now()));
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
            !conns.h1.is_empty() || conns.h2.is_some()
        });
    }
}
