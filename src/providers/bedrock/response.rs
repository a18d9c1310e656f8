//! Bedrock Converse response / ConverseStream events / errors -> canonical.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use super::wire::{
    self, ContentBlock, ConverseResponse, StreamEvent, TokenUsage, error_message, error_name,
};
use crate::error::{ErrorKind, GatewayError, Result};
use crate::providers::stream::{Flow, FrameDecoder, StreamTranslator};
use crate::providers::transport::UpstreamErrorBody;
use crate::schema::{
    ChatChunk, ChatResponse, Choice, Delta, Extra, FinishReason, FunctionCall, FunctionCallDelta,
    Message, MessageContent, PromptTokensDetails, Role, ToolCall, ToolCallDelta, Usage, unix_now,
};
use crate::sse::eventstream::{EventStreamDecoder, Frame};

/// All nine `stopReason` values of the API. The two `malformed_*` reasons pass through as they
/// are: the answer is broken, and a caller seeing `stop` could not tell.
pub fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "guardrail_intervened" | "content_filtered" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}

/// OpenAI counts cached prompt tokens inside `prompt_tokens`; Bedrock counts cache reads and
/// writes apart from `inputTokens`.
pub fn usage(u: &TokenUsage) -> Usage {
    let cache_read = u.cache_read_input_tokens.unwrap_or(0);
    let cache_write = u.cache_write_input_tokens.unwrap_or(0);
    let mut out = Usage::new(u.input_tokens + cache_read + cache_write, u.output_tokens);
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
    match input {
        Value::Null => "{}".into(),
        v => serde_json::to_string(v).unwrap_or_else(|_| "{}".into()),
    }
}

/// The non-streamed response. Bedrock gives no response id: `id` is made from the request id
/// AWS returns (`x-amzn-RequestId`). `json_tool` names the forced tool of an emulated JSON mode,
/// whose input becomes the message content.
pub fn to_chat_response(
    resp: ConverseResponse,
    model: &str,
    id: &str,
    json_tool: Option<&str>,
) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks: Vec<Value> = Vec::new();
    let mut tool_calls = Vec::new();
    let mut json_answer = None;
    let blocks: Vec<ContentBlock> = resp.output.message.map(|m| m.content).unwrap_or_default();
    for block in &blocks {
        if let Some(t) = &block.text {
            text.push_str(t);
        }
        if let Some(r) = &block.reasoning_content {
            if let Some(rt) = &r.reasoning_text {
                reasoning.push_str(&rt.text);
                thinking_blocks.push(serde_json::json!({
                    "type": "thinking", "thinking": rt.text, "signature": rt.signature,
                }));
            } else if let Some(data) = &r.redacted_content {
                thinking_blocks
                    .push(serde_json::json!({"type": "redacted_thinking", "data": data}));
            }
        }
        if let Some(t) = &block.tool_use {
            if json_tool == Some(t.name.as_str()) {
                json_answer = Some(arguments_of(&t.input));
            } else {
                tool_calls.push(ToolCall {
                    id: t.tool_use_id.clone(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: t.name.clone(),
                        arguments: arguments_of(&t.input),
                        extra: Extra::new(),
                    },
                    extra: Extra::new(),
                });
            }
        }
    }
    let mut finish = finish_reason(&resp.stop_reason);
    if let Some(answer) = json_answer {
        text = answer;
        finish = FinishReason::Stop;
    }
    let mut message_extra = Extra::new();
    if !reasoning.is_empty() {
        message_extra.insert("reasoning_content".into(), Value::String(reasoning));
    }
    if !thinking_blocks.is_empty() {
        message_extra.insert("thinking_blocks".into(), Value::Array(thinking_blocks));
    }
    let mut extra = Extra::new();
    if let Some(fields) = resp.additional_model_response_fields {
        extra.insert("additional_model_response_fields".into(), fields);
    }
    ChatResponse {
        id: id.to_string(),
        object: "chat.completion".into(),
        created: unix_now(),
        model: model.to_string(),
        choices: vec![Choice {
            index: 0,
            message: Message {
                role: Role::Assistant,
                content: (!text.is_empty() || tool_calls.is_empty())
                    .then_some(MessageContent::Text(text)),
                name: None,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                tool_call_id: None,
                refusal: None,
                extra: message_extra,
            },
            finish_reason: Some(finish),
            logprobs: None,
            extra: Extra::new(),
        }],
        usage: Some(usage(&resp.usage)),
        system_fingerprint: None,
        extra,
    }
}

