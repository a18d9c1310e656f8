//! A provider's API keys and the weighted pick among them. The pick sits on the hot path of every
//! request: a table lookup, one random number and one atomic load; a key that is cooling down
//! (rate limited, rejected) is skipped by a slower scan that only runs when the fast pick lands on
//! one.

use std::sync::Arc;

use super::health::Health;
use crate::providers::credentials::Credential;
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct NamedKey {
    /// Shown in logs, metrics and response headers instead of the value.
    pub name: Arc<str>,
    /// Unique identity of this key in the gateway (`key:<provider>/<name>`), under which its
    /// health is kept across reloads.
    pub id: Arc<str>,
    pub credential: Credential,
    pub weight: u32,
    /// Provider model ids this key may serve; empty means all.
    pub models: Vec<String>,
    /// Whether the provider accepts the key at all (401/403 set it aside everywhere).
    pub health: Arc<Health>,
    /// The key's rate limit for one model (a 429 sets it aside for that model only, as providers
    /// limit rates per model). Set per deployment.
    pub model_health: Arc<Health>,
}

impl NamedKey {
    pub fn new(name: &str, credential: Credential) -> Self {
        NamedKey {
            name: Arc::from(name),
            id: Arc::from(name),
            credential,
            weight: 1,
            models: Vec::new(),
            health: Arc::new(Health::new()),
            model_health: Arc::new(Health::new()),
        }
    }

    /// Usable now: accepted by the provider and not rate limited for this deployment's model.
    #[inline]
    pub fn is_available(&self, now_ms: u64) -> bool {
        self.health.is_available(now_ms) && self.model_health.is_available(now_ms)
    }

    fn remaining_ms(&self, now_ms: u64) -> u64 {
        self.health
            .remaining_ms(now_ms)
            .max(self.model_health.remaining_ms(now_ms))
    }

    pub fn api_key(name: &str, secret: Secret) -> Self {
        Self::new(name, Credential::ApiKey(secret))
    }

    pub fn serves(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }
}

/// Keys with cumulative weights, built once per config snapshot.
#[derive(Debug, Clone, Default)]
pub struct KeyPool {
    keys: Vec<NamedKey>,
    /// `cumulative[i]` is the sum of the weights of keys `0..=i`.
    cumulative: Vec<u32>,
}

impl KeyPool {
    pub fn new(keys: Vec<NamedKey>) -> Self {
        let keys: Vec<NamedKey> = keys.into_iter().filter(|k| k.weight > 0).collect();
        let mut total = 0u32;
        let cumulative = keys
            .iter()
            .map(|k| {
                total = total.saturating_add(k.weight);
                total
            })
            .collect();
        KeyPool { keys, cumulative }
    }

    /// The keys that serve `model`, restricted to `names` when given, each with its rate-limit
    /// health for that model from `model_health`.
    pub fn subset(
        &self,
        model: &str,
        names: &[String],
        model_health: impl Fn(&NamedKey) -> Arc<Health>,
    ) -> KeyPool {
        KeyPool::new(
            self.keys
                .iter()
                .filter(|k| {
                    k.serves(model) && (names.is_empty() || names.iter().any(|n| **n == *k.name))
                })
                .map(|k| NamedKey {
                    model_health: model_health(k),
                    ..k.clone()
                })
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn first(&self) -> Option<&NamedKey> {
        self.keys.first()
    }

    pub fn all(&self) -> &[NamedKey] {
        &self.keys
    }

    /// A key chosen at random in proportion to its weight, ignoring health (benchmarks, tests).
    #[inline]
    pub fn pick(&self) -> Option<&NamedKey> {
        match self.keys.len() {
            0 => None,
            1 => Some(&self.keys[0]),
            _ => {
                let total = *self.cumulative.last()?;
                let r = fastrand::u32(0..total);
                let i = self.cumulative.partition_point(|&c| c <= r);
                self.keys.get(i)
            }
        }
    }

    /// A key that is not cooling down, in proportion to weight; `None` when all are cooling.
    #[inline]
    pub fn pick_available(&self, now_ms: u64) -> Option<&NamedKey> {
        let key = self.pick()?;
        if key.is_available(now_ms) {
            return Some(key);
        }
        self.pick_among_available(now_ms)
    }

    #[cold]
    fn pick_among_available(&self, now_ms: u64) -> Option<&NamedKey> {
        let total: u64 = self
            .keys
            .iter()
            .filter(|k| k.is_available(now_ms))
            .map(|k| k.weight as u64)
            .sum();
        if total == 0 {
            return None;
        }
        let mut r = fastrand::u64(0..total);
        for k in self.keys.iter().filter(|k| k.is_available(now_ms)) {
            if r < k.weight as u64 {
                return Some(k);
            }
            r -= k.weight as u64;
        }
        None
    }

    /// When the first cooling key becomes available again (ms from `now_ms`), if all are cooling.
    pub fn next_available_in(&self, now_ms: u64) -> Option<u64> {
        self.keys.iter().map(|k| k.remaining_ms(now_ms)).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(n: &str, w: u32) -> NamedKey {
        NamedKey {
            weight: w,
            ..NamedKey::api_key(n, Secret::new(n))
        }
    }

    #[test]
    fn weights_hold() {
        let pool = KeyPool::new(vec![key("a", 1), key("b", 3), key("zero", 0)]);
        assert_eq!(pool.len(), 2);
        let b = (0..10_000)
            .filter(|_| &*pool.pick_available(1).unwrap().name == "b")
            .count();
        assert!(
            (7_200..7_800).contains(&b),
            "b picked {b} times out of 10000, expected ~7500"
        );
    }

    #[test]
    fn cooling_keys_are_skipped_until_their_cooldown_ends() {
        let pool = KeyPool::new(vec![key("a", 1), key("b", 1)]);
        pool.all()[0]
            .health
            .cool_down(100, Duration::from_millis(500));
        for _ in 0..1000 {
            assert_eq!(&*pool.pick_available(200).unwrap().name, "b");
        }
        pool.all()[1]
            .health
            .cool_down(100, Duration::from_millis(300));
        assert!(pool.pick_available(200).is_none());
        assert_eq!(pool.next_available_in(200), Some(200));
        assert_eq!(&*pool.pick_available(450).unwrap().name, "b");
        let a = (0..1000)
            .filter(|_| &*pool.pick_available(700).unwrap().name == "a")
            .count();
        assert!(a > 400, "both back: {a}");
    }

    #[test]
    fn subset_by_model_and_name() {
        let mut k1 = key("k1", 1);
        k1.models = vec!["gpt-4o".into()];
        let pool = KeyPool::new(vec![k1, key("k2", 1), key("k3", 1)]);
        let names = |p: &KeyPool| {
            p.all()
                .iter()
                .map(|k| k.name.to_string())
                .collect::<Vec<_>>()
        };
        let fresh = |_: &NamedKey| Arc::new(Health::new());
        assert_eq!(names(&pool.subset("gpt-4o-mini", &[], fresh)), ["k2", "k3"]);
        assert_eq!(
            names(&pool.subset("gpt-4o", &["k1".into(), "k3".into()], fresh)),
            ["k1", "k3"]
        );
    }
}
