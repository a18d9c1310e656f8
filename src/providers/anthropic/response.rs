//! Anthropic Messages response / stream / error -> canonical.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use super::wire::{Block, BlockDelta, ErrorEnvelope, MessagesResponse, StreamEvent, Usage};
use crate::error::{ErrorKind, GatewayError, Result};
use crate::providers::stream::{Flow, StreamTranslator};
use crate::providers::transport::UpstreamErrorBody;
use crate::schema::{
    ChatChunk, ChatResponse, Choice, Delta, Extra, FinishReason, FunctionCall, FunctionCallDelta,
    Message, MessageContent, PromptTokensDetails, Role, ToolCall, ToolCallDelta,
    Usage as CanonicalUsage, unix_now,
};
use crate::sse::SseEvent;

pub fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" | "pause_turn" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}

/// OpenAI counts cached prompt tokens inside `prompt_tokens`; Anthropic counts them apart.
pub fn usage(u: &Usage) -> CanonicalUsage {
    let cache_read = u.cache_read_input_tokens.unwrap_or(0);
    let cache_write = u.cache_creation_input_tokens.unwrap_or(0);
    let prompt = u.input_tokens + cache_read + cache_write;
    let mut out = CanonicalUsage::new(prompt, u.output_tokens);
    out.prompt_tokens_details = Some(PromptTokensDetails {
        cached_tokens: Some(cache_read),
        ..Default::default()
    });
    if cache_write > 0 {
        out.extra
            .insert("cache_creation_input_tokens".into(), cache_write.into());
    }
    out
}

fn arguments_of(input: &Value) -> String {
    serde_json::to_string(input).unwrap_or_else(|_| "{}".into())
}

/// The non-streamed response. `json_tool` names the forced tool of an emulated JSON mode, whose
/// input becomes the message content.
pub fn to_chat_response(resp: MessagesResponse, json_tool: Option<&str>) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let mut json_answer = None;
    for block in &resp.content {
        match block {
            Block::Text { text: t, .. } => text.push_str(t),
            Block::Thinking { thinking, .. } => reasoning.push_str(thinking),
            Block::ToolUse {
                id, name, input, ..
            } => {
                if json_tool == Some(name.as_str()) {
                    json_answer = Some(arguments_of(input));
                } else {
                    tool_calls.push(ToolCall {
                        id: id.clone(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: name.clone(),
                            arguments: arguments_of(input),
                            extra: Extra::new(),
                        },
                        extra: Extra::new(),
                    });
                }
            }
            _ => {}
        }
    }
    let mut finish = resp.stop_reason.as_deref().map(finish_reason);
    if let Some(answer) = json_answer {
        text = answer;
        finish = Some(FinishReason::Stop);
    }
    let mut extra = Extra::new();
    if !reasoning.is_empty() {
        extra.insert("reasoning_content".into(), Value::String(reasoning));
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
        model: resp.model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: finish,
            logprobs: None,
            extra: Extra::new(),
        }],
        usage: Some(usage(&resp.usage)),
        system_fingerprint: None,
        extra: Extra::new(),
    }
}

/// Kind and status for an Anthropic error `type`.
pub fn error_kind(kind: &str, message: &str) -> Option<ErrorKind> {
    Some(match kind {
        "invalid_request_error"
            if message.contains("prompt is too long") || message.contains("context window") =>
        {
            ErrorKind::ContextWindowExceeded
        }
        "invalid_request_error" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" | "billing_error" => ErrorKind::PermissionDenied,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::PayloadTooLarge,
        "rate_limit_error" => ErrorKind::RateLimited,
        "overloaded_error" => ErrorKind::Unavailable,
        "timeout_error" => ErrorKind::Timeout,
        "api_error" => ErrorKind::UpstreamServer,
        _ => return None,
    })
}

pub fn parse_error_body(body: &[u8]) -> UpstreamErrorBody {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(env) => UpstreamErrorBody {
            kind: error_kind(&env.error.kind, &env.error.message),
            code: Some(env.error.kind),
            message: Some(env.error.message),
            param: None,
        },
        Err(_) => UpstreamErrorBody::default(),
    }
}

/// Anthropic's streaming events -> chunks. Text and tool-input deltas pass through one by one;
/// the usage is sent as a final usage chunk after `message_stop`.
#[derive(Debug)]
pub struct AnthropicStreamTranslator {
    provider: Arc<str>,
    json_tool: Option<String>,
    id: String,
    model: String,
    created: u64,
    usage: Usage,
    /// Content block index -> tool call index (only tool_use blocks get one).
    tool_index: HashMap<u32, u32>,
    /// The block index carrying the emulated JSON answer.
    json_block: Option<u32>,
    finish: Option<FinishReason>,
    stopped: bool,
}

