//! Cohere v2 responses / stream events / errors -> canonical.
//!
//! - text content becomes `content`; `thinking` content becomes `reasoning_content`; `tool_plan`
//!   and `citations` are kept on the message under their Cohere names (a `tool_plan` sent back in a
//!   later request is forwarded to Cohere);
//! - finish reasons: `COMPLETE`/`STOP_SEQUENCE` -> `stop`, `MAX_TOKENS` -> `length`, `TOOL_CALL`
//!   -> `tool_calls`, `ERROR_TOXIC` -> `content_filter`, others lower-cased;
//! - usage: `prompt_tokens`/`completion_tokens` are the billed units (what Cohere charges for, so
//!   costs and budgets computed from them are right); the model-side `tokens` (which include
//!   Cohere's own prompt scaffolding) are kept under `usage.tokens`, with Cohere's
//!   `cached_tokens`, which count those model-side tokens (they can exceed the billed input, so
//!   they are not reported as OpenAI's `prompt_tokens_details.cached_tokens`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};

use super::wire::{
    ChatResponse as CohereResponse, ContentDelta, ContentItem, EmbedResponse, ErrorBody,
    LogprobItem, ModelList, StreamEvent, ToolCall as CohereToolCall, Usage,
};
use crate::error::{ErrorKind, GatewayError, Result};
use crate::providers::stream::{Flow, StreamTranslator};
use crate::providers::transport::UpstreamErrorBody;
use crate::schema::{
    ChatChunk, ChatResponse, Choice, Delta, Embedding, EmbeddingResponse, EmbeddingUsage,
    EmbeddingVector, Extra, FinishReason, FunctionCall, FunctionCallDelta, Message, MessageContent,
    Model, Role, ToolCall, ToolCallDelta, Usage as CanonicalUsage, unix_now,
};
use crate::sse::SseEvent;

pub fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "COMPLETE" | "STOP_SEQUENCE" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "TOOL_CALL" => FinishReason::ToolCalls,
        "ERROR_TOXIC" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_ascii_lowercase()),
    }
}

pub fn usage(u: &Usage) -> CanonicalUsage {
    let billed = u.billed_units.as_ref();
    let model = u.tokens.as_ref();
    let prompt = billed
        .and_then(|b| b.input_tokens)
        .or(model.and_then(|t| t.input_tokens))
        .unwrap_or(0);
    let completion = billed
        .and_then(|b| b.output_tokens)
        .or(model.and_then(|t| t.output_tokens))
        .unwrap_or(0);
    let mut out = CanonicalUsage::new(prompt, completion);
    if model.is_some() || u.cached_tokens.is_some() {
        let mut tokens = model
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or_else(|| json!({}));
        if let Some(cached) = u.cached_tokens {
            tokens["cached_tokens"] = json!(cached);
        }
        out.extra.insert("tokens".into(), tokens);
    }
    out
}

fn tool_call(c: &CohereToolCall) -> ToolCall {
    ToolCall {
        id: c.id.clone(),
        kind: "function".into(),
        function: FunctionCall {
            name: c.function.name.clone().unwrap_or_default(),
            arguments: c.function.arguments.clone().unwrap_or_default(),
            extra: Extra::new(),
        },
        extra: Extra::new(),
    }
}

/// Cohere's log-probabilities as OpenAI's `logprobs.content`: one entry per text chunk, whose
/// log-probability is the sum of its tokens' (the probability of the whole chunk).
pub fn logprobs(items: &[LogprobItem]) -> Value {
    let content: Vec<Value> = items
        .iter()
        .map(|item| {
            let text = item.text.clone().unwrap_or_default();
            let logprob: f64 = item.logprobs.iter().flatten().sum();
            json!({"token": text, "logprob": logprob, "bytes": text.as_bytes(), "top_logprobs": []})
        })
        .collect();
    json!({ "content": content })
}