/// Kind and, where it differs from the one AWS answered, the status to report for an AWS error
/// name (`x-amzn-ErrorType`, or `:exception-type` in a stream).
/// Stream exception types are spelled in lowerCamelCase (`throttlingException`), HTTP error
/// names in PascalCase; both are accepted.
pub fn error_kind(name: &str, message: &str) -> Option<(ErrorKind, Option<u16>)> {
    let lower = message.to_ascii_lowercase();
    Some(match pascal_case(name).as_str() {
        "ValidationException"
            if lower.contains("too long")
                || lower.contains("context window")
                || lower.contains("context length")
                || lower.contains("maximum context") =>
        {
            (ErrorKind::ContextWindowExceeded, None)
        }
        "ValidationException" | "SerializationException" => (ErrorKind::InvalidRequest, None),
        // AWS answers 403 when the credentials themselves are bad; callers know that as 401.
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignatureException"
        | "MissingAuthenticationTokenException"
        | "InvalidClientTokenId"
        | "ExpiredTokenException"
        | "ExpiredToken" => (ErrorKind::Authentication, Some(401)),
        "AccessDeniedException" => (ErrorKind::PermissionDenied, None),
        "ResourceNotFoundException" => (ErrorKind::NotFound, None),
        "ThrottlingException" => (ErrorKind::RateLimited, Some(429)),
        // The model is being loaded: retry later, as the AWS SDKs do.
        "ModelNotReadyException" | "ServiceQuotaExceededException" => {
            (ErrorKind::RateLimited, Some(429))
        }
        "ModelTimeoutException" => (ErrorKind::Timeout, Some(504)),
        // 424: the model itself failed.
        "ModelErrorException" | "ModelStreamErrorException" => {
            (ErrorKind::UpstreamServer, Some(502))
        }
        "InternalServerException" => (ErrorKind::UpstreamServer, Some(500)),
        "ServiceUnavailableException" => (ErrorKind::Unavailable, Some(503)),
        _ => return None,
    })
}

/// `throttlingException` -> `ThrottlingException`.
pub fn pascal_case(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Reads an HTTP error answer: the error name from the `x-amzn-ErrorType` header, else the
/// body's `__type` / `code`; the message from the body's `message`.
pub fn parse_error(
    error_type_header: Option<&str>,
    body: &[u8],
) -> (UpstreamErrorBody, Option<u16>) {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let name = error_type_header
        .or_else(|| json.get("__type").and_then(Value::as_str))
        .or_else(|| json.get("code").and_then(Value::as_str))
        .map(|n| error_name(n).to_string());
    let message = error_message(&json);
    let mapped = name
        .as_deref()
        .and_then(|n| error_kind(n, message.as_deref().unwrap_or("")));
    (
        UpstreamErrorBody {
            message,
            code: name,
            param: None,
            kind: mapped.map(|m| m.0),
        },
        mapped.and_then(|m| m.1),
    )
}

/// The event-stream decoder, with the provider named in its errors.
pub struct BedrockFrames {
    inner: EventStreamDecoder,
    provider: Arc<str>,
}

impl BedrockFrames {
    pub fn new(provider: Arc<str>) -> Self {
        BedrockFrames {
            inner: EventStreamDecoder::new(),
            provider,
        }
    }
}

impl FrameDecoder for BedrockFrames {
    type Frame = Frame;
    fn push(&mut self, bytes: &[u8]) {
        self.inner.push(bytes)
    }
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        self.inner.next_frame().map_err(|e| {
            GatewayError::new(
                ErrorKind::BadUpstreamResponse,
                format!(
                    "provider `{}` sent an invalid event stream: {e}",
                    self.provider
                ),
            )
            .with_provider(self.provider.clone())
        })
    }
    fn finish(&mut self) -> bool {
        self.inner.finish()
    }
}

