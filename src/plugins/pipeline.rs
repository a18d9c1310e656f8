//! Running plugins: ordering, timeouts, fail-open / fail-closed, and the stream wrapper.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{FutureExt as _, StreamExt};

use super::{
    ChunkAction, HookFuture, Hooks, PreAction, Reply, Request, RequestContext, SharedPlugin,
};
use crate::error::{ErrorKind, GatewayError};
use crate::providers::ReplyStream;
use crate::schema::{ChunkAccumulator, StreamChunk, StreamSummary};

/// A plugin in the pipeline, with how it is run.
pub struct PluginSlot {
    pub plugin: SharedPlugin,
    pub name: String,
    enabled: AtomicBool,
    pub fail_closed: bool,
    pub timeout: Duration,
    hooks: Hooks,
}

impl std::fmt::Debug for PluginSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSlot")
            .field("name", &self.name)
            .field("enabled", &self.is_enabled())
            .field("fail_closed", &self.fail_closed)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PluginSlot {
    pub fn new(plugin: SharedPlugin, enabled: bool, fail_closed: bool, timeout: Duration) -> Self {
        PluginSlot {
            name: plugin.name().to_string(),
            hooks: plugin.hooks(),
            plugin,
            enabled: AtomicBool::new(enabled),
            fail_closed,
            timeout,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Runs one hook under this plugin's timeout. `Ok(None)` means the plugin failed and the
    /// request goes on without it (fail-open); `Err` means it failed closed.
    async fn run<T>(
        &self,
        hook: &'static str,
        mut fut: HookFuture<'_, T>,
    ) -> Result<Option<T>, GatewayError> {
        // Most hooks finish without waiting (metrics, checks of the request): tried once first,
        // they need no timer. One that waits is polled again under its timeout.
        let outcome = match (&mut fut).now_or_never() {
            Some(done) => Ok(done),
            None => tokio::time::timeout(self.timeout, fut).await,
        };
        let failure = match outcome {
            Ok(Ok(v)) => return Ok(Some(v)),
            Ok(Err(e)) => e.0,
            Err(_) => format!("timed out after {:.3}s", self.timeout.as_secs_f64()),
        };
        tracing::warn!(plugin = %self.name, hook, error = %failure, fail_closed = self.fail_closed, "plugin failed");
        crate::telemetry::metrics::plugin_failure(&self.name, hook);
        if self.fail_closed {
            Err(GatewayError::new(
                ErrorKind::Internal,
                format!("plugin `{}` failed in {hook}: {failure}", self.name),
            )
            .with_code("plugin_error"))
        } else {
            Ok(None)
        }
    }
}

/// The plugins of a gateway, in order.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    slots: Arc<Vec<Arc<PluginSlot>>>,
}

/// What the pre-hooks decided.
pub struct PreOutcome {
    /// Indices of the plugins whose pre-hook ran (their post-hooks will run).
    pub ran: Vec<usize>,
    /// A plugin answered: its name and the answer.
    pub respond: Option<(String, Reply)>,
}

impl Pipeline {
    pub fn new(slots: Vec<Arc<PluginSlot>>) -> Self {
        Pipeline {
            slots: Arc::new(slots),
        }
    }

    pub fn slots(&self) -> &[Arc<PluginSlot>] {
        &self.slots
    }

    /// Whether no enabled plugin would run (then the engine skips the pipeline entirely).
    pub fn is_idle(&self) -> bool {
        self.slots.iter().all(|s| !s.is_enabled())
    }

    /// Whether every post-hook that will run (of the plugins in `ran`) takes a chat completion
    /// unparsed ([`super::Hooks::raw_chat`]).
    pub fn takes_raw_chat(&self, ran: &[usize]) -> bool {
        self.all_hooks(ran, |h| !h.post || h.raw_chat)
    }

    /// Whether every chunk hook and post-hook that will run (of the plugins in `ran`) takes
    /// chunks unparsed and a stream unfolded ([`super::Hooks::raw_stream`]).
    pub fn takes_raw_stream(&self, ran: &[usize]) -> bool {
        self.all_hooks(ran, |h| !(h.post || h.chunk) || h.raw_stream)
    }

    /// Whether the hooks of every plugin in `ran` satisfy `test`.
    fn all_hooks(&self, ran: &[usize], test: impl Fn(Hooks) -> bool) -> bool {
        ran.iter().all(|&i| test(self.slots[i].hooks))
    }

    pub fn find(&self, name: &str) -> Option<&Arc<PluginSlot>> {
        self.slots.iter().find(|s| s.name == name)
    }

    pub async fn pre(
        &self,
        ctx: &mut RequestContext,
        mut request: Request<'_>,
    ) -> Result<PreOutcome, GatewayError> {
        let mut ran = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if !slot.is_enabled() {
                continue;
            }
            ran.push(i);
            if !slot.hooks.pre {
                continue;
            }
            let fut = slot.plugin.pre_hook(ctx, request.reborrow());
            match slot.run("pre_hook", fut).await? {
                None | Some(PreAction::Continue) => {}
                Some(PreAction::Respond(reply)) => {
                    return Ok(PreOutcome {
                        ran,
                        respond: Some((slot.name.clone(), reply)),
                    });
                }
                Some(PreAction::Reject(err)) => return Err(err),
            }
        }
        Ok(PreOutcome { ran, respond: None })
    }

    pub async fn post(
        &self,
        ran: &[usize],
        ctx: &mut RequestContext,
        result: &mut Result<Reply, GatewayError>,
    ) {
        for &i in ran.iter().rev() {
            let slot = &self.slots[i];
            if !slot.hooks.post {
                continue;
            }
            let fut = slot.plugin.post_hook(ctx, result);
            if let Err(e) = slot.run("post_hook", fut).await {
                *result = Err(e);
            }
        }
    }

    /// Runs the chunk hooks of the plugins that ran on every chunk, and the post-hooks once the
    /// stream has ended (with the folded answer, or what the chunks said when every post-hook
    /// takes that: [`super::Reply::StreamSummary`]; or with the error that ended it). A chunk
    /// still in the upstream's JSON is parsed for a chunk hook that needs it parsed.
    pub fn wrap_stream(
        &self,
        ran: Vec<usize>,
        ctx: RequestContext,
        stream: ReplyStream,
    ) -> ReplyStream {
        let chunk_slots: Vec<Arc<PluginSlot>> = ran
            .iter()
            .rev()
            .map(|&i| self.slots[i].clone())
            .filter(|s| s.hooks.chunk)
            .collect();
        let wants_post = ran.iter().any(|&i| self.slots[i].hooks.post);
        if chunk_slots.is_empty() && !wants_post {
            return stream;
        }
        let fold = wants_post.then(|| {
            if self.all_hooks(&ran, |h| !h.post || h.raw_stream) {
                Fold::Summary(StreamSummary::default())
            } else {
                Fold::Answer(ChunkAccumulator::default())
            }
        });
        // Boxed: `unfold` moves its state into each item's future and back out, and the state
        // (the request context, the accumulator) is several hundred bytes.
        let state = Box::new(StreamState {
            pipeline: self.clone(),
            ran,
            ctx,
            inner: stream,
            chunk_slots,
            fold,
            wants_post,
            done: false,
        });
        Box::pin(futures_util::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            loop {
                match st.inner.next().await {
                    Some(Ok(mut chunk)) => match st.run_chunk_hooks(&mut chunk).await {
                        Ok(true) => return Some((Ok(chunk), st)),
                        Ok(false) => {}
                        Err(e) => {
                            st.finish(Err(e.clone())).await;
                            return Some((Err(e), st));
                        }
                    },
                    Some(Err(e)) => {
                        st.finish(Err(e.clone())).await;
                        return Some((Err(e), st));
                    }
                    None => {
                        let folded = st.fold.take().map(Fold::finish);
                        if let Some(reply) = folded {
                            st.finish(Ok(reply)).await;
                        }
                        return None;
                    }
                }
            }
        }))
    }
}

