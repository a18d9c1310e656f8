//! Canonical (OpenAI) chat request -> Bedrock Converse request.
//!
//! - system/developer messages become `system` text blocks;
//! - user content becomes `text`, `image` (bytes from `data:` URLs; Converse has no URL source, so
//!   an `http(s)` image URL is a 400) and `document` blocks (from `file` parts with `file_data`);
//!   a `cache_control` on a part or a message adds a `cachePoint` after it;
//! - assistant `tool_calls` become `toolUse` blocks; `thinking_blocks` (as this adapter returns
//!   them) go back as `reasoningContent`, which Claude requires in tool-use turns with thinking on;
//! - tool messages become `toolResult` blocks in a user turn, and consecutive turns of the same
//!   role are merged (Converse requires alternation);
//! - tools become `toolConfig`; `tool_choice` auto/required/named become `auto`/`any`/`tool`.
//!   Converse has no "none": the tools are left out when the history has no tool blocks,
//!   otherwise (Converse then requires `toolConfig`) they are sent without a choice;
//! - `max_tokens`, `temperature` (clamped to Converse's 0..1), `top_p`, `stop` go to
//!   `inferenceConfig`;
//! - `response_format` `json_schema` becomes native structured output (`outputConfig`);
//!   `json_object` has no schema to give it, so it becomes a forced tool whose input is the answer;
//! - Converse's own fields (`guardrailConfig`, `performanceConfig`, ...) are forwarded as given;
//!   other unknown fields (`top_k`, `thinking`...) go to `additionalModelRequestFields`, except
//!   OpenAI-only parameters, which are dropped; so are `seed`, penalties, `logit_bias`, `logprobs`.

use serde_json::{Value, json};

use super::wire::{
    BinarySource, CachePoint, ContentBlock, ConverseRequest, DocumentBlock, Empty, FormatStructure,
    ImageBlock, InferenceConfig, InputSchema, JsonSchemaDefinition, Message, OutputConfig,
    ReasoningContent, ReasoningText, Role, TextFormat, ToolChoice, ToolConfig, ToolEntry,
    ToolResultBlock, ToolResultContent, ToolSpec, ToolUseBlock,
};
use crate::error::{GatewayError, Result};
use crate::schema::{
    ChatRequest, ContentPart, Extra, ImageUrl, Message as CanonicalMessage, MessageContent,
    OPENAI_ONLY_FIELDS, Role as CanonicalRole, Tool, ToolChoice as OpenAiToolChoice,
    ToolChoiceMode,
};

/// Name of the forced tool that carries a `json_object` answer.
pub const JSON_TOOL: &str = "json_tool_call";

/// Top-level Converse fields a caller may set directly; forwarded as they are.
const CONVERSE_FIELDS: &[&str] = &[
    "guardrailConfig",
    "performanceConfig",
    "requestMetadata",
    "additionalModelResponseFieldPaths",
    "promptVariables",
    "serviceTier",
];

/// The native request, and what the response translation needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub body: ConverseRequest,
    /// Set when JSON mode was emulated with a forced tool of this name.
    pub json_tool: Option<String>,
}

fn unsupported(what: impl std::fmt::Display) -> GatewayError {
    GatewayError::invalid_request(format!("{what} is not supported by Bedrock Converse"))
        .with_code("unsupported_parameter")
}

