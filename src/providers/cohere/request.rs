//! Canonical (OpenAI) requests -> Cohere v2 requests.
//!
//! Chat:
//! - system/developer messages become one leading `system` message (Cohere wants the system turn
//!   first);
//! - assistant `tool_calls`, and the `tool_plan` and `reasoning_content` (as thinking) kept from an
//!   earlier Cohere answer, are sent back; tool messages keep their `tool_call_id`;
//! - text and image parts translate (images as a web URL or a data URI, with `detail`); other parts
//!   are a 400;
//! - `tool_choice`: `required` -> `REQUIRED`, `none` -> `NONE`, a named function -> `REQUIRED` with
//!   only that tool offered; function `strict` -> `strict_tools`;
//! - `top_p` -> `p` (clamped to Cohere's 0.01..0.99), `top_k` -> `k`, `stop` -> `stop_sequences`;
//!   penalties outside Cohere's 0..1 are a 400;
//! - `response_format` JSON modes -> `json_object` (with the schema for `json_schema`);
//! - `n` > 1, `logit_bias`, `top_logprobs` and legacy functions have no Cohere equivalent: a 400.
//!   OpenAI-only hints are dropped; other unknown fields are forwarded (they are usually Cohere
//!   parameters such as `documents`, `safety_mode` or `thinking`).
//!
//! Embeddings: texts only; `input_type` defaults to `search_document` (an `input_type` field in the
//! request overrides it); floats are always asked for, and re-encoded when the caller wants base64;
//! `dimensions` -> `output_dimension`.

use serde_json::{Value, json};

use super::wire::{
    ChatMessage, ChatRequest as CohereRequest, Content, ContentItem, EmbedRequest, FunctionCall,
    ImageUrl, ResponseFormat, Tool, ToolCall, ToolChoice, ToolFunction,
};
use crate::error::{GatewayError, Result};
use crate::schema::{
    ChatRequest, ContentPart, EmbeddingRequest, Extra, Message, MessageContent, OPENAI_ONLY_FIELDS,
    Role, ToolChoice as OpenAiToolChoice, ToolChoiceMode,
};

/// `input_type` when the request does not say: embeddings stored for later retrieval.
pub const DEFAULT_INPUT_TYPE: &str = "search_document";

fn unsupported(what: impl std::fmt::Display) -> GatewayError {
    GatewayError::invalid_request(format!("{what} is not supported by Cohere"))
        .with_code("unsupported_parameter")
}

