//! Canonical (OpenAI) chat request -> Gemini `generateContent` request (Gemini API and Vertex AI).
//!
//! - system/developer messages become `systemInstruction`; `assistant` turns are `model` turns;
//! - assistant `tool_calls` become `functionCall` parts; `tool` messages become `functionResponse`
//!   parts in a user turn, named after the call they answer (Gemini matches by name);
//! - consecutive turns of the same role are merged (parallel function responses share one turn);
//! - images: data URLs become `inlineData`, http(s)/gs URLs `fileData` with a MIME type guessed
//!   from the extension; audio and file parts become `inlineData`;
//! - tools become `functionDeclarations` with schemas cleaned of what Gemini rejects;
//!   `tool_choice` becomes `toolConfig.functionCallingConfig`;
//! - sampling settings, `n`, `seed`, penalties, logprobs and JSON mode go to `generationConfig`;
//! - `top_k`, `safety_settings`, `thinking_config`, `cached_content` given as extra fields are
//!   placed where Gemini expects them, `reasoning_effort` becomes a thinking budget; other
//!   OpenAI-only fields are dropped and the rest is forwarded (`labels` on Vertex AI...).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::schema;
use super::wire::{
    Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration,
    FunctionResponse, GenerateContentRequest, GenerationConfig, Part, Tool, ToolConfig,
};
use crate::error::{GatewayError, Result};
use crate::schema::{
    ChatRequest, ContentPart, Extra, ImageUrl, Message, MessageContent, OPENAI_ONLY_FIELDS, Role,
    ToolChoice as OpenAiToolChoice, ToolChoiceMode,
};

/// Separates a synthesized tool call id from the `thoughtSignature` it carries, so the signature
/// comes back with the call on the next turn (Gemini requires it for thinking models).
pub const THOUGHT_SEPARATOR: &str = "__thought__";

/// Built-in Gemini tools an OpenAI-shaped request may name as a tool `type`.
const BUILTIN_TOOLS: &[(&str, &str)] = &[
    ("google_search", "googleSearch"),
    ("googleSearch", "googleSearch"),
    ("google_search_retrieval", "googleSearchRetrieval"),
    ("googleSearchRetrieval", "googleSearchRetrieval"),
    ("code_execution", "codeExecution"),
    ("codeExecution", "codeExecution"),
    ("url_context", "urlContext"),
    ("urlContext", "urlContext"),
];

fn unsupported(what: String) -> GatewayError {
    GatewayError::invalid_request(format!("{what} is not supported by Gemini"))
        .with_code("unsupported_parameter")
}

/// Splits a tool call id into the id proper and the thought signature it carries, if any.
pub fn split_call_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(THOUGHT_SEPARATOR) {
        Some((base, sig)) if !sig.is_empty() => (base, Some(sig)),
        _ => (id, None),
    }
}

pub fn to_generate_content_request(req: &ChatRequest) -> Result<GenerateContentRequest> {
    let mut system: Vec<Part> = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    // Tool call id -> function name, from the assistant turns seen so far.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => {
                system.extend(parts_of(m.content.as_ref(), i)?);
            }
            Role::User => push_turn(&mut contents, "user", parts_of(m.content.as_ref(), i)?),
            Role::Assistant => {
                for call in m.tool_calls.iter().flatten() {
                    call_names.insert(call.id.as_str(), call.function.name.as_str());
                }
                push_turn(&mut contents, "model", model_parts(m, i)?);
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or_default();
                let name = call_names
                    .get(id)
                    .copied()
                    .or(m.name.as_deref())
                    .ok_or_else(|| {
                        GatewayError::invalid_request(format!(
                            "messages[{i}]: tool_call_id {id:?} does not match a tool call of an \
                             earlier assistant message (Gemini needs the function name)"
                        ))
                        .with_param(format!("messages[{i}].tool_call_id"))
                    })?;
                let part = Part {
                    function_response: Some(FunctionResponse {
                        id: None,
                        name: name.to_string(),
                        response: function_response_value(&m.text()),
                    }),
                    ..Default::default()
                };
                push_turn(&mut contents, "user", vec![part]);
            }
            Role::Function => {
                return Err(GatewayError::invalid_request(format!(
                    "messages[{i}]: legacy `function` messages are not supported; use `tool` messages"
                ))
                .with_param(format!("messages[{i}].role")));
            }
        }
    }
    if contents.is_empty() {
        return Err(GatewayError::invalid_request(
            "Gemini needs at least one user or assistant message besides the system prompt",
        )
        .with_param("messages"));
    }

    let mut extra = Extra::new();
    let mut safety_settings = None;
    let mut thinking_config = None;
    let mut cached_content = None;
    for (k, v) in &req.extra {
        match k.as_str() {
            "top_k" | "topK" => {}
            "safety_settings" | "safetySettings" => {
                safety_settings = v.as_array().cloned();
            }
            "thinking_config" | "thinkingConfig" => thinking_config = Some(v.clone()),
            // As Gemini's own OpenAI-compatible endpoint reads it.
            "reasoning_effort" => {
                let budget = match v.as_str() {
                    Some("none") => Some(0),
                    Some("minimal" | "low") => Some(1024),
                    Some("medium") => Some(8192),
                    Some("high") => Some(24576),
                    _ => None,
                };
                if let Some(b) = budget {
                    thinking_config.get_or_insert(json!({ "thinkingBudget": b }));
                }
            }
            "cached_content" | "cachedContent" => {
                cached_content = v.as_str().map(str::to_string);
            }
            k if OPENAI_ONLY_FIELDS.contains(&k) => {}
            _ => {
                extra.insert(k.clone(), v.clone());
            }
        }
    }

    Ok(GenerateContentRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(Content {
            role: None,
            parts: system,
        }),
        tools: tools(req)?,
        tool_config: tool_config(req),
        safety_settings,
        generation_config: generation_config(req, thinking_config),
        cached_content,
        extra,
    })
}

