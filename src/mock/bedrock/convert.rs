//! The mock's Bedrock translations: the checks Converse makes before answering, a Converse request
//! as the canonical request the reply planner takes, and a plan rendered as a Converse response
//! or as ConverseStream events.

use std::collections::HashSet;

use base64::Engine;
use serde_json::{Value, json};

use crate::mock::reply::{Plan, PlannedChoice};
use crate::providers::bedrock::wire::{
    BlockDelta, BlockStart, ContentBlock, ContentBlockDelta, ContentBlockStart, ContentBlockStop,
    ConverseOutput, ConverseRequest, ConverseResponse, Message, MessageStart, MessageStop,
    Metadata, Role, StreamEvent, TokenUsage, ToolChoice, ToolUseBlock, ToolUseDelta, ToolUseStart,
};
use crate::schema::{ChatRequest, FinishReason};

fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The checks the real API makes (with its wording). `Err` is the ValidationException message.
pub fn validate(req: &ConverseRequest) -> Result<(), String> {
    if req.messages.is_empty() {
        return Err(
            "The model returned the following errors: messages: at least one message is required"
                .into(),
        );
    }
    if req.messages[0].role != Role::User {
        return Err("A conversation must start with a user message. Try again with a conversation that starts with a user message.".into());
    }
    let tool_names: HashSet<&str> = req
        .tool_config
        .iter()
        .flat_map(|c| &c.tools)
        .filter_map(|t| t.tool_spec.as_ref().map(|s| s.name.as_str()))
        .collect();
    if let Some(config) = &req.tool_config {
        if config.tools.is_empty() {
            return Err("Value at 'toolConfig.tools' failed to satisfy constraint: Member must have length greater than or equal to 1".into());
        }
        for (i, spec) in config
            .tools
            .iter()
            .filter_map(|t| t.tool_spec.as_ref())
            .enumerate()
        {
            if !valid_tool_name(&spec.name) {
                return Err(format!(
                    "Value at 'toolConfig.tools.{}.member.toolSpec.name' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
                    i + 1
                ));
            }
        }
        if let Some(ToolChoice::Tool { name }) = &config.tool_choice
            && !tool_names.contains(name.as_str())
        {
            return Err(format!(
                "The tool {name} in toolChoice is not defined in toolConfig.tools."
            ));
        }
    }
    if let Some(inference) = &req.inference_config {
        for (field, value) in [
            ("temperature", inference.temperature),
            ("topP", inference.top_p),
        ] {
            if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                return Err(format!(
                    "Value at 'inferenceConfig.{field}' failed to satisfy constraint: Member must have value less than or equal to 1"
                ));
            }
        }
        if inference.max_tokens == Some(0) {
            return Err("Value at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1".into());
        }
    }
    for (i, block) in req.system.iter().enumerate() {
        if block.members() != 1 {
            return Err(format!(
                "The system content block at system.{i} must set exactly one member."
            ));
        }
        if block.text.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(format!(
                "The text field in the SystemContentBlock object at system.{i} is blank. Add text to the text field, and try again."
            ));
        }
    }
    let mut pending: Vec<String> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        if i > 0 && req.messages[i - 1].role == m.role {
            return Err("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.".into());
        }
        if m.content.is_empty() {
            return Err(format!(
                "The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again."
            ));
        }
        if m.role == Role::User && !pending.is_empty() {
            let answered: HashSet<&str> = m
                .content
                .iter()
                .filter_map(|b| b.tool_result.as_ref().map(|r| r.tool_use_id.as_str()))
                .collect();
            let missing: Vec<&str> = pending
                .iter()
                .map(String::as_str)
                .filter(|id| !answered.contains(id))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "Expected toolResult blocks at messages.{i}.content for the following Ids: {}",
                    missing.join(", ")
                ));
            }
            pending.clear();
        }
        for (j, b) in m.content.iter().enumerate() {
            if b.members() != 1 {
                return Err(format!(
                    "The content block at messages.{i}.content.{j} must set exactly one member."
                ));
            }
            if b.text.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err(format!(
                    "The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to the text field, and try again."
                ));
            }
            if (b.tool_use.is_some() || b.tool_result.is_some()) && req.tool_config.is_none() {
                return Err("The toolConfig field must be defined when using toolUse and toolResult content blocks.".into());
            }
            if let Some(image) = &b.image {
                if !["png", "jpeg", "gif", "webp"].contains(&image.format.as_str()) {
                    return Err(format!(
                        "Value at 'messages.{}.member.content.{}.member.image.format' failed to satisfy constraint: Member must satisfy enum value set: [png, jpeg, gif, webp]",
                        i + 1,
                        j + 1
                    ));
                }
                let decodes =
                    image.source.bytes.as_deref().is_some_and(|b| {
                        base64::engine::general_purpose::STANDARD.decode(b).is_ok()
                    });
                if !decodes {
                    return Err(format!(
                        "Invalid image input at messages.{i}.content.{j}: the image bytes are not valid base64."
                    ));
                }
            }
            if let Some(tool) = &b.tool_use {
                if m.role != Role::Assistant {
                    return Err(format!(
                        "toolUse blocks are only allowed in assistant messages (messages.{i}.content.{j})."
                    ));
                }
                if !valid_tool_name(&tool.name) {
                    return Err(format!(
                        "Value at 'messages.{}.member.content.{}.member.toolUse.name' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
                        i + 1,
                        j + 1
                    ));
                }
                pending.push(tool.tool_use_id.clone());
            }
        }
    }
    if let Some(config) = &req.output_config
        && serde_json::from_str::<Value>(&config.text_format.structure.json_schema.schema).is_err()
    {
        return Err(
            "outputConfig.textFormat.structure.jsonSchema.schema is not valid JSON.".into(),
        );
    }
    Ok(())
}

