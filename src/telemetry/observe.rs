//! The built-in observability plugin. It runs first, so its post-hook runs last and sees the
//! answer every other plugin has finished with. Per request it records the request metrics,
//! tokens and cost, time to first token and inter-token latency for streams, writes one
//! structured log line, and queues a record for the request log store.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::sync::OnceCell;

use super::cost::PriceTable;
use super::logstore::{LogRecord, LogStore, now_ms};
use super::metrics;
use crate::config::{Config, LogStoreConfig};
use crate::error::GatewayError;
use crate::plugins::{
    ChunkAction, Endpoint, HookFuture, Hooks, Plugin, PreAction, Reply, Request, RequestContext,
};
use crate::schema::{ChatChunk, FinishReason, RawChunk, Usage};

pub struct Observer {
    metrics: bool,
    prices: PriceTable,
    store_config: Option<LogStoreConfig>,
    store: OnceCell<Option<Arc<LogStore>>>,
}

/// The key of the request body kept in the context when content logging is on.
const REQUEST_STATE_KEY: &str = "_ferrogate_request";

impl Observer {
    /// `log_store_default` says whether the log store is on when the config does not say.
    pub fn new(config: &Config, log_store_default: bool) -> Observer {
        let store = &config.telemetry.log_store;
        Observer {
            metrics: config.telemetry.metrics.enabled,
            prices: PriceTable::new(&config.prices),
            store_config: store
                .enabled
                .unwrap_or(log_store_default)
                .then(|| store.clone()),
            store: OnceCell::new(),
        }
    }

    /// Opens the log store now (the server does this at start-up, so a bad store stops it there).
    pub async fn open_store(&self) -> Result<Option<Arc<LogStore>>, String> {
        let Some(cfg) = &self.store_config else {
            return Ok(None);
        };
        if let Some(s) = self.store.get() {
            return Ok(s.clone());
        }
        let store = LogStore::open(cfg).await?;
        let _ = self.store.set(Some(store.clone()));
        Ok(Some(store))
    }

    async fn store(&self) -> Option<Arc<LogStore>> {
        let cfg = self.store_config.as_ref()?;
        self.store
            .get_or_init(|| async {
                LogStore::open(cfg)
                    .await
                    .map_err(|e| tracing::error!(error = %e, "request log store unavailable; requests are not stored"))
                    .ok()
            })
            .await
            .clone()
    }

    fn log_content(&self) -> bool {
        self.store_config.as_ref().is_some_and(|c| c.log_content)
    }

    fn usage_and_cost(
        &self,
        ctx: &RequestContext,
        result: &Result<Reply, GatewayError>,
    ) -> (Option<Usage>, Option<f64>) {
        let usage = match result {
            Ok(Reply::Chat(r)) => r.usage.clone(),
            Ok(Reply::RawChat(r)) => r.usage.clone(),
            Ok(Reply::StreamSummary(s)) => s.usage.clone(),
            Ok(Reply::Embeddings(r)) => Some(Usage::new(r.usage.prompt_tokens, 0)),
            Err(_) => None,
        };
        let cost = match (&usage, &ctx.served_by) {
            (Some(u), Some(s)) => self.prices.cost(&s.provider, &s.model, u),
            _ => None,
        };
        (usage, cost)
    }
}

impl Plugin for Observer {
    fn name(&self) -> &str {
        "telemetry"
    }

    fn hooks(&self) -> Hooks {
        Hooks {
            pre: self.log_content(),
            post: true,
            chunk: self.metrics,
            // It reads usage and finish reasons, and the body as text when it logs content.
            raw_chat: true,
            // Its chunk hook needs only whether a chunk carries a token; the content of a stream
            // is needed only to log it.
            raw_stream: !self.log_content(),
        }
    }

