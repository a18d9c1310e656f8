//! From a public model name to the deployments that may serve it.
//!
//! A [`ModelRoute`] is a public model: weighted [`Deployment`]s (provider + model + keys), the
//! fallbacks tried when they all fail, and how to balance, retry and hedge. Configured models
//! and aliases are built with the config snapshot; `provider/model` names get a one-deployment
//! route built on first use and cached.

pub mod balancer;
pub mod health;
pub mod keys;
pub mod queue;
pub mod retry;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use balancer::Stats;
use health::{Health, HealthRegistry};
use keys::KeyPool;

use crate::config::{
    Balancing, Config, ConfigError, DeploymentConfig, HedgeAfter, ModelConfig, RoutingConfig,
};
use crate::error::{GatewayError, Result};
use crate::providers::{BuildContext, ProviderRegistry, ProviderRuntime, presets};

/// One way to serve a model.
#[derive(Debug)]
pub struct Deployment {
    /// `provider/model`, or the configured name; in logs, metrics and `x-ferrogate-deployment`.
    pub name: Arc<str>,
    pub provider: Arc<ProviderRuntime>,
    /// The provider's own model id.
    pub model: String,
    pub weight: u32,
    /// The keys this deployment may use.
    pub keys: KeyPool,
    pub health: Arc<Health>,
    pub stats: Arc<Stats>,
}

/// A public model and how to serve it.
#[derive(Debug)]
pub struct ModelRoute {
    pub name: String,
    pub deployments: Vec<Arc<Deployment>>,
    pub fallbacks: Vec<String>,
    pub context_window_fallbacks: Vec<String>,
    pub balancing: Balancing,
    /// Retries after the first attempt, before the fallbacks.
    pub retries: u32,
    pub hedge: Option<HedgeAfter>,
    /// Overall deadline, retries and fallbacks included.
    pub timeout: Option<Duration>,
}

/// Most `provider/model` routes cached; beyond, routes are built per request (and health is still
/// kept by name in the registry).
const DYNAMIC_ROUTES_MAX: usize = 4096;

/// Routes by model name. foldhash rather than SipHash: every request looks its model up (twice for
/// a `provider/model` name); still seeded per map, and the dynamic map is bounded, so client-chosen
/// names cannot make it slow.
type RouteMap = HashMap<String, Arc<ModelRoute>, foldhash::fast::RandomState>;

#[derive(Debug)]
pub struct Router {
    routes: RouteMap,
    dynamic: RwLock<RouteMap>,
    default_provider: Option<String>,
    routing: RoutingConfig,
    health: Arc<HealthRegistry>,
}

impl Router {
    pub fn build(
        providers: &ProviderRegistry,
        ctx: &BuildContext<'_>,
        health: Arc<HealthRegistry>,
    ) -> Result<Router, ConfigError> {
        let config = ctx.config;
        let mut router = Router {
            routes: RouteMap::default(),
            dynamic: RwLock::new(RouteMap::default()),
            default_provider: config.default_provider.clone(),
            routing: config.routing.clone(),
            health,
        };
        for (alias, target) in &config.aliases {
            let model = ModelConfig {
                deployments: vec![DeploymentConfig {
                    model: target.clone(),
                    weight: 1,
                    keys: vec![],
                    api_key: None,
                    base_url: None,
                    name: None,
                }],
                fallbacks: vec![],
                context_window_fallbacks: vec![],
                balancing: None,
                retries: None,
                hedge: None,
                timeout: None,
            };
            let route = router.build_route(alias, &model, providers, ctx)?;
            router.routes.insert(alias.clone(), Arc::new(route));
        }
        for (name, model) in &config.models {
            let route = router.build_route(name, model, providers, ctx)?;
            router.routes.insert(name.clone(), Arc::new(route));
        }
        Ok(router)
    }

    fn build_route(
        &self,
        name: &str,
        model: &ModelConfig,
        providers: &ProviderRegistry,
        ctx: &BuildContext<'_>,
    ) -> Result<ModelRoute, ConfigError> {
        let mut deployments = Vec::with_capacity(model.deployments.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, d) in model.deployments.iter().enumerate() {
            let field = format!("models.{name}.deployments[{i}]");
            let (provider_name, provider_model) = d
                .model
                .split_once('/')
                .ok_or_else(|| ConfigError(format!("{field}.model: must be `provider/model`")))?;
            let shared = providers.get(provider_name).ok_or_else(|| {
                ConfigError(format!("{field}.model: unknown provider `{provider_name}`"))
            })?;
            let base_name = d.name.clone().unwrap_or_else(|| d.model.clone());
            let n = seen.entry(base_name.clone()).or_insert(0);
            *n += 1;
            let dep_name = if *n > 1 {
                format!("{base_name}#{n}")
            } else {
                base_name
            };
            let provider = if d.api_key.is_some() || d.base_url.is_some() {
                Arc::new(dedicated_runtime(provider_name, d, &dep_name, ctx)?)
            } else {
                shared.clone()
            };
            let keys = self.keys_for(&provider, provider_model, &d.keys);
            deployments.push(Arc::new(self.deployment(
                &dep_name,
                provider,
                provider_model,
                d.weight,
                keys,
            )));
        }
        Ok(ModelRoute {
            name: name.to_string(),
            deployments,
            fallbacks: model.fallbacks.clone(),
            context_window_fallbacks: model.context_window_fallbacks.clone(),
            balancing: model.balancing.unwrap_or(self.routing.balancing),
            retries: model.retries.unwrap_or(self.routing.retries),
            hedge: model.hedge.map(|h| h.after),
            timeout: model.timeout.map(|t| t.0),
        })
    }