pub fn to_chat_request(req: &ChatRequest, stream: bool) -> Result<CohereRequest> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(unsupported("`n` greater than 1").with_param("n"));
    }
    if req.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return Err(unsupported("`logit_bias`").with_param("logit_bias"));
    }
    if req.top_logprobs.is_some_and(|n| n > 0) {
        return Err(unsupported("`top_logprobs`").with_param("top_logprobs"));
    }
    for legacy in ["functions", "function_call"] {
        if req.extra.contains_key(legacy) {
            return Err(unsupported(format!("legacy `{legacy}` (use `tools`)")).with_param(legacy));
        }
    }

    let mut system: Vec<String> = Vec::new();
    let mut messages = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => {
                let text = text_only(m.content.as_ref(), i)?;
                if !text.is_empty() {
                    system.push(text);
                }
            }
            Role::User => messages.push(ChatMessage::User {
                content: user_content(m.content.as_ref(), i)?,
            }),
            Role::Assistant => messages.push(assistant_message(m, i)?),
            Role::Tool => messages.push(ChatMessage::Tool {
                tool_call_id: m.tool_call_id.clone().unwrap_or_default(),
                content: Content::Text(text_only(m.content.as_ref(), i)?),
            }),
            Role::Function => {
                return Err(GatewayError::invalid_request(format!(
                    "messages[{i}]: legacy `function` messages are not supported; use `tool` messages"
                ))
                .with_param(format!("messages[{i}].role")));
            }
        }
    }
    if !system.is_empty() {
        messages.insert(
            0,
            ChatMessage::System {
                content: Content::Text(system.join("\n\n")),
            },
        );
    }

    let mut tools: Option<Vec<Tool>> = match &req.tools {
        None => None,
        Some(tools) => Some(
            tools
                .iter()
                .enumerate()
                .map(|(i, t)| tool(t, i))
                .collect::<Result<_>>()?,
        ),
    };
    let strict_tools = req
        .tools
        .iter()
        .flatten()
        .any(|t| t.function.as_ref().and_then(|f| f.strict) == Some(true))
        .then_some(true);
    let no_tools = tools.as_ref().is_none_or(Vec::is_empty);
    let tool_choice = match req.tool_choice.as_deref() {
        // Cohere rejects a tool choice without tools; without tools, none is the only choice.
        Some(OpenAiToolChoice::Mode(_)) if no_tools => None,
        None | Some(OpenAiToolChoice::Mode(ToolChoiceMode::Auto)) => None,
        Some(OpenAiToolChoice::Mode(ToolChoiceMode::Required)) => Some(ToolChoice::Required),
        Some(OpenAiToolChoice::Mode(ToolChoiceMode::None)) => Some(ToolChoice::None),
        Some(named @ OpenAiToolChoice::Named(_)) => {
            let name = named.forced_function().unwrap_or_default();
            let only: Vec<Tool> = tools
                .iter()
                .flatten()
                .filter(|t| t.function.name == name)
                .cloned()
                .collect();
            if only.is_empty() {
                return Err(GatewayError::invalid_request(format!(
                    "`tool_choice` names function {name:?}, which is not among `tools`"
                ))
                .with_param("tool_choice"));
            }
            // Cohere cannot force one tool by name; offering only that tool and requiring a call
            // has the same effect.
            tools = Some(only);
            Some(ToolChoice::Required)
        }
    };

    let response_format = match req.response_format.as_deref() {
        Some(f) if f.kind == "json_object" => {
            Some(ResponseFormat::JsonObject { json_schema: None })
        }
        Some(f) if f.kind == "json_schema" => Some(ResponseFormat::JsonObject {
            json_schema: f.json_schema.as_ref().and_then(|s| s.schema.clone()),
        }),
        Some(f) if f.kind == "text" => None,
        Some(f) => {
            return Err(unsupported(format!("`response_format` type {:?}", f.kind))
                .with_param("response_format.type"));
        }
        None => None,
    };

    let mut extra = Extra::new();
    for (k, v) in &req.extra {
        if !OPENAI_ONLY_FIELDS.contains(&k.as_str()) && k != "top_k" {
            extra.insert(k.clone(), v.clone());
        }
    }

    Ok(CohereRequest {
        model: req.model.clone(),
        messages,
        tools,
        strict_tools,
        response_format,
        max_tokens: req.max_output_tokens(),
        stop_sequences: req.stop.as_ref().map(|s| s.to_vec()),
        temperature: req.temperature,
        seed: req.seed,
        frequency_penalty: penalty(req.frequency_penalty, "frequency_penalty")?,
        presence_penalty: penalty(req.presence_penalty, "presence_penalty")?,
        k: req
            .extra
            .get("top_k")
            .and_then(Value::as_u64)
            .map(|k| k.min(500) as u32),
        // Cohere accepts 0.01..=0.99; 1.0 (OpenAI's "no nucleus sampling") becomes the widest.
        p: req.top_p.map(|p| p.clamp(0.01, 0.99)),
        logprobs: req.logprobs.filter(|l| *l),
        tool_choice,
        stream: stream.then_some(true),
        extra,
    })
}

/// Cohere's penalties range over 0..1; OpenAI's over -2..2. Values Cohere cannot express are a 400
/// rather than a silently different request.
fn penalty(value: Option<f64>, name: &str) -> Result<Option<f64>> {
    match value {
        Some(v) if !(0.0..=1.0).contains(&v) => Err(GatewayError::invalid_request(format!(
            "`{name}` must be between 0 and 1 for Cohere, got {v}"
        ))
        .with_param(name)),
        other => Ok(other),
    }
}

/// Text of a message whose Cohere form takes text only (system, tool).
fn text_only(content: Option<&MessageContent>, i: usize) -> Result<String> {
    match content {
        None => Ok(String::new()),
        Some(MessageContent::Text(t)) => Ok(t.clone()),
        Some(MessageContent::Parts(parts)) => {
            let mut out = String::new();
            for (j, p) in parts.iter().enumerate() {
                match p {
                    ContentPart::Text { text, .. } => out.push_str(text),
                    other => {
                        return Err(unsupported(format!(
                            "content part type {} in this message",
                            part_type(other)
                        ))
                        .with_param(format!("messages[{i}].content[{j}]")));
                    }
                }
            }
            Ok(out)
        }
    }
}

