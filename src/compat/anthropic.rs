//! The Anthropic Messages API as a front door (`POST /anthropic/v1/messages`): Anthropic requests
//! into canonical ones, canonical responses and chunks back into Anthropic messages and events,
//! whatever provider served them.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::error::{ErrorKind, GatewayError, Result};
use crate::providers::anthropic::wire::{
    Block, BlockDelta, ErrorBody, ErrorEnvelope, ImageSource, MessageDeltaBody, MessagesRequest,
    MessagesResponse, Role, StreamEvent, ToolChoice, Usage, error_type_for_status,
};
use crate::schema::{
    ChatChunk, ChatRequest, ChatResponse, ContentPart, Extra, FinishReason, FunctionCall,
    FunctionDefinition, ImageUrl, Message, MessageContent, NamedToolChoice, Role as CanonicalRole,
    Stop, StreamOptions, Tool, ToolCall, ToolChoice as OpenAiToolChoice, ToolChoiceFunction,
    ToolChoiceMode, Usage as CanonicalUsage,
};

/// An Anthropic request as a canonical one.
pub fn to_chat_request(req: MessagesRequest) -> Result<ChatRequest> {
    let mut messages = Vec::new();
    if let Some(system) = req.system {
        messages.push(Message::new(
            CanonicalRole::System,
            content_of(system.into_blocks())?,
        ));
    }
    for (i, m) in req.messages.into_iter().enumerate() {
        match m.role {
            Role::User => {
                let mut rest = Vec::new();
                for block in m.content.into_blocks() {
                    match block {
                        Block::ToolResult {
                            tool_use_id,
                            content,
                            is_error,
                            ..
                        } => {
                            let text = content.map(|c| c.text()).unwrap_or_default();
                            let text = if is_error == Some(true) {
                                format!("Error: {text}")
                            } else {
                                text
                            };
                            let mut tool = Message::new(CanonicalRole::Tool, text);
                            tool.tool_call_id = Some(tool_use_id);
                            messages.push(tool);
                        }
                        other => rest.push(other),
                    }
                }
                if !rest.is_empty() {
                    messages.push(Message::new(CanonicalRole::User, content_of(rest)?));
                }
            }
            Role::Assistant => {
                let mut text = String::new();
                let mut calls = Vec::new();
                for block in m.content.into_blocks() {
                    match block {
                        Block::Text { text: t, .. } => text.push_str(&t),
                        Block::ToolUse {
                            id, name, input, ..
                        } => calls.push(ToolCall {
                            id,
                            kind: "function".into(),
                            function: FunctionCall {
                                name,
                                arguments: input.to_string(),
                                extra: Extra::new(),
                            },
                            extra: Extra::new(),
                        }),
                        // Thinking blocks are the model's own; other providers cannot use them.
                        Block::Thinking { .. } | Block::RedactedThinking { .. } => {}
                        other => {
                            return Err(GatewayError::invalid_request(format!(
                                "messages[{i}]: assistant content block {} cannot be translated",
                                serde_json::to_value(&other)
                                    .ok()
                                    .and_then(|v| v.get("type").cloned())
                                    .unwrap_or_default()
                            )));
                        }
                    }
                }
                let mut msg = Message::new(CanonicalRole::Assistant, text.clone());
                if text.is_empty() && !calls.is_empty() {
                    msg.content = None;
                }
                msg.tool_calls = (!calls.is_empty()).then_some(calls);
                messages.push(msg);
            }
        }
    }
    let tools = req.tools.map(|tools| {
        tools
            .into_iter()
            .map(|t| match t.input_schema {
                Some(schema) => Tool {
                    kind: "function".into(),
                    function: Some(FunctionDefinition {
                        name: t.name,
                        description: t.description,
                        parameters: Some(schema),
                        strict: None,
                        extra: Extra::new(),
                    }),
                    extra: Extra::new(),
                },
                // A server tool: kept as written for a provider that knows it.
                None => {
                    let mut extra = t.extra;
                    let kind = extra
                        .remove("type")
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| "function".into());
                    extra.insert("name".into(), Value::String(t.name));
                    Tool {
                        kind,
                        function: None,
                        extra,
                    }
                }
            })
            .collect()
    });
    let (tool_choice, parallel) = match req.tool_choice {
        None => (None, None),
        Some(ToolChoice::Auto {
            disable_parallel_tool_use,
        }) => (
            Some(OpenAiToolChoice::Mode(ToolChoiceMode::Auto)),
            disable_parallel_tool_use,
        ),
        Some(ToolChoice::Any {
            disable_parallel_tool_use,
        }) => (
            Some(OpenAiToolChoice::Mode(ToolChoiceMode::Required)),
            disable_parallel_tool_use,
        ),
        Some(ToolChoice::Tool {
            name,
            disable_parallel_tool_use,
        }) => (
            Some(OpenAiToolChoice::Named(NamedToolChoice {
                kind: "function".into(),
                function: Some(ToolChoiceFunction {
                    name,
                    extra: Extra::new(),
                }),
                extra: Extra::new(),
            })),
            disable_parallel_tool_use,
        ),
        Some(ToolChoice::None) => (Some(OpenAiToolChoice::Mode(ToolChoiceMode::None)), None),
    };
    let mut extra = req.extra;
    if let Some(k) = req.top_k {
        extra.insert("top_k".into(), k.into());
    }
    Ok(ChatRequest {
        model: req.model,
        messages,
        stream: req.stream,
        stream_options: req.stream.filter(|s| *s).map(|_| StreamOptions {
            include_usage: Some(true),
            extra: Extra::new(),
        }),
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req.stop_sequences.map(Stop::Many),
        max_tokens: Some(req.max_tokens),
        user: req.metadata.and_then(|m| m.user_id),
        tools,
        tool_choice: tool_choice.map(Box::new),
        parallel_tool_calls: parallel.filter(|d| *d).map(|_| false),
        extra,
        ..Default::default()
    })
}

