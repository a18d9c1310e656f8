//! Choosing a deployment. Plain mode uses the configured weights. Adaptive mode scales each
//! weight by what was observed (error rate and latency, as exponentially weighted moving
//! averages), and keeps a share of traffic (`exploration`) spread over every healthy deployment
//! so a recovering one is noticed and earns its traffic back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::Balancing;

/// Weight of a new observation in the moving averages.
const ALPHA: f64 = 0.2;

/// Observed behaviour of one deployment. Updates race benignly (last writer wins on a float);
/// no lock is taken.
#[derive(Debug)]
pub struct Stats {
    /// EWMA of successful latencies, microseconds (f64 bits). 0 until the first success.
    latency_us: AtomicU64,
    /// EWMA of the failure indicator, 0..1 (f64 bits).
    error_rate: AtomicU64,
    /// EWMA of squared latency, for the p95 estimate (f64 bits).
    latency_sq: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency_us: AtomicU64::new(0f64.to_bits()),
            error_rate: AtomicU64::new(0f64.to_bits()),
            latency_sq: AtomicU64::new(0f64.to_bits()),
        }
    }
}

fn load(a: &AtomicU64) -> f64 {
    f64::from_bits(a.load(Ordering::Relaxed))
}

fn store(a: &AtomicU64, v: f64) {
    a.store(v.to_bits(), Ordering::Relaxed)
}

fn ewma(a: &AtomicU64, sample: f64) {
    let old = load(a);
    store(
        a,
        if old == 0.0 {
            sample
        } else {
            old + ALPHA * (sample - old)
        },
    );
}

impl Stats {
    pub fn record(&self, success: bool, latency: Duration) {
        let err = load(&self.error_rate);
        store(
            &self.error_rate,
            err + ALPHA * (if success { 0.0 } else { 1.0 } - err),
        );
        if success {
            let us = latency.as_secs_f64() * 1e6;
            ewma(&self.latency_us, us);
            ewma(&self.latency_sq, us * us);
        }
    }

    pub fn error_rate(&self) -> f64 {
        load(&self.error_rate)
    }

    pub fn latency_us(&self) -> f64 {
        load(&self.latency_us)
    }

    /// An estimate of the 95th percentile latency (mean + 1.645 sd), if any success was seen.
    pub fn p95(&self) -> Option<Duration> {
        let mean = self.latency_us();
        if mean <= 0.0 {
            return None;
        }
        let var = (load(&self.latency_sq) - mean * mean).max(0.0);
        Some(Duration::from_secs_f64((mean + 1.645 * var.sqrt()) / 1e6))
    }
}

/// A candidate for one pick: its configured weight and its stats.
pub struct Candidate<'a> {
    pub weight: u32,
    pub stats: &'a Stats,
}

