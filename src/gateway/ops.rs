//! The operations the executor runs against a deployment: one upstream call each. They own the
//! request; each attempt puts the deployment's model id in it (no copy), and hedging forks a
//! copy for the second attempt.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::{Stream, StreamExt};

use crate::error::{ErrorKind, GatewayError, Result};
use crate::providers::{Call, ReplyStream, reply_stream};
use crate::schema::{
    ChatReply, ChatRequest, EmbeddingRequest, EmbeddingResponse, StreamChunk, StreamOptions,
};

pub trait Operation: Send {
    type Output: Send;

    /// One upstream call to `model` through `call`.
    fn attempt(
        &mut self,
        call: &Call<'_>,
        model: &str,
    ) -> impl Future<Output = Result<Self::Output>> + Send;

    /// An independent copy, for a hedged second attempt.
    fn fork(&self) -> Self
    where
        Self: Sized;
}

pub struct ChatOp {
    pub req: ChatRequest,
    /// The answer may stay in the upstream's JSON (see [`crate::providers::ApiKind::chat_reply`]).
    raw_ok: bool,
}

impl ChatOp {
    pub fn new(mut req: ChatRequest, raw_ok: bool) -> Self {
        req.stream = None;
        req.stream_options = None;
        ChatOp { req, raw_ok }
    }
}

impl Operation for ChatOp {
    type Output = ChatReply;

    async fn attempt(&mut self, call: &Call<'_>, model: &str) -> Result<ChatReply> {
        self.req.model.clear();
        self.req.model.push_str(model);
        if self.raw_ok {
            call.provider.api.chat_reply(call, &self.req).await
        } else {
            call.provider
                .api
                .chat(call, &self.req)
                .await
                .map(ChatReply::Parsed)
        }
    }

    fn fork(&self) -> Self {
        ChatOp {
            req: self.req.clone(),
            raw_ok: self.raw_ok,
        }
    }
}

/// A streamed chat. An attempt succeeds only once the first chunk has arrived (within the
/// time-to-first-token limit): until then nothing has reached the caller, so a failure can still
/// be retried elsewhere.
pub struct StreamOp {
    pub req: ChatRequest,
    caller_wants_usage: bool,
    /// Chunks may stay in the upstream's JSON (see [`crate::providers::ApiKind::chat_stream_reply`]).
    raw_ok: bool,
}

impl StreamOp {
    pub fn new(mut req: ChatRequest, raw_ok: bool) -> Self {
        req.stream = Some(true);
        let caller_wants_usage = super::wants_usage(&req);
        StreamOp {
            req,
            caller_wants_usage,
            raw_ok,
        }
    }
}

impl Operation for StreamOp {
    type Output = ReplyStream;

    async fn attempt(&mut self, call: &Call<'_>, model: &str) -> Result<ReplyStream> {
        self.req.model.clear();
        self.req.model.push_str(model);
        // Always ask for usage where the provider supports it (the gateway accounts for tokens);
        // the usage chunk is passed on only if the caller asked for it.
        if call.provider.stream_usage {
            self.req
                .stream_options
                .get_or_insert_with(StreamOptions::default)
                .include_usage = Some(true);
        } else if !self.caller_wants_usage {
            self.req.stream_options = None;
        }
        let mut stream = if self.raw_ok {
            call.provider.api.chat_stream_reply(call, &self.req).await?
        } else {
            reply_stream(call.provider.api.chat_stream(call, &self.req).await?)
        };
        let first = match call.timeouts.first_token {
            Some(limit) => tokio::time::timeout(limit.0, stream.next())
                .await
                .map_err(|_| first_token_timeout(call, limit.0))?,
            None => stream.next().await,
        };
        let first = match first {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => return Err(e),
            None => {
                return Err(GatewayError::new(
                    ErrorKind::BadUpstreamResponse,
                    format!(
                        "provider `{}` ended the stream without any chunk",
                        call.provider.name
                    ),
                )
                .with_provider(call.provider.name.clone()));
            }
        };
        // The usage the gateway asked for on the caller's behalf is taken out by the gateway
        // once the plugins have seen it ([`without_usage`]).
        Ok(Box::pin(
            futures_util::stream::once(async { Ok(first) }).chain(stream),
        ))
    }

    fn fork(&self) -> Self {
        StreamOp {
            req: self.req.clone(),
            caller_wants_usage: self.caller_wants_usage,
            raw_ok: self.raw_ok,
        }
    }
}

fn first_token_timeout(call: &Call<'_>, limit: Duration) -> GatewayError {
    GatewayError::new(
        ErrorKind::Timeout,
        format!(
            "provider `{}` sent no chunk within the time-to-first-token limit of {:.1}s",
            call.provider.name,
            limit.as_secs_f64()
        ),
    )
    .with_provider(call.provider.name.clone())
}

/// Drops the usage-only chunk the gateway asked for on the caller's behalf, and usage fields on
/// other chunks, so the caller sees exactly the stream it asked for. (A plain adapter rather
/// than `filter_map`, which moves every chunk through a future of its own.) A chunk kept in the
/// upstream's JSON is parsed only to take usage out of a chunk that also has choices (a
/// `"usage": null` is passed on as it came).
struct WithoutUsage {
    inner: ReplyStream,
    provider: std::sync::Arc<str>,
}

/// `stream` without usage (see [`WithoutUsage`]); `provider` is named if a chunk does not parse.
pub fn without_usage(stream: ReplyStream, provider: std::sync::Arc<str>) -> ReplyStream {
    Box::pin(WithoutUsage {
        inner: stream,
        provider,
    })
}

impl Stream for WithoutUsage {
    type Item = Result<StreamChunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(self.inner.as_mut().poll_next(cx)) {
                Some(Ok(StreamChunk::Parsed(mut chunk))) if chunk.usage.is_some() => {
                    if !chunk.choices.is_empty() {
                        chunk.usage = None;
                        return Poll::Ready(Some(Ok(StreamChunk::Parsed(chunk))));
                    }
                }
                Some(Ok(StreamChunk::Raw(raw))) if raw.usage.is_some() => {
                    if raw.choices > 0 {
                        let chunk = raw.parse().map(|mut chunk| {
                            chunk.usage = None;
                            StreamChunk::Parsed(Box::new(chunk))
                        });
                        return Poll::Ready(Some(chunk.map_err(|e| {
                            crate::providers::transport::invalid_chunk(&self.provider, e)
                        })));
                    }
                }
                other => return Poll::Ready(other),
            }
        }
    }
}

pub struct EmbedOp {
    pub req: EmbeddingRequest,
}

impl Operation for EmbedOp {
    type Output = EmbeddingResponse;

    async fn attempt(&mut self, call: &Call<'_>, model: &str) -> Result<EmbeddingResponse> {
        self.req.model.clear();
        self.req.model.push_str(model);
        call.provider.api.embeddings(call, &self.req).await
    }

    fn fork(&self) -> Self {
        EmbedOp {
            req: self.req.clone(),
        }
    }
}