fn content_of(blocks: Vec<Block>) -> Result<MessageContent> {
    if let [Block::Text { text, extra }] = blocks.as_slice()
        && extra.is_empty()
    {
        return Ok(MessageContent::Text(text.clone()));
    }
    let parts = blocks
        .into_iter()
        .map(|b| match b {
            Block::Text { text, extra } => ContentPart::Text { text, extra },
            Block::Image { source, extra } => ContentPart::ImageUrl {
                image_url: ImageUrl {
                    url: match source {
                        ImageSource::Base64 { media_type, data } => {
                            format!("data:{media_type};base64,{data}")
                        }
                        ImageSource::Url { url } => url,
                    },
                    detail: None,
                    extra: Extra::new(),
                },
                extra,
            },
            other => ContentPart::Other(match serde_json::to_value(&other) {
                Ok(Value::Object(m)) => m,
                _ => Extra::new(),
            }),
        })
        .collect();
    Ok(MessageContent::Parts(parts))
}

fn stop_reason(finish: Option<&FinishReason>) -> &'static str {
    match finish {
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ToolCalls | FinishReason::FunctionCall) => "tool_use",
        Some(FinishReason::ContentFilter) => "refusal",
        _ => "end_turn",
    }
}

fn usage_of(u: Option<&CanonicalUsage>) -> Usage {
    let Some(u) = u else {
        return Usage::default();
    };
    let cached = u.cached_tokens();
    let written = u
        .extra
        .get("cache_creation_input_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Usage {
        input_tokens: u.prompt_tokens.saturating_sub(cached + written),
        output_tokens: u.completion_tokens,
        cache_creation_input_tokens: Some(written),
        cache_read_input_tokens: Some(cached),
        extra: Extra::new(),
    }
}

fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_string()
    } else {
        format!("msg_{id}")
    }
}

fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ if arguments.trim().is_empty() => json!({}),
        // The model produced something that is not a JSON object; keep it visible.
        _ => json!({ "_raw_arguments": arguments }),
    }
}

/// A canonical response as an Anthropic message.
pub fn from_chat_response(resp: &ChatResponse, model: &str) -> MessagesResponse {
    let choice = resp.choices.first();
    let mut content = Vec::new();
    if let Some(c) = choice {
        let text = c.message.text();
        if !text.is_empty() {
            content.push(Block::text(text));
        }
        for call in c.message.tool_calls.iter().flatten() {
            content.push(Block::ToolUse {
                id: call.id.clone(),
                name: call.function.name.clone(),
                input: tool_input(&call.function.arguments),
                extra: Extra::new(),
            });
        }
    }
    MessagesResponse {
        id: message_id(&resp.id),
        kind: "message".into(),
        role: "assistant".into(),
        content,
        model: model.to_string(),
        stop_reason: Some(stop_reason(choice.and_then(|c| c.finish_reason.as_ref())).into()),
        stop_sequence: None,
        usage: usage_of(resp.usage.as_ref()),
        extra: Extra::new(),
    }
}

