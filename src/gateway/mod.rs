//! The engine both front doors call. A [`Gateway`] holds an atomically swappable [`Snapshot`] of
//! everything derived from the config (providers, routes); a request loads the current snapshot
//! once and keeps it to the end, so a reload never disturbs requests in flight. Health and
//! balancer observations live outside snapshots and survive reloads.

mod execute;
mod ops;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde_json::Value;

use crate::config::{Config, ConfigError};
use crate::error::{GatewayError, Result};
use crate::plugins::{
    Endpoint, Pipeline, PluginSlot, Reply, Request, RequestContext, SharedPlugin,
};
use crate::providers::credentials::Credential;
use crate::providers::{
    BuildContext, Call, ChunkStream, EnvSource, ProcessEnv, ProviderRegistry, ProviderRuntime,
    ReplyStream,
};
use crate::router::Router;
use crate::router::health::HealthRegistry;
use crate::schema::{
    ChatChunk, ChatReply, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Extra,
    Model, ModelList, StreamChunk,
};
use crate::telemetry::logstore::LogStore;
use crate::telemetry::observe::Observer;
use crate::telemetry::otel;
use ops::{ChatOp, EmbedOp, StreamOp};
use tracing::Instrument;

/// Everything derived from one config, swapped as a whole on reload.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    pub providers: ProviderRegistry,
    pub router: Router,
    /// Plugins declared in the config.
    pub plugins: Vec<Arc<PluginSlot>>,
}