pub fn to_converse_request(req: &ChatRequest) -> Result<Translated> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(unsupported("`n` greater than 1").with_param("n"));
    }
    let mut system: Vec<ContentBlock> = Vec::new();
    let mut turns: Vec<Message> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            CanonicalRole::System | CanonicalRole::Developer => {
                for block in content_blocks(m, i)? {
                    if block.text.is_none() && block.cache_point.is_none() {
                        return Err(GatewayError::invalid_request(format!(
                            "messages[{i}]: Bedrock takes only text in system messages"
                        ))
                        .with_param(format!("messages[{i}].content")));
                    }
                    system.push(block);
                }
            }
            CanonicalRole::User => {
                let blocks = content_blocks(m, i)?;
                if blocks.iter().all(|b| b.cache_point.is_some()) {
                    return Err(GatewayError::invalid_request(format!(
                        "messages[{i}]: Bedrock rejects a user message without content (blank text included)"
                    ))
                    .with_param(format!("messages[{i}].content")));
                }
                push_turn(&mut turns, Role::User, blocks);
            }
            CanonicalRole::Assistant => {
                let blocks = assistant_blocks(m, i)?;
                // An empty assistant turn (no text, no calls) says nothing; Converse rejects it.
                if !blocks.is_empty() {
                    push_turn(&mut turns, Role::Assistant, blocks);
                }
            }
            CanonicalRole::Tool => {
                let block = ContentBlock {
                    tool_result: Some(ToolResultBlock {
                        tool_use_id: m.tool_call_id.clone().unwrap_or_default(),
                        content: tool_result_content(m.content.as_ref(), i)?,
                        status: None,
                    }),
                    ..Default::default()
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

    let history_has_tools = turns
        .iter()
        .flat_map(|t| &t.content)
        .any(|b| b.tool_use.is_some() || b.tool_result.is_some());
    let mut tools: Vec<ToolEntry> = match &req.tools {
        None => Vec::new(),
        Some(tools) => {
            let mut entries = Vec::new();
            for (i, t) in tools.iter().enumerate() {
                entries.extend(tool_entries(t, i)?);
            }
            entries
        }
    };
    let mut tool_choice = match req.tool_choice.as_deref() {
        None | Some(OpenAiToolChoice::Mode(ToolChoiceMode::None)) => None,
        Some(OpenAiToolChoice::Mode(ToolChoiceMode::Auto)) => Some(ToolChoice::Auto(Empty {})),
        Some(OpenAiToolChoice::Mode(ToolChoiceMode::Required)) => Some(ToolChoice::Any(Empty {})),
        Some(named @ OpenAiToolChoice::Named(_)) => Some(ToolChoice::Tool {
            name: named.forced_function().unwrap_or_default().to_string(),
        }),
    };
    if matches!(
        req.tool_choice.as_deref(),
        Some(OpenAiToolChoice::Mode(ToolChoiceMode::None))
    ) && !history_has_tools
    {
        tools.clear();
    }

    let mut extra = Extra::new();
    let mut additional = Extra::new();
    let mut output_config = None;
    for (k, v) in &req.extra {
        match k.as_str() {
            "additionalModelRequestFields" => match v {
                Value::Object(fields) => additional.extend(fields.clone()),
                _ => {
                    return Err(GatewayError::invalid_request(
                        "`additionalModelRequestFields` must be an object",
                    )
                    .with_param(k.clone()));
                }
            },
            "outputConfig" => {
                output_config = Some(serde_json::from_value(v.clone()).map_err(|e| {
                    GatewayError::invalid_request(format!("`outputConfig` is invalid: {e}"))
                        .with_param(k.clone())
                })?)
            }
            key if CONVERSE_FIELDS.contains(&key) => {
                extra.insert(k.clone(), v.clone());
            }
            key if OPENAI_ONLY_FIELDS.contains(&key) => {}
            _ => {
                additional.insert(k.clone(), v.clone());
            }
        }
    }
    // OpenAI's service tiers that Bedrock also has.
    if let Some(tier @ ("priority" | "default" | "flex")) =
        req.extra.get("service_tier").and_then(Value::as_str)
        && !extra.contains_key("serviceTier")
    {
        extra.insert("serviceTier".into(), json!({ "type": tier }));
    }

    let mut json_tool = None;
    if let Some(format) = req.response_format.as_deref() {
        match (format.kind.as_str(), format.json_schema.as_ref()) {
            ("json_schema", Some(spec)) if spec.schema.is_some() => {
                let schema = spec.schema.as_ref().expect("checked");
                output_config = Some(OutputConfig {
                    text_format: TextFormat {
                        kind: "json_schema".into(),
                        structure: FormatStructure {
                            json_schema: JsonSchemaDefinition {
                                schema: schema.to_string(),
                                name: Some(spec.name.clone()),
                                description: spec.description.clone(),
                            },
                        },
                    },
                });
            }
            ("json_object" | "json_schema", _) => {
                tools.push(ToolEntry {
                    tool_spec: Some(ToolSpec {
                        name: JSON_TOOL.into(),
                        description: Some("Respond with a JSON object.".into()),
                        input_schema: InputSchema {
                            json: json!({"type": "object"}),
                        },
                        strict: None,
                    }),
                    ..Default::default()
                });
                tool_choice = Some(ToolChoice::Tool {
                    name: JSON_TOOL.into(),
                });
                json_tool = Some(JSON_TOOL.to_string());
            }
            _ => {}
        }
    }

    let stop: Vec<String> = req
        .stop
        .as_ref()
        .map(|s| s.to_vec())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let inference = InferenceConfig {
        max_tokens: req.max_output_tokens(),
        // OpenAI's range is 0..2, Converse's 0..1.
        temperature: req.temperature.map(|t| t.clamp(0.0, 1.0)),
        top_p: req.top_p,
        stop_sequences: (!stop.is_empty()).then_some(stop),
    };

    let body = ConverseRequest {
        messages: turns,
        system,
        inference_config: (inference != InferenceConfig::default()).then_some(inference),
        tool_config: (!tools.is_empty()).then_some(ToolConfig { tools, tool_choice }),
        additional_model_request_fields: (!additional.is_empty()).then_some(additional),
        output_config,
        extra,
    };
    Ok(Translated { body, json_tool })
}

/// Appends blocks to the last turn when it has the same role, else starts a turn.
fn push_turn(turns: &mut Vec<Message>, role: Role, blocks: Vec<ContentBlock>) {
    match turns.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => turns.push(Message {
            role,
            content: blocks,
        }),
    }
}