/// Anthropic's error envelope for a gateway error.
pub fn error_envelope(err: &GatewayError) -> ErrorEnvelope {
    let kind = match err.kind {
        ErrorKind::Unavailable => "overloaded_error",
        ErrorKind::Timeout => "timeout_error",
        _ => error_type_for_status(err.status),
    };
    ErrorEnvelope {
        kind: "error".into(),
        error: ErrorBody {
            kind: kind.into(),
            message: err.message.clone(),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OpenBlock {
    Text,
    Tool,
}

/// Canonical chunks -> Anthropic stream events: `message_start` and `ping` first, a content
/// block per text run and per tool call, and `message_delta` + `message_stop` once the stream has
/// ended (OpenAI streams send usage after the finish chunk).
#[derive(Debug)]
pub struct ChunksToEvents {
    model: String,
    started: bool,
    open: Option<(u32, OpenBlock)>,
    next_index: u32,
    /// OpenAI tool-call index -> Anthropic block index.
    tool_blocks: HashMap<u32, u32>,
    finish: Option<FinishReason>,
    usage: Option<CanonicalUsage>,
}

impl ChunksToEvents {
    pub fn new(model: &str) -> Self {
        ChunksToEvents {
            model: model.to_string(),
            started: false,
            open: None,
            next_index: 0,
            tool_blocks: HashMap::new(),
            finish: None,
            usage: None,
        }
    }

    fn start(&mut self, id: &str, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(StreamEvent::MessageStart {
            message: MessagesResponse {
                id: message_id(id),
                kind: "message".into(),
                role: "assistant".into(),
                content: vec![],
                model: self.model.clone(),
                stop_reason: None,
                stop_sequence: None,
                usage: Usage::default(),
                extra: Extra::new(),
            },
        });
        out.push(StreamEvent::Ping);
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((index, _)) = self.open.take() {
            out.push(StreamEvent::ContentBlockStop { index });
        }
    }

    fn open(&mut self, kind: OpenBlock, block: Block, out: &mut Vec<StreamEvent>) -> u32 {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        out.push(StreamEvent::ContentBlockStart {
            index,
            content_block: block,
        });
        index
    }

    pub fn chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<StreamEvent>) {
        self.start(&chunk.id, out);
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return;
        };
        if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
            let index = match self.open {
                Some((i, OpenBlock::Text)) => i,
                _ => self.open(OpenBlock::Text, Block::text(""), out),
            };
            out.push(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::TextDelta {
                    text: text.to_string(),
                },
            });
        }
        for tc in choice.delta.tool_calls.iter().flatten() {
            let index = match self.tool_blocks.get(&tc.index) {
                Some(&i) => i,
                None => {
                    let name = tc
                        .function
                        .as_ref()
                        .and_then(|f| f.name.clone())
                        .unwrap_or_default();
                    let block = Block::ToolUse {
                        id: tc
                            .id
                            .clone()
                            .unwrap_or_else(|| format!("toolu_{}", tc.index)),
                        name,
                        input: json!({}),
                        extra: Extra::new(),
                    };
                    let i = self.open(OpenBlock::Tool, block, out);
                    self.tool_blocks.insert(tc.index, i);
                    i
                }
            };
            if let Some(args) = tc
                .function
                .as_ref()
                .and_then(|f| f.arguments.as_deref())
                .filter(|a| !a.is_empty())
            {
                out.push(StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::InputJsonDelta {
                        partial_json: args.to_string(),
                    },
                });
            }
        }
        if choice.finish_reason.is_some() {
            self.finish.clone_from(&choice.finish_reason);
        }
    }

    /// The stream ended normally.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        self.start("gateway", out);
        self.close(out);
        out.push(StreamEvent::MessageDelta {
            delta: MessageDeltaBody {
                stop_reason: Some(stop_reason(self.finish.as_ref()).into()),
                stop_sequence: None,
            },
            usage: Some(usage_of(self.usage.as_ref())),
        });
        out.push(StreamEvent::MessageStop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_result_turn_becomes_tool_messages() {
        let req: MessagesRequest = serde_json::from_value(json!({
            "model": "m", "max_tokens": 10,
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {"c": "x"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                    {"type": "text", "text": "thanks"}]}
            ]
        }))
        .unwrap();
        let c = to_chat_request(req).unwrap();
        let roles: Vec<_> = c.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                CanonicalRole::User,
                CanonicalRole::Assistant,
                CanonicalRole::Tool,
                CanonicalRole::User
            ]
        );
        assert_eq!(
            c.messages[1].tool_calls.as_ref().unwrap()[0]
                .function
                .arguments,
            r#"{"c":"x"}"#
        );
        assert_eq!(c.messages[2].tool_call_id.as_deref(), Some("t1"));
    }
}
