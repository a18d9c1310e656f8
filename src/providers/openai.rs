//! OpenAI Chat Completions / Embeddings / Models, also spoken by the OpenAI-compatible family
//! (Groq, Mistral, DeepSeek, xAI, Together, Fireworks, OpenRouter, Perplexity, Cerebras, Ollama,
//! vLLM, LM Studio and any custom base URL). The canonical schema *is* this wire format, so the
//! translations are near-identities; they still live here as pure functions so every provider
//! file has the same shape.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::Value;

use super::http_client::RequestBuilder;
use super::stream::{Flow, StreamTranslator, TranslatedStream};
use super::transport::{self, Fetched, TimedBody, UpstreamErrorBody};
use super::{Call, ChunkStream, Provider, ReplyStream};
use crate::error::{ErrorKind, GatewayError, Result};
use crate::schema::{
    ChatChunk, ChatReply, ChatRequest, ChatResponse, ChunkShape, EmbeddingRequest,
    EmbeddingResponse, Model, ModelList, RawChatResponse, StreamChunk,
};
use crate::sse::{SseDecoder, SseEvent};

pub struct OpenAi;

/// The native request body: the canonical request as it is (the gateway has already put the
/// provider's model id in `model`).
pub fn chat_request_body(req: &ChatRequest) -> Result<Vec<u8>> {
    transport::request_body(req)
}

pub fn parse_chat_response(body: &[u8]) -> Result<ChatResponse, String> {
    crate::schema::json_from_bytes(body).map_err(|e| e.to_string())
}

/// A chat completion kept as the upstream sent it when it is complete (every field the parsed
/// form needs is there: [`RawChatResponse::check`]), parsed otherwise.
pub fn read_chat_reply(body: &bytes::Bytes) -> Result<ChatReply, String> {
    match RawChatResponse::check(body) {
        Some(raw) => Ok(ChatReply::Raw(raw)),
        None => parse_chat_response(body).map(ChatReply::Parsed),
    }
}

pub fn embeddings_request_body(req: &EmbeddingRequest) -> Result<Vec<u8>> {
    transport::request_body(req)
}

pub fn parse_embeddings_response(body: &[u8]) -> Result<EmbeddingResponse, String> {
    crate::schema::json_from_bytes(body).map_err(|e| e.to_string())
}

