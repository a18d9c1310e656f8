//! The Gemini API as a front door (`POST /genai/{version}/models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse`, `:embedContent`, `:batchEmbedContents`): Gemini requests
//! into canonical ones, canonical responses, chunks and errors back into Gemini's shapes, whatever
//! provider served them. The google-genai SDKs use it with `http_options.base_url=<gateway>/genai`.
//!
//! Gemini-only settings with no canonical meaning (`safetySettings`, `thinkingConfig`,
//! `cachedContent`, `labels`) are not forwarded: another provider would reject them.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{Value, json};

use crate::error::{ErrorKind, GatewayError, Result};
use crate::providers::gemini::request::{THOUGHT_SEPARATOR, guess_mime_type, split_call_id};
use crate::providers::gemini::schema::to_json_schema;
use crate::providers::gemini::wire::{
    BatchEmbedContentsRequest, BatchEmbedContentsResponse, Blob, Candidate, Content,
    ContentEmbedding, EmbedContentRequest, EmbedContentResponse, ErrorBody, ErrorEnvelope,
    FileData, FunctionCall, GenerateContentRequest, GenerateContentResponse, Part, UsageMetadata,
    status_name,
};
use crate::schema::{
    ChatChunk, ChatRequest, ChatResponse, ContentPart, EmbeddingInput, EmbeddingRequest,
    EmbeddingResponse, Extra, FinishReason, FunctionCall as CanonicalFunctionCall,
    FunctionDefinition, ImageUrl, JsonSchemaFormat, Message, MessageContent, NamedToolChoice,
    ResponseFormat, Role, Stop, StreamOptions, Tool, ToolCall, ToolChoice, ToolChoiceFunction,
    ToolChoiceMode, Usage,
};

/// Splits `{model}:{action}` (the model may itself contain `/` and `:`).
pub fn split_model_action(path: &str) -> Option<(&str, &str)> {
    let (model, action) = path.rsplit_once(':')?;
    let model = model.strip_prefix("models/").unwrap_or(model);
    (!model.is_empty() && !action.is_empty()).then_some((model, action))
}

fn bad(message: String, param: String) -> GatewayError {
    GatewayError::invalid_request(message).with_param(param)
}

