//! From a public model name to the ordered list of upstream candidates that may serve it.

pub mod keys;

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::error::{GatewayError, Result};
use crate::providers::{ProviderRegistry, ProviderRuntime, presets};

/// One way to serve a request: a provider and the model id it knows.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: Arc<ProviderRuntime>,
    pub model: String,
}

/// Candidates in the order they are tried.
#[derive(Debug, Clone)]
pub struct Route {
    pub candidates: Vec<Target>,
}

/// Resolves model names. Built once per config snapshot.
#[derive(Debug)]
pub struct Router {
    aliases: HashMap<String, (String, String)>,
    default_provider: Option<String>,
}

impl Router {
    pub fn new(config: &Config) -> Router {
        let aliases = config
            .aliases
            .iter()
            .filter_map(|(alias, target)| {
                let (p, m) = target.split_once('/')?;
                Some((alias.clone(), (p.to_string(), m.to_string())))
            })
            .collect();
        Router {
            aliases,
            default_provider: config.default_provider.clone(),
        }
    }

    pub fn aliases(&self) -> impl Iterator<Item = (&String, &(String, String))> {
        self.aliases.iter()
    }

    /// Resolution order: an alias; `provider/model` with a known provider; a bare name of a known
    /// model family (`gpt-4o` -> openai); the default provider. Anything else is a 404 that lists
    /// the known providers.
    pub fn resolve(&self, model: &str, providers: &ProviderRegistry) -> Result<Route> {
        let target = |provider: &str, model: &str| -> Option<Target> {
            providers.get(provider).map(|p| Target {
                provider: p.clone(),
                model: model.to_string(),
            })
        };
        if let Some((p, m)) = self.aliases.get(model)
            && let Some(t) = target(p, m)
        {
            return Ok(Route {
                candidates: vec![t],
            });
        }
        if let Some((p, m)) = model.split_once('/')
            && let Some(t) = target(p, m)
        {
            if m.is_empty() {
                return Err(GatewayError::invalid_request(format!(
                    "model {model:?} names provider `{p}` but no model; write it as `{p}/<model>`"
                ))
                .with_param("model"));
            }
            return Ok(Route {
                candidates: vec![t],
            });
        }
        if !model.contains('/')
            && let Some(preset) = presets::infer_from_model(model)
            && let Some(t) = target(preset.name, model)
        {
            return Ok(Route {
                candidates: vec![t],
            });
        }
        if let Some(p) = &self.default_provider
            && let Some(t) = target(p, model)
        {
            return Ok(Route {
                candidates: vec![t],
            });
        }
        let known = providers.names().join(", ");
        let message = match model.split_once('/') {
            Some((p, _)) => {
                format!("unknown provider `{p}` in model {model:?}; known providers: {known}")
            }
            None => format!(
                "model {model:?} has no provider prefix; write it as `provider/model` (known providers: {known}), \
                 define an alias, or set `default_provider`"
            ),
        };
        Err(GatewayError::not_found(message)
            .with_code("model_not_found")
            .with_param("model"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap as Env;

    fn setup(config: &str) -> (Router, ProviderRegistry) {
        let c = Config::from_text(config, "json").unwrap();
        let reg = ProviderRegistry::build(&c, &Env::<String, String>::new()).unwrap();
        (Router::new(&c), reg)
    }

    fn resolved(r: &Router, reg: &ProviderRegistry, model: &str) -> (String, String) {
        let route = r.resolve(model, reg).unwrap();
        let t = &route.candidates[0];
        (t.provider.name.to_string(), t.model.clone())
    }

    #[test]
    fn resolution_order() {
        let (r, reg) = setup(
            r#"{"aliases":{"fast":"groq/llama-3.1-8b-instant","gpt-4o":"openrouter/openai/gpt-4o"}}"#,
        );
        assert_eq!(
            resolved(&r, &reg, "fast"),
            ("groq".into(), "llama-3.1-8b-instant".into())
        );
        assert_eq!(
            resolved(&r, &reg, "gpt-4o"),
            ("openrouter".into(), "openai/gpt-4o".into())
        );
        assert_eq!(
            resolved(&r, &reg, "gpt-4o-mini"),
            ("openai".into(), "gpt-4o-mini".into())
        );
        assert_eq!(
            resolved(&r, &reg, "openrouter/meta-llama/llama-3-8b"),
            ("openrouter".into(), "meta-llama/llama-3-8b".into())
        );
    }

    #[test]
    fn unknown_provider_lists_known_ones() {
        let (r, reg) = setup("{}");
        let e = r.resolve("nope/model", &reg).unwrap_err();
        assert_eq!(e.status, 404);
        assert!(e.message.contains("unknown provider `nope`"));
        assert!(e.message.contains("groq") && e.message.contains("openai"));
        let e = r.resolve("llama-3", &reg).unwrap_err();
        assert_eq!(e.status, 404);
        assert!(e.message.contains("no provider prefix"));
        assert_eq!(r.resolve("groq/", &reg).unwrap_err().status, 400);
    }

    #[test]
    fn default_provider_takes_the_rest() {
        let (r, reg) = setup(r#"{"default_provider":"vllm"}"#);
        assert_eq!(
            resolved(&r, &reg, "meta-llama/Llama-3"),
            ("vllm".into(), "meta-llama/Llama-3".into())
        );
        assert_eq!(
            resolved(&r, &reg, "llama-3"),
            ("vllm".into(), "llama-3".into())
        );
    }
}