/// How a stream is folded for the post-hooks.
enum Fold {
    /// Into the answer a non-streamed call would have returned.
    Answer(ChunkAccumulator),
    /// Into what the chunks said about usage and finish reasons.
    Summary(StreamSummary),
}

impl Fold {
    fn push(&mut self, chunk: &mut StreamChunk) -> Result<(), String> {
        match self {
            Fold::Answer(acc) => acc.push(chunk.make_parsed()?),
            Fold::Summary(summary) => summary.push(chunk),
        }
        Ok(())
    }

    fn finish(self) -> Reply {
        match self {
            Fold::Answer(acc) => Reply::Chat(acc.finish()),
            Fold::Summary(summary) => Reply::StreamSummary(summary),
        }
    }
}

struct StreamState {
    pipeline: Pipeline,
    ran: Vec<usize>,
    ctx: RequestContext,
    inner: ReplyStream,
    chunk_slots: Vec<Arc<PluginSlot>>,
    fold: Option<Fold>,
    wants_post: bool,
    done: bool,
}

impl StreamState {
    /// Runs the chunk hooks on `chunk` and folds it (dropped or not: the folded answer is what
    /// the upstream said); whether it is kept.
    async fn run_chunk_hooks(&mut self, chunk: &mut StreamChunk) -> Result<bool, GatewayError> {
        let mut keep = true;
        for slot in &self.chunk_slots {
            if !slot.is_enabled() {
                continue;
            }
            let fut = match chunk {
                StreamChunk::Raw(raw) if slot.hooks.raw_stream => {
                    slot.plugin.on_raw_stream_chunk(&mut self.ctx, raw)
                }
                _ => {
                    let parsed = chunk
                        .make_parsed()
                        .map_err(|e| invalid_chunk(&self.ctx, e))?;
                    slot.plugin.on_stream_chunk(&mut self.ctx, parsed)
                }
            };
            if let Some(ChunkAction::Drop) = slot.run("on_stream_chunk", fut).await? {
                keep = false;
                break;
            }
        }
        if let Some(fold) = &mut self.fold {
            fold.push(chunk).map_err(|e| invalid_chunk(&self.ctx, e))?;
        }
        Ok(keep)
    }

    async fn finish(&mut self, result: Result<Reply, GatewayError>) {
        self.done = true;
        if !self.wants_post {
            return;
        }
        let mut result = result;
        let ran = std::mem::take(&mut self.ran);
        self.pipeline.post(&ran, &mut self.ctx, &mut result).await;
    }
}

/// A chunk kept in the upstream's JSON that does not parse, found when something needed it parsed.
fn invalid_chunk(ctx: &RequestContext, detail: String) -> GatewayError {
    let provider = ctx
        .served_by
        .as_ref()
        .map_or_else(|| std::sync::Arc::from("upstream"), |s| s.provider.clone());
    crate::providers::transport::invalid_chunk(&provider, detail)
}

impl<'a> Request<'a> {
    /// A shorter-lived view of the same request, for the next hook.
    pub fn reborrow(&mut self) -> Request<'_> {
        match self {
            Request::Chat(r) => Request::Chat(r),
            Request::Embeddings(r) => Request::Embeddings(r),
        }
    }
}