/// A Gemini request as a canonical one for `model`.
pub fn to_chat_request(
    req: GenerateContentRequest,
    model: &str,
    stream: bool,
) -> Result<ChatRequest> {
    let mut messages = Vec::new();
    if let Some(system) = &req.system_instruction {
        let text = system.text();
        if !text.is_empty() {
            messages.push(Message::new(Role::System, text));
        }
    }
    // Function name -> ids of its calls not answered yet, to pair responses that carry no id.
    let mut pending: HashMap<String, VecDeque<String>> = HashMap::new();
    for (i, content) in req.contents.into_iter().enumerate() {
        match content.role.as_deref().unwrap_or("user") {
            "user" => user_turn(content.parts, i, &mut pending, &mut messages)?,
            "model" => messages.push(model_turn(content.parts, i, &mut pending)?),
            other => {
                return Err(bad(
                    format!("contents[{i}].role must be \"user\" or \"model\", got {other:?}"),
                    format!("contents[{i}].role"),
                ));
            }
        }
    }
    if messages.iter().all(|m| m.role == Role::System) {
        return Err(bad("contents must not be empty".into(), "contents".into()));
    }

    let tools = req.tools.map(|tools| {
        let mut out = Vec::new();
        for tool in tools {
            for f in tool.function_declarations.into_iter().flatten() {
                let parameters = f
                    .parameters_json_schema
                    .or_else(|| f.parameters.as_ref().map(to_json_schema))
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                out.push(Tool {
                    kind: "function".into(),
                    function: Some(FunctionDefinition {
                        name: f.name,
                        description: f.description,
                        parameters: Some(parameters),
                        strict: None,
                        extra: Extra::new(),
                    }),
                    extra: Extra::new(),
                });
            }
            // Built-in tools (`googleSearch`...), kept for a Gemini upstream.
            for (kind, config) in tool.extra {
                out.push(Tool {
                    kind,
                    function: None,
                    extra: config.as_object().cloned().unwrap_or_default(),
                });
            }
        }
        out
    });
    let tool_choice = req
        .tool_config
        .and_then(|c| c.function_calling_config)
        .and_then(|c| {
            let mode = c.mode.as_deref().unwrap_or("AUTO").to_ascii_uppercase();
            let names = c.allowed_function_names.unwrap_or_default();
            match (mode.as_str(), names.as_slice()) {
                ("NONE", _) => Some(ToolChoice::Mode(ToolChoiceMode::None)),
                ("ANY", [one]) => Some(ToolChoice::Named(NamedToolChoice {
                    kind: "function".into(),
                    function: Some(ToolChoiceFunction {
                        name: one.clone(),
                        extra: Extra::new(),
                    }),
                    extra: Extra::new(),
                })),
                ("ANY", _) => Some(ToolChoice::Mode(ToolChoiceMode::Required)),
                ("AUTO" | "VALIDATED", _) => Some(ToolChoice::Mode(ToolChoiceMode::Auto)),
                _ => None,
            }
        });

    let g = req.generation_config.unwrap_or_default();
    let response_format = match g.response_mime_type.as_deref() {
        Some("application/json") => Some(ResponseFormat {
            kind: if g.response_schema.is_some() || g.response_json_schema.is_some() {
                "json_schema".into()
            } else {
                "json_object".into()
            },
            json_schema: g
                .response_json_schema
                .clone()
                .or_else(|| g.response_schema.as_ref().map(to_json_schema))
                .map(|schema| JsonSchemaFormat {
                    name: "response".into(),
                    description: None,
                    schema: Some(schema),
                    strict: None,
                    extra: Extra::new(),
                }),
            extra: Extra::new(),
        }),
        _ => None,
    };
    let mut extra = Extra::new();
    if let Some(k) = g.top_k.filter(Value::is_number) {
        extra.insert("top_k".into(), k);
    }
    Ok(ChatRequest {
        model: model.to_string(),
        messages,
        stream: stream.then_some(true),
        stream_options: stream.then(|| StreamOptions {
            include_usage: Some(true),
            extra: Extra::new(),
        }),
        temperature: g.temperature,
        top_p: g.top_p,
        n: g.candidate_count,
        stop: g.stop_sequences.map(Stop::Many),
        max_tokens: g.max_output_tokens,
        presence_penalty: g.presence_penalty,
        frequency_penalty: g.frequency_penalty,
        logprobs: g.response_logprobs,
        top_logprobs: g.logprobs,
        seed: g.seed,
        tools,
        tool_choice: tool_choice.map(Box::new),
        response_format: response_format.map(Box::new),
        extra,
        ..Default::default()
    })
}

/// The text a function response carries: `{"output": "..."}` (or `result`/`content`) as its
/// string, any other object as JSON.
fn response_text(response: &Value) -> String {
    if let Some(obj) = response.as_object()
        && obj.len() == 1
        && let Some(Value::String(s)) = ["output", "result", "content"]
            .iter()
            .find_map(|k| obj.get(*k))
    {
        return s.clone();
    }
    response.to_string()
}

