//! The plugin pipeline: every cross-cutting feature (caching, governance, accounting, logging,
//! user code) hooks into requests here instead of being wired through the engine.
//!
//! Contract:
//! - **pre-hooks** run in order, after the request is parsed and validated and before routing.
//!   Each sees the request and a [`RequestContext`] and may modify the request, answer it
//!   ([`PreAction::Respond`]: no upstream call), or reject it ([`PreAction::Reject`]). The first
//!   answer or rejection stops the remaining pre-hooks.
//! - **post-hooks** run in reverse order, only for plugins whose pre-hook ran, with the response
//!   or the error; they may modify or replace either (an error may become a response and the
//!   reverse). For streams they run once the stream has ended, with the answer folded from its
//!   chunks (changes then cannot reach the caller).
//! - **stream-chunk hooks** run in reverse order on every chunk and may change or drop it.
//! - Every hook call has a timeout. A plugin that fails or times out is logged under its name and
//!   the request goes on (fail-open) unless the plugin is fail-closed. A deliberate rejection is
//!   not a failure: it always ends the request with its error.
//! - A chat completion from an OpenAI-compatible upstream to a client of the OpenAI API reaches
//!   the post-hooks unparsed ([`Reply::RawChat`]) only if every post-hook that runs says it takes
//!   one ([`Hooks::raw_chat`]); otherwise they see it parsed, as [`Reply::Chat`].
//! - Likewise for streams ([`Hooks::raw_stream`]): when every chunk hook and post-hook that runs
//!   takes them so, an OpenAI-compatible upstream's chunks reach a client of the OpenAI API as
//!   they came, the chunk hooks see them unparsed ([`Plugin::on_raw_stream_chunk`]) and the
//!   post-hooks see what the chunks said about usage and finish reasons
//!   ([`Reply::StreamSummary`]) instead of the folded answer.
//! - A plugin can be switched off and on live; the context's `state` map is shared by all hooks of
//!   one request.

mod pipeline;
pub mod registry;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use pipeline::{Pipeline, PluginSlot, PreOutcome};
use serde::Serialize;

use crate::error::GatewayError;
use crate::gateway::ServedBy;
use crate::schema::{
    ChatChunk, ChatReply, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Extra,
    RawChatResponse, RawChunk, StreamSummary,
};

/// What a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    ChatCompletions,
    Embeddings,
}

/// Everything the hooks of one request share.
#[derive(Debug, Clone, Serialize)]
pub struct RequestContext {
    pub request_id: String,
    pub endpoint: Endpoint,
    pub stream: bool,
    /// The model as the caller asked for it.
    pub model: String,
    /// The caller's user id (the request's `user` field).
    pub user: Option<String>,
    /// The caller's virtual key, once governance has identified it.
    pub virtual_key: Option<String>,
    /// Free-form labels, e.g. for metrics (`x-ferrogate-tags`, or `metadata.tags`).
    pub tags: Vec<String>,
    /// The caller's metadata (the Python `metadata=` argument).
    pub metadata: Extra,
    /// Scratch space shared by the hooks of this request.
    pub state: Extra,
    /// Set before post-hooks run, when an upstream (or a plugin) answered.
    #[serde(skip)]
    pub served_by: Option<ServedBy>,
    /// When the request reached the engine.
    #[serde(skip)]
    pub started: std::time::Instant,
    /// Streams: when the first and the latest content chunk passed.
    #[serde(skip)]
    pub first_token_at: Option<std::time::Instant>,
    #[serde(skip)]
    pub last_token_at: Option<std::time::Instant>,
    /// Extra metric labels (from configured request headers).
    #[serde(skip)]
    pub labels: Vec<(String, String)>,
}

impl RequestContext {
    pub fn new(request_id: String, endpoint: Endpoint, model: &str) -> Self {
        RequestContext {
            request_id,
            endpoint,
            stream: false,
            model: model.to_string(),
            user: None,
            virtual_key: None,
            tags: Vec::new(),
            metadata: Extra::new(),
            state: Extra::new(),
            served_by: None,
            started: std::time::Instant::now(),
            first_token_at: None,
            last_token_at: None,
            labels: Vec::new(),
        }
    }
}