/// The non-streamed answer. Cohere does not echo the model, so the caller's is used.
pub fn to_chat_response(resp: CohereResponse, model: &str) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    for item in resp.message.content.iter().flatten() {
        match item {
            ContentItem::Text { text: t } => text.push_str(t),
            ContentItem::Thinking { thinking } => reasoning.push_str(thinking),
            _ => {}
        }
    }
    let tool_calls: Vec<ToolCall> = resp
        .message
        .tool_calls
        .iter()
        .flatten()
        .map(tool_call)
        .collect();
    let mut extra = Extra::new();
    if !reasoning.is_empty() {
        extra.insert("reasoning_content".into(), Value::String(reasoning));
    }
    if let Some(plan) = resp.message.tool_plan.filter(|p| !p.is_empty()) {
        extra.insert("tool_plan".into(), Value::String(plan));
    }
    if let Some(citations) = resp.message.citations.filter(|c| !c.is_empty()) {
        extra.insert("citations".into(), Value::Array(citations));
    }
    let message = Message {
        role: Role::Assistant,
        content: (!text.is_empty() || tool_calls.is_empty()).then_some(MessageContent::Text(text)),
        name: None,
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        tool_call_id: None,
        refusal: None,
        extra,
    };
    ChatResponse {
        id: resp.id,
        object: "chat.completion".into(),
        created: unix_now(),
        model: model.to_string(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: resp.finish_reason.as_deref().map(finish_reason),
            logprobs: resp.logprobs.as_deref().map(logprobs),
            extra: Extra::new(),
        }],
        usage: resp.usage.as_ref().map(usage),
        system_fingerprint: None,
        extra: Extra::new(),
    }
}

/// The embed answer in OpenAI's shape; `base64` re-encodes the floats as OpenAI does.
pub fn to_embedding_response(
    resp: EmbedResponse,
    model: &str,
    base64: bool,
) -> Result<EmbeddingResponse, String> {
    let vectors = resp
        .embeddings
        .float
        .ok_or("the answer has no `embeddings.float`")?;
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| Embedding {
            object: "embedding".into(),
            index: i as u32,
            embedding: if base64 {
                EmbeddingVector::Base64(EmbeddingVector::to_base64(&v))
            } else {
                EmbeddingVector::Float(v)
            },
            extra: Extra::new(),
        })
        .collect();
    let meta = resp.meta.unwrap_or_default();
    let tokens = meta
        .billed_units
        .as_ref()
        .and_then(|b| b.input_tokens)
        .or(meta.tokens.as_ref().and_then(|t| t.input_tokens))
        .unwrap_or(0);
    Ok(EmbeddingResponse {
        object: "list".into(),
        data,
        model: model.to_string(),
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
            extra: Extra::new(),
        },
        extra: Extra::new(),
    })
}

pub fn parse_models(body: &[u8]) -> Result<Vec<Model>, String> {
    let list: ModelList = crate::schema::json_from_bytes(body).map_err(|e| e.to_string())?;
    Ok(list
        .models
        .into_iter()
        .map(|m| {
            let mut model = Model::new(m.name, "cohere");
            if let Some(endpoints) = m.endpoints {
                model.extra.insert("endpoints".into(), json!(endpoints));
            }
            model
        })
        .collect())
}

/// The kind of a Cohere error, from its status and message. Statuses Cohere uses outside the
/// standard set are mapped (with the status clients know) by the adapter.
pub fn error_kind(status: u16, message: &str) -> Option<ErrorKind> {
    let m = message.to_ascii_lowercase();
    if m.starts_with("too many tokens") && !m.contains("max tokens must be") {
        return Some(ErrorKind::ContextWindowExceeded);
    }
    Some(match status {
        402 => ErrorKind::PermissionDenied,
        498 => ErrorKind::Authentication,
        499 => ErrorKind::Unavailable,
        _ => return None,
    })
}

/// The status a caller sees for a Cohere status outside the usual set.
pub fn client_status(status: u16) -> Option<u16> {
    match status {
        498 => Some(401),
        499 => Some(503),
        _ => None,
    }
}