fn user_turn(
    parts: Vec<Part>,
    i: usize,
    pending: &mut HashMap<String, VecDeque<String>>,
    messages: &mut Vec<Message>,
) -> Result<()> {
    let mut rest = Vec::new();
    for (j, part) in parts.into_iter().enumerate() {
        if let Some(fr) = part.function_response {
            let queue = pending.entry(fr.name.clone()).or_default();
            let id = match fr.id {
                Some(id) => {
                    queue.retain(|q| split_call_id(q).0 != id);
                    id
                }
                None => queue
                    .pop_front()
                    .unwrap_or_else(|| format!("call_{}_{i}_{j}", fr.name)),
            };
            let mut tool = Message::new(Role::Tool, response_text(&fr.response));
            tool.tool_call_id = Some(id);
            messages.push(tool);
        } else {
            rest.push(user_part(part, i, j)?);
        }
    }
    if rest.is_empty() {
        return Ok(());
    }
    let content = match rest.as_slice() {
        [ContentPart::Text { text, extra }] if extra.is_empty() => {
            MessageContent::Text(text.clone())
        }
        _ => MessageContent::Parts(rest),
    };
    messages.push(Message::new(Role::User, content));
    Ok(())
}

fn user_part(part: Part, i: usize, j: usize) -> Result<ContentPart> {
    if let Some(text) = part.text {
        return Ok(ContentPart::text(text));
    }
    if let Some(Blob { mime_type, data }) = part.inline_data {
        return Ok(if mime_type.starts_with("image/") {
            ContentPart::image(format!("data:{mime_type};base64,{data}"))
        } else if let Some(format) = mime_type
            .strip_prefix("audio/")
            .map(|f| f.trim_start_matches("x-"))
            .filter(|f| matches!(*f, "wav" | "mp3" | "mpeg"))
        {
            let format = if format == "mpeg" { "mp3" } else { format };
            ContentPart::Other(
                json!({"type": "input_audio", "input_audio": {"data": data, "format": format}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )
        } else {
            ContentPart::Other(
                json!({"type": "file", "file": {"file_data": format!("data:{mime_type};base64,{data}")}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )
        });
    }
    if let Some(FileData {
        mime_type,
        file_uri,
    }) = part.file_data
    {
        let mut image_url = ImageUrl {
            url: file_uri,
            detail: None,
            extra: Extra::new(),
        };
        // Said only when the extension would not tell it.
        if let Some(mime) = mime_type.filter(|m| guess_mime_type(&image_url.url) != Some(m)) {
            image_url
                .extra
                .insert("mime_type".into(), Value::String(mime));
        }
        return Ok(ContentPart::ImageUrl {
            image_url,
            extra: Extra::new(),
        });
    }
    Err(bad(
        format!(
            "contents[{i}].parts[{j}]: a {} part cannot be translated",
            part_kind(&part)
        ),
        format!("contents[{i}].parts[{j}]"),
    ))
}

fn part_kind(part: &Part) -> String {
    if part.function_call.is_some() {
        "functionCall".into()
    } else {
        part.kind()
    }
}

fn model_turn(
    parts: Vec<Part>,
    i: usize,
    pending: &mut HashMap<String, VecDeque<String>>,
) -> Result<Message> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, part) in parts.into_iter().enumerate() {
        if let Some(FunctionCall { id, name, args }) = part.function_call {
            let base = id.unwrap_or_else(|| format!("call_{name}_{i}_{j}"));
            let id = match part.thought_signature {
                Some(sig) => format!("{base}{THOUGHT_SEPARATOR}{sig}"),
                None => base,
            };
            pending
                .entry(name.clone())
                .or_default()
                .push_back(id.clone());
            calls.push(ToolCall {
                id,
                kind: "function".into(),
                function: CanonicalFunctionCall {
                    name,
                    arguments: if args.is_null() {
                        "{}".into()
                    } else {
                        args.to_string()
                    },
                    extra: Extra::new(),
                },
                extra: Extra::new(),
            });
        } else if let Some(t) = part.text {
            // Thought summaries are the model's own; other providers cannot use them.
            if part.thought != Some(true) {
                text.push_str(&t);
            }
        } else if part.thought != Some(true) {
            return Err(bad(
                format!(
                    "contents[{i}].parts[{j}]: a {} part of a model turn cannot be translated",
                    part.kind()
                ),
                format!("contents[{i}].parts[{j}]"),
            ));
        }
    }
    let mut msg = Message::new(Role::Assistant, text.clone());
    if text.is_empty() && !calls.is_empty() {
        msg.content = None;
    }
    msg.tool_calls = (!calls.is_empty()).then_some(calls);
    Ok(msg)
}

fn finish_reason(finish: Option<&FinishReason>) -> Option<String> {
    Some(match finish? {
        FinishReason::Stop | FinishReason::ToolCalls | FinishReason::FunctionCall => "STOP".into(),
        FinishReason::Length => "MAX_TOKENS".into(),
        FinishReason::ContentFilter => "SAFETY".into(),
        FinishReason::Other(s) => s.to_ascii_uppercase(),
    })
}

pub fn usage_metadata(u: &Usage) -> UsageMetadata {
    let reasoning = u
        .completion_tokens_details
        .as_ref()
        .and_then(|d| d.reasoning_tokens)
        .unwrap_or(0);
    let cached = u.cached_tokens();
    UsageMetadata {
        prompt_token_count: u.prompt_tokens,
        candidates_token_count: u.completion_tokens.saturating_sub(reasoning),
        total_token_count: if u.total_tokens > 0 {
            u.total_tokens
        } else {
            u.prompt_tokens + u.completion_tokens
        },
        cached_content_token_count: (cached > 0).then_some(cached),
        thoughts_token_count: (reasoning > 0).then_some(reasoning),
        tool_use_prompt_token_count: None,
        extra: Extra::new(),
    }
}

/// Arguments as the JSON object Gemini wants; anything else stays visible under `_raw_arguments`.
fn args_of(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ if arguments.trim().is_empty() => json!({}),
        _ => json!({ "_raw_arguments": arguments }),
    }
}

fn call_part(id: &str, name: String, arguments: &str) -> Part {
    let (base, signature) = split_call_id(id);
    Part {
        function_call: Some(FunctionCall {
            id: Some(base.to_string()),
            name,
            args: args_of(arguments),
        }),
        thought_signature: signature.map(str::to_string),
        ..Default::default()
    }
}

fn thought_part(text: &str) -> Part {
    Part {
        text: Some(text.to_string()),
        thought: Some(true),
        ..Default::default()
    }
}

/// A canonical response as a Gemini `GenerateContentResponse`.
pub fn from_chat_response(resp: &ChatResponse, model: &str) -> GenerateContentResponse {
    let candidates = resp
        .choices
        .iter()
        .map(|c| {
            let mut parts = Vec::new();
            if let Some(r) = c
                .message
                .extra
                .get("reasoning_content")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                parts.push(thought_part(r));
            }
            let text = c.message.text();
            if !text.is_empty() {
                parts.push(Part::text(text));
            }
            for call in c.message.tool_calls.iter().flatten() {
                parts.push(call_part(
                    &call.id,
                    call.function.name.clone(),
                    &call.function.arguments,
                ));
            }
            Candidate {
                content: (!parts.is_empty()).then(|| Content::new("model", parts)),
                finish_reason: finish_reason(c.finish_reason.as_ref()),
                index: Some(c.index),
                extra: Extra::new(),
            }
        })
        .collect();
    GenerateContentResponse {
        candidates,
        prompt_feedback: None,
        usage_metadata: resp.usage.as_ref().map(usage_metadata),
        model_version: Some(if resp.model.is_empty() {
            model.to_string()
        } else {
            resp.model.clone()
        }),
        response_id: Some(resp.id.clone()),
        extra: Extra::new(),
    }
}