/// ConverseStream events -> chunks. State is kept by `contentBlockIndex`: text blocks usually
/// come without a `contentBlockStart`, tool blocks with one. The usage arrives in the `metadata`
/// event after `messageStop` and is sent as a final usage chunk.
#[derive(Debug)]
pub struct BedrockStreamTranslator {
    provider: Arc<str>,
    model: String,
    id: String,
    json_tool: Option<String>,
    created: u64,
    /// Content block index -> tool call index (only tool blocks get one).
    tool_index: HashMap<u32, u32>,
    /// Tool blocks that have received input; one that ends without any gets `{}`.
    tool_has_input: HashSet<u32>,
    /// The block index carrying the emulated JSON answer.
    json_block: Option<u32>,
    stopped: bool,
}

impl BedrockStreamTranslator {
    pub fn new(provider: Arc<str>, model: &str, id: &str, json_tool: Option<String>) -> Self {
        BedrockStreamTranslator {
            provider,
            model: model.to_string(),
            id: id.to_string(),
            json_tool,
            created: unix_now(),
            tool_index: HashMap::new(),
            tool_has_input: HashSet::new(),
            json_block: None,
            stopped: false,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        ChatChunk::new(&self.id, &self.model, self.created).with_delta(delta, finish)
    }

    fn error(&self, kind: ErrorKind, message: String) -> GatewayError {
        GatewayError::new(kind, message).with_provider(self.provider.clone())
    }

    fn tool_delta(&self, index: u32, delta: ToolCallDelta) -> ChatChunk {
        self.chunk(
            Delta {
                tool_calls: Some(vec![ToolCallDelta { index, ..delta }]),
                ..Default::default()
            },
            None,
        )
    }

    pub fn event(&mut self, event: StreamEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
        match event {
            StreamEvent::MessageStart(_) => out.push_back(self.chunk(
                Delta {
                    role: Some(Role::Assistant),
                    content: Some(String::new()),
                    ..Default::default()
                },
                None,
            )),
            StreamEvent::ContentBlockStart(start) => {
                let index = start.content_block_index;
                if let Some(tool) = start.start.tool_use {
                    if self.json_tool.as_deref() == Some(tool.name.as_str()) {
                        self.json_block = Some(index);
                    } else {
                        let tool_index = self.tool_index.len() as u32;
                        self.tool_index.insert(index, tool_index);
                        out.push_back(self.tool_delta(
                            tool_index,
                            ToolCallDelta {
                                id: Some(tool.tool_use_id),
                                kind: Some("function".into()),
                                function: Some(FunctionCallDelta {
                                    name: Some(tool.name),
                                    arguments: Some(String::new()),
                                }),
                                ..Default::default()
                            },
                        ));
                    }
                }
            }
            StreamEvent::ContentBlockDelta(d) => {
                let index = d.content_block_index;
                let delta = d.delta;
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    out.push_back(self.chunk(Delta::content(text), None));
                }
                if let Some(fragment) = delta.tool_use.map(|t| t.input).filter(|f| !f.is_empty()) {
                    if self.json_block == Some(index) {
                        out.push_back(self.chunk(Delta::content(fragment), None));
                    } else {
                        self.tool_has_input.insert(index);
                        let Some(&tool_index) = self.tool_index.get(&index) else {
                            return Err(self.error(
                                ErrorKind::BadUpstreamResponse,
                                format!(
                                    "provider `{}` sent tool input for block {index}, which did not start a tool call",
                                    self.provider
                                ),
                            ));
                        };
                        out.push_back(self.tool_delta(
                            tool_index,
                            ToolCallDelta {
                                function: Some(FunctionCallDelta {
                                    name: None,
                                    arguments: Some(fragment),
                                }),
                                ..Default::default()
                            },
                        ));
                    }
                }
                if let Some(text) = delta
                    .reasoning_content
                    .and_then(|r| r.text)
                    .filter(|t| !t.is_empty())
                {
                    let mut delta = Delta::default();
                    delta
                        .extra
                        .insert("reasoning_content".into(), Value::String(text));
                    out.push_back(self.chunk(delta, None));
                }
            }
            StreamEvent::ContentBlockStop(stop) => {
                let index = stop.content_block_index;
                // A tool called without input: its arguments are an empty object, as in the
                // non-streamed answer.
                if let Some(&tool_index) = self.tool_index.get(&index)
                    && !self.tool_has_input.contains(&index)
                {
                    out.push_back(self.tool_delta(
                        tool_index,
                        ToolCallDelta {
                            function: Some(FunctionCallDelta {
                                name: None,
                                arguments: Some("{}".into()),
                            }),
                            ..Default::default()
                        },
                    ));
                }
            }
            StreamEvent::MessageStop(stop) => {
                let finish = if self.json_block.is_some() {
                    FinishReason::Stop
                } else {
                    finish_reason(&stop.stop_reason)
                };
                self.stopped = true;
                out.push_back(self.chunk(Delta::default(), Some(finish)));
            }
            StreamEvent::Metadata(meta) => {
                let mut chunk = ChatChunk::new(&self.id, &self.model, self.created);
                chunk.usage = Some(usage(&meta.usage));
                out.push_back(chunk);
                return Ok(Flow::Done);
            }
        }
        Ok(Flow::Continue)
    }