fn has_cache_control(extra: &Extra) -> bool {
    extra.get("cache_control").is_some_and(|v| !v.is_null())
}

/// Text, image and document blocks of a message; blank text is left out (Converse rejects it).
fn content_blocks(m: &CanonicalMessage, i: usize) -> Result<Vec<ContentBlock>> {
    let mut out = Vec::new();
    match &m.content {
        None => {}
        Some(MessageContent::Text(t)) if t.trim().is_empty() => {}
        Some(MessageContent::Text(t)) => out.push(ContentBlock::text(t.clone())),
        Some(MessageContent::Parts(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                let at = || format!("messages[{i}].content[{j}]");
                let (block, extra) = match p {
                    ContentPart::Text { text, .. } if text.trim().is_empty() => continue,
                    ContentPart::Text { text, extra } => (ContentBlock::text(text.clone()), extra),
                    ContentPart::ImageUrl { image_url, extra } => (
                        ContentBlock {
                            image: Some(image_block(image_url).map_err(|e| e.with_param(at()))?),
                            ..Default::default()
                        },
                        extra,
                    ),
                    ContentPart::Other(map) => (
                        ContentBlock {
                            document: Some(document_block(map, j).map_err(|e| e.with_param(at()))?),
                            ..Default::default()
                        },
                        map,
                    ),
                };
                out.push(block);
                if has_cache_control(extra) {
                    out.push(ContentBlock::cache_point());
                }
            }
        }
    }
    if has_cache_control(&m.extra) && !out.is_empty() {
        out.push(ContentBlock::cache_point());
    }
    Ok(out)
}

pub fn image_block(image: &ImageUrl) -> Result<ImageBlock> {
    let Some((media_type, data)) = image.as_data_url() else {
        if image.url.starts_with("http://") || image.url.starts_with("https://") {
            return Err(GatewayError::invalid_request(
                "Bedrock Converse takes images as bytes, not URLs: send the image as a \
                 `data:image/<png|jpeg|gif|webp>;base64,...` URL",
            )
            .with_code("unsupported_parameter"));
        }
        return Err(GatewayError::invalid_request(
            "an image must be a `data:<media type>;base64,<data>` URL",
        ));
    };
    let format = match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(unsupported(format!(
                "image type {other:?} (use png, jpeg, gif or webp)"
            )));
        }
    };
    Ok(ImageBlock {
        format: format.into(),
        source: BinarySource {
            bytes: Some(data.to_string()),
            other: Extra::new(),
        },
    })
}

/// A `{"type": "file", "file": {"file_data": "data:...", "filename": ...}}` part as a document.
fn document_block(part: &Extra, j: usize) -> Result<DocumentBlock> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    let file = part.get("file").filter(|_| kind == "file");
    let Some(file) = file else {
        return Err(unsupported(format!("content part type {kind:?}")));
    };
    let Some(data_url) = file.get("file_data").and_then(Value::as_str) else {
        return Err(unsupported(
            "a file part without `file_data` (uploaded file ids)",
        ));
    };
    let url = ImageUrl {
        url: data_url.to_string(),
        detail: None,
        extra: Extra::new(),
    };
    let Some((media_type, data)) = url.as_data_url() else {
        return Err(GatewayError::invalid_request(
            "`file_data` must be a `data:<media type>;base64,<data>` URL",
        ));
    };
    let format = match media_type.to_ascii_lowercase().as_str() {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" => "md",
        other => return Err(unsupported(format!("document type {other:?}"))),
    };
    let filename = file.get("filename").and_then(Value::as_str).unwrap_or("");
    Ok(DocumentBlock {
        format: Some(format.into()),
        name: document_name(filename, j),
        source: BinarySource {
            bytes: Some(data.to_string()),
            other: Extra::new(),
        },
    })
}

