//! Plugins declared in the config (`plugins:`), built by factories. Built-in plugins are Rust;
//! Python plugins (`python: "package.module:ClassName"`) are built by the Python bindings, which
//! register their factory when the extension module loads: the core itself never imports Python.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::{Hooks, Plugin, PluginSlot, SharedPlugin};
use crate::config::{ConfigError, Dur};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Name in logs and for switching it on and off; defaults to the plugin's own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A Python plugin: `package.module:ClassName` (a subclass of `ferrogate.Plugin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// A plugin built into the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// Passed to the plugin.
    #[serde(default)]
    pub config: serde_json::Value,
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Fail the request when the plugin fails (default: log and go on).
    #[serde(default)]
    pub fail_closed: bool,
    /// Longest a hook may take.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
}

fn enabled() -> bool {
    true
}

fn default_timeout() -> Dur {
    Dur::secs(1)
}

/// Builds a plugin from its config entry; the error says why it cannot be.
pub type Factory = fn(&PluginConfig) -> Result<SharedPlugin, String>;

static PYTHON_FACTORY: OnceLock<Factory> = OnceLock::new();

/// Called by the Python bindings when they load.
pub fn set_python_factory(factory: Factory) {
    let _ = PYTHON_FACTORY.set(factory);
}

/// Built-in plugins by name.
pub const BUILTINS: &[&str] = &["noop"];

/// Builds the configured plugins, in order. Errors name the entry (`plugins[1].python: ...`).
pub fn build(configs: &[PluginConfig]) -> Result<Vec<Arc<PluginSlot>>, ConfigError> {
    let mut slots = Vec::with_capacity(configs.len());
    for (i, cfg) in configs.iter().enumerate() {
        let field = format!("plugins[{i}]");
        let plugin: SharedPlugin = match (&cfg.python, &cfg.builtin) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(ConfigError(format!(
                    "{field}: give exactly one of `python` or `builtin`"
                )));
            }
            (Some(target), None) => {
                let factory = PYTHON_FACTORY.get().ok_or_else(|| {
                    ConfigError(format!(
                        "{field}.python: Python plugins need the ferrogate Python package; start the server with \
                         the `ferrogate` command installed by the wheel (or `python -m ferrogate serve`)"
                    ))
                })?;
                factory(cfg).map_err(|e| {
                    ConfigError(format!("{field}.python: cannot load `{target}`: {e}"))
                })?
            }
            (None, Some(name)) => {
                builtin(name, cfg).map_err(|e| ConfigError(format!("{field}.builtin: {e}")))?
            }
        };
        let plugin: SharedPlugin = match &cfg.name {
            Some(n) => Arc::new(Renamed {
                name: n.clone(),
                inner: plugin,
            }),
            None => plugin,
        };
        slots.push(Arc::new(PluginSlot::new(
            plugin,
            cfg.enabled,
            cfg.fail_closed,
            cfg.timeout.0,
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for slot in &slots {
        if !seen.insert(slot.name.clone()) {
            return Err(ConfigError(format!(
                "plugins: two plugins are named `{}`; give one a `name`",
                slot.name
            )));
        }
    }
    Ok(slots)
}

fn builtin(name: &str, _cfg: &PluginConfig) -> Result<SharedPlugin, String> {
    match name {
        "noop" => Ok(Arc::new(Noop)),
        other => Err(format!(
            "unknown built-in plugin `{other}` (known: {})",
            BUILTINS.join(", ")
        )),
    }
}

/// Runs every hook and changes nothing: for measuring what the pipeline itself costs.
pub struct Noop;

impl Plugin for Noop {
    fn name(&self) -> &str {
        "noop"
    }
    fn hooks(&self) -> Hooks {
        Hooks {
            pre: true,
            post: true,
            chunk: true,
            raw_chat: true,
            raw_stream: true,
        }
    }
}

/// A plugin under the name the config gave it.
struct Renamed {
    name: String,
    inner: SharedPlugin,
}

impl Plugin for Renamed {
    fn name(&self) -> &str {
        &self.name
    }
    fn hooks(&self) -> Hooks {
        self.inner.hooks()
    }
    fn pre_hook<'a>(
        &'a self,
        ctx: &'a mut super::RequestContext,
        request: super::Request<'a>,
    ) -> super::HookFuture<'a, super::PreAction> {
        self.inner.pre_hook(ctx, request)
    }
    fn post_hook<'a>(
        &'a self,
        ctx: &'a mut super::RequestContext,
        result: &'a mut Result<super::Reply, crate::error::GatewayError>,
    ) -> super::HookFuture<'a, ()> {
        self.inner.post_hook(ctx, result)
    }
    fn on_stream_chunk<'a>(
        &'a self,
        ctx: &'a mut super::RequestContext,
        chunk: &'a mut crate::schema::ChatChunk,
    ) -> super::HookFuture<'a, super::ChunkAction> {
        self.inner.on_stream_chunk(ctx, chunk)
    }
    fn on_raw_stream_chunk<'a>(
        &'a self,
        ctx: &'a mut super::RequestContext,
        chunk: &'a crate::schema::RawChunk,
    ) -> super::HookFuture<'a, super::ChunkAction> {
        self.inner.on_raw_stream_chunk(ctx, chunk)
    }
}