impl AnthropicStreamTranslator {
    pub fn new(provider: Arc<str>, json_tool: Option<String>) -> Self {
        AnthropicStreamTranslator {
            provider,
            json_tool,
            id: String::new(),
            model: String::new(),
            created: unix_now(),
            usage: Usage::default(),
            tool_index: HashMap::new(),
            json_block: None,
            finish: None,
            stopped: false,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        ChatChunk::new(&self.id, &self.model, self.created).with_delta(delta, finish)
    }

    fn error(&self, kind: ErrorKind, message: String) -> GatewayError {
        GatewayError::new(kind, message).with_provider(self.provider.clone())
    }

    pub fn event(&mut self, event: StreamEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
        match event {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.usage = message.usage;
                out.push_back(self.chunk(
                    Delta {
                        role: Some(Role::Assistant),
                        content: Some(String::new()),
                        ..Default::default()
                    },
                    None,
                ));
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::ToolUse { id, name, .. }
                    if self.json_tool.as_deref() == Some(name.as_str()) =>
                {
                    let _ = id;
                    self.json_block = Some(index);
                }
                Block::ToolUse { id, name, .. } => {
                    let tool_index = self.tool_index.len() as u32;
                    self.tool_index.insert(index, tool_index);
                    out.push_back(self.chunk(
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: tool_index,
                                id: Some(id),
                                kind: Some("function".into()),
                                function: Some(FunctionCallDelta {
                                    name: Some(name),
                                    arguments: Some(String::new()),
                                }),
                                extra: Extra::new(),
                            }]),
                            ..Default::default()
                        },
                        None,
                    ));
                }
                Block::Text { text, .. } if !text.is_empty() => {
                    out.push_back(self.chunk(Delta::content(text), None))
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => {
                    out.push_back(self.chunk(Delta::content(text), None))
                }
                BlockDelta::InputJsonDelta { partial_json } if partial_json.is_empty() => {}
                BlockDelta::InputJsonDelta { partial_json } if self.json_block == Some(index) => {
                    out.push_back(self.chunk(Delta::content(partial_json), None))
                }
                BlockDelta::InputJsonDelta { partial_json } => {
                    let Some(&tool_index) = self.tool_index.get(&index) else {
                        return Err(self.error(
                            ErrorKind::BadUpstreamResponse,
                            format!(
                                "provider `{}` sent tool input for unknown block {index}",
                                self.provider
                            ),
                        ));
                    };
                    out.push_back(self.chunk(
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: tool_index,
                                function: Some(FunctionCallDelta {
                                    name: None,
                                    arguments: Some(partial_json),
                                }),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        },
                        None,
                    ));
                }
                BlockDelta::ThinkingDelta { thinking } => {
                    let mut delta = Delta::default();
                    delta
                        .extra
                        .insert("reasoning_content".into(), Value::String(thinking));
                    out.push_back(self.chunk(delta, None));
                }
                BlockDelta::SignatureDelta { .. } | BlockDelta::CitationsDelta { .. } => {}
            },
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping => {}
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.usage.output_tokens = u.output_tokens;
                    if u.input_tokens > 0 {
                        self.usage.input_tokens = u.input_tokens;
                    }
                }
                if let Some(reason) = delta.stop_reason {
                    let finish = if self.json_block.is_some() {
                        FinishReason::Stop
                    } else {
                        finish_reason(&reason)
                    };
                    self.finish = Some(finish.clone());
                    out.push_back(self.chunk(Delta::default(), Some(finish)));
                }
            }
            StreamEvent::MessageStop => {
                self.stopped = true;
                let mut chunk = ChatChunk::new(&self.id, &self.model, self.created);
                chunk.usage = Some(usage(&self.usage));
                out.push_back(chunk);
                return Ok(Flow::Done);
            }
            StreamEvent::Error { error } => {
                let kind =
                    error_kind(&error.kind, &error.message).unwrap_or(ErrorKind::UpstreamServer);
                let mut err = self.error(kind, error.message);
                err.code = Some(error.kind);
                return Err(err);
            }
        }
        Ok(Flow::Continue)
    }
}

impl StreamTranslator<SseEvent> for AnthropicStreamTranslator {
    type Chunk = ChatChunk;

    fn frame(&mut self, frame: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
        match serde_json::from_str::<StreamEvent>(&frame.data) {
            Ok(event) => self.event(event, out),
            // Anthropic may add event and delta types; the API reference asks clients to skip
            // the ones they do not know.
            Err(_) if is_unknown_event(&frame.data) => Ok(Flow::Continue),
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
        if self.stopped {
            Ok(())
        } else {
            Err(self.error(
                ErrorKind::UpstreamConnection,
                format!(
                    "stream from provider `{}` ended before message_stop",
                    self.provider
                ),
            ))
        }
    }
}

const KNOWN_EVENTS: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];
const KNOWN_DELTAS: &[&str] = &[
    "text_delta",
    "input_json_delta",
    "thinking_delta",
    "signature_delta",
    "citations_delta",
];

/// Whether an event that failed to parse is of a type (or carries a delta type) this gateway
/// does not know, rather than a malformed known event.
fn is_unknown_event(data: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(data) else {
        return false;
    };
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
    if !KNOWN_EVENTS.contains(&kind) {
        return true;
    }
    kind == "content_block_delta"
        && v.pointer("/delta/type")
            .and_then(Value::as_str)
            .is_some_and(|t| !KNOWN_DELTAS.contains(&t))
}