fn text_of(blocks: &[ContentBlock]) -> String {
    blocks.iter().filter_map(|b| b.text.as_deref()).collect()
}

/// The canonical request the planner takes (only what it looks at).
pub fn to_chat_request(model: &str, req: &ConverseRequest) -> Result<ChatRequest, String> {
    let mut messages = Vec::new();
    let system = text_of(&req.system);
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system}));
    }
    for m in &req.messages {
        match m.role {
            Role::User => {
                let mut parts = Vec::new();
                for b in &m.content {
                    if let Some(r) = &b.tool_result {
                        let text: String = r
                            .content
                            .iter()
                            .map(|c| match (&c.text, &c.json) {
                                (Some(t), _) => t.clone(),
                                (None, Some(j)) => j.to_string(),
                                _ => String::new(),
                            })
                            .collect();
                        messages.push(
                            json!({"role": "tool", "tool_call_id": r.tool_use_id, "content": text}),
                        );
                    } else if let Some(t) = &b.text {
                        parts.push(json!({"type": "text", "text": t}));
                    } else if let Some(image) = &b.image {
                        let url = format!(
                            "data:image/{};base64,{}",
                            image.format,
                            image.source.bytes.as_deref().unwrap_or("")
                        );
                        parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
                    }
                }
                if !parts.is_empty() {
                    messages.push(json!({"role": "user", "content": parts}));
                }
            }
            Role::Assistant => {
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|b| b.tool_use.as_ref())
                    .map(|t| {
                        json!({"id": t.tool_use_id, "type": "function",
                        "function": {"name": t.name, "arguments": t.input.to_string()}})
                    })
                    .collect();
                let mut msg = json!({"role": "assistant", "content": text_of(&m.content)});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                messages.push(msg);
            }
        }
    }
    let mut out = json!({"model": model, "messages": messages});
    if let Some(config) = &req.tool_config {
        let tools: Vec<Value> = config
            .tools
            .iter()
            .filter_map(|t| t.tool_spec.as_ref())
            .map(|s| {
                json!({"type": "function", "function": {
                "name": s.name, "description": s.description, "parameters": s.input_schema.json}})
            })
            .collect();
        out["tools"] = Value::Array(tools);
        match &config.tool_choice {
            Some(ToolChoice::Any(_)) => out["tool_choice"] = json!("required"),
            Some(ToolChoice::Tool { name }) => {
                out["tool_choice"] = json!({"type": "function", "function": {"name": name}})
            }
            _ => {}
        }
    }
    if let Some(inference) = &req.inference_config {
        if let Some(max) = inference.max_tokens {
            out["max_tokens"] = json!(max);
        }
        if let Some(stop) = &inference.stop_sequences {
            out["stop"] = json!(stop);
        }
    }
    if let Some(config) = &req.output_config {
        let spec = &config.text_format.structure.json_schema;
        let schema: Value = serde_json::from_str(&spec.schema).unwrap_or(Value::Null);
        out["response_format"] = json!({"type": "json_schema",
            "json_schema": {"name": spec.name.clone().unwrap_or_default(), "schema": schema}});
    }
    serde_json::from_value(out).map_err(|e| format!("Malformed input request: {e}"))
}

