//! Canonical (OpenAI) chat request -> Anthropic Messages request.
//!
//! - system/developer messages become `system`;
//! - tool messages become `tool_result` blocks in a user turn, and consecutive turns of the same
//!   role are merged (Anthropic requires alternation);
//! - assistant `tool_calls` become `tool_use` blocks (arguments parsed as JSON);
//! - images become base64 or URL sources; `max_tokens` defaults to [`DEFAULT_MAX_TOKENS`];
//! - `response_format` JSON modes become a forced tool whose input is the JSON answer (the response
//!   translation turns it back into message content);
//! - OpenAI-only parameters with no Anthropic meaning are dropped; unknown fields are forwarded
//!   (they are usually Anthropic parameters such as `thinking`).

use serde_json::{Value, json};

use super::wire::{
    Block, Content, ImageSource, InputMessage, MessagesRequest, Metadata, Role, ToolChoice,
    ToolDefinition,
};
use crate::error::{GatewayError, Result};
use crate::schema::{
    ChatRequest, ContentPart, Extra, ImageUrl, Message, MessageContent, OPENAI_ONLY_FIELDS,
    Role as CanonicalRole, ToolChoice as OpenAiToolChoice, ToolChoiceMode,
};

/// Anthropic requires `max_tokens`; every current model accepts this many.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Name of the forced tool that carries a JSON-mode answer.
pub const JSON_TOOL: &str = "json_tool_call";

/// The native request, and what the response translation needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub body: MessagesRequest,
    /// Set when JSON mode was emulated with a forced tool of this name.
    pub json_tool: Option<String>,
}

fn unsupported(what: String) -> GatewayError {
    GatewayError::invalid_request(format!("{what} is not supported by Anthropic"))
        .with_code("unsupported_parameter")
}

pub fn to_messages_request(req: &ChatRequest, stream: bool) -> Result<Translated> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(unsupported("`n` greater than 1".into()).with_param("n"));
    }
    let mut system: Vec<Block> = Vec::new();
    let mut turns: Vec<InputMessage> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            CanonicalRole::System | CanonicalRole::Developer => {
                system.extend(blocks_of(m.content.as_ref(), i)?);
            }
            CanonicalRole::User => {
                push_turn(&mut turns, Role::User, blocks_of(m.content.as_ref(), i)?)
            }
            CanonicalRole::Assistant => {
                push_turn(&mut turns, Role::Assistant, assistant_blocks(m, i)?)
            }
            CanonicalRole::Tool => {
                let content = match &m.content {
                    None => None,
                    Some(MessageContent::Text(t)) => Some(Content::Text(t.clone())),
                    Some(c) => Some(Content::Blocks(blocks_of(Some(c), i)?)),
                };
                let block = Block::ToolResult {
                    tool_use_id: m.tool_call_id.clone().unwrap_or_default(),
                    content,
                    is_error: None,
                    extra: Extra::new(),
                };
                push_turn(&mut turns, Role::User, vec![block]);
            }
            CanonicalRole::Function => {
                return Err(GatewayError::invalid_request(format!(
                    "messages[{i}]: legacy `function` messages are not supported; use `tool` messages"
                ))
                .with_param(format!("messages[{i}].role")));
            }
        }
    }

    let mut tools: Option<Vec<ToolDefinition>> = match &req.tools {
        None => None,
        Some(tools) => Some(tools.iter().map(tool_definition).collect::<Result<_>>()?),
    };
    let disable_parallel = req.parallel_tool_calls.map(|p| !p).filter(|d| *d);
    let mut tool_choice = match req.tool_choice.as_deref() {
        None => disable_parallel.map(|_| ToolChoice::Auto {
            disable_parallel_tool_use: disable_parallel,
        }),
        Some(OpenAiToolChoice::Mode(ToolChoiceMode::Auto)) => Some(ToolChoice::Auto {
            disable_parallel_tool_use: disable_parallel,
        }),
        Some(OpenAiToolChoice::Mode(ToolChoiceMode::Required)) => Some(ToolChoice::Any {
            disable_parallel_tool_use: disable_parallel,
        }),
        Some(OpenAiToolChoice::Mode(ToolChoiceMode::None)) => Some(ToolChoice::None),
        Some(named @ OpenAiToolChoice::Named(_)) => Some(ToolChoice::Tool {
            name: named.forced_function().unwrap_or_default().to_string(),
            disable_parallel_tool_use: disable_parallel,
        }),
    };

    let mut json_tool = None;
    if let Some(format) = req.response_format.as_deref()
        && (format.kind == "json_object" || format.kind == "json_schema")
    {
        let schema = format
            .json_schema
            .as_ref()
            .and_then(|s| s.schema.clone())
            .unwrap_or_else(|| json!({"type": "object"}));
        tools.get_or_insert_with(Vec::new).push(ToolDefinition {
            name: JSON_TOOL.into(),
            description: Some("Respond with a JSON object.".into()),
            input_schema: Some(schema),
            extra: Extra::new(),
        });
        tool_choice = Some(ToolChoice::Tool {
            name: JSON_TOOL.into(),
            disable_parallel_tool_use: Some(true),
        });
        json_tool = Some(JSON_TOOL.to_string());
    }

    let mut extra = Extra::new();
    for (k, v) in &req.extra {
        if !OPENAI_ONLY_FIELDS.contains(&k.as_str()) && k != "top_k" {
            extra.insert(k.clone(), v.clone());
        }
    }

    let body = MessagesRequest {
        model: req.model.clone(),
        max_tokens: req.max_output_tokens().unwrap_or(DEFAULT_MAX_TOKENS),
        messages: turns,
        system: system_content(system),
        stop_sequences: req.stop.as_ref().map(|s| s.to_vec()),
        stream: stream.then_some(true),
        // OpenAI's range is 0..2, Anthropic's 0..1.
        temperature: req.temperature.map(|t| t.min(1.0)),
        top_p: req.top_p,
        top_k: req
            .extra
            .get("top_k")
            .and_then(Value::as_u64)
            .map(|k| k as u32),
        tools,
        tool_choice,
        metadata: req.user.as_ref().map(|u| Metadata {
            user_id: Some(u.clone()),
            extra: Extra::new(),
        }),
        extra,
    };
    Ok(Translated { body, json_tool })
}