/// Converse document names allow letters, digits, single spaces, hyphens, parentheses and square
/// brackets; the file extension is dropped (the format says it).
fn document_name(filename: &str, j: usize) -> String {
    let stem = filename
        .rsplit_once('.')
        .map(|(s, _)| s)
        .unwrap_or(filename);
    let mut name = String::new();
    for c in stem.chars() {
        let c = if c.is_ascii_alphanumeric() || "-()[]".contains(c) {
            c
        } else {
            ' '
        };
        if !(c == ' ' && (name.is_empty() || name.ends_with(' '))) {
            name.push(c);
        }
    }
    let name = name.trim_end().chars().take(200).collect::<String>();
    if name.is_empty() {
        format!("document-{}", j + 1)
    } else {
        name
    }
}

fn assistant_blocks(m: &CanonicalMessage, i: usize) -> Result<Vec<ContentBlock>> {
    let mut blocks = thinking_blocks(&m.extra);
    blocks.extend(content_blocks(m, i)?);
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let at = format!("messages[{i}].tool_calls[{j}].function.arguments");
        let args = call.function.arguments.trim();
        let input: Value = if args.is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|e| {
                GatewayError::invalid_request(format!("{at} is not valid JSON: {e}"))
                    .with_param(at.clone())
            })?
        };
        if !input.is_object() {
            return Err(GatewayError::invalid_request(format!(
                "{at} must be a JSON object for Bedrock"
            ))
            .with_param(at));
        }
        blocks.push(ContentBlock {
            tool_use: Some(ToolUseBlock {
                tool_use_id: call.id.clone(),
                name: call.function.name.clone(),
                input,
            }),
            ..Default::default()
        });
    }
    Ok(blocks)
}

/// `thinking_blocks` of an assistant message (`{"type": "thinking", "thinking", "signature"}` or
/// `{"type": "redacted_thinking", "data"}`) as `reasoningContent` blocks.
fn thinking_blocks(extra: &Extra) -> Vec<ContentBlock> {
    let Some(Value::Array(items)) = extra.get("thinking_blocks") else {
        return Vec::new();
    };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    items
        .iter()
        .filter_map(|b| {
            let reasoning = match b.get("type").and_then(Value::as_str) {
                Some("thinking") => ReasoningContent {
                    reasoning_text: Some(ReasoningText {
                        text: text(b, "thinking")?,
                        signature: text(b, "signature"),
                    }),
                    redacted_content: None,
                },
                Some("redacted_thinking") => ReasoningContent {
                    reasoning_text: None,
                    redacted_content: Some(text(b, "data")?),
                },
                _ => return None,
            };
            Some(ContentBlock {
                reasoning_content: Some(reasoning),
                ..Default::default()
            })
        })
        .collect()
}

fn tool_result_content(
    content: Option<&MessageContent>,
    i: usize,
) -> Result<Vec<ToolResultContent>> {
    let text = |t: &str| ToolResultContent {
        text: Some(t.to_string()),
        ..Default::default()
    };
    match content {
        None => Ok(vec![]),
        Some(MessageContent::Text(t)) if t.is_empty() => Ok(vec![]),
        Some(MessageContent::Text(t)) => Ok(vec![text(t)]),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .enumerate()
            .filter(|(_, p)| !matches!(p, ContentPart::Text { text, .. } if text.is_empty()))
            .map(|(j, p)| match p {
                ContentPart::Text { text: t, .. } => Ok(text(t)),
                ContentPart::ImageUrl { image_url, .. } => Ok(ToolResultContent {
                    image: Some(
                        image_block(image_url)
                            .map_err(|e| e.with_param(format!("messages[{i}].content[{j}]")))?,
                    ),
                    ..Default::default()
                }),
                ContentPart::Other(map) => Err(unsupported(format!(
                    "tool result part type {}",
                    map.get("type").map(Value::to_string).unwrap_or_default()
                ))
                .with_param(format!("messages[{i}].content[{j}]"))),
            })
            .collect(),
    }
}

/// A function tool as a `toolSpec`, followed by a `cachePoint` entry when it carries
/// `cache_control` (a cache point closes the tools listed before it).
fn tool_entries(tool: &Tool, i: usize) -> Result<Vec<ToolEntry>> {
    let Some(f) = tool.function.as_ref().filter(|_| tool.kind == "function") else {
        return Err(
            unsupported(format!("tool type {:?}", tool.kind)).with_param(format!("tools[{i}]"))
        );
    };
    let mut entries = vec![ToolEntry {
        tool_spec: Some(ToolSpec {
            name: f.name.clone(),
            // Converse rejects an empty description.
            description: f.description.clone().filter(|d| !d.trim().is_empty()),
            input_schema: InputSchema {
                json: f
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            },
            strict: f.strict,
        }),
        ..Default::default()
    }];
    if has_cache_control(&f.extra) || has_cache_control(&tool.extra) {
        entries.push(ToolEntry {
            cache_point: Some(CachePoint::default()),
            ..Default::default()
        });
    }
    Ok(entries)
}