/// Google's error envelope for a gateway error (a 429 says how long to wait in `RetryInfo`).
pub fn error_envelope(err: &GatewayError) -> ErrorEnvelope {
    let status = match err.kind {
        ErrorKind::Unavailable => "UNAVAILABLE",
        ErrorKind::Timeout => "DEADLINE_EXCEEDED",
        ErrorKind::Authentication => "UNAUTHENTICATED",
        _ => status_name(err.status),
    };
    let mut details = Vec::new();
    if let Some(after) = err.retry_after {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{}s", after.as_secs_f64()),
        }));
    }
    ErrorEnvelope {
        error: ErrorBody {
            code: err.status,
            message: err.message.clone(),
            status: status.into(),
            details,
        },
    }
}

/// Canonical chunks -> `streamGenerateContent` events. Text and thoughts go out as they arrive;
/// function calls, whose arguments OpenAI streams in pieces, are sent whole in the final event,
/// together with the finish reasons and the usage (which OpenAI sends after the finish chunk), as
/// Gemini's last event carries them.
#[derive(Debug, Default)]
pub struct ChunksToResponses {
    model: String,
    id: String,
    /// (candidate, tool index) -> (id, name, arguments so far).
    calls: BTreeMap<(u32, u32), (String, String, String)>,
    finish: BTreeMap<u32, FinishReason>,
    usage: Option<Usage>,
}