    fn deployment(
        &self,
        name: &str,
        provider: Arc<ProviderRuntime>,
        model: &str,
        weight: u32,
        keys: KeyPool,
    ) -> Deployment {
        Deployment {
            name: Arc::from(name),
            model: model.to_string(),
            weight,
            keys,
            health: self.health.get(&format!("deployment:{name}")),
            stats: self.health.stats(&format!("deployment:{name}")),
            provider,
        }
    }

    /// The provider's keys for one model; a key's rate-limit health is shared by every deployment
    /// of the same provider key and model.
    fn keys_for(&self, provider: &ProviderRuntime, model: &str, names: &[String]) -> KeyPool {
        provider.keys.subset(model, names, |k| {
            self.health.get(&format!("{}@{model}", k.id))
        })
    }

    /// Configured model names and aliases with the provider of their first deployment.
    pub fn configured(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .routes
            .iter()
            .map(|(name, r)| {
                let owner = r
                    .deployments
                    .first()
                    .map(|d| d.provider.name.to_string())
                    .unwrap_or_default();
                (name.clone(), owner)
            })
            .collect();
        v.sort();
        v
    }

    /// Resolution order: a configured model or alias; `provider/model` with a known provider; a
    /// bare name of a known model family (`gpt-4o` -> openai); the default provider. Anything
    /// else is a 404 that lists the known providers.
    pub fn route(&self, model: &str, providers: &ProviderRegistry) -> Result<Arc<ModelRoute>> {
        if let Some(r) = self.routes.get(model) {
            return Ok(r.clone());
        }
        if let Some(r) = self
            .dynamic
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(model)
        {
            return Ok(r.clone());
        }
        let (provider, provider_model) = self.target_of(model, providers)?;
        let route = Arc::new(self.single(model, provider, &provider_model));
        let mut dynamic = self.dynamic.write().unwrap_or_else(|p| p.into_inner());
        if dynamic.len() < DYNAMIC_ROUTES_MAX {
            dynamic.insert(model.to_string(), route.clone());
        }
        Ok(route)
    }

