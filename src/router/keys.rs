//! A provider's API keys and the weighted pick among them. The pick sits on the hot path of every
//! request: it is a table lookup and one random number, no locks, no allocation.

use std::sync::Arc;

use crate::providers::credentials::Credential;
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct NamedKey {
    /// Shown in logs, metrics and response headers instead of the value.
    pub name: Arc<str>,
    pub credential: Credential,
    pub weight: u32,
}

impl NamedKey {
    pub fn new(name: &str, credential: Credential) -> Self {
        NamedKey {
            name: Arc::from(name),
            credential,
            weight: 1,
        }
    }

    pub fn api_key(name: &str, secret: Secret) -> Self {
        Self::new(name, Credential::ApiKey(secret))
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

    /// A key chosen at random in proportion to its weight.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_hold() {
        let mk = |n: &str, w| NamedKey {
            weight: w,
            ..NamedKey::api_key(n, Secret::new(n))
        };
        let pool = KeyPool::new(vec![mk("a", 1), mk("b", 3), mk("zero", 0)]);
        assert_eq!(pool.len(), 2);
        let mut b = 0;
        for _ in 0..10_000 {
            if &*pool.pick().unwrap().name == "b" {
                b += 1;
            }
        }
        assert!(
            (7_200..7_800).contains(&b),
            "b picked {b} times out of 10000, expected ~7500"
        );
    }
}
