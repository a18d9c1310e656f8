//! The gateway's configuration: its schema, loading from JSON or YAML files (or a Python dict),
//! and validation. Every error names the field at fault (`providers.openai.timeouts.request`).
//!
//! Nothing here is required: an empty config is a working gateway that reads each provider's
//! standard environment variables (zero-config start).

mod routing;
mod telemetry;
mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use routing::{
    Backoff, Balancing, CircuitBreaker, DeploymentConfig, Hedge, HedgeAfter, KeyConfig,
    ModelConfig, RetryBudgetConfig, RoutingConfig,
};
pub use telemetry::{
    LogBackendKind, LogStoreConfig, MetricsConfig, OtlpProtocol, Prices, TelemetryConfig,
    TracingConfig,
};
pub use types::{ByteSize, Dur, parse_byte_size, parse_duration};

use crate::providers::ApiKind;
use crate::providers::presets;
use crate::secret::Secret;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    /// Providers by name. A built-in name (`openai`, `groq`...) starts from its preset; any other
    /// name defines a custom provider, which needs an `api` and a `base_url`.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Public model names mapped to `provider/model` targets, e.g. `fast: groq/llama-3.1-8b-instant`.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Public model names served by weighted deployments, with fallbacks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelConfig>,
    /// Retry, backoff, balancing and circuit-breaker defaults.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Plugins, in the order their pre-hooks run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<crate::plugins::registry::PluginConfig>,
    /// Provider for model names without a `provider/` prefix that no alias or known model family
    /// claims. Without it such names are rejected with 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_provider: Option<String>,
    /// Timeouts for every provider unless the provider overrides them.
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Prices (USD per million tokens) added to or overriding the bundled table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: Prices,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Largest accepted request body; larger bodies get 413.
    #[serde(default = "default_max_body")]
    pub max_request_body: ByteSize,
    /// How long SIGINT/SIGTERM waits for in-flight requests before exiting anyway.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Dur,
    /// Bearer token required by the admin routes (`/admin/...`); without it they are open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<Secret>,
    /// Worker threads of `ferrogate serve`. Default: one per available core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// How `ferrogate serve` spreads work over its threads.
    #[serde(default)]
    pub runtime: ServerRuntime,
}

/// The threading model of `ferrogate serve`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerRuntime {
    /// One single-threaded runtime per thread, each with its own listening socket and upstream
    /// connections: no hand-offs between threads, the least CPU per request.
    #[default]
    PerCore,
    /// One work-stealing runtime shared by all threads: idle threads take over queued work, which
    /// evens out load when the machine is oversubscribed or connections are few and busy.
    WorkStealing,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    8080
}
fn default_max_body() -> ByteSize {
    ByteSize(32 * 1024 * 1024)
}
fn default_shutdown_timeout() -> Dur {
    Dur::secs(30)
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: default_host(),
            port: default_port(),
            max_request_body: default_max_body(),
            shutdown_timeout: default_shutdown_timeout(),
            admin_token: None,
            threads: None,
            runtime: ServerRuntime::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// TCP + TLS connection establishment.
    #[serde(default = "default_connect")]
    pub connect: Dur,
    /// The whole upstream call: until the full response for non-streamed calls, until the first
    /// byte of the body for streamed ones.
    #[serde(default = "default_request")]
    pub request: Dur,
    /// Longest silence between two chunks of a stream before it is abandoned.
    #[serde(default = "default_stream_idle")]
    pub stream_idle: Dur,
    /// Longest wait for the first chunk of a stream; until then the request may still fail over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token: Option<Dur>,
}

fn default_connect() -> Dur {
    Dur::secs(10)
}
fn default_request() -> Dur {
    Dur::secs(600)
}
fn default_stream_idle() -> Dur {
    Dur::secs(120)
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: default_connect(),
            request: default_request(),
            stream_idle: default_stream_idle(),
            first_token: None,
        }
    }
}

/// Per-provider timeout overrides; unset fields fall back to the gateway-wide `timeouts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token: Option<Dur>,
}

