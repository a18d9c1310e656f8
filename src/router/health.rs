//! Health of a key or a deployment: a circuit breaker with cooldowns. Closed: traffic flows and
//! failures are counted in a window; `failures` of them open the circuit for a cooldown (doubling
//! on each re-open, never shorter than an upstream's `Retry-After`); when the cooldown ends one
//! probe goes through (half-open): success closes the circuit, failure re-opens it.
//!
//! Everything is atomics: a request reads a few words and takes no lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::config::CircuitBreaker;

/// Milliseconds since the first call in this process (monotonic).
pub fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    // +1 so that 0 can mean "never".
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// A probe that has not reported back after this long is assumed lost (its caller was
/// cancelled), and another one may go.
const PROBE_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// What a caller may do right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed circuit: go ahead.
    Normal,
    /// The cooldown is over and this caller is the probe.
    Probe,
    /// Open, or half-open with a probe already in flight.
    Denied,
}

#[derive(Debug, Default)]
pub struct Health {
    /// 0 when closed; otherwise the time the cooldown ends.
    open_until_ms: AtomicU64,
    window_start_ms: AtomicU64,
    failures_in_window: AtomicU32,
    /// Consecutive openings, for the doubling cooldown.
    reopenings: AtomicU32,
    /// When the current probe started (0: none).
    probe_started_ms: AtomicU64,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn state(&self, now: u64) -> State {
        match self.open_until_ms.load(Ordering::Relaxed) {
            0 => State::Closed,
            until if now < until => State::Open,
            _ => State::HalfOpen,
        }
    }

    /// Whether a request would be admitted, without claiming the probe.
    pub fn is_available(&self, now: u64) -> bool {
        match self.state(now) {
            State::Closed => true,
            State::Open => false,
            State::HalfOpen => {
                let started = self.probe_started_ms.load(Ordering::Relaxed);
                started == 0 || now.saturating_sub(started) > PROBE_TIMEOUT_MS
            }
        }
    }

    /// Admits a request, claiming the probe when the circuit is half-open.
    pub fn admit(&self, now: u64) -> Admission {
        match self.state(now) {
            State::Closed => Admission::Normal,
            State::Open => Admission::Denied,
            State::HalfOpen => {
                let started = self.probe_started_ms.load(Ordering::Relaxed);
                let stale = started != 0 && now.saturating_sub(started) > PROBE_TIMEOUT_MS;
                if (started == 0 || stale)
                    && self
                        .probe_started_ms
                        .compare_exchange(started, now, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    Admission::Probe
                } else {
                    Admission::Denied
                }
            }
        }
    }

