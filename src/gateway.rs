//! The engine both front doors call. A [`Gateway`] holds an atomically swappable [`Snapshot`] of
//! everything derived from the config (providers, router); a request loads the current snapshot
//! once and keeps it to the end, so a reload never disturbs requests in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::StreamExt;

use crate::config::{Config, ConfigError};
use crate::error::{ErrorKind, GatewayError, Result};
use crate::providers::credentials::Credential;
use crate::providers::{
    Call, ChunkStream, EnvSource, ProcessEnv, ProviderRegistry, ProviderRuntime,
};
use crate::router::{Router, Target};
use crate::schema::{
    ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Model, ModelList, StreamOptions,
};

/// Everything derived from one config, swapped as a whole on reload.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    pub providers: ProviderRegistry,
    pub router: Router,
}

impl Snapshot {
    pub fn build(config: Config, env: &dyn EnvSource) -> Result<Snapshot, ConfigError> {
        config.validate()?;
        let providers = ProviderRegistry::build(&config, env)?;
        let router = Router::new(&config);
        Ok(Snapshot {
            config: Arc::new(config),
            providers,
            router,
        })
    }
}

/// Per-request settings a caller may give besides the body.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// Use this credential (an API key given with the request) instead of the provider's keys.
    pub credential: Option<Credential>,
    /// Send to this base URL instead of the provider's.
    pub api_base: Option<String>,
    /// Overrides the provider's request timeout.
    pub timeout: Option<Duration>,
    /// Headers added to the upstream request.
    pub extra_headers: Vec<(String, String)>,
}

/// Which upstream served a request, and how.
#[derive(Debug, Clone)]
pub struct ServedBy {
    pub provider: Arc<str>,
    /// The provider's model id.
    pub model: String,
    /// Name of the key used (never its value); `request` for a key given with the request.
    pub key_name: Option<Arc<str>>,
    /// Upstream calls made, including the one that answered.
    pub attempts: u32,
    /// 0 for the primary candidate, n for the n-th fallback.
    pub fallback_index: u32,
    /// Time spent waiting on the upstream (for streams: until the response head).
    pub upstream: Duration,
}

#[derive(Debug)]
pub struct Served<T> {
    pub value: T,
    pub meta: ServedBy,
}

#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    snapshot: ArcSwap<Snapshot>,
    /// Upstream model lists for `GET /v1/models`, per provider, with their fetch time.
    models_cache: Mutex<HashMap<Arc<str>, CachedModels>>,
}

/// A provider's model list and when it was fetched.
type CachedModels = (Instant, Vec<Model>);

const MODELS_CACHE_TTL: Duration = Duration::from_secs(300);
const MODELS_FETCH_TIMEOUT: Duration = Duration::from_secs(3);

impl Gateway {
    /// A gateway reading provider credentials from the process environment.
    pub fn new(config: Config) -> Result<Gateway, ConfigError> {
        Gateway::with_env(config, &ProcessEnv)
    }

