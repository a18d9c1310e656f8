//! Routing configuration: public models served by weighted deployments with fallbacks, provider
//! keys, queues, and the gateway-wide retry / circuit-breaker / balancing defaults.

use serde::{Deserialize, Serialize};

use super::Dur;
use crate::secret::Secret;

/// One API key of a provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Shown in logs, metrics and the `x-ferrogate-key` header instead of the value.
    pub name: String,
    /// The key, inline or as `env.VAR_NAME`.
    pub value: Secret,
    #[serde(default = "one")]
    pub weight: u32,
    /// Models this key may serve (provider model ids); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

fn one() -> u32 {
    1
}

/// A public model name and the deployments that serve it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub deployments: Vec<DeploymentConfig>,
    /// Models tried in order when every deployment fails (each with its own retries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// Models tried when the prompt does not fit (context window exceeded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_window_fallbacks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balancing: Option<Balancing>,
    /// Retries after the first attempt, before moving to the fallbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Start a second attempt on another deployment when the first has not answered in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge: Option<Hedge>,
    /// Overall deadline of a request to this model, retries and fallbacks included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

/// One way to serve a public model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// `provider/model`.
    pub model: String,
    #[serde(default = "one")]
    pub weight: u32,
    /// Provider keys (by name) this deployment may use; empty means all that serve its model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// A key of its own instead of the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    /// An endpoint of its own instead of the provider's (another region or resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Name in logs and metrics; defaults to `provider/model` (numbered when repeated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Balancing {
    /// Weights adjusted by observed error rate and latency, with some exploration traffic.
    #[default]
    Adaptive,
    /// The configured weights, as written.
    Weighted,
}

/// When to hedge: after a fixed delay, or after the deployment's observed p95 latency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hedge {
    /// A duration such as `"2s"`, or `"p95"`.
    pub after: HedgeAfter,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeAfter {
    Fixed(Dur),
    P95,
}

impl Serialize for HedgeAfter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HedgeAfter::Fixed(d) => d.serialize(s),
            HedgeAfter::P95 => s.serialize_str("p95"),
        }
    }
}

impl<'de> Deserialize<'de> for HedgeAfter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if v.as_str() == Some("p95") {
            return Ok(HedgeAfter::P95);
        }
        Dur::deserialize(v)
            .map(HedgeAfter::Fixed)
            .map_err(|e| serde::de::Error::custom(format!("expected \"p95\" or a duration: {e}")))
    }
}

/// Gateway-wide routing defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Retries after the first attempt (per model group: the primary and each fallback).
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default)]
    pub backoff: Backoff,
    #[serde(default)]
    pub balancing: Balancing,
    /// Share of traffic kept flowing to deployments the adaptive balancer likes less, so their
    /// recovery is noticed.
    #[serde(default = "default_exploration")]
    pub exploration: f64,
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
    #[serde(default)]
    pub retry_budget: RetryBudgetConfig,
}

fn default_retries() -> u32 {
    2
}

fn default_exploration() -> f64 {
    0.05
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            retries: default_retries(),
            backoff: Backoff::default(),
            balancing: Balancing::default(),
            exploration: default_exploration(),
            circuit_breaker: CircuitBreaker::default(),
            retry_budget: RetryBudgetConfig::default(),
        }
    }
}

/// Exponential backoff with full jitter between retries of the same deployment (a retry that
/// moves to another deployment or key goes at once).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    #[serde(default = "default_backoff_initial")]
    pub initial: Dur,
    #[serde(default = "default_backoff_max")]
    pub max: Dur,
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
}

fn default_backoff_initial() -> Dur {
    Dur::millis(100)
}
fn default_backoff_max() -> Dur {
    Dur::secs(5)
}
fn default_multiplier() -> f64 {
    2.0
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: default_backoff_initial(),
            max: default_backoff_max(),
            multiplier: default_multiplier(),
        }
    }
}

/// Per key and per deployment: open after `failures` failures within `window`, stay open for
/// `cooldown` (doubling on each re-open, up to `max_cooldown`, and never less than a
/// `Retry-After`), then let one probe through.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    #[serde(default = "default_failures")]
    pub failures: u32,
    #[serde(default = "default_window")]
    pub window: Dur,
    #[serde(default = "default_cooldown")]
    pub cooldown: Dur,
    #[serde(default = "default_max_cooldown")]
    pub max_cooldown: Dur,
}

fn default_failures() -> u32 {
    3
}
fn default_window() -> Dur {
    Dur::secs(10)
}
fn default_cooldown() -> Dur {
    Dur::secs(5)
}
fn default_max_cooldown() -> Dur {
    Dur::secs(60)
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            failures: default_failures(),
            window: default_window(),
            cooldown: default_cooldown(),
            max_cooldown: default_max_cooldown(),
        }
    }
}

/// Limits retries per provider to `ratio` of its requests (plus `min_per_second`), so a failing
/// provider is not hit by a retry storm.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetConfig {
    #[serde(default = "default_ratio")]
    pub ratio: f64,
    #[serde(default = "default_min_per_second")]
    pub min_per_second: u32,
}

fn default_ratio() -> f64 {
    0.2
}
fn default_min_per_second() -> u32 {
    10
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: default_ratio(),
            min_per_second: default_min_per_second(),
        }
    }
}