/// A plain string when the system prompt is plain text; blocks when a block carries extras such
/// as `cache_control`.
fn system_content(blocks: Vec<Block>) -> Option<Content> {
    if blocks.is_empty() {
        return None;
    }
    let plain = blocks
        .iter()
        .all(|b| matches!(b, Block::Text { extra, .. } if extra.is_empty()));
    if plain {
        let text: Vec<&str> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        Some(Content::Text(text.join("\n\n")))
    } else {
        Some(Content::Blocks(blocks))
    }
}

/// Appends blocks to the last turn when it has the same role, else starts a turn.
fn push_turn(turns: &mut Vec<InputMessage>, role: Role, blocks: Vec<Block>) {
    if let Some(last) = turns.last_mut()
        && last.role == role
    {
        let existing = std::mem::replace(&mut last.content, Content::Blocks(vec![]));
        let mut merged = existing.into_blocks();
        merged.extend(blocks);
        last.content = Content::Blocks(merged);
        return;
    }
    // A single plain text block reads better (and golden-tests better) as a string.
    let content = match blocks.as_slice() {
        [Block::Text { text, extra }] if extra.is_empty() => Content::Text(text.clone()),
        _ => Content::Blocks(blocks),
    };
    turns.push(InputMessage { role, content });
}

fn blocks_of(content: Option<&MessageContent>, i: usize) -> Result<Vec<Block>> {
    match content {
        None => Ok(vec![]),
        Some(MessageContent::Text(t)) if t.is_empty() => Ok(vec![]),
        Some(MessageContent::Text(t)) => Ok(vec![Block::text(t.clone())]),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match p {
                ContentPart::Text { text, extra } => Ok(Block::Text {
                    text: text.clone(),
                    extra: extra.clone(),
                }),
                ContentPart::ImageUrl { image_url, extra } => Ok(Block::Image {
                    source: image_source(image_url)
                        .map_err(|e| e.with_param(format!("messages[{i}].content[{j}]")))?,
                    extra: extra.clone(),
                }),
                ContentPart::Other(map) => Err(unsupported(format!(
                    "content part type {}",
                    map.get("type").map(Value::to_string).unwrap_or_default()
                ))
                .with_param(format!("messages[{i}].content[{j}]"))),
            })
            .collect(),
    }
}

pub fn image_source(image: &ImageUrl) -> Result<ImageSource> {
    if let Some((media_type, data)) = image.as_data_url() {
        return Ok(ImageSource::Base64 {
            media_type: media_type.to_string(),
            data: data.to_string(),
        });
    }
    if image.url.starts_with("https://") || image.url.starts_with("http://") {
        return Ok(ImageSource::Url {
            url: image.url.clone(),
        });
    }
    Err(GatewayError::invalid_request(
        "an image must be an http(s) URL or a `data:<media type>;base64,<data>` URL",
    ))
}

fn assistant_blocks(m: &Message, i: usize) -> Result<Vec<Block>> {
    let mut blocks = blocks_of(m.content.as_ref(), i)?;
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let args = call.function.arguments.trim();
        let input: Value = if args.is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|e| {
                GatewayError::invalid_request(format!(
                    "messages[{i}].tool_calls[{j}].function.arguments is not valid JSON: {e}"
                ))
                .with_param(format!("messages[{i}].tool_calls[{j}].function.arguments"))
            })?
        };
        blocks.push(Block::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input,
            extra: Extra::new(),
        });
    }
    Ok(blocks)
}

fn tool_definition(tool: &crate::schema::Tool) -> Result<ToolDefinition> {
    match &tool.function {
        Some(f) if tool.kind == "function" => Ok(ToolDefinition {
            name: f.name.clone(),
            description: f.description.clone(),
            input_schema: Some(
                f.parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            ),
            extra: f.extra.clone(),
        }),
        // A provider-native tool (an Anthropic server tool): forwarded as written.
        _ => {
            let mut extra = tool.extra.clone();
            extra.insert("type".into(), Value::String(tool.kind.clone()));
            let name = extra
                .remove("name")
                .and_then(|n| n.as_str().map(str::to_string))
                .unwrap_or_else(|| tool.kind.clone());
            Ok(ToolDefinition {
                name,
                description: None,
                input_schema: None,
                extra,
            })
        }
    }
}