    fn pre_hook<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        request: Request<'a>,
    ) -> HookFuture<'a, PreAction> {
        Box::pin(async move {
            let body = match request {
                Request::Chat(r) => serde_json::to_string(&*r),
                Request::Embeddings(r) => serde_json::to_string(&*r),
            };
            if let Ok(body) = body {
                ctx.state
                    .insert(REQUEST_STATE_KEY.into(), Value::String(body));
            }
            Ok(PreAction::Continue)
        })
    }

    fn on_stream_chunk<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        chunk: &'a mut ChatChunk,
    ) -> HookFuture<'a, ChunkAction> {
        Box::pin(async move {
            token_timing(ctx, chunk.has_token());
            Ok(ChunkAction::Keep)
        })
    }

    fn on_raw_stream_chunk<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        chunk: &'a RawChunk,
    ) -> HookFuture<'a, ChunkAction> {
        Box::pin(async move {
            token_timing(ctx, chunk.has_token);
            Ok(ChunkAction::Keep)
        })
    }

    fn post_hook<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        result: &'a mut Result<Reply, GatewayError>,
    ) -> HookFuture<'a, ()> {
        Box::pin(async move {
            let latency = ctx.started.elapsed();
            let status = match &*result {
                Ok(_) => 200,
                Err(e) => e.status,
            };
            let (usage, cost) = self.usage_and_cost(ctx, result);
            let served = ctx.served_by.as_ref();
            let endpoint = match ctx.endpoint {
                Endpoint::ChatCompletions => "chat.completions",
                Endpoint::Embeddings => "embeddings",
            };
            if self.metrics {
                metrics::request_done(&metrics::RequestDone {
                    endpoint,
                    model: &ctx.model,
                    provider: served.map(|s| &s.provider),
                    status,
                    stream: ctx.stream,
                    duration: latency,
                    custom: &ctx.labels,
                });
                if let (Some(u), Some(s)) = (&usage, served) {
                    metrics::tokens(
                        &s.provider,
                        &s.model,
                        u.prompt_tokens,
                        u.completion_tokens,
                        u.cached_tokens(),
                    );
                    if let Some(c) = cost {
                        metrics::cost(&s.provider, &s.model, c);
                    }
                }
            }
            if super::otel::enabled() {
                let span = tracing::Span::current();
                if let Some(u) = &usage {
                    span.record("gen_ai.usage.input_tokens", u.prompt_tokens as i64);
                    span.record("gen_ai.usage.output_tokens", u.completion_tokens as i64);
                }
                if let Some(c) = cost {
                    span.record("ferrogate.cost_usd", c);
                }
                let reasons: Option<Vec<&str>> = match &*result {
                    Ok(Reply::Chat(r)) => Some(
                        r.choices
                            .iter()
                            .filter_map(|c| c.finish_reason.as_ref().map(|f| f.as_str()))
                            .collect(),
                    ),
                    Ok(Reply::RawChat(r)) => Some(reason_names(&r.finish_reasons)),
                    Ok(Reply::StreamSummary(s)) => Some(reason_names(&s.finish_reasons)),
                    _ => None,
                };
                if let Some(reasons) = reasons {
                    span.record("gen_ai.response.finish_reasons", format!("{reasons:?}"));
                }
            }
            let (prompt, completion, cached) = usage
                .as_ref()
                .map(|u| (u.prompt_tokens, u.completion_tokens, u.cached_tokens()))
                .unwrap_or((0, 0, 0));
            match &*result {
                Ok(_) => tracing::info!(
                    target: "ferrogate::request",
                    request_id = %ctx.request_id,
                    endpoint,
                    model = %ctx.model,
                    provider = served.map(|s| &*s.provider).unwrap_or(""),
                    deployment = served.map(|s| &*s.deployment).unwrap_or(""),
                    key = served.and_then(|s| s.key_name.as_deref()).unwrap_or(""),
                    status,
                    latency_ms = latency.as_secs_f64() * 1000.0,
                    prompt_tokens = prompt,
                    completion_tokens = completion,
                    cost_usd = cost.unwrap_or(0.0),
                    attempts = served.map(|s| s.attempts).unwrap_or(0),
                    stream = ctx.stream,
                ),
                Err(e) => tracing::info!(
                    target: "ferrogate::request",
                    request_id = %ctx.request_id,
                    endpoint,
                    model = %ctx.model,
                    provider = e.provider.as_deref().unwrap_or(""),
                    status,
                    error_type = e.kind.as_str(),
                    error = %e.message,
                    latency_ms = latency.as_secs_f64() * 1000.0,
                    stream = ctx.stream,
                ),
            }
            let Some(store) = self.store().await else {
                return Ok(());
            };
            let (error_type, error_message) = match &*result {
                Err(e) => (Some(e.kind.as_str().to_string()), Some(e.message.clone())),
                Ok(_) => (None, None),
            };
            let response = if store.log_content {
                match &*result {
                    Ok(Reply::Chat(r)) => serde_json::to_string(r).ok(),
                    Ok(Reply::Embeddings(r)) => serde_json::to_string(r).ok(),
                    Ok(Reply::RawChat(r)) => Some(String::from_utf8_lossy(&r.body).into_owned()),
                    // Not expected: the content of a stream is folded when it is logged.
                    Ok(Reply::StreamSummary(_)) => None,
                    Err(e) => Some(e.to_openai_json().to_string()),
                }
            } else {
                None
            };
            store.record(LogRecord {
                id: crate::schema::random_id(),
                request_id: ctx.request_id.clone(),
                ts: now_ms(),
                endpoint: endpoint.into(),
                stream: ctx.stream,
                model: ctx.model.clone(),
                provider: served.map(|s| s.provider.to_string()).or(match &*result {
                    Err(e) => e.provider.as_deref().map(str::to_string),
                    Ok(_) => None,
                }),
                deployment: served.map(|s| s.deployment.to_string()),
                served_model: served.map(|s| s.model.clone()),
                key_name: served.and_then(|s| s.key_name.as_deref().map(str::to_string)),
                user: ctx.user.clone(),
                virtual_key: ctx.virtual_key.clone(),
                tags: ctx.tags.clone(),
                status,
                error_type,
                error_message,
                attempts: served.map(|s| s.attempts).unwrap_or(0),
                fallback_index: served.map(|s| s.fallback_index).unwrap_or(0),
                latency_ms: latency.as_secs_f64() * 1000.0,
                upstream_ms: served.map(|s| s.upstream.as_secs_f64() * 1000.0),
                ttft_ms: ctx
                    .first_token_at
                    .map(|t| (t - ctx.started).as_secs_f64() * 1000.0),
                prompt_tokens: prompt,
                completion_tokens: completion,
                cached_tokens: cached,
                cost_usd: cost,
                request: ctx
                    .state
                    .get(REQUEST_STATE_KEY)
                    .and_then(Value::as_str)
                    .map(str::to_string),
                response,
            });
            Ok(())
        })
    }
}

/// Time to first token and inter-token latency, from a chunk that carries a token (or not).
fn token_timing(ctx: &mut RequestContext, has_token: bool) {
    let Some(served) = ctx.served_by.as_ref().filter(|_| has_token) else {
        return;
    };
    let now = Instant::now();
    match ctx.last_token_at {
        None => metrics::time_to_first_token(&served.provider, &ctx.model, now - ctx.started),
        Some(last) => metrics::inter_token(&served.provider, &ctx.model, now - last),
    }
    if ctx.first_token_at.is_none() {
        ctx.first_token_at = Some(now);
    }
    ctx.last_token_at = Some(now);
}

/// The reasons the choices finished, as their wire names (unfinished choices left out).
fn reason_names(reasons: &[Option<FinishReason>]) -> Vec<&str> {
    reasons
        .iter()
        .filter_map(|f| f.as_ref().map(|f| f.as_str()))
        .collect()
}