    pub fn on_success(&self) {
        if self.open_until_ms.load(Ordering::Relaxed) != 0 {
            self.open_until_ms.store(0, Ordering::Relaxed);
            self.reopenings.store(0, Ordering::Relaxed);
            self.probe_started_ms.store(0, Ordering::Relaxed);
        }
        if self.failures_in_window.load(Ordering::Relaxed) != 0 {
            self.failures_in_window.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a failure; opens the circuit when the window holds `failures` of them, or at once
    /// when a probe failed.
    pub fn on_failure(&self, now: u64, cfg: &CircuitBreaker, retry_after: Option<Duration>) {
        let was_probe = self.state(now) == State::HalfOpen;
        let window = cfg.window.0.as_millis() as u64;
        let start = self.window_start_ms.load(Ordering::Relaxed);
        let count = if now.saturating_sub(start) > window {
            self.window_start_ms.store(now, Ordering::Relaxed);
            self.failures_in_window.store(1, Ordering::Relaxed);
            1
        } else {
            self.failures_in_window.fetch_add(1, Ordering::Relaxed) + 1
        };
        if was_probe || count >= cfg.failures || retry_after.is_some() {
            let n = self.reopenings.fetch_add(1, Ordering::Relaxed).min(16);
            let backoff = cfg
                .cooldown
                .0
                .saturating_mul(1 << n)
                .min(cfg.max_cooldown.0);
            self.open_for(now, backoff.max(retry_after.unwrap_or_default()));
        }
    }

    /// Opens for exactly `duration` (a key answering 429 with `Retry-After`, a rejected key).
    pub fn cool_down(&self, now: u64, duration: Duration) {
        self.open_for(now, duration);
    }

    fn open_for(&self, now: u64, duration: Duration) {
        let until = now + duration.as_millis().max(1) as u64;
        self.open_until_ms.fetch_max(until, Ordering::Relaxed);
        self.probe_started_ms.store(0, Ordering::Relaxed);
        self.failures_in_window.store(0, Ordering::Relaxed);
        self.window_start_ms.store(now, Ordering::Relaxed);
    }

    /// Milliseconds until the cooldown ends (0 when not open).
    pub fn remaining_ms(&self, now: u64) -> u64 {
        self.open_until_ms
            .load(Ordering::Relaxed)
            .saturating_sub(now)
    }
}

/// Health that outlives config reloads: each snapshot takes its keys' and deployments' health
/// from here by name, so a reload does not forget that a key is rate limited.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    entries: Mutex<HashMap<String, Arc<Health>>>,
    stats: Mutex<HashMap<String, Arc<super::balancer::Stats>>>,
}

impl HealthRegistry {
    pub fn get(&self, name: &str) -> Arc<Health> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_string()).or_default().clone()
    }

    /// The balancer's observations of a deployment, kept across reloads like its health.
    pub fn stats(&self, name: &str) -> Arc<super::balancer::Stats> {
        let mut map = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_string()).or_default().clone()
    }

    /// Every entry with its state, for metrics and the admin API.
    pub fn states(&self, now: u64) -> Vec<(String, State)> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map.iter().map(|(k, h)| (k.clone(), h.state(now))).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn cfg() -> CircuitBreaker {
        CircuitBreaker {
            failures: 3,
            window: Dur::secs(10),
            cooldown: Dur::millis(1000),
            max_cooldown: Dur::secs(8),
        }
    }

    #[test]
    fn opens_after_n_failures_then_probes_then_closes() {
        let h = Health::new();
        let c = cfg();
        h.on_failure(100, &c, None);
        h.on_failure(200, &c, None);
        assert_eq!(h.admit(250), Admission::Normal);
        h.on_failure(300, &c, None);
        assert_eq!(h.state(301), State::Open);
        assert_eq!(h.admit(1299), Admission::Denied);
        assert_eq!(h.admit(1301), Admission::Probe, "cooldown over: one probe");
        assert_eq!(h.admit(1302), Admission::Denied, "only one probe at a time");
        h.on_success();
        assert_eq!(h.admit(1303), Admission::Normal);
    }

    #[test]
    fn failed_probe_reopens_longer() {
        let h = Health::new();
        let c = cfg();
        for t in [1, 2, 3] {
            h.on_failure(t, &c, None);
        }
        assert_eq!(h.remaining_ms(3), 1000);
        assert_eq!(h.admit(1100), Admission::Probe);
        h.on_failure(1100, &c, None);
        assert_eq!(h.remaining_ms(1100), 2000, "doubled");
    }

    #[test]
    fn retry_after_and_window() {
        let h = Health::new();
        let c = cfg();
        h.on_failure(10, &c, Some(Duration::from_secs(3)));
        assert_eq!(h.remaining_ms(10), 3000, "Retry-After is honoured at once");
        let h = Health::new();
        h.on_failure(0, &c, None);
        h.on_failure(5_000, &c, None);
        h.on_failure(20_000, &c, None); // the window restarted: count is 1
        assert_eq!(h.state(20_001), State::Closed);
    }

    #[test]
    fn lost_probe_is_replaced() {
        let h = Health::new();
        h.cool_down(0, Duration::from_millis(10));
        assert_eq!(h.admit(20), Admission::Probe);
        assert_eq!(h.admit(25), Admission::Denied);
        assert_eq!(h.admit(20 + PROBE_TIMEOUT_MS + 1), Admission::Probe);
    }
}