/// A tool result as the JSON object Gemini wants: an object result as it is, anything else as
/// `{"output": <text>}`.
fn function_response_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "output": text }),
    }
}

/// Appends parts to the last turn when it has the same role, else starts a turn.
fn push_turn(contents: &mut Vec<Content>, role: &str, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut()
        && last.role.as_deref() == Some(role)
    {
        last.parts.extend(parts);
        return;
    }
    contents.push(Content::new(role, parts));
}

fn parts_of(content: Option<&MessageContent>, i: usize) -> Result<Vec<Part>> {
    match content {
        None => Ok(vec![]),
        Some(MessageContent::Text(t)) if t.is_empty() => Ok(vec![]),
        Some(MessageContent::Text(t)) => Ok(vec![Part::text(t.clone())]),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| {
                content_part(p).map_err(|e| e.with_param(format!("messages[{i}].content[{j}]")))
            })
            .collect(),
    }
}

fn content_part(part: &ContentPart) -> Result<Part> {
    match part {
        ContentPart::Text { text, .. } => Ok(Part::text(text.clone())),
        ContentPart::ImageUrl { image_url, .. } => image_part(image_url),
        ContentPart::Other(map) => {
            let map = Value::Object(map.clone());
            let kind = map.get("type").and_then(Value::as_str).unwrap_or("");
            match kind {
                "input_audio" => {
                    let data = map.pointer("/input_audio/data").and_then(Value::as_str);
                    let format = map.pointer("/input_audio/format").and_then(Value::as_str);
                    match (data, format) {
                        (Some(data), Some(format)) => Ok(inline(format!("audio/{format}"), data)),
                        _ => Err(GatewayError::invalid_request(
                            "an input_audio part needs `input_audio.data` and `input_audio.format`",
                        )),
                    }
                }
                "file" => {
                    let data = map.pointer("/file/file_data").and_then(Value::as_str);
                    let parsed = data.and_then(|d| {
                        ImageUrl {
                            url: d.to_string(),
                            detail: None,
                            extra: Extra::new(),
                        }
                        .as_data_url()
                        .map(|(m, d)| (m.to_string(), d.to_string()))
                    });
                    match parsed {
                        Some((mime, data)) => Ok(inline(mime, data.as_str())),
                        None => Err(unsupported(
                            "a file part without `file.file_data` as a data URL (uploaded file ids)"
                                .into(),
                        )),
                    }
                }
                other => Err(unsupported(format!("content part type {other:?}"))),
            }
        }
    }
}

fn inline(mime_type: String, data: &str) -> Part {
    Part {
        inline_data: Some(Blob {
            mime_type,
            data: data.to_string(),
        }),
        ..Default::default()
    }
}

/// A MIME type from a URL's extension.
pub fn guess_mime_type(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "mov" => "video/mov",
        "webm" => "video/webm",
        "txt" => "text/plain",
        _ => return None,
    })
}

fn image_part(image: &ImageUrl) -> Result<Part> {
    if let Some((mime, data)) = image.as_data_url() {
        return Ok(inline(mime.to_string(), data));
    }
    let url = image.url.as_str();
    if url.starts_with("https://") || url.starts_with("http://") || url.starts_with("gs://") {
        let mime = image
            .extra
            .get("mime_type")
            .and_then(Value::as_str)
            .or_else(|| guess_mime_type(url))
            .ok_or_else(|| {
                GatewayError::invalid_request(format!(
                    "cannot tell the MIME type of image URL {url:?} from its extension; \
                     send it as a data URL or add `image_url.mime_type`"
                ))
            })?;
        return Ok(Part {
            file_data: Some(FileData {
                mime_type: Some(mime.to_string()),
                file_uri: url.to_string(),
            }),
            ..Default::default()
        });
    }
    Err(GatewayError::invalid_request(
        "an image must be an http(s) or gs:// URL or a `data:<media type>;base64,<data>` URL",
    ))
}