pub fn parse_error_body(status: u16, body: &[u8]) -> UpstreamErrorBody {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => UpstreamErrorBody {
            kind: error_kind(status, &e.message),
            message: Some(e.message),
            code: None,
            param: None,
        },
        Err(_) => UpstreamErrorBody {
            kind: error_kind(status, ""),
            ..Default::default()
        },
    }
}

/// Cohere's stream events -> chunks. Text, thinking and tool-argument deltas pass through one by
/// one; `message-end` gives a finish chunk and then a usage chunk.
#[derive(Debug)]
pub struct CohereStreamTranslator {
    provider: Arc<str>,
    id: String,
    model: String,
    created: u64,
    /// Cohere's tool-call index -> the canonical tool call index.
    tool_index: HashMap<u32, u32>,
    ended: bool,
}

impl CohereStreamTranslator {
    pub fn new(provider: Arc<str>, model: &str) -> Self {
        CohereStreamTranslator {
            provider,
            id: String::new(),
            model: model.to_string(),
            created: unix_now(),
            tool_index: HashMap::new(),
            ended: false,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        ChatChunk::new(&self.id, &self.model, self.created).with_delta(delta, finish)
    }

    fn error(&self, kind: ErrorKind, message: String) -> GatewayError {
        GatewayError::new(kind, message).with_provider(self.provider.clone())
    }

    fn tool_delta(&self, delta: ToolCallDelta) -> ChatChunk {
        self.chunk(
            Delta {
                tool_calls: Some(vec![delta]),
                ..Default::default()
            },
            None,
        )
    }

    /// Text (with its log-probabilities, when asked for) or thinking of a content event.
    fn content(
        &self,
        delta: ContentDelta,
        logprob: Option<LogprobItem>,
        out: &mut VecDeque<ChatChunk>,
    ) {
        let piece = delta.message.content;
        if let Some(text) = piece.text.filter(|t| !t.is_empty()) {
            let mut chunk = self.chunk(Delta::content(text), None);
            if let Some(item) = logprob {
                chunk.choices[0].logprobs = Some(logprobs(std::slice::from_ref(&item)));
            }
            out.push_back(chunk);
        }
        if let Some(thinking) = piece.thinking.filter(|t| !t.is_empty()) {
            let mut delta = Delta::default();
            delta
                .extra
                .insert("reasoning_content".into(), Value::String(thinking));
            out.push_back(self.chunk(delta, None));
        }
    }

    pub fn event(&mut self, event: StreamEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
        match event {
            StreamEvent::MessageStart { id, .. } => {
                self.id = id.unwrap_or_default();
                out.push_back(self.chunk(
                    Delta {
                        role: Some(Role::Assistant),
                        content: Some(String::new()),
                        ..Default::default()
                    },
                    None,
                ));
            }
            StreamEvent::ContentStart { delta, .. } => self.content(delta, None, out),
            StreamEvent::ContentDelta {
                delta, logprobs, ..
            } => self.content(delta, logprobs, out),
            StreamEvent::CitationStart { delta, .. } => {
                // Each citation as it is found, under the name the non-streamed message uses.
                if let Some(citation) = delta.pointer("/message/citations").cloned() {
                    let mut d = Delta::default();
                    d.extra
                        .insert("citations".into(), Value::Array(vec![citation]));
                    out.push_back(self.chunk(d, None));
                }
            }
            StreamEvent::ToolPlanDelta { delta } => {
                if !delta.message.tool_plan.is_empty() {
                    let mut d = Delta::default();
                    d.extra
                        .insert("tool_plan".into(), Value::String(delta.message.tool_plan));
                    out.push_back(self.chunk(d, None));
                }
            }
            StreamEvent::ToolCallStart { index, delta } => {
                let call = delta.message.tool_calls;
                let tool_index = self.tool_index.len() as u32;
                self.tool_index.insert(index, tool_index);
                out.push_back(self.tool_delta(ToolCallDelta {
                    index: tool_index,
                    id: Some(call.id),
                    kind: Some("function".into()),
                    function: Some(FunctionCallDelta {
                        name: call.function.name,
                        arguments: Some(call.function.arguments.unwrap_or_default()),
                    }),
                    extra: Extra::new(),
                }));
            }
            StreamEvent::ToolCallDelta { index, delta } => {
                let Some(&tool_index) = self.tool_index.get(&index) else {
                    return Err(self.error(
                        ErrorKind::BadUpstreamResponse,
                        format!(
                            "provider `{}` sent tool-call arguments for unknown tool call {index}",
                            self.provider
                        ),
                    ));
                };
                let args = delta.message.tool_calls.function.arguments;
                if let Some(args) = args.filter(|a| !a.is_empty()) {
                    out.push_back(self.tool_delta(ToolCallDelta {
                        index: tool_index,
                        function: Some(FunctionCallDelta {
                            name: None,
                            arguments: Some(args),
                        }),
                        ..Default::default()
                    }));
                }
            }
            StreamEvent::ContentEnd { .. }
            | StreamEvent::ToolCallEnd { .. }
            | StreamEvent::CitationEnd { .. }
            | StreamEvent::Debug { .. } => {}
            StreamEvent::MessageEnd { delta, .. } => {
                self.ended = true;
                if let Some(message) = delta.error.filter(|e| !e.is_empty()) {
                    return Err(self.error(
                        ErrorKind::UpstreamServer,
                        format!(
                            "provider `{}` reported an error mid-stream: {message}",
                            self.provider
                        ),
                    ));
                }
                let finish = delta
                    .finish_reason
                    .as_deref()
                    .map(finish_reason)
                    .unwrap_or(FinishReason::Stop);
                out.push_back(self.chunk(Delta::default(), Some(finish)));
                let mut chunk = ChatChunk::new(&self.id, &self.model, self.created);
                chunk.usage = Some(usage(&delta.usage.unwrap_or_default()));
                out.push_back(chunk);
                return Ok(Flow::Done);
            }
        }
        Ok(Flow::Continue)
    }
}

const KNOWN_EVENTS: &[&str] = &[
    "message-start",
    "content-start",
    "content-delta",
    "content-end",
    "tool-plan-delta",
    "tool-call-start",
    "tool-call-delta",
    "tool-call-end",
    "citation-start",
    "citation-end",
    "message-end",
    "debug",
];

impl StreamTranslator<SseEvent> for CohereStreamTranslator {
    type Chunk = ChatChunk;