    /// An `exception` (or protocol `error`) frame as a typed error.
    fn exception(&self, frame: &Frame) -> GatewayError {
        let (name, message) = if frame.header(":message-type") == Some("error") {
            (
                frame.header(":error-code").unwrap_or("error").to_string(),
                frame.header(":error-message").unwrap_or("").to_string(),
            )
        } else {
            let body: Value = serde_json::from_slice(&frame.payload).unwrap_or(Value::Null);
            let mut message = error_message(&body).unwrap_or_default();
            if let Some(original) = body.get("originalMessage").and_then(Value::as_str) {
                message = format!("{message} ({original})");
            }
            (
                pascal_case(frame.header(":exception-type").unwrap_or("exception")),
                message,
            )
        };
        let message = if message.trim().is_empty() {
            format!("provider `{}` ended the stream with {name}", self.provider)
        } else {
            message
        };
        let (kind, status) =
            error_kind(&name, &message).unwrap_or((ErrorKind::UpstreamServer, None));
        let mut err = self.error(kind, message);
        if let Some(s) = status {
            err = err.with_status(s);
        }
        err.code = Some(if kind == ErrorKind::ContextWindowExceeded {
            "context_length_exceeded".into()
        } else {
            name
        });
        err
    }
}

impl StreamTranslator<Frame> for BedrockStreamTranslator {
    type Chunk = ChatChunk;

    fn frame(&mut self, frame: Frame, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
        match frame.header(":message-type") {
            Some("exception") | Some("error") => return Err(self.exception(&frame)),
            _ => {}
        }
        let event_type = frame.header(":event-type").unwrap_or("");
        match wire::StreamEvent::parse(event_type, &frame.payload) {
            Ok(Some(event)) => self.event(event, out),
            // Event types added to the API later are skipped.
            Ok(None) => Ok(Flow::Continue),
            Err(e) => Err(self.error(
                ErrorKind::BadUpstreamResponse,
                format!(
                    "provider `{}` sent an invalid {event_type} event: {e}",
                    self.provider
                ),
            )),
        }
    }

    fn end(&mut self, truncated: bool, _out: &mut VecDeque<ChatChunk>) -> Result<()> {
        // `metadata` (with the usage) normally ends the stream; an answer that has its
        // `messageStop` is complete without it.
        if self.stopped && !truncated {
            return Ok(());
        }
        let what = if truncated {
            "in the middle of a frame"
        } else {
            "before messageStop"
        };
        Err(self.error(
            ErrorKind::UpstreamConnection,
            format!("stream from provider `{}` ended {what}", self.provider),
        ))
    }
}