/// A stop reason for a planned finish. A refusal is a guardrail intervention when the request
/// named a guardrail, else the model's own content filter.
pub fn stop_reason(finish: &FinishReason, guardrail: bool) -> String {
    match finish {
        FinishReason::Stop => "end_turn".into(),
        FinishReason::Length => "max_tokens".into(),
        FinishReason::ToolCalls | FinishReason::FunctionCall => "tool_use".into(),
        FinishReason::ContentFilter if guardrail => "guardrail_intervened".into(),
        FinishReason::ContentFilter => "content_filtered".into(),
        FinishReason::Other(s) => s.clone(),
    }
}

/// Bedrock's tool-use ids look like `tooluse_<22 characters>`.
fn tool_use_id(planned: &str) -> String {
    format!(
        "tooluse_{}",
        planned.strip_prefix("call_").unwrap_or(planned)
    )
}

fn usage(plan: &Plan) -> TokenUsage {
    TokenUsage {
        input_tokens: plan.prompt_tokens,
        output_tokens: plan.completion_tokens,
        total_tokens: plan.prompt_tokens + plan.completion_tokens,
        cache_read_input_tokens: Some(0),
        cache_write_input_tokens: Some(0),
        ..Default::default()
    }
}

fn first(plan: &Plan) -> PlannedChoice {
    plan.choices.first().cloned().unwrap_or(PlannedChoice {
        content: Some(String::new()),
        tool_calls: vec![],
        finish: FinishReason::Stop,
    })
}

pub fn converse_response(plan: &Plan, guardrail: bool) -> ConverseResponse {
    let choice = first(plan);
    let mut content = Vec::new();
    if let Some(text) = choice.content.as_deref().filter(|t| !t.is_empty()) {
        content.push(ContentBlock::text(text));
    }
    for call in &choice.tool_calls {
        content.push(ContentBlock {
            tool_use: Some(ToolUseBlock {
                tool_use_id: tool_use_id(&call.id),
                name: call.name.clone(),
                input: serde_json::from_str(&call.arguments).unwrap_or(json!({})),
            }),
            ..Default::default()
        });
    }
    ConverseResponse {
        output: ConverseOutput {
            message: Some(Message {
                role: Role::Assistant,
                content,
            }),
        },
        stop_reason: stop_reason(&choice.finish, guardrail),
        usage: usage(plan),
        metrics: Some(json!({"latencyMs": 42})),
        additional_model_response_fields: None,
        extra: Default::default(),
    }
}

/// The plan as ConverseStream events: text word by word in block 0 (no `contentBlockStart`, as
/// Bedrock sends text), each tool call as its own block with a start and its input in two
/// fragments, then `messageStop` and `metadata` with the usage.
pub fn stream_events(plan: &Plan, guardrail: bool) -> Vec<StreamEvent> {
    let choice = first(plan);
    let mut events = vec![StreamEvent::MessageStart(MessageStart {
        role: Role::Assistant,
    })];
    let mut index = 0;
    if let Some(text) = choice.content.as_deref().filter(|t| !t.is_empty()) {
        for piece in text.split_inclusive(' ') {
            events.push(StreamEvent::ContentBlockDelta(ContentBlockDelta {
                content_block_index: index,
                delta: BlockDelta {
                    text: Some(piece.to_string()),
                    ..Default::default()
                },
            }));
        }
        events.push(StreamEvent::ContentBlockStop(ContentBlockStop {
            content_block_index: index,
        }));
        index += 1;
    }
    for call in &choice.tool_calls {
        events.push(StreamEvent::ContentBlockStart(ContentBlockStart {
            content_block_index: index,
            start: BlockStart {
                tool_use: Some(ToolUseStart {
                    tool_use_id: tool_use_id(&call.id),
                    name: call.name.clone(),
                }),
                ..Default::default()
            },
        }));
        let (a, b) = call.arguments.split_at(call.arguments.len() / 2);
        for part in [a, b].into_iter().filter(|p| !p.is_empty()) {
            events.push(StreamEvent::ContentBlockDelta(ContentBlockDelta {
                content_block_index: index,
                delta: BlockDelta {
                    tool_use: Some(ToolUseDelta {
                        input: part.to_string(),
                    }),
                    ..Default::default()
                },
            }));
        }
        events.push(StreamEvent::ContentBlockStop(ContentBlockStop {
            content_block_index: index,
        }));
        index += 1;
    }
    events.push(StreamEvent::MessageStop(MessageStop {
        stop_reason: stop_reason(&choice.finish, guardrail),
        additional_model_response_fields: None,
    }));
    events.push(StreamEvent::Metadata(Metadata {
        usage: usage(plan),
        metrics: Some(json!({"latencyMs": 42})),
    }));
    events
}