    fn frame(&mut self, frame: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
        let data = frame.data.trim();
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        if data == "[DONE]" {
            // Sent by some deployments after `message-end`, which already ended the stream; before
            // it, the answer is incomplete.
            return self.end(false, out).map(|()| Flow::Done);
        }
        match serde_json::from_str::<StreamEvent>(data) {
            Ok(event) => self.event(event, out),
            // Event types added after this was written are skipped, as the official SDK does.
            Err(_) if is_unknown_event(data) => Ok(Flow::Continue),
            Err(e) => Err(self.error(
                ErrorKind::BadUpstreamResponse,
                format!(
                    "provider `{}` sent an invalid stream event: {e}",
                    self.provider
                ),
            )),
        }
    }

    fn end(&mut self, _truncated: bool, _out: &mut VecDeque<ChatChunk>) -> Result<()> {
        if self.ended {
            Ok(())
        } else {
            Err(self.error(
                ErrorKind::UpstreamConnection,
                format!(
                    "stream from provider `{}` ended before message-end",
                    self.provider
                ),
            ))
        }
    }
}

fn is_unknown_event(data: &str) -> bool {
    serde_json::from_str::<Value>(data).is_ok_and(|v| {
        !v.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| KNOWN_EVENTS.contains(&t))
    })
}