pub fn parse_models(body: &[u8]) -> Result<Vec<Model>, String> {
    crate::schema::json_from_bytes::<ModelList>(body)
        .map(|l| l.data)
        .map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorObject,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorObject {
    Object {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        code: Option<Value>,
        #[serde(default)]
        param: Option<Value>,
    },
    // Some compatible servers answer `{"error": "message"}`.
    Text(String),
}

/// Reads an OpenAI-style error body: `{"error": {"message", "type", "code", "param"}}`.
pub fn parse_error_body(body: &[u8]) -> UpstreamErrorBody {
    let Ok(env) = serde_json::from_slice::<ErrorEnvelope>(body) else {
        return UpstreamErrorBody::default();
    };
    match env.error {
        ErrorObject::Text(message) => UpstreamErrorBody {
            message: Some(message),
            ..Default::default()
        },
        ErrorObject::Object {
            message,
            kind,
            code,
            param,
        } => {
            let code = code.and_then(|c| match c {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            let kind = refine_kind(code.as_deref(), kind.as_deref(), message.as_deref());
            UpstreamErrorBody {
                message,
                code,
                param: param.and_then(|p| p.as_str().map(str::to_string)),
                kind,
            }
        }
    }
}

/// Errors whose status alone does not say enough.
fn refine_kind(code: Option<&str>, kind: Option<&str>, message: Option<&str>) -> Option<ErrorKind> {
    match code.or(kind) {
        Some("context_length_exceeded" | "string_above_max_length") => {
            Some(ErrorKind::ContextWindowExceeded)
        }
        Some("content_filter" | "content_policy_violation") => Some(ErrorKind::ContentFiltered),
        _ => {
            let m = message?.to_ascii_lowercase();
            (m.contains("maximum context length") || m.contains("context window"))
                .then_some(ErrorKind::ContextWindowExceeded)
        }
    }
}

/// OpenAI SSE: `data: <chunk>` events, then `data: [DONE]`. An event carrying `error` ends the
/// stream with that error.
#[derive(Debug, Default)]
pub struct OpenAiStreamTranslator {
    saw_finish: bool,
    provider: std::sync::Arc<str>,
}

impl OpenAiStreamTranslator {
    pub fn new(provider: std::sync::Arc<str>) -> Self {
        OpenAiStreamTranslator {
            saw_finish: false,
            provider,
        }
    }

    /// The chunk an event carries (`None` for an empty event), or the error it reports.
    fn chunk(&mut self, data: &str) -> Result<Option<ChatChunk>> {
        if data.is_empty() {
            return Ok(None);
        }
        let mut chunk: ChatChunk =
            serde_json::from_str(data).map_err(|e| transport::invalid_chunk(&self.provider, e))?;
        if let Some(error) = chunk.extra.remove("error") {
            let body = serde_json::json!({ "error": error });
            let parsed = parse_error_body(body.to_string().as_bytes());
            let kind = parsed.kind.unwrap_or(ErrorKind::UpstreamServer);
            let mut err = GatewayError::new(
                kind,
                parsed.message.unwrap_or_else(|| {
                    format!("provider `{}` reported an error mid-stream", self.provider)
                }),
            )
            .with_provider(self.provider.clone());
            err.code = parsed.code;
            return Err(err);
        }
        if chunk.choices.iter().any(|c| c.finish_reason.is_some()) {
            self.saw_finish = true;
        }
        Ok(Some(chunk))
    }

    /// Some compatible servers close after the finish chunk without `[DONE]`; that answer is
    /// complete. Closing before any finish_reason is a truncated answer.
    fn check_end(&self) -> Result<()> {
        if self.saw_finish {
            Ok(())
        } else {
            Err(GatewayError::new(
                ErrorKind::UpstreamConnection,
                format!(
                    "stream from provider `{}` ended before the answer was complete",
                    self.provider
                ),
            )
            .with_provider(self.provider.clone()))
        }
    }
}

impl StreamTranslator<SseEvent> for OpenAiStreamTranslator {
    type Chunk = ChatChunk;

    fn frame(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Flow::Done);
        }
        out.extend(self.chunk(data)?);
        Ok(Flow::Continue)
    }

    fn end(&mut self, _truncated: bool, _out: &mut VecDeque<ChatChunk>) -> Result<()> {
        self.check_end()
    }
}

/// The OpenAI stream translation for a caller that passes OpenAI JSON on: a complete chunk is
/// kept as it came ([`ChunkShape::check`]), anything else is parsed as by
/// [`OpenAiStreamTranslator`] (which also turns error events into errors).
#[derive(Debug, Default)]
pub struct OpenAiRawTranslator {
    parsed: OpenAiStreamTranslator,
    /// The last chunk kept as it came, which the next one is checked against.
    shape: ChunkShape,
}

impl OpenAiRawTranslator {
    pub fn new(provider: std::sync::Arc<str>) -> Self {
        OpenAiRawTranslator {
            parsed: OpenAiStreamTranslator::new(provider),
            shape: ChunkShape::default(),
        }
    }
}

impl StreamTranslator<SseEvent> for OpenAiRawTranslator {
    type Chunk = StreamChunk;

    fn frame(&mut self, event: SseEvent, out: &mut VecDeque<StreamChunk>) -> Result<Flow> {
        // Trimmed from the start first: a chunk stops that at its first byte.
        if let Some(rest) = event.data.trim_start().strip_prefix("[DONE]")
            && rest.trim_end().is_empty()
        {
            return Ok(Flow::Done);
        }
        match self.shape.check(event.data) {
            Ok(raw) => {
                if !raw.finished.is_empty() {
                    self.parsed.saw_finish = true;
                }
                out.push_back(StreamChunk::Raw(raw));
            }
            Err(data) => out.extend(
                self.parsed
                    .chunk(data.trim())?
                    .map(|c| StreamChunk::Parsed(Box::new(c))),
            ),
        }
        Ok(Flow::Continue)
    }

    fn end(&mut self, _truncated: bool, _out: &mut VecDeque<StreamChunk>) -> Result<()> {
        self.parsed.check_end()
    }
}

fn authorized(call: &Call<'_>, builder: RequestBuilder) -> RequestBuilder {
    match call.credential.and_then(|c| c.api_key()) {
        Some(key) => builder.bearer_secret(key),
        None => builder,
    }
}

fn error_from(call: &Call<'_>, fetched: &Fetched) -> GatewayError {
    transport::status_error(call, fetched, parse_error_body(&fetched.body))
}

pub(crate) fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Sends a streamed request and, once the upstream has answered 2xx with an event stream, returns
/// its body. Shared by the OpenAI-shaped APIs (the OpenAI family and Azure OpenAI), which differ
/// in URLs, authentication and error details only.
pub(crate) async fn open_event_stream(
    call: &Call<'_>,
    builder: RequestBuilder,
    error_from: fn(&Call<'_>, &Fetched) -> GatewayError,
) -> Result<TimedBody> {
    let builder = builder.header(http::header::ACCEPT, transport::EVENT_STREAM);
    let (resp, first_byte_deadline) = transport::open(call, builder).await?;
    if !is_success(resp.status().as_u16()) {
        let fetched = transport::read_error_body(call, resp).await;
        return Err(error_from(call, &fetched));
    }
    let is_sse = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if !is_sse {
        let fetched = transport::read_error_body(call, resp).await;
        return Err(transport::bad_response(
            call,
            "stream (expected text/event-stream)",
            transport::truncate(&String::from_utf8_lossy(&fetched.body), 200),
        ));
    }
    Ok(TimedBody::new(call, resp, first_byte_deadline))
}

impl OpenAi {
    /// The upstream's answer to a chat completion, checked for an error status.
    async fn fetch_chat(call: &Call<'_>, req: &ChatRequest) -> Result<Fetched> {
        let body = chat_request_body(req)?;
        let fetched = transport::fetch(
            call,
            authorized(call, transport::json_post(call, "/chat/completions", body)),
        )
        .await?;
        if !is_success(fetched.status) {
            return Err(error_from(call, &fetched));
        }
        Ok(fetched)
    }

    /// As [`Provider::chat`], for a caller that passes OpenAI JSON on: a complete answer is kept
    /// as it came ([`read_chat_reply`]).
    pub async fn chat_reply(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatReply> {
        let fetched = Self::fetch_chat(call, req).await?;
        read_chat_reply(&fetched.body)
            .map_err(|e| transport::bad_response(call, "chat completion", e))
    }

    /// The upstream's event stream, once it has answered 2xx.
    async fn open_chat_stream(call: &Call<'_>, req: &ChatRequest) -> Result<TimedBody> {
        let body = chat_request_body(req)?;
        let builder = authorized(call, transport::json_post(call, "/chat/completions", body));
        open_event_stream(call, builder, error_from).await
    }

    /// As [`Provider::chat_stream`], for a caller that passes OpenAI JSON on: complete chunks are
    /// kept as they came ([`OpenAiRawTranslator`]).
    pub async fn chat_stream_reply(
        &self,
        call: &Call<'_>,
        req: &ChatRequest,
    ) -> Result<ReplyStream> {
        let body = Self::open_chat_stream(call, req).await?;
        let translator = OpenAiRawTranslator::new(call.provider.name.clone());
        Ok(Box::pin(TranslatedStream::new(
            body,
            SseDecoder::new(),
            translator,
        )))
    }
}

impl Provider for OpenAi {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse> {
        let fetched = Self::fetch_chat(call, req).await?;
        parse_chat_response(&fetched.body)
            .map_err(|e| transport::bad_response(call, "chat completion", e))
    }

    async fn chat_stream(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChunkStream> {
        let body = Self::open_chat_stream(call, req).await?;
        let translator = OpenAiStreamTranslator::new(call.provider.name.clone());
        Ok(Box::pin(TranslatedStream::new(
            body,
            SseDecoder::new(),
            translator,
        )))
    }

    async fn embeddings(
        &self,
        call: &Call<'_>,
        req: &EmbeddingRequest,
    ) -> Result<EmbeddingResponse> {
        let body = embeddings_request_body(req)?;
        let fetched = transport::fetch(
            call,
            authorized(call, transport::json_post(call, "/embeddings", body)),
        )
        .await?;
        if !is_success(fetched.status) {
            return Err(error_from(call, &fetched));
        }
        parse_embeddings_response(&fetched.body)
            .map_err(|e| transport::bad_response(call, "embeddings response", e))
    }

    async fn list_models(&self, call: &Call<'_>) -> Result<Vec<Model>> {
        let builder = authorized(call, transport::request(call, http::Method::GET, "/models"));
        let fetched = transport::fetch(call, builder).await?;
        if !is_success(fetched.status) {
            return Err(error_from(call, &fetched));
        }
        parse_models(&fetched.body).map_err(|e| transport::bad_response(call, "models list", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let e = parse_error_body(
            br#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(e.kind, Some(ErrorKind::ContextWindowExceeded));
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = parse_error_body(br#"{"error":"model not loaded"}"#);
        assert_eq!(e.message.as_deref(), Some("model not loaded"));
        assert_eq!(parse_error_body(b"<html>"), UpstreamErrorBody::default());
        let e = parse_error_body(br#"{"error":{"message":"x","code":429}}"#);
        assert_eq!(e.code.as_deref(), Some("429"));
    }
}