/// Picks an index among `candidates` (all already known to be available). Returns `None` for an
/// empty slice or when every weight is zero.
pub fn pick(candidates: &[Candidate<'_>], mode: Balancing, exploration: f64) -> Option<usize> {
    match candidates.len() {
        0 => return None,
        1 => return (candidates[0].weight > 0).then_some(0),
        _ => {}
    }
    // At most a handful of deployments per model: fixed-size scratch, no allocation.
    const MAX: usize = 32;
    let n = candidates.len().min(MAX);
    let mut weights = [0f64; MAX];
    match mode {
        Balancing::Weighted => {
            for (w, c) in weights.iter_mut().zip(candidates) {
                *w = c.weight as f64;
            }
        }
        Balancing::Adaptive => {
            let best_latency = candidates
                .iter()
                .map(|c| c.stats.latency_us())
                .filter(|l| *l > 0.0)
                .fold(f64::INFINITY, f64::min);
            let mut total = 0.0;
            for (w, c) in weights.iter_mut().zip(candidates) {
                let success = (1.0 - c.stats.error_rate()).clamp(0.0, 1.0);
                let latency = c.stats.latency_us();
                let speed = if latency > 0.0 && best_latency.is_finite() {
                    best_latency / latency
                } else {
                    1.0
                };
                *w = c.weight as f64 * success.powi(3) * speed;
                total += *w;
            }
            // Mix in a uniform share over the candidates with a non-zero configured weight.
            let eligible = candidates.iter().filter(|c| c.weight > 0).count() as f64;
            if eligible > 0.0 {
                for (w, c) in weights.iter_mut().zip(candidates) {
                    let learned = if total > 0.0 { *w / total } else { 0.0 };
                    let explore = if c.weight > 0 { 1.0 / eligible } else { 0.0 };
                    *w = (1.0 - exploration) * learned + exploration * explore;
                }
            }
        }
    }
    let total: f64 = weights[..n].iter().sum();
    if total <= 0.0 {
        return None;
    }
    let mut r = fastrand::f64() * total;
    for (i, w) in weights[..n].iter().enumerate() {
        if r < *w {
            return Some(i);
        }
        r -= w;
    }
    weights[..n].iter().rposition(|w| *w > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(cands: &[Candidate<'_>], mode: Balancing, exploration: f64) -> Vec<f64> {
        let mut counts = vec![0usize; cands.len()];
        for _ in 0..20_000 {
            counts[pick(cands, mode, exploration).unwrap()] += 1;
        }
        counts.iter().map(|c| *c as f64 / 20_000.0).collect()
    }

    #[test]
    fn weighted_mode_follows_weights() {
        let (a, b) = (Stats::default(), Stats::default());
        let s = shares(
            &[
                Candidate {
                    weight: 3,
                    stats: &a,
                },
                Candidate {
                    weight: 1,
                    stats: &b,
                },
            ],
            Balancing::Weighted,
            0.0,
        );
        assert!((s[0] - 0.75).abs() < 0.02, "{s:?}");
    }

    #[test]
    fn adaptive_mode_moves_traffic_off_a_failing_or_slow_deployment() {
        let (good, bad) = (Stats::default(), Stats::default());
        for _ in 0..20 {
            good.record(true, Duration::from_millis(10));
            bad.record(false, Duration::from_millis(10));
        }
        let s = shares(
            &[
                Candidate {
                    weight: 1,
                    stats: &good,
                },
                Candidate {
                    weight: 1,
                    stats: &bad,
                },
            ],
            Balancing::Adaptive,
            0.05,
        );
        assert!(
            s[1] < 0.05 && s[1] > 0.01,
            "failing one keeps only exploration traffic: {s:?}"
        );

        let (fast, slow) = (Stats::default(), Stats::default());
        for _ in 0..20 {
            fast.record(true, Duration::from_millis(10));
            slow.record(true, Duration::from_millis(40));
        }
        let s = shares(
            &[
                Candidate {
                    weight: 1,
                    stats: &fast,
                },
                Candidate {
                    weight: 1,
                    stats: &slow,
                },
            ],
            Balancing::Adaptive,
            0.05,
        );
        assert!(s[0] > 0.75, "{s:?}");
        // Recovery: the slow one gets fast again and earns its traffic back.
        for _ in 0..30 {
            slow.record(true, Duration::from_millis(10));
        }
        let s = shares(
            &[
                Candidate {
                    weight: 1,
                    stats: &fast,
                },
                Candidate {
                    weight: 1,
                    stats: &slow,
                },
            ],
            Balancing::Adaptive,
            0.05,
        );
        assert!((s[0] - 0.5).abs() < 0.05, "{s:?}");
    }

    #[test]
    fn p95_estimate() {
        let s = Stats::default();
        assert!(s.p95().is_none());
        for ms in [10, 12, 8, 10, 11, 9] {
            s.record(true, Duration::from_millis(ms));
        }
        let p95 = s.p95().unwrap();
        assert!(
            p95 > Duration::from_millis(9) && p95 < Duration::from_millis(20),
            "{p95:?}"
        );
    }
}