impl TimeoutOverrides {
    pub fn over(&self, base: &Timeouts) -> Timeouts {
        Timeouts {
            connect: self.connect.unwrap_or(base.connect),
            request: self.request.unwrap_or(base.request),
            stream_idle: self.stream_idle.unwrap_or(base.stream_idle),
            first_token: self.first_token.or(base.first_token),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Wire format. Defaults to the preset's for built-in names and to `openai` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The provider's API key, inline or as `env.VAR_NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    /// Several keys, picked at random by weight (instead of `api_key`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyConfig>,
    /// Requests in flight to this provider at most; more wait in a queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Requests waiting for a slot at most; beyond, they get 429 `queue_full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<u32>,
    /// Refuse with 429 `queue_full` at once instead of waiting for a slot.
    #[serde(default)]
    pub drop_excess_requests: bool,
    /// Extra headers sent with every request to this provider (values may be `env.VAR`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    #[serde(default)]
    pub timeouts: TimeoutOverrides,
    /// Models advertised by `GET /v1/models` as `provider/model`. When empty, the list is asked
    /// from the provider itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// API version: Azure's `api-version`, Anthropic's `anthropic-version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Azure: model name -> deployment name. Unlisted models use their own name as deployment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deployments: BTreeMap<String, String>,
    /// Cloud region (Bedrock, Vertex AI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Google Cloud project (Vertex AI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Path to a Google service-account JSON file (Vertex AI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<Secret>,
    /// AWS credentials (Bedrock); default to the standard AWS_* variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_access_key_id: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secret_access_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_session_token: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`, or a tracing filter directive.
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

fn default_log_level() -> String {
    "info".into()
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: default_log_level(),
            format: LogFormat::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, pretty otherwise.
    #[default]
    Auto,
    Json,
    Pretty,
}

/// A config that cannot be used, with the field at fault in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Loads a `.json`, `.yaml` or `.yml` file (other extensions: JSON, then YAML).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        Config::from_text(&text, ext)
            .map_err(|e| ConfigError(format!("invalid config file {}: {}", path.display(), e.0)))
    }

    /// Parses config text; `format_hint` is a file extension (`json`, `yaml`, `yml`) or empty.
    pub fn from_text(text: &str, format_hint: &str) -> Result<Config, ConfigError> {
        let value: serde_json::Value = match format_hint {
            "json" => serde_json::from_str(text)
                .map_err(|e| ConfigError(format!("not valid JSON: {e}")))?,
            "yaml" | "yml" => serde_yaml_ng::from_str(text)
                .map_err(|e| ConfigError(format!("not valid YAML: {e}")))?,
            _ => match serde_json::from_str(text) {
                Ok(v) => v,
                Err(_) => serde_yaml_ng::from_str(text)
                    .map_err(|e| ConfigError(format!("neither valid JSON nor valid YAML: {e}")))?,
            },
        };
        // An empty YAML document is an empty config.
        let value = if value.is_null() {
            serde_json::json!({})
        } else {
            value
        };
        Config::from_value(value)
    }

    /// Builds a config from an already-parsed JSON value (a Python dict arrives this way).
    pub fn from_value(value: serde_json::Value) -> Result<Config, ConfigError> {
        if !value.is_object() {
            return Err(ConfigError(
                "the config must be an object (a mapping of settings)".into(),
            ));
        }
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ConfigError(format!("{path}: {}", e.into_inner()))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the schema alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: String, msg: String| Err(ConfigError(format!("{field}: {msg}")));
        for (name, p) in &self.providers {
            let field = format!("providers.{name}");
            if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
                return err(
                    field,
                    "a provider name must be non-empty, without `/` or spaces".into(),
                );
            }
            if let Some(url) = &p.base_url {
                validate_base_url(url).or_else(|m| err(format!("{field}.base_url"), m))?;
            } else if presets::find(name).is_none() {
                return err(
                    format!("{field}.base_url"),
                    format!(
                        "required: `{name}` is not a built-in provider (built-in: {})",
                        presets::names().join(", ")
                    ),
                );
            }
            for header in p.headers.keys() {
                if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return err(
                        format!("{field}.headers"),
                        format!("invalid header name {header:?}"),
                    );
                }
            }
            if p.api_key.is_some() && !p.keys.is_empty() {
                return err(
                    format!("{field}.keys"),
                    "use either `api_key` or `keys`, not both".into(),
                );
            }
            let mut seen = std::collections::HashSet::new();
            for (i, key) in p.keys.iter().enumerate() {
                if key.name.trim().is_empty() {
                    return err(
                        format!("{field}.keys[{i}].name"),
                        "must not be empty".into(),
                    );
                }
                if !seen.insert(key.name.as_str()) {
                    return err(
                        format!("{field}.keys[{i}].name"),
                        format!("duplicate key name {:?}", key.name),
                    );
                }
            }
            if p.max_concurrency == Some(0) {
                return err(
                    format!("{field}.max_concurrency"),
                    "must be at least 1".into(),
                );
            }
        }
        for (alias, target) in &self.aliases {
            self.check_target(&format!("aliases.{alias}"), target)?;
        }
        for (name, model) in &self.models {
            let field = format!("models.{name}");
            if name.trim().is_empty() {
                return err(field, "a model name must not be empty".into());
            }
            if self.aliases.contains_key(name) {
                return err(
                    field,
                    format!("`{name}` is also an alias; use one or the other"),
                );
            }
            if model.deployments.is_empty() {
                return err(
                    format!("{field}.deployments"),
                    "needs at least one deployment".into(),
                );
            }
            for (i, d) in model.deployments.iter().enumerate() {
                let dfield = format!("{field}.deployments[{i}]");
                let (provider, _) = self.check_target(&format!("{dfield}.model"), &d.model)?;
                if let Some(url) = &d.base_url {
                    validate_base_url(url).or_else(|m| err(format!("{dfield}.base_url"), m))?;
                }
                let known_keys: Vec<&str> = self
                    .providers
                    .get(provider)
                    .map(|p| p.keys.iter().map(|k| k.name.as_str()).collect())
                    .unwrap_or_default();
                for k in &d.keys {
                    if !known_keys.contains(&k.as_str()) {
                        return err(
                            format!("{dfield}.keys"),
                            format!(
                                "provider `{provider}` has no key named {k:?} (its keys: {})",
                                known_keys.join(", ")
                            ),
                        );
                    }
                }
            }
            for (list, names) in [
                ("fallbacks", &model.fallbacks),
                ("context_window_fallbacks", &model.context_window_fallbacks),
            ] {
                for (i, target) in names.iter().enumerate() {
                    let known =
                        self.models.contains_key(target) || self.aliases.contains_key(target);
                    if !known {
                        self.check_target(&format!("{field}.{list}[{i}]"), target).map_err(|_| {
                            ConfigError(format!(
                                "{field}.{list}[{i}]: {target:?} is neither a model of this config, an alias, nor `provider/model` with a known provider"
                            ))
                        })?;
                    }
                }
            }
        }
        if let Some(p) = &self.default_provider
            && !self.knows_provider(p)
        {
            return err(
                "default_provider".into(),
                format!(
                    "unknown provider `{p}` (known: {})",
                    self.provider_names().join(", ")
                ),
            );
        }
        if self.server.max_request_body.0 < 1024 {
            return err(
                "server.max_request_body".into(),
                "must be at least 1024 bytes".into(),
            );
        }
        for (i, p) in self.plugins.iter().enumerate() {
            let field = format!("plugins[{i}]");
            match (&p.python, &p.builtin) {
                (Some(_), Some(_)) | (None, None) => {
                    return err(field, "give exactly one of `python` or `builtin`".into());
                }
                (Some(target), None) => {
                    let ok = target
                        .split_once(':')
                        .is_some_and(|(m, c)| !m.is_empty() && !c.is_empty() && !c.contains(':'));
                    if !ok {
                        return err(
                            format!("{field}.python"),
                            format!("expected `package.module:ClassName`, got {target:?}"),
                        );
                    }
                }
                (None, Some(name)) => {
                    let known = crate::plugins::registry::BUILTINS;
                    if !known.contains(&name.as_str()) {
                        return err(
                            format!("{field}.builtin"),
                            format!(
                                "unknown built-in plugin `{name}` (known: {})",
                                known.join(", ")
                            ),
                        );
                    }
                }
            }
            if p.timeout.0.is_zero() {
                return err(format!("{field}.timeout"), "must be more than 0".into());
            }
        }
        let store = &self.telemetry.log_store;
        if store.backend == LogBackendKind::Postgres
            && store.url.is_none()
            && store.enabled != Some(false)
        {
            return err(
                "telemetry.log_store.url".into(),
                "required for the postgres backend".into(),
            );
        }
        for (header, label) in &self.telemetry.metrics.header_labels {
            let valid = !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !label.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return err(
                    format!("telemetry.metrics.header_labels.{header}"),
                    format!("{label:?} is not a valid Prometheus label name"),
                );
            }
        }
        let r = &self.routing;
        if !(0.0..=0.5).contains(&r.exploration) {
            return err(
                "routing.exploration".into(),
                "must be between 0 and 0.5".into(),
            );
        }
        if !(r.backoff.multiplier >= 1.0 && r.backoff.multiplier.is_finite()) {
            return err(
                "routing.backoff.multiplier".into(),
                "must be at least 1".into(),
            );
        }
        if r.circuit_breaker.failures == 0 {
            return err(
                "routing.circuit_breaker.failures".into(),
                "must be at least 1".into(),
            );
        }
        if !(r.retry_budget.ratio >= 0.0 && r.retry_budget.ratio.is_finite()) {
            return err(
                "routing.retry_budget.ratio".into(),
                "must not be negative".into(),
            );
        }
        Ok(())
    }

    /// Checks a `provider/model` target; returns its two parts.
    fn check_target<'a>(
        &self,
        field: &str,
        target: &'a str,
    ) -> Result<(&'a str, &'a str), ConfigError> {
        let Some((provider, model)) = target.split_once('/') else {
            return Err(ConfigError(format!(
                "{field}: target {target:?} must be written `provider/model`"
            )));
        };
        if model.is_empty() {
            return Err(ConfigError(format!(
                "{field}: target {target:?} has an empty model name"
            )));
        }
        if !self.knows_provider(provider) {
            return Err(ConfigError(format!(
                "{field}: unknown provider `{provider}` (known: {})",
                self.provider_names().join(", ")
            )));
        }
        Ok((provider, model))
    }

    pub fn knows_provider(&self, name: &str) -> bool {
        self.providers.contains_key(name) || presets::find(name).is_some()
    }

    /// Built-in and configured provider names, sorted.
    pub fn provider_names(&self) -> Vec<String> {
        let mut names: Vec<String> = presets::names().iter().map(|s| s.to_string()).collect();
        for name in self.providers.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names.sort();
        names
    }
}