    pub fn with_env(config: Config, env: &dyn EnvSource) -> Result<Gateway, ConfigError> {
        let snapshot = Snapshot::build(config, env)?;
        Ok(Gateway {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(snapshot),
                models_cache: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The current snapshot; hold it for the length of one request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    pub fn config(&self) -> Arc<Config> {
        self.snapshot().config.clone()
    }

    /// Replaces the config. In-flight requests finish on the snapshot they started with.
    pub fn reload(&self, config: Config) -> Result<(), ConfigError> {
        let snapshot = Snapshot::build(config, &ProcessEnv)?;
        self.inner.snapshot.store(Arc::new(snapshot));
        self.inner
            .models_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(())
    }

    pub async fn chat(
        &self,
        mut req: ChatRequest,
        opts: &RequestOptions,
    ) -> Result<Served<ChatResponse>> {
        req.validate()?;
        let snapshot = self.snapshot();
        let route = snapshot.router.resolve(&req.model, &snapshot.providers)?;
        let target = &route.candidates[0];
        req.model.clone_from(&target.model);
        req.stream = None;
        req.stream_options = None;
        let attempt = Attempt::new(target, opts)?;
        let call = attempt.call(opts);
        let started = Instant::now();
        let value = target.provider.api.chat(&call, &req).await?;
        Ok(Served {
            value,
            meta: attempt.served_by(started.elapsed()),
        })
    }

    /// Opens a stream: returns once the upstream has accepted the request (so errors such as a bad
    /// key surface here, not as the first item), then yields chunks as they arrive.
    pub async fn chat_stream(
        &self,
        mut req: ChatRequest,
        opts: &RequestOptions,
    ) -> Result<Served<ChunkStream>> {
        req.validate()?;
        let snapshot = self.snapshot();
        let route = snapshot.router.resolve(&req.model, &snapshot.providers)?;
        let target = &route.candidates[0];
        req.model.clone_from(&target.model);
        req.stream = Some(true);
        // Always ask for usage where the provider supports it (the gateway accounts for tokens);
        // the usage chunk is passed on only if the caller asked for it.
        let caller_wants_usage = req
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        if target.provider.stream_usage {
            req.stream_options
                .get_or_insert_with(StreamOptions::default)
                .include_usage = Some(true);
        }
        let attempt = Attempt::new(target, opts)?;
        let call = attempt.call(opts);
        let started = Instant::now();
        let stream = target.provider.api.chat_stream(&call, &req).await?;
        let stream = if caller_wants_usage {
            stream
        } else {
            without_usage(stream)
        };
        Ok(Served {
            value: stream,
            meta: attempt.served_by(started.elapsed()),
        })
    }

    pub async fn embeddings(
        &self,
        mut req: EmbeddingRequest,
        opts: &RequestOptions,
    ) -> Result<Served<EmbeddingResponse>> {
        req.validate()?;
        let snapshot = self.snapshot();
        let route = snapshot.router.resolve(&req.model, &snapshot.providers)?;
        let target = &route.candidates[0];
        req.model.clone_from(&target.model);
        let attempt = Attempt::new(target, opts)?;
        let call = attempt.call(opts);
        let started = Instant::now();
        let value = target.provider.api.embeddings(&call, &req).await?;
        Ok(Served {
            value,
            meta: attempt.served_by(started.elapsed()),
        })
    }

    /// The models list for a caller. With an `api_base` in the options (a client pointed at one
    /// server), the models that server reports, as `openai/<id>`; otherwise [`Self::list_models`].
    pub async fn list_models_for(&self, opts: &RequestOptions) -> Result<ModelList> {
        let Some(base) = opts.api_base.as_deref() else {
            return Ok(self.list_models().await);
        };
        let snapshot = self.snapshot();
        let provider = snapshot
            .providers
            .get("openai")
            .ok_or_else(|| GatewayError::internal("the openai provider is missing"))?;
        let credential = opts
            .credential
            .as_ref()
            .or(provider.keys.pick().map(|k| &k.credential));
        let call = Call {
            provider,
            credential,
            base_url: base.trim_end_matches('/'),
            timeouts: provider.timeouts,
            extra_headers: &opts.extra_headers,
        };
        let data = provider
            .api
            .list_models(&call)
            .await?
            .into_iter()
            .map(|mut m| {
                m.id = format!("openai/{}", m.id);
                m
            })
            .collect();
        Ok(ModelList {
            object: "list".into(),
            data,
        })
    }

    /// Aliases, configured models, and the models each active provider reports (fetched with a
    /// short timeout and cached; a provider that does not answer is left out).
    pub async fn list_models(&self) -> ModelList {
        let snapshot = self.snapshot();
        let mut data: Vec<Model> = Vec::new();
        let mut aliases: Vec<_> = snapshot.router.aliases().collect();
        aliases.sort_by(|a, b| a.0.cmp(b.0));
        for (alias, (provider, _)) in aliases {
            data.push(Model::new(alias.clone(), provider.clone()));
        }
        let mut providers: Vec<&Arc<ProviderRuntime>> =
            snapshot.providers.iter().filter(|p| p.active).collect();
        providers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut to_fetch = Vec::new();
        for p in providers {
            if !p.advertised_models.is_empty() {
                for m in &p.advertised_models {
                    data.push(Model::new(format!("{}/{m}", p.name), p.name.to_string()));
                }
            } else {
                to_fetch.push(p.clone());
            }
        }
        let fetched =
            futures_util::future::join_all(to_fetch.iter().map(|p| self.upstream_models(p))).await;
        for models in fetched {
            data.extend(models);
        }
        ModelList {
            object: "list".into(),
            data,
        }
    }

    async fn upstream_models(&self, provider: &Arc<ProviderRuntime>) -> Vec<Model> {
        if let Some((at, models)) = self
            .inner
            .models_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&provider.name)
            && at.elapsed() < MODELS_CACHE_TTL
        {
            return models.clone();
        }
        let key = provider.keys.pick();
        if key.is_none() && provider.requires_key {
            return Vec::new();
        }
        let mut timeouts = provider.timeouts;
        timeouts.request = crate::config::Dur(MODELS_FETCH_TIMEOUT.min(timeouts.request.0));
        let call = Call {
            provider,
            credential: key.map(|k| &k.credential),
            base_url: &provider.base_url,
            timeouts,
            extra_headers: &[],
        };
        match provider.api.list_models(&call).await {
            Ok(models) => {
                let models: Vec<Model> = models
                    .into_iter()
                    .map(|mut m| {
                        m.id = format!("{}/{}", provider.name, m.id);
                        if m.owned_by.is_empty() {
                            m.owned_by = provider.name.to_string();
                        }
                        m
                    })
                    .collect();
                self.inner
                    .models_cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(provider.name.clone(), (Instant::now(), models.clone()));
                models
            }
            Err(e) => {
                tracing::debug!(provider = %provider.name, error = %e, "could not list the provider's models");
                Vec::new()
            }
        }
    }
}

/// One upstream call being prepared: the target and the key chosen for it.
struct Attempt<'a> {
    target: &'a Target,
    key: Option<(&'a Credential, Arc<str>)>,
}

impl<'a> Attempt<'a> {
    fn new(target: &'a Target, opts: &'a RequestOptions) -> Result<Attempt<'a>> {
        let provider = &target.provider;
        let key = match &opts.credential {
            Some(credential) => Some((credential, Arc::from("request"))),
            None => provider
                .keys
                .pick()
                .map(|k| (&k.credential, k.name.clone())),
        };
        if provider.base_url.is_empty() && opts.api_base.is_none() {
            let p = provider.name.as_ref();
            let var = provider
                .hint
                .base_url_var
                .map(|v| format!("{v}, or "))
                .unwrap_or_default();
            return Err(GatewayError::new(
                ErrorKind::InvalidRequest,
                format!("provider `{p}` has no endpoint configured: set {var}`providers.{p}.base_url` in the config"),
            )
            .with_provider(provider.name.clone())
            .with_code("missing_base_url"));
        }
        if key.is_none() && provider.requires_key && opts.api_base.is_none() {
            let p = provider.name.as_ref();
            let var = provider
                .hint
                .key_var
                .map(|v| format!("{v}, or "))
                .unwrap_or_default();
            return Err(GatewayError::new(
                ErrorKind::Authentication,
                format!("no credentials for provider `{p}`: set {var}`providers.{p}.api_key` in the config"),
            )
            .with_provider(provider.name.clone())
            .with_code("missing_api_key"));
        }
        Ok(Attempt { target, key })
    }

    fn call(&self, opts: &'a RequestOptions) -> Call<'a> {
        let provider = &self.target.provider;
        let mut timeouts = provider.timeouts;
        if let Some(t) = opts.timeout {
            timeouts.request = crate::config::Dur(t);
        }
        Call {
            provider,
            credential: self.key.as_ref().map(|(c, _)| *c),
            base_url: opts
                .api_base
                .as_deref()
                .map(|b| b.trim_end_matches('/'))
                .unwrap_or(&provider.base_url),
            timeouts,
            extra_headers: &opts.extra_headers,
        }
    }

    fn served_by(&self, upstream: Duration) -> ServedBy {
        ServedBy {
            provider: self.target.provider.name.clone(),
            model: self.target.model.clone(),
            key_name: self.key.as_ref().map(|(_, n)| n.clone()),
            attempts: 1,
            fallback_index: 0,
            upstream,
        }
    }
}

/// Drops the usage-only chunk the gateway asked for on the caller's behalf, and usage fields on
/// other chunks, so the caller sees exactly the stream it asked for.
fn without_usage(stream: ChunkStream) -> ChunkStream {
    Box::pin(stream.filter_map(|item| {
        futures_util::future::ready(match item {
            Ok(mut chunk) if chunk.usage.is_some() => {
                if chunk.choices.is_empty() {
                    None
                } else {
                    chunk.usage = None;
                    Some(Ok(chunk))
                }
            }
            other => Some(other),
        })
    }))
}
