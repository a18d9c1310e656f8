//! Running plugins: ordering, timeouts, fail-open / fail-closed, and the stream wrapper.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;

use super::{
    ChunkAction, HookFuture, Hooks, PreAction, Reply, Request, RequestContext, SharedPlugin,
};
use crate::error::{ErrorKind, GatewayError};
use crate::providers::ChunkStream;
use crate::schema::ChunkAccumulator;

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
        fut: HookFuture<'_, T>,
    ) -> Result<Option<T>, GatewayError> {
        let failure = match tokio::time::timeout(self.timeout, fut).await {
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
        ran.iter().all(|&i| {
            let hooks = self.slots[i].hooks;
            !hooks.post || hooks.raw_chat
        })
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
    /// stream has ended (with the folded answer, or the error that ended it).
    pub fn wrap_stream(
        &self,
        ran: Vec<usize>,
        ctx: RequestContext,
        stream: ChunkStream,
    ) -> ChunkStream {
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
        // Boxed: `unfold` moves its state into each item's future and back out, and the state
        // (the request context, the accumulator) is several hundred bytes.
        let state = Box::new(StreamState {
            pipeline: self.clone(),
            ran,
            ctx,
            inner: stream,
            chunk_slots,
            acc: wants_post.then(ChunkAccumulator::default),
            wants_post,
            done: false,
        });
        Box::pin(futures_util::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            loop {
                match st.inner.next().await {
                    Some(Ok(mut chunk)) => {
                        let mut keep = true;
                        for slot in &st.chunk_slots {
                            if !slot.is_enabled() {
                                continue;
                            }
                            let fut = slot.plugin.on_stream_chunk(&mut st.ctx, &mut chunk);
                            match slot.run("on_stream_chunk", fut).await {
                                Ok(Some(ChunkAction::Drop)) => {
                                    keep = false;
                                    break;
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    st.finish(Err(e.clone())).await;
                                    return Some((Err(e), st));
                                }
                            }
                        }
                        if let Some(acc) = &mut st.acc {
                            acc.push(&chunk);
                        }
                        if keep {
                            return Some((Ok(chunk), st));
                        }
                    }
                    Some(Err(e)) => {
                        st.finish(Err(e.clone())).await;
                        return Some((Err(e), st));
                    }
                    None => {
                        let folded = st.acc.take().map(|a| Reply::Chat(a.finish()));
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

struct StreamState {
    pipeline: Pipeline,
    ran: Vec<usize>,
    ctx: RequestContext,
    inner: ChunkStream,
    chunk_slots: Vec<Arc<PluginSlot>>,
    acc: Option<ChunkAccumulator>,
    wants_post: bool,
    done: bool,
}

impl StreamState {
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

impl<'a> Request<'a> {
    /// A shorter-lived view of the same request, for the next hook.
    pub fn reborrow(&mut self) -> Request<'_> {
        match self {
            Request::Chat(r) => Request::Chat(r),
            Request::Embeddings(r) => Request::Embeddings(r),
        }
    }
}