impl ChunksToResponses {
    pub fn new(model: &str) -> Self {
        ChunksToResponses {
            model: model.to_string(),
            ..Default::default()
        }
    }

    fn response(&self, candidates: Vec<Candidate>) -> GenerateContentResponse {
        GenerateContentResponse {
            candidates,
            model_version: Some(self.model.clone()),
            response_id: (!self.id.is_empty()).then(|| self.id.clone()),
            ..Default::default()
        }
    }

    pub fn chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<GenerateContentResponse>) {
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        let mut candidates = Vec::new();
        for choice in &chunk.choices {
            let mut parts = Vec::new();
            if let Some(r) = choice
                .delta
                .extra
                .get("reasoning_content")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                parts.push(thought_part(r));
            }
            if let Some(t) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                parts.push(Part::text(t));
            }
            for tc in choice.delta.tool_calls.iter().flatten() {
                let entry = self
                    .calls
                    .entry((choice.index, tc.index))
                    .or_insert_with(|| (String::new(), String::new(), String::new()));
                if let Some(id) = &tc.id {
                    entry.0.clone_from(id);
                }
                if let Some(f) = &tc.function {
                    if let Some(n) = &f.name {
                        entry.1.push_str(n);
                    }
                    if let Some(a) = &f.arguments {
                        entry.2.push_str(a);
                    }
                }
            }
            if let Some(f) = &choice.finish_reason {
                self.finish.insert(choice.index, f.clone());
            }
            if !parts.is_empty() {
                candidates.push(Candidate {
                    content: Some(Content::new("model", parts)),
                    finish_reason: None,
                    index: Some(choice.index),
                    extra: Extra::new(),
                });
            }
        }
        if !candidates.is_empty() {
            out.push(self.response(candidates));
        }
    }

    /// The stream ended normally: the final event.
    pub fn finish(&mut self, out: &mut Vec<GenerateContentResponse>) {
        let mut indexes: Vec<u32> = self.finish.keys().copied().collect();
        indexes.extend(self.calls.keys().map(|(c, _)| *c));
        indexes.sort_unstable();
        indexes.dedup();
        if indexes.is_empty() {
            indexes.push(0);
        }
        let candidates = indexes
            .into_iter()
            .map(|index| {
                let parts: Vec<Part> = self
                    .calls
                    .range((index, 0)..=(index, u32::MAX))
                    .map(|(_, (id, name, args))| call_part(id, name.clone(), args))
                    .collect();
                Candidate {
                    content: (!parts.is_empty()).then(|| Content::new("model", parts)),
                    finish_reason: finish_reason(Some(
                        self.finish.get(&index).unwrap_or(&FinishReason::Stop),
                    )),
                    index: Some(index),
                    extra: Extra::new(),
                }
            })
            .collect();
        let mut last = self.response(candidates);
        last.usage_metadata = self.usage.as_ref().map(usage_metadata);
        out.push(last);
    }
}