    fn target_of<'p>(
        &self,
        model: &str,
        providers: &'p ProviderRegistry,
    ) -> Result<(&'p Arc<ProviderRuntime>, String)> {
        if let Some((p, m)) = model.split_once('/')
            && let Some(provider) = providers.get(p)
        {
            if m.is_empty() {
                return Err(GatewayError::invalid_request(format!(
                    "model {model:?} names provider `{p}` but no model; write it as `{p}/<model>`"
                ))
                .with_param("model"));
            }
            return Ok((provider, m.to_string()));
        }
        if !model.contains('/')
            && let Some(preset) = presets::infer_from_model(model)
            && let Some(provider) = providers.get(preset.name)
        {
            return Ok((provider, model.to_string()));
        }
        if let Some(p) = &self.default_provider
            && let Some(provider) = providers.get(p)
        {
            return Ok((provider, model.to_string()));
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

    fn single(&self, name: &str, provider: &Arc<ProviderRuntime>, model: &str) -> ModelRoute {
        let dep_name = format!("{}/{model}", provider.name);
        let keys = self.keys_for(provider, model, &[]);
        ModelRoute {
            name: name.to_string(),
            deployments: vec![Arc::new(self.deployment(
                &dep_name,
                provider.clone(),
                model,
                1,
                keys,
            ))],
            fallbacks: vec![],
            context_window_fallbacks: vec![],
            balancing: self.routing.balancing,
            retries: self.routing.retries,
            hedge: None,
            timeout: None,
        }
    }
}

/// A provider runtime of its own for a deployment with its own key or endpoint.
fn dedicated_runtime(
    provider: &str,
    d: &DeploymentConfig,
    dep_name: &str,
    ctx: &BuildContext<'_>,
) -> Result<ProviderRuntime, ConfigError> {
    let mut cfg = ctx
        .config
        .providers
        .get(provider)
        .cloned()
        .unwrap_or_default();
    if let Some(url) = &d.base_url {
        cfg.base_url = Some(url.clone());
    }
    if let Some(key) = &d.api_key {
        cfg.api_key = Some(key.clone());
        cfg.keys.clear();
    }
    let mut runtime = ProviderRuntime::build(provider, Some(&cfg), ctx)?;
    // Its keys are its own: their health must not be shared with the provider's keys.
    let mut keys: Vec<_> = runtime.keys.all().to_vec();
    for k in &mut keys {
        k.id = Arc::from(format!(
            "key:{dep_name}/{}#{:x}",
            k.name,
            k.credential.fingerprint()
        ));
        k.health = ctx.health.get(&k.id);
    }
    runtime.keys = KeyPool::new(keys);
    Ok(runtime)
}

/// Validates the routes a config would build (used by `check-config`).
pub fn describe(config: &Config) -> Vec<String> {
    config
        .models
        .iter()
        .map(|(name, m)| {
            let deps: Vec<String> = m
                .deployments
                .iter()
                .map(|d| format!("{} (weight {})", d.model, d.weight))
                .collect();
            let mut line = format!("{name}: {}", deps.join(", "));
            if !m.fallbacks.is_empty() {
                line.push_str(&format!("; fallbacks: {}", m.fallbacks.join(", ")));
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap as Env;

    fn setup(config: &str) -> (Router, ProviderRegistry) {
        let c = Config::from_text(config, "json").unwrap();
        let env = Env::<String, String>::new();
        let health = Arc::new(HealthRegistry::default());
        let ctx = BuildContext::new(&c, &env, &health).unwrap();
        let reg = ProviderRegistry::build(&ctx).unwrap();
        (Router::build(&reg, &ctx, health.clone()).unwrap(), reg)
    }

    fn resolved(r: &Router, reg: &ProviderRegistry, model: &str) -> (String, String) {
        let route = r.route(model, reg).unwrap();
        let d = &route.deployments[0];
        (d.provider.name.to_string(), d.model.clone())
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
        assert!(
            Arc::ptr_eq(
                &r.route("groq/x", &reg).unwrap(),
                &r.route("groq/x", &reg).unwrap()
            ),
            "cached"
        );
    }

    #[test]
    fn unknown_provider_lists_known_ones() {
        let (r, reg) = setup("{}");
        let e = r.route("nope/model", &reg).unwrap_err();
        assert_eq!(e.status, 404);
        assert!(e.message.contains("unknown provider `nope`"));
        assert!(e.message.contains("groq") && e.message.contains("openai"));
        let e = r.route("llama-3", &reg).unwrap_err();
        assert!(e.message.contains("no provider prefix"));
        assert_eq!(r.route("groq/", &reg).unwrap_err().status, 400);
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

    #[test]
    fn configured_models_with_deployments_keys_and_overrides() {
        let (r, reg) = setup(
            r#"{"providers": {"openai": {"keys": [
                    {"name": "k1", "value": "s1", "weight": 2},
                    {"name": "k2", "value": "s2", "models": ["gpt-4o-mini"]}]}},
                "models": {"smart": {"deployments": [
                    {"model": "openai/gpt-4o", "weight": 3},
                    {"model": "openai/gpt-4o-mini", "keys": ["k2"]},
                    {"model": "openai/gpt-4o", "base_url": "http://other:1/v1", "api_key": "s3"}],
                  "fallbacks": ["groq/llama"], "retries": 4, "balancing": "weighted", "hedge": {"after": "p95"}}}}"#,
        );
        let route = r.route("smart", &reg).unwrap();
        let names: Vec<&str> = route.deployments.iter().map(|d| &*d.name).collect();
        assert_eq!(
            names,
            ["openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-4o#2"]
        );
        let keys = |i: usize| {
            route.deployments[i]
                .keys
                .all()
                .iter()
                .map(|k| k.name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(0), ["k1"], "k2 only serves gpt-4o-mini");
        assert_eq!(keys(1), ["k2"]);
        assert_eq!(keys(2), ["default"]);
        assert_eq!(route.deployments[2].provider.base_url, "http://other:1/v1");
        assert!(!Arc::ptr_eq(
            &route.deployments[0].keys.all()[0].health,
            &route.deployments[2].keys.all()[0].health
        ));
        assert_eq!((route.retries, route.balancing), (4, Balancing::Weighted));
        assert_eq!(route.hedge, Some(HedgeAfter::P95));
        assert_eq!(route.fallbacks, ["groq/llama"]);
    }

    #[test]
    fn config_errors_name_the_field() {
        for (cfg, needle) in [
            (
                r#"{"models":{"m":{"deployments":[]}}}"#,
                "models.m.deployments: needs at least one",
            ),
            (
                r#"{"models":{"m":{"deployments":[{"model":"nope/x"}]}}}"#,
                "models.m.deployments[0].model: unknown provider `nope`",
            ),
            (
                r#"{"models":{"m":{"deployments":[{"model":"openai/x","keys":["k9"]}]}}}"#,
                "models.m.deployments[0].keys: provider `openai` has no key named \"k9\"",
            ),
            (
                r#"{"models":{"m":{"deployments":[{"model":"openai/x"}],"fallbacks":["mystery"]}}}"#,
                "models.m.fallbacks[0]",
            ),
            (r#"{"routing":{"exploration":0.9}}"#, "routing.exploration"),
            (
                r#"{"providers":{"openai":{"api_key":"a","keys":[{"name":"b","value":"c"}]}}}"#,
                "providers.openai.keys: use either",
            ),
        ] {
            let e = Config::from_text(cfg, "json").unwrap_err();
            assert!(e.0.contains(needle), "{cfg}: {}", e.0);
        }
    }
}