fn part_type(part: &ContentPart) -> String {
    match part {
        ContentPart::Text { .. } => "\"text\"".into(),
        ContentPart::ImageUrl { .. } => "\"image_url\"".into(),
        ContentPart::Other(map) => map.get("type").map(Value::to_string).unwrap_or_default(),
    }
}

fn user_content(content: Option<&MessageContent>, i: usize) -> Result<Content> {
    match content {
        None => Ok(Content::Text(String::new())),
        Some(MessageContent::Text(t)) => Ok(Content::Text(t.clone())),
        Some(MessageContent::Parts(parts)) => {
            let items = parts
                .iter()
                .enumerate()
                .map(|(j, p)| match p {
                    ContentPart::Text { text, .. } => Ok(ContentItem::Text { text: text.clone() }),
                    ContentPart::ImageUrl { image_url, .. } => {
                        let url = &image_url.url;
                        if image_url.as_data_url().is_some()
                            || url.starts_with("https://")
                            || url.starts_with("http://")
                        {
                            Ok(ContentItem::ImageUrl {
                                image_url: ImageUrl {
                                    url: url.clone(),
                                    detail: image_url.detail.clone(),
                                },
                            })
                        } else {
                            Err(GatewayError::invalid_request(
                                "an image must be an http(s) URL or a `data:<media type>;base64,<data>` URL",
                            )
                            .with_param(format!("messages[{i}].content[{j}]")))
                        }
                    }
                    other => Err(unsupported(format!("content part type {}", part_type(other)))
                        .with_param(format!("messages[{i}].content[{j}]"))),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Content::Items(items))
        }
    }
}

fn assistant_message(m: &Message, i: usize) -> Result<ChatMessage> {
    let text = text_only(m.content.as_ref(), i)?;
    let tool_calls: Vec<ToolCall> = m
        .tool_calls
        .iter()
        .flatten()
        .map(|c| ToolCall {
            id: c.id.clone(),
            kind: "function".into(),
            function: FunctionCall {
                name: Some(c.function.name.clone()),
                arguments: Some(if c.function.arguments.trim().is_empty() {
                    "{}".into()
                } else {
                    c.function.arguments.clone()
                }),
            },
        })
        .collect();
    let tool_plan = m
        .extra
        .get("tool_plan")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    // Reasoning from an earlier Cohere answer goes back as the thinking it was.
    let reasoning = m
        .extra
        .get("reasoning_content")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty());
    let content = match reasoning {
        Some(thinking) => {
            let mut items = vec![ContentItem::Thinking {
                thinking: thinking.to_string(),
            }];
            if !text.is_empty() {
                items.push(ContentItem::Text { text });
            }
            Some(Content::Items(items))
        }
        None => (!text.is_empty()).then_some(Content::Text(text)),
    };
    Ok(ChatMessage::Assistant {
        content,
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        tool_plan,
        citations: None,
    })
}

fn tool(t: &crate::schema::Tool, i: usize) -> Result<Tool> {
    match &t.function {
        Some(f) if t.kind == "function" => Ok(Tool {
            kind: "function".into(),
            function: ToolFunction {
                name: f.name.clone(),
                description: f.description.clone(),
                parameters: f
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            },
        }),
        _ => Err(unsupported(format!("tool type {:?}", t.kind)).with_param(format!("tools[{i}]"))),
    }
}

/// The embed request. Token-id inputs cannot be sent: Cohere embeds text.
pub fn to_embed_request(req: &EmbeddingRequest) -> Result<EmbedRequest> {
    let texts = req.input.texts().ok_or_else(|| {
        unsupported("token-id `input`")
            .with_param("input")
            .with_code("unsupported_input")
    })?;
    let mut extra = Extra::new();
    let mut input_type = DEFAULT_INPUT_TYPE.to_string();
    for (k, v) in &req.extra {
        match (k.as_str(), v) {
            ("input_type", Value::String(s)) => input_type.clone_from(s),
            ("input_type", _) => {
                return Err(
                    GatewayError::invalid_request("`input_type` must be a string")
                        .with_param("input_type"),
                );
            }
            ("embedding_types", _) => {}
            _ => {
                extra.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(EmbedRequest {
        model: req.model.clone(),
        texts: texts.into_iter().map(str::to_string).collect(),
        input_type,
        embedding_types: vec!["float".into()],
        output_dimension: req.dimensions,
        extra,
    })
}