fn validate_base_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(format!("URL {url:?} must start with http:// or https://"));
    }
    if parsed.host().is_none() {
        return Err(format!("URL {url:?} has no host"));
    }
    // Requests carry the URL as written (no normalisation on each call), so it must already be
    // in the form HTTP puts on the wire.
    if http::Uri::try_from(url).is_err() {
        return Err(format!(
            "URL {url:?} is not in wire form: write non-ASCII host names in punycode and \
             percent-encode spaces and other characters URLs do not allow"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_valid() {
        let c = Config::from_text("", "yaml").unwrap();
        assert_eq!(c.server.port, 8080);
        assert_eq!(c.timeouts.request.0.as_secs(), 600);
    }

    #[test]
    fn yaml_and_json_agree() {
        let yaml = "providers:\n  groq:\n    api_key: gk\n    timeouts: {request: 30s}\naliases:\n  fast: groq/llama\n";
        let json = r#"{"providers":{"groq":{"api_key":"gk","timeouts":{"request":30}}},"aliases":{"fast":"groq/llama"}}"#;
        let a = Config::from_text(yaml, "yaml").unwrap();
        let b = Config::from_text(json, "json").unwrap();
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::to_value(&b).unwrap()
        );
        assert_eq!(
            a.providers["groq"].timeouts.request.unwrap().0.as_secs(),
            30
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            Config::from_text(r#"{"providers":{"openai":{"api_kye":"x"}}}"#, "json").unwrap_err();
        assert!(
            e.0.starts_with("providers.openai.api_kye: unknown field `api_kye`"),
            "{}",
            e.0
        );
        let e = Config::from_text(r#"{"server":{"port":"eighty"}}"#, "json").unwrap_err();
        assert!(e.0.starts_with("server.port:"), "{}", e.0);
        let e = Config::from_text(r#"{"providers":{"mine":{"api_key":"x"}}}"#, "json").unwrap_err();
        assert!(
            e.0.starts_with("providers.mine.base_url: required"),
            "{}",
            e.0
        );
        let e = Config::from_text(r#"{"aliases":{"x":"nope/m"}}"#, "json").unwrap_err();
        assert!(
            e.0.starts_with("aliases.x: unknown provider `nope`"),
            "{}",
            e.0
        );
        let e = Config::from_text(r#"{"providers":{"openai":{"base_url":"ftp://x"}}}"#, "json")
            .unwrap_err();
        assert!(e.0.starts_with("providers.openai.base_url:"), "{}", e.0);
        // Accepted by a URL parser (which would IDNA-map it) but not sendable as written.
        let e = Config::from_text(
            r#"{"providers":{"openai":{"base_url":"https://exämple.com/v1"}}}"#,
            "json",
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("providers.openai.base_url:") && e.0.contains("punycode"),
            "{}",
            e.0
        );
        let e = Config::from_text(r#"{"timeouts":{"request":"soon"}}"#, "json").unwrap_err();
        assert!(
            e.0.starts_with("timeouts.request: invalid duration"),
            "{}",
            e.0
        );
        let e = Config::from_text(
            r#"{"providers":{"openai":{"api_key":"env.FERROGATE_NOT_SET_X"}}}"#,
            "json",
        )
        .unwrap_err();
        assert!(
            e.0.contains("providers.openai.api_key") && e.0.contains("FERROGATE_NOT_SET_X"),
            "{}",
            e.0
        );
    }

    #[test]
    fn secrets_are_redacted_when_serialized() {
        let c =
            Config::from_text(r#"{"providers":{"openai":{"api_key":"sk-abc"}}}"#, "json").unwrap();
        let out = serde_json::to_string(&c).unwrap();
        assert!(!out.contains("sk-abc"));
        assert!(out.contains("[REDACTED]"));
    }
}