fn model_parts(m: &Message, i: usize) -> Result<Vec<Part>> {
    let mut parts = parts_of(m.content.as_ref(), i)?;
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let args = call.function.arguments.trim();
        let args: Value = if args.is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|e| {
                GatewayError::invalid_request(format!(
                    "messages[{i}].tool_calls[{j}].function.arguments is not valid JSON: {e}"
                ))
                .with_param(format!("messages[{i}].tool_calls[{j}].function.arguments"))
            })?
        };
        if !args.is_object() {
            return Err(GatewayError::invalid_request(format!(
                "messages[{i}].tool_calls[{j}].function.arguments must be a JSON object for Gemini"
            ))
            .with_param(format!("messages[{i}].tool_calls[{j}].function.arguments")));
        }
        let (_, signature) = split_call_id(&call.id);
        parts.push(Part {
            function_call: Some(FunctionCall {
                id: None,
                name: call.function.name.clone(),
                args,
            }),
            thought_signature: signature.map(str::to_string),
            ..Default::default()
        });
    }
    Ok(parts)
}

fn tools(req: &ChatRequest) -> Result<Option<Vec<Tool>>> {
    let Some(defs) = &req.tools else {
        return Ok(None);
    };
    let mut declarations = Vec::new();
    let mut builtins = Vec::new();
    for (i, tool) in defs.iter().enumerate() {
        match &tool.function {
            Some(f) if tool.kind == "function" => declarations.push(FunctionDeclaration {
                name: f.name.clone(),
                description: f.description.clone(),
                parameters: f.parameters.as_ref().and_then(schema::clean_parameters),
                parameters_json_schema: None,
                extra: Extra::new(),
            }),
            _ => match BUILTIN_TOOLS.iter().find(|(k, _)| *k == tool.kind) {
                Some((_, native)) => {
                    let mut extra = Extra::new();
                    extra.insert(native.to_string(), Value::Object(tool.extra.clone()));
                    builtins.push(Tool {
                        function_declarations: None,
                        extra,
                    });
                }
                None => {
                    return Err(unsupported(format!("tool type {:?}", tool.kind))
                        .with_param(format!("tools[{i}]")));
                }
            },
        }
    }
    let mut out = Vec::new();
    if !declarations.is_empty() {
        out.push(Tool {
            function_declarations: Some(declarations),
            extra: Extra::new(),
        });
    }
    out.extend(builtins);
    Ok((!out.is_empty()).then_some(out))
}

fn tool_config(req: &ChatRequest) -> Option<ToolConfig> {
    let config = match req.tool_choice.as_deref()? {
        OpenAiToolChoice::Mode(ToolChoiceMode::Auto) => FunctionCallingConfig {
            mode: Some("AUTO".into()),
            allowed_function_names: None,
        },
        OpenAiToolChoice::Mode(ToolChoiceMode::Required) => FunctionCallingConfig {
            mode: Some("ANY".into()),
            allowed_function_names: None,
        },
        OpenAiToolChoice::Mode(ToolChoiceMode::None) => FunctionCallingConfig {
            mode: Some("NONE".into()),
            allowed_function_names: None,
        },
        named @ OpenAiToolChoice::Named(_) => FunctionCallingConfig {
            mode: Some("ANY".into()),
            allowed_function_names: named.forced_function().map(|n| vec![n.to_string()]),
        },
    };
    Some(ToolConfig {
        function_calling_config: Some(config),
        extra: Extra::new(),
    })
}

fn generation_config(req: &ChatRequest, thinking: Option<Value>) -> Option<GenerationConfig> {
    let (mime, response_schema) = match req.response_format.as_deref() {
        Some(f) if f.kind == "json_object" => (Some("application/json".to_string()), None),
        Some(f) if f.kind == "json_schema" => (
            Some("application/json".to_string()),
            f.json_schema
                .as_ref()
                .and_then(|s| s.schema.as_ref())
                .map(schema::clean),
        ),
        _ => (None, None),
    };
    let top_k = req
        .extra
        .get("top_k")
        .or_else(|| req.extra.get("topK"))
        .filter(|v| v.is_number())
        .cloned();
    let config = GenerationConfig {
        stop_sequences: req.stop.as_ref().map(|s| s.to_vec()),
        response_mime_type: mime,
        response_schema,
        response_json_schema: None,
        candidate_count: req.n,
        max_output_tokens: req.max_output_tokens(),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        response_logprobs: req.logprobs,
        logprobs: req.top_logprobs,
        thinking_config: thinking,
        extra: Extra::new(),
    };
    (config != GenerationConfig::default()).then_some(config)
}