/// `:batchEmbedContents` as a canonical embeddings request for `model`.
pub fn batch_embed_request(
    req: BatchEmbedContentsRequest,
    model: &str,
) -> Result<EmbeddingRequest> {
    let dims = req.requests.first().and_then(|r| r.output_dimensionality);
    if req.requests.iter().any(|r| r.output_dimensionality != dims) {
        return Err(bad(
            "every request of a batch must ask for the same outputDimensionality".into(),
            "requests".into(),
        ));
    }
    if req.requests.is_empty() {
        return Err(bad("requests must not be empty".into(), "requests".into()));
    }
    Ok(EmbeddingRequest {
        model: model.to_string(),
        input: EmbeddingInput::Texts(req.requests.iter().map(|r| r.content.text()).collect()),
        encoding_format: Some("float".into()),
        dimensions: dims,
        user: None,
        extra: Extra::new(),
    })
}

/// `:embedContent` as a canonical embeddings request for `model`.
pub fn embed_request(req: EmbedContentRequest, model: &str) -> EmbeddingRequest {
    EmbeddingRequest {
        model: model.to_string(),
        input: EmbeddingInput::Text(req.content.text()),
        encoding_format: Some("float".into()),
        dimensions: req.output_dimensionality,
        user: None,
        extra: Extra::new(),
    }
}

fn values(resp: &EmbeddingResponse) -> Vec<ContentEmbedding> {
    let mut data: Vec<_> = resp.data.iter().collect();
    data.sort_by_key(|e| e.index);
    data.into_iter()
        .map(|e| ContentEmbedding {
            values: e.embedding.to_floats().unwrap_or_default(),
        })
        .collect()
}

pub fn batch_embed_response(resp: &EmbeddingResponse) -> BatchEmbedContentsResponse {
    BatchEmbedContentsResponse {
        embeddings: values(resp),
    }
}

pub fn embed_response(resp: &EmbeddingResponse) -> EmbedContentResponse {
    EmbedContentResponse {
        embedding: values(resp)
            .into_iter()
            .next()
            .unwrap_or(ContentEmbedding { values: Vec::new() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_and_action() {
        assert_eq!(
            split_model_action("gemini-2.0-flash:generateContent"),
            Some(("gemini-2.0-flash", "generateContent"))
        );
        assert_eq!(
            split_model_action("models/openai/gpt-4o-mini:streamGenerateContent"),
            Some(("openai/gpt-4o-mini", "streamGenerateContent"))
        );
        assert_eq!(
            split_model_action("ollama/llama3:8b:generateContent"),
            Some(("ollama/llama3:8b", "generateContent"))
        );
        assert_eq!(split_model_action("gemini"), None);
    }

    #[test]
    fn function_responses_pair_with_calls_by_name() {
        let req: GenerateContentRequest = serde_json::from_value(json!({
            "contents": [
                {"role": "user", "parts": [{"text": "weather?"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "w", "args": {"c": "x"}}, "thoughtSignature": "c2ln"},
                    {"functionCall": {"name": "w", "args": {"c": "y"}}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "w", "response": {"output": "sunny"}}},
                    {"functionResponse": {"name": "w", "response": {"temp": 20}}}]}
            ]
        }))
        .unwrap();
        let c = to_chat_request(req, "m", false).unwrap();
        let calls = c.messages[1].tool_calls.as_ref().unwrap();
        assert_eq!(calls[0].id, "call_w_1_0__thought__c2ln");
        assert_eq!(
            c.messages[2].tool_call_id.as_deref(),
            Some(calls[0].id.as_str())
        );
        assert_eq!(c.messages[2].text(), "sunny");
        assert_eq!(
            c.messages[3].tool_call_id.as_deref(),
            Some(calls[1].id.as_str())
        );
        assert_eq!(c.messages[3].text(), r#"{"temp":20}"#);
    }
}
