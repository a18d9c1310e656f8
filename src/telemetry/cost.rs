//! What a request cost: a bundled table of list prices (USD per million tokens) for common
//! provider/model pairs, extended or overridden by the config's `prices`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::schema::Usage;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Prompt tokens read from the provider's cache; defaults to `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// Prompt tokens written to the provider's cache (Anthropic); defaults to `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

static BUNDLED: &str = include_str!("../../data/prices.json");

fn bundled() -> &'static BTreeMap<String, Price> {
    static TABLE: OnceLock<BTreeMap<String, Price>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(BUNDLED).expect("the bundled price table is valid JSON");
        raw.into_iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .map(|(k, v)| {
                (
                    k,
                    serde_json::from_value(v).expect("the bundled price table is well-formed"),
                )
            })
            .collect()
    })
}

/// Prices by `provider/model`: the config's over the bundled ones. Keys ending in `*` match by
/// prefix; exact keys win, then the longest prefix.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    overrides: BTreeMap<String, Price>,
}

impl PriceTable {
    pub fn new(overrides: &BTreeMap<String, Price>) -> Self {
        PriceTable {
            overrides: overrides.clone(),
        }
    }

    pub fn price(&self, provider: &str, model: &str) -> Option<Price> {
        thread_local! {
            // The `provider/model` key, built in a reused buffer: this runs on every answer.
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with_borrow_mut(|key| {
            key.clear();
            key.push_str(provider);
            key.push('/');
            key.push_str(model);
            lookup(&self.overrides, key).or_else(|| lookup(bundled(), key))
        })
    }

    /// The cost of one answer, if the model has a price.
    pub fn cost(&self, provider: &str, model: &str, usage: &Usage) -> Option<f64> {
        let p = self.price(provider, model)?;
        let cached = usage.cached_tokens();
        let written = usage
            .extra
            .get("cache_creation_input_tokens")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let fresh = usage.prompt_tokens.saturating_sub(cached + written);
        let usd = fresh as f64 * p.input
            + cached as f64 * p.cached_input.unwrap_or(p.input)
            + written as f64 * p.cache_write.unwrap_or(p.input)
            + usage.completion_tokens as f64 * p.output;
        Some(usd / 1e6)
    }
}

fn lookup(table: &BTreeMap<String, Price>, key: &str) -> Option<Price> {
    if let Some(p) = table.get(key) {
        return Some(*p);
    }
    table
        .iter()
        .filter_map(|(k, p)| {
            k.strip_suffix('*')
                .filter(|prefix| key.starts_with(prefix))
                .map(|prefix| (prefix.len(), *p))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_prefix_and_override() {
        let t = PriceTable::default();
        let mut u = Usage::new(1_000_000, 1_000_000);
        assert_eq!(t.cost("openai", "gpt-4o-mini", &u), Some(0.15 + 0.60));
        assert_eq!(
            t.price("anthropic", "claude-3-5-haiku-20241022")
                .unwrap()
                .output,
            4.0
        );
        assert!(t.cost("mock", "model", &u).is_none());
        u.prompt_tokens_details = Some(crate::schema::PromptTokensDetails {
            cached_tokens: Some(500_000),
            ..Default::default()
        });
        let c = t.cost("openai", "gpt-4o-mini", &u).unwrap();
        assert!((c - (0.5 * 0.15 + 0.5 * 0.075 + 0.60)).abs() < 1e-9);
        let mut over = BTreeMap::new();
        over.insert(
            "mock/*".to_string(),
            Price {
                input: 1.0,
                output: 2.0,
                ..Default::default()
            },
        );
        let t = PriceTable::new(&over);
        assert_eq!(
            t.cost("mock", "anything", &Usage::new(1_000_000, 500_000)),
            Some(2.0)
        );
    }
}
