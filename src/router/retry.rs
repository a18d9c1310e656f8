//! What to do after a failed attempt, how long to wait, and how many retries a provider can take.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::config::{Backoff, RetryBudgetConfig};
use crate::error::{ErrorKind, GatewayError};

/// How long a key that the provider rejected (401/403) is set aside.
pub const REJECTED_KEY_COOLDOWN: Duration = Duration::from_secs(60);
/// How long a rate-limited key is set aside when the provider gave no `Retry-After`.
pub const RATE_LIMITED_KEY_COOLDOWN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Retrying cannot help (400, 404, 413, 422, content filtered): answer now.
    Fatal,
    /// The key is at fault (401/403 rejected, 429 rate limited): set it aside, try another key.
    BadKey,
    /// The prompt does not fit: only a larger-context model can help.
    ContextWindow,
    /// The provider or the network failed: retry, elsewhere if possible.
    Retry,
}

pub fn classify(err: &GatewayError) -> Disposition {
    match err.kind {
        ErrorKind::InvalidRequest
        | ErrorKind::NotFound
        | ErrorKind::PayloadTooLarge
        | ErrorKind::Unprocessable
        | ErrorKind::ContentFiltered
        | ErrorKind::Internal => Disposition::Fatal,
        ErrorKind::ContextWindowExceeded => Disposition::ContextWindow,
        ErrorKind::Authentication | ErrorKind::PermissionDenied => Disposition::BadKey,
        // The gateway's own queue being full is not the key's fault.
        ErrorKind::RateLimited if err.code.as_deref() == Some("queue_full") => Disposition::Retry,
        ErrorKind::RateLimited => Disposition::BadKey,
        ErrorKind::UpstreamServer
        | ErrorKind::BadUpstreamResponse
        | ErrorKind::UpstreamConnection
        | ErrorKind::Timeout
        | ErrorKind::Unavailable => Disposition::Retry,
    }
}

/// Exponential backoff with full jitter: uniform in `[0, min(max, initial * multiplier^n)]`.
pub fn backoff(cfg: &Backoff, retry_index: u32) -> Duration {
    let cap = cfg.initial.0.as_secs_f64() * cfg.multiplier.powi(retry_index.min(30) as i32);
    let cap = cap.min(cfg.max.0.as_secs_f64());
    Duration::from_secs_f64(fastrand::f64() * cap)
}

/// A token bucket of retries per provider: each request adds `ratio` of a token, each retry takes
/// one, and `min_per_second` tokens trickle in regardless, so retries stay a bounded share of the
/// traffic a provider sees when it is failing.
#[derive(Debug)]
pub struct RetryBudget {
    /// Thousandths of a token.
    milli: AtomicI64,
    last_refill_ms: AtomicU64,
    ratio_milli: i64,
    min_per_second: i64,
    cap_milli: i64,
}

impl RetryBudget {
    pub fn new(cfg: &RetryBudgetConfig) -> Self {
        let cap = (cfg.min_per_second as i64 * 10).max(100) * 1000;
        RetryBudget {
            milli: AtomicI64::new(cap),
            last_refill_ms: AtomicU64::new(super::health::now_ms()),
            ratio_milli: (cfg.ratio * 1000.0) as i64,
            min_per_second: cfg.min_per_second as i64,
            cap_milli: cap,
        }
    }

    fn add(&self, milli: i64) {
        let _ = self
            .milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some((v + milli).min(self.cap_milli))
            });
    }

    pub fn on_request(&self) {
        self.add(self.ratio_milli);
    }

    /// Takes one retry if the budget allows it.
    pub fn try_spend(&self, now_ms: u64) -> bool {
        let last = self.last_refill_ms.load(Ordering::Relaxed);
        if now_ms > last + 100
            && self
                .last_refill_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.add((now_ms - last) as i64 * self.min_per_second);
        }
        self.milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (v >= 1000).then_some(v - 1000)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    #[test]
    fn classification() {
        let e = |k| GatewayError::new(k, "x");
        assert_eq!(classify(&e(ErrorKind::InvalidRequest)), Disposition::Fatal);
        assert_eq!(classify(&e(ErrorKind::NotFound)), Disposition::Fatal);
        assert_eq!(classify(&e(ErrorKind::Unprocessable)), Disposition::Fatal);
        assert_eq!(classify(&e(ErrorKind::Authentication)), Disposition::BadKey);
        assert_eq!(
            classify(&e(ErrorKind::PermissionDenied)),
            Disposition::BadKey
        );
        assert_eq!(classify(&e(ErrorKind::RateLimited)), Disposition::BadKey);
        assert_eq!(
            classify(&e(ErrorKind::RateLimited).with_code("queue_full")),
            Disposition::Retry
        );
        assert_eq!(classify(&e(ErrorKind::Timeout)), Disposition::Retry);
        assert_eq!(classify(&e(ErrorKind::UpstreamServer)), Disposition::Retry);
        assert_eq!(
            classify(&e(ErrorKind::ContextWindowExceeded)),
            Disposition::ContextWindow
        );
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        let cfg = Backoff {
            initial: Dur::millis(100),
            max: Dur::secs(1),
            multiplier: 2.0,
        };
        for n in 0..10 {
            let cap = Duration::from_millis((100u64 << n).min(1000));
            for _ in 0..50 {
                assert!(backoff(&cfg, n) <= cap);
            }
        }
    }

    #[test]
    fn budget_limits_retry_storms() {
        let b = RetryBudget::new(&RetryBudgetConfig {
            ratio: 0.2,
            min_per_second: 0,
        });
        let now = super::super::health::now_ms();
        let mut spent = 0;
        while b.try_spend(now) {
            spent += 1;
        }
        assert_eq!(spent, 100, "starts with a full bucket");
        for _ in 0..50 {
            b.on_request();
        }
        let mut more = 0;
        while b.try_spend(now) {
            more += 1;
        }
        assert_eq!(more, 10, "20% of 50 requests");
    }
}