impl Snapshot {
    pub fn build(
        config: Config,
        env: &dyn EnvSource,
        health: &Arc<HealthRegistry>,
    ) -> Result<Snapshot, ConfigError> {
        config.validate()?;
        let ctx = BuildContext::new(&config, env, health)?;
        let providers = ProviderRegistry::build(&ctx)?;
        let router = Router::build(&providers, &ctx, health.clone())?;
        let plugins = crate::plugins::registry::build(&config.plugins)?;
        Ok(Snapshot {
            config: Arc::new(config),
            providers,
            router,
            plugins,
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
    /// Overall deadline of the request, retries and fallbacks included.
    pub timeout: Option<Duration>,
    /// Headers added to the upstream request.
    pub extra_headers: Vec<(String, String)>,
    /// Models to try, in order, when the requested one fails (replaces the configured ones).
    pub fallbacks: Vec<String>,
    /// Retries per model (replaces the configured number).
    pub retries: Option<u32>,
    /// The request's id (the server takes the caller's `x-request-id`); generated when absent.
    pub request_id: Option<String>,
    /// Labels for plugins and metrics.
    pub tags: Vec<String>,
    /// The caller's metadata, for plugins.
    pub metadata: Extra,
    /// Extra metric labels (the server fills them from configured request headers).
    pub labels: Vec<(String, String)>,
    /// The caller's W3C `traceparent`, continued by the request's span.
    pub traceparent: Option<String>,
}

impl RequestOptions {
    /// Moves the gateway's own fields out of a request body (`fallbacks`, `num_retries`), so
    /// they are honoured and not sent to the provider.
    pub fn take_from_body(&mut self, extra: &mut Extra) -> Result<()> {
        if let Some(v) = extra.remove("fallbacks") {
            let list: Vec<String> = match v {
                Value::Array(items) => items
                    .into_iter()
                    .map(|i| match i {
                        Value::String(s) => Ok(s),
                        _ => Err(()),
                    })
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| fallbacks_error())?,
                Value::Null => vec![],
                _ => return Err(fallbacks_error()),
            };
            if self.fallbacks.is_empty() {
                self.fallbacks = list;
            }
        }
        if let Some(v) = extra.remove("num_retries") {
            let n = v.as_u64().filter(|n| *n <= 20).ok_or_else(|| {
                GatewayError::invalid_request("`num_retries` must be an integer between 0 and 20")
                    .with_param("num_retries")
            })?;
            self.retries.get_or_insert(n as u32);
        }
        Ok(())
    }
}

fn fallbacks_error() -> GatewayError {
    GatewayError::invalid_request("`fallbacks` must be a list of model names")
        .with_param("fallbacks")
}

/// Which upstream served a request, and how.
#[derive(Debug, Clone)]
pub struct ServedBy {
    pub provider: Arc<str>,
    /// The provider's model id.
    pub model: String,
    /// The deployment that answered (`provider/model` or its configured name).
    pub deployment: Arc<str>,
    /// Name of the key used (never its value); `request` for a key given with the request.
    pub key_name: Option<Arc<str>>,
    /// Upstream calls made, including the one that answered.
    pub attempts: u32,
    /// 0 for the requested model, n for the n-th fallback.
    pub fallback_index: u32,
    /// Time spent waiting on the upstream (for streams: until the first chunk).
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
    /// Plugins registered in code (they survive reloads), after the config's plugins.
    registered: Mutex<Vec<Arc<PluginSlot>>>,
    /// The built-in observability plugin (first in the pipeline).
    observer: ArcSwap<Observer>,
    /// The observer, the config's plugins, then the registered ones.
    pipeline: ArcSwap<Pipeline>,
    health: Arc<HealthRegistry>,
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
        let health = Arc::new(HealthRegistry::default());
        if config.telemetry.metrics.enabled {
            // Before anything records a metric.
            crate::telemetry::metrics::install();
        }
        let snapshot = Snapshot::build(config, env, &health)?;
        let observer = Arc::new(Observer::new(&snapshot.config, false));
        let pipeline = Pipeline::new(pipeline_slots(&observer, &snapshot, &[]));
        Ok(Gateway {
            inner: Arc::new(Inner {
                registered: Mutex::new(Vec::new()),
                observer: ArcSwap::new(observer),
                pipeline: ArcSwap::from_pointee(pipeline),
                snapshot: ArcSwap::from_pointee(snapshot),
                health,
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

    /// Health of every key and deployment seen so far (for metrics and the admin API).
    pub fn health(&self) -> &HealthRegistry {
        &self.inner.health
    }

    /// Replaces the config. In-flight requests finish on the snapshot they started with; health
    /// and balancer observations carry over.
    pub fn reload(&self, config: Config) -> Result<(), ConfigError> {
        let snapshot = Snapshot::build(config, &ProcessEnv, &self.inner.health)?;
        self.inner
            .observer
            .store(Arc::new(Observer::new(&snapshot.config, false)));
        self.inner.snapshot.store(Arc::new(snapshot));
        self.rebuild_pipeline();
        self.inner
            .models_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(())
    }

    /// Adds a plugin after the existing ones; it stays across config reloads.
    pub fn register_plugin(
        &self,
        plugin: SharedPlugin,
        fail_closed: bool,
        timeout: Duration,
    ) -> Result<(), ConfigError> {
        let slot = Arc::new(PluginSlot::new(plugin, true, fail_closed, timeout));
        if self.pipeline().find(&slot.name).is_some() {
            return Err(ConfigError(format!(
                "a plugin named `{}` is already registered",
                slot.name
            )));
        }
        self.inner
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(slot);
        self.rebuild_pipeline();
        Ok(())
    }

    /// Switches a plugin on or off, live. False if no plugin has that name.
    pub fn set_plugin_enabled(&self, name: &str, enabled: bool) -> bool {
        match self.pipeline().find(name) {
            Some(slot) => {
                slot.set_enabled(enabled);
                true
            }
            None => false,
        }
    }

    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.inner.pipeline.load_full()
    }

    fn rebuild_pipeline(&self) {
        let registered = self
            .inner
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let slots = pipeline_slots(
            &self.inner.observer.load_full(),
            &self.snapshot(),
            &registered,
        );
        self.inner.pipeline.store(Arc::new(Pipeline::new(slots)));
    }

    /// Queries the request log store.
    pub async fn query_logs(
        &self,
        q: &crate::telemetry::logstore::LogQuery,
    ) -> Result<crate::telemetry::logstore::LogPage> {
        let store = self
            .open_log_store()
            .await
            .map_err(|e| GatewayError::new(crate::error::ErrorKind::Unavailable, e))?
            .ok_or_else(|| {
                GatewayError::not_found(
                    "the request log store is not enabled (telemetry.log_store.enabled)",
                )
                .with_code("log_store_disabled")
            })?;
        store
            .query(q)
            .await
            .map_err(|e| GatewayError::invalid_request(format!("log query failed: {e}")))
    }

    /// Opens the request log store now, if the config enables it (the server does this at
    /// start-up so that an unusable store stops it with the reason).
    pub async fn open_log_store(&self) -> Result<Option<Arc<LogStore>>, String> {
        self.inner.observer.load_full().open_store().await
    }

    fn context(
        &self,
        opts: &RequestOptions,
        endpoint: Endpoint,
        model: &str,
        user: Option<&String>,
    ) -> RequestContext {
        let id = opts
            .request_id
            .clone()
            .unwrap_or_else(crate::schema::random_id);
        let mut ctx = RequestContext::new(id, endpoint, model);
        ctx.user = user.cloned();
        ctx.tags.clone_from(&opts.tags);
        ctx.metadata.clone_from(&opts.metadata);
        ctx.labels.clone_from(&opts.labels);
        ctx
    }

    pub async fn chat(
        &self,
        req: ChatRequest,
        opts: &RequestOptions,
    ) -> Result<Served<ChatResponse>> {
        let served = self.chat_with(req, opts, false).await?;
        Ok(Served {
            value: parsed_chat(served.value, "post_hook")?,
            meta: served.meta,
        })
    }

    /// A chat completion for a caller that sends it on as OpenAI JSON (the server's OpenAI
    /// route): an OpenAI-compatible upstream's answer comes back as it was sent
    /// ([`ChatReply::Raw`]) unless a plugin's post-hook needs it parsed; any other answer comes
    /// back parsed.
    pub async fn chat_json(
        &self,
        req: ChatRequest,
        opts: &RequestOptions,
    ) -> Result<Served<ChatReply>> {
        self.chat_with(req, opts, true).await
    }

    async fn chat_with(
        &self,
        req: ChatRequest,
        opts: &RequestOptions,
        raw_ok: bool,
    ) -> Result<Served<ChatReply>> {
        let (opts, span) = begin(opts, "chat", &req.model);
        // Boxed: the request's whole state machine (routing, attempts, the upstream call) is several
        // KB, and every future that embeds it is copied as a whole each time it is moved (by the
        // HTTP server boxing the handler, by `instrument`, by each caller's await).
        let result = Box::pin(self.chat_inner(req, opts, raw_ok))
            .instrument(span.clone())
            .await;
        record_outcome(&span, result.as_ref().map(|s| &s.meta));
        result
    }

    /// Opens a stream: returns once a provider has sent the first chunk (until then a failure
    /// is retried or falls back like any other), then yields chunks as they arrive.
    pub async fn chat_stream(
        &self,
        req: ChatRequest,
        opts: &RequestOptions,
    ) -> Result<Served<ChunkStream>> {
        let served = self.chat_stream_with(req, opts, false).await?;
        Ok(Served {
            value: Box::pin(ParsedStream {
                inner: served.value,
                provider: served.meta.provider.clone(),
            }),
            meta: served.meta,
        })
    }

    /// A stream for a caller that sends its chunks on as OpenAI JSON (the server's OpenAI route):
    /// an OpenAI-compatible upstream's chunks come as they were sent ([`StreamChunk::Raw`]) unless
    /// a plugin's chunk hook or post-hook needs them parsed; any other chunk comes parsed.
    pub async fn chat_stream_json(
        &self,
        req: ChatRequest,
        opts: &RequestOptions,
    ) -> Result<Served<ReplyStream>> {
        self.chat_stream_with(req, opts, true).await
    }

    async fn chat_stream_with(
        &self,
        req: ChatRequest,
        opts: &RequestOptions,
        raw_ok: bool,
    ) -> Result<Served<ReplyStream>> {
        let (opts, span) = begin(opts, "chat", &req.model);
        let wants_usage = wants_usage(&req);
        let result = Box::pin(self.chat_stream_inner(req, opts, raw_ok))
            .instrument(span.clone())
            .await;
        record_outcome(&span, result.as_ref().map(|s| &s.meta));
        let mut served = result?;
        // The gateway asks upstreams for usage whatever the caller asked (it accounts for
        // tokens); the plugins have seen it, and a caller that did not ask gets none.
        if !wants_usage {
            served.value = ops::without_usage(served.value, served.meta.provider.clone());
        }
        if otel::enabled() {
            served.value = Box::pin(otel::SpannedStream::new(served.value, span));
        }
        Ok(served)
    }

    pub async fn embeddings(
        &self,
        req: EmbeddingRequest,
        opts: &RequestOptions,
    ) -> Result<Served<EmbeddingResponse>> {
        let (opts, span) = begin(opts, "embeddings", &req.model);
        let result = Box::pin(self.embeddings_inner(req, opts))
            .instrument(span.clone())
            .await;
        record_outcome(&span, result.as_ref().map(|s| &s.meta));
        result
    }

    async fn chat_inner(
        &self,
        mut req: ChatRequest,
        mut opts: RequestOptions,
        raw_ok: bool,
    ) -> Result<Served<ChatReply>> {
        opts.take_from_body(&mut req.extra)
            .map_err(crate::telemetry::rejected)?;
        req.validate().map_err(crate::telemetry::rejected)?;
        let pipeline = self.pipeline();
        if pipeline.is_idle() {
            return self.route_chat(req, &opts, raw_ok).await;
        }
        let mut ctx = self.context(
            &opts,
            Endpoint::ChatCompletions,
            &req.model,
            req.user.as_ref(),
        );
        let pre = pipeline.pre(&mut ctx, Request::Chat(&mut req)).await?;
        let raw_ok = raw_ok && pipeline.takes_raw_chat(&pre.ran);
        let (mut result, meta) = match pre.respond {
            Some((plugin, reply @ (Reply::Chat(_) | Reply::RawChat(_)))) => {
                (Ok(reply), Some(answered_by_plugin(&plugin, &req.model)))
            }
            Some((plugin, Reply::Embeddings(_) | Reply::StreamSummary(_))) => {
                (Err(wrong_reply(&plugin)), None)
            }
            None => match self.validated(req.validate()).map(|_| ()) {
                Err(e) => (Err(e), None),
                Ok(()) => match self.route_chat(req, &opts, raw_ok).await {
                    Ok(served) => (Ok(served.value.into()), Some(served.meta)),
                    Err(e) => (Err(e), None),
                },
            },
        };
        ctx.served_by.clone_from(&meta);
        pipeline.post(&pre.ran, &mut ctx, &mut result).await;
        Ok(Served {
            value: chat_reply(result?, "post_hook")?,
            meta: meta.unwrap_or_else(|| answered_by_plugin("post_hook", &ctx.model)),
        })
    }

    /// A request a pre-hook changed must still be valid.
    fn validated(&self, r: Result<()>) -> Result<()> {
        r.map_err(|mut e| {
            e.message = format!("after the plugins' changes: {}", e.message);
            e
        })
    }

    /// `raw_ok`: an OpenAI-compatible upstream's answer may stay unparsed.
    async fn route_chat(
        &self,
        req: ChatRequest,
        opts: &RequestOptions,
        raw_ok: bool,
    ) -> Result<Served<ChatReply>> {
        let snapshot = self.snapshot();
        let route = snapshot.router.route(&req.model, &snapshot.providers)?;
        execute::execute(&snapshot, route, opts, ChatOp::new(req, raw_ok)).await
    }

    async fn chat_stream_inner(
        &self,
        mut req: ChatRequest,
        mut opts: RequestOptions,
        raw_ok: bool,
    ) -> Result<Served<ReplyStream>> {
        opts.take_from_body(&mut req.extra)
            .map_err(crate::telemetry::rejected)?;
        req.validate().map_err(crate::telemetry::rejected)?;
        let pipeline = self.pipeline();
        if pipeline.is_idle() {
            return self.route_stream(req, &opts, raw_ok).await;
        }
        let mut ctx = self.context(
            &opts,
            Endpoint::ChatCompletions,
            &req.model,
            req.user.as_ref(),
        );
        ctx.stream = true;
        let pre = pipeline.pre(&mut ctx, Request::Chat(&mut req)).await?;
        let raw_ok = raw_ok && pipeline.takes_raw_stream(&pre.ran);
        let served = match pre.respond {
            Some((plugin, reply)) => Served {
                value: reply_as_stream(&chat_answer(reply, &plugin)?),
                meta: answered_by_plugin(&plugin, &req.model),
            },
            None => {
                let routed = match self.validated(req.validate()) {
                    Ok(()) => self.route_stream(req, &opts, raw_ok).await,
                    Err(e) => Err(e),
                };
                match routed {
                    Ok(s) => s,
                    Err(e) => {
                        // The stream never started: post-hooks see the error and may replace it.
                        let mut result = Err(e);
                        pipeline.post(&pre.ran, &mut ctx, &mut result).await;
                        return Ok(Served {
                            value: reply_as_stream(&chat_answer(result?, "post_hook")?),
                            meta: answered_by_plugin("post_hook", &ctx.model),
                        });
                    }
                }
            }
        };
        ctx.served_by = Some(served.meta.clone());
        Ok(Served {
            value: pipeline.wrap_stream(pre.ran, ctx, served.value),
            meta: served.meta,
        })
    }

    /// `raw_ok`: an OpenAI-compatible upstream's chunks may stay unparsed.
    async fn route_stream(
        &self,
        req: ChatRequest,
        opts: &RequestOptions,
        raw_ok: bool,
    ) -> Result<Served<ReplyStream>> {
        let snapshot = self.snapshot();
        let route = snapshot.router.route(&req.model, &snapshot.providers)?;
        execute::execute(&snapshot, route, opts, StreamOp::new(req, raw_ok)).await
    }

    async fn embeddings_inner(
        &self,
        mut req: EmbeddingRequest,
        mut opts: RequestOptions,
    ) -> Result<Served<EmbeddingResponse>> {
        opts.take_from_body(&mut req.extra)
            .map_err(crate::telemetry::rejected)?;
        req.validate().map_err(crate::telemetry::rejected)?;
        let pipeline = self.pipeline();
        if pipeline.is_idle() {
            return self.route_embeddings(req, &opts).await;
        }
        let mut ctx = self.context(&opts, Endpoint::Embeddings, &req.model, req.user.as_ref());
        let pre = pipeline
            .pre(&mut ctx, Request::Embeddings(&mut req))
            .await?;
        let (mut result, meta) = match pre.respond {
            Some((plugin, Reply::Embeddings(r))) => (
                Ok(Reply::Embeddings(r)),
                Some(answered_by_plugin(&plugin, &req.model)),
            ),
            Some((plugin, Reply::Chat(_) | Reply::RawChat(_) | Reply::StreamSummary(_))) => {
                (Err(wrong_reply(&plugin)), None)
            }
            None => match self.validated(req.validate()) {
                Err(e) => (Err(e), None),
                Ok(()) => match self.route_embeddings(req, &opts).await {
                    Ok(served) => (Ok(Reply::Embeddings(served.value)), Some(served.meta)),
                    Err(e) => (Err(e), None),
                },
            },
        };
        ctx.served_by.clone_from(&meta);
        pipeline.post(&pre.ran, &mut ctx, &mut result).await;
        match result? {
            Reply::Embeddings(value) => Ok(Served {
                value,
                meta: meta.unwrap_or_else(|| answered_by_plugin("post_hook", &ctx.model)),
            }),
            Reply::Chat(_) | Reply::RawChat(_) | Reply::StreamSummary(_) => {
                Err(wrong_reply("post_hook"))
            }
        }
    }

    async fn route_embeddings(
        &self,
        req: EmbeddingRequest,
        opts: &RequestOptions,
    ) -> Result<Served<EmbeddingResponse>> {
        let snapshot = self.snapshot();
        let route = snapshot.router.route(&req.model, &snapshot.providers)?;
        execute::execute(&snapshot, route, opts, EmbedOp { req }).await
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
        for (name, owner) in snapshot.router.configured() {
            data.push(Model::new(name, owner));
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

/// How a response a plugin produced is reported.
fn answered_by_plugin(plugin: &str, model: &str) -> ServedBy {
    ServedBy {
        provider: Arc::from("plugin"),
        model: model.to_string(),
        deployment: Arc::from(format!("plugin:{plugin}")),
        key_name: None,
        attempts: 0,
        fallback_index: 0,
        upstream: Duration::ZERO,
    }
}

fn wrong_reply(plugin: &str) -> GatewayError {
    GatewayError::internal(format!(
        "plugin `{plugin}` answered with the wrong kind of response for this endpoint"
    ))
    .with_code("plugin_error")
}

/// A plugin's (or an upstream's) answer to a chat request; an embeddings answer came from
/// `plugin`.
fn chat_reply(reply: Reply, plugin: &str) -> Result<ChatReply> {
    match reply {
        Reply::Chat(r) => Ok(ChatReply::Parsed(r)),
        Reply::RawChat(r) => Ok(ChatReply::Raw(r)),
        Reply::Embeddings(_) | Reply::StreamSummary(_) => Err(wrong_reply(plugin)),
    }
}

/// A chat answer in its parsed form. Only the OpenAI route asks for unparsed ones, so one found
/// elsewhere came from `plugin`.
fn parsed_chat(reply: ChatReply, plugin: &str) -> Result<ChatResponse> {
    match reply {
        ChatReply::Parsed(r) => Ok(r),
        ChatReply::Raw(r) => r.parse().map_err(|e| {
            GatewayError::internal(format!(
                "plugin `{plugin}` answered with an invalid chat completion: {e}"
            ))
            .with_code("plugin_error")
        }),
    }
}

/// A chat answer a plugin gave, in its parsed form.
fn chat_answer(reply: Reply, plugin: &str) -> Result<ChatResponse> {
    parsed_chat(chat_reply(reply, plugin)?, plugin)
}

/// Whether the caller of a streamed request asked for the usage chunk.
fn wants_usage(req: &ChatRequest) -> bool {
    req.stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false)
}

/// A plugin's complete answer to a streamed request, as a stream (with its usage chunk, which
/// is taken out for a caller that did not ask for it like any other).
fn reply_as_stream(resp: &ChatResponse) -> ReplyStream {
    let chunks = crate::schema::chunks_from_response(resp);
    Box::pin(futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok(StreamChunk::Parsed(Box::new(c)))),
    ))
}

/// The chunks of a [`ReplyStream`] in their parsed form, for callers that read them. (Only the
/// OpenAI route asks for unparsed ones, so this parses none in practice; it would, correctly.)
struct ParsedStream {
    inner: ReplyStream,
    provider: Arc<str>,
}

impl futures_util::Stream for ParsedStream {
    type Item = Result<ChatChunk>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let item = std::task::ready!(self.inner.as_mut().poll_next(cx));
        std::task::Poll::Ready(item.map(|r| {
            r.and_then(|chunk| {
                chunk
                    .into_parsed()
                    .map_err(|e| crate::providers::transport::invalid_chunk(&self.provider, e))
            })
        }))
    }
}

/// The observer first (so its post-hook sees the final answer), then the config's plugins, then
/// those registered in code.
fn pipeline_slots(
    observer: &Arc<Observer>,
    snapshot: &Snapshot,
    registered: &[Arc<PluginSlot>],
) -> Vec<Arc<PluginSlot>> {
    let mut slots = Vec::with_capacity(1 + snapshot.plugins.len() + registered.len());
    slots.push(Arc::new(PluginSlot::new(
        observer.clone(),
        true,
        false,
        Duration::from_secs(5),
    )));
    slots.extend(snapshot.plugins.iter().cloned());
    slots.extend(registered.iter().cloned());
    slots
}

/// Options with a request id (generated when the caller gave none), so logs, spans and plugins
/// agree on it.
/// The request's own options (the only copy made of the caller's), with a request id generated
/// when the caller gave none, and its span.
fn begin(
    opts: &RequestOptions,
    operation: &'static str,
    model: &str,
) -> (RequestOptions, tracing::Span) {
    let mut opts = opts.clone();
    let id = opts.request_id.get_or_insert_with(crate::schema::random_id);
    let span = otel::request_span(operation, model, id, opts.traceparent.as_deref());
    (opts, span)
}

/// Puts who served a request, or why it failed, on its span.
fn record_outcome(span: &tracing::Span, result: std::result::Result<&ServedBy, &GatewayError>) {
    if span.is_disabled() {
        return;
    }
    match result {
        Ok(meta) => {
            span.record("gen_ai.system", &*meta.provider);
            span.record("gen_ai.provider.name", &*meta.provider);
            span.record("gen_ai.response.model", meta.model.as_str());
            span.record("ferrogate.deployment", &*meta.deployment);
            span.record("ferrogate.attempts", meta.attempts as i64);
            span.record("http.response.status_code", 200i64);
        }
        Err(e) => {
            span.record("error.type", e.kind.as_str());
            span.record("otel.status_code", "ERROR");
            span.record("http.response.status_code", e.status as i64);
            if let Some(p) = &e.provider {
                span.record("gen_ai.system", &**p);
            }
        }
    }
}