/// The request a pre-hook sees.
pub enum Request<'a> {
    Chat(&'a mut ChatRequest),
    Embeddings(&'a mut EmbeddingRequest),
}

/// A complete answer, from an upstream or from a plugin.
#[derive(Debug, Clone)]
pub enum Reply {
    Chat(ChatResponse),
    Embeddings(EmbeddingResponse),
    /// A chat completion still in the upstream's OpenAI JSON, on its way to an OpenAI client
    /// unchanged. Only plugins whose [`Hooks::raw_chat`] is set see one.
    RawChat(RawChatResponse),
    /// A streamed chat completion, as what its chunks said about usage and finish reasons (not
    /// its content): the post-hooks of a stream whose chunks were passed on without being folded.
    /// Only plugins whose [`Hooks::raw_stream`] is set see one.
    StreamSummary(StreamSummary),
}

impl From<ChatReply> for Reply {
    fn from(reply: ChatReply) -> Reply {
        match reply {
            ChatReply::Parsed(r) => Reply::Chat(r),
            ChatReply::Raw(r) => Reply::RawChat(r),
        }
    }
}

pub enum PreAction {
    Continue,
    /// Answer without calling any provider (a cache hit, a canned answer).
    Respond(Reply),
    /// End the request with this error (over quota, forbidden content...).
    Reject(GatewayError),
}

pub enum ChunkAction {
    Keep,
    Drop,
}

/// A plugin that did not do its job (a bug, a timeout). Not a rejection.
#[derive(Debug, Clone)]
pub struct PluginError(pub String);

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PluginError>> + Send + 'a>>;

/// Which hooks a plugin implements; the pipeline skips the others at no cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hooks {
    pub pre: bool,
    pub post: bool,
    pub chunk: bool,
    /// The post-hook takes a chat completion unparsed ([`Reply::RawChat`]: its bytes, usage and
    /// finish reasons), e.g. because it only accounts for it. When every post-hook that will run
    /// does, an OpenAI-compatible upstream's answer is passed to an OpenAI client as it came,
    /// without being parsed and encoded again.
    pub raw_chat: bool,
    /// For streams: the chunk hook only reads what an unparsed chunk tells
    /// ([`Plugin::on_raw_stream_chunk`]: usage, finish reasons, whether it carries a token), and
    /// the post-hook takes a [`Reply::StreamSummary`] instead of the answer folded from the
    /// chunks. When every plugin that runs does, an OpenAI-compatible upstream's chunks are passed
    /// to an OpenAI client as they came, without being parsed and encoded again, and the stream is
    /// not folded.
    pub raw_stream: bool,
}

pub trait Plugin: Send + Sync + 'static {
    fn name(&self) -> &str;

    fn hooks(&self) -> Hooks;

    fn pre_hook<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        request: Request<'a>,
    ) -> HookFuture<'a, PreAction> {
        let _ = (ctx, request);
        Box::pin(async { Ok(PreAction::Continue) })
    }

    fn post_hook<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        result: &'a mut Result<Reply, GatewayError>,
    ) -> HookFuture<'a, ()> {
        let _ = (ctx, result);
        Box::pin(async { Ok(()) })
    }

    fn on_stream_chunk<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        chunk: &'a mut ChatChunk,
    ) -> HookFuture<'a, ChunkAction> {
        let _ = (ctx, chunk);
        Box::pin(async { Ok(ChunkAction::Keep) })
    }

    /// The chunk hook for a chunk still in the upstream's JSON; called instead of
    /// [`on_stream_chunk`](Self::on_stream_chunk) only if [`Hooks::raw_stream`] is set.
    fn on_raw_stream_chunk<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        chunk: &'a RawChunk,
    ) -> HookFuture<'a, ChunkAction> {
        let _ = (ctx, chunk);
        Box::pin(async { Ok(ChunkAction::Keep) })
    }
}

/// A shared, switchable plugin as the pipeline holds it.
pub type SharedPlugin = Arc<dyn Plugin>;
