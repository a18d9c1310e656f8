//! The mock's Cohere v2 API: `POST /v2/chat` (JSON and SSE events: message-start, content-start /
//! content-delta / content-end, tool-plan-delta, tool-call-start / tool-call-delta /
//! tool-call-end, message-end), `POST /v2/embed`, `GET /v1/models` (for requests identifying a
//! Cohere client), with the API's request checks and its `{"id", "message"}` error bodies.
//!
//! The mock rejects body fields outside the API reference, so anything the gateway leaks from an
//! OpenAI request shows up as a 400. Cohere's v2 finish reasons have no safety stop; for the
//! `refuse` fault word the mock ends with `ERROR_TOXIC`, the safety finish reason of Cohere's API.

use std::collections::HashSet;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::reply::{self, Plan, Scenario};
use super::{Fault, Shared, json_response};
use crate::providers::cohere::wire::{
    AssistantMessage, ChatMessage, ChatRequest as CohereRequest, Content, ContentDelta,
    ContentDeltaMessage, ContentItem, ContentPiece, EmbedRequest, FunctionCall, MessageEndDelta,
    ResponseFormat, StreamEvent, ToolCall, ToolCallDeltaDelta, ToolCallDeltaMessage,
    ToolCallFragment, ToolCallStartDelta, ToolCallStartMessage, ToolChoice, ToolPlanDelta,
    ToolPlanMessage, Units, Usage,
};
use crate::schema::{
    ChatRequest, ContentPart, Extra, FinishReason, FunctionCall as CanonicalFunctionCall,
    FunctionDefinition, ImageUrl, Message, MessageContent, ResponseFormat as CanonicalFormat, Role,
    Stop, Tool, ToolCall as CanonicalToolCall, ToolChoice as CanonicalToolChoice, ToolChoiceMode,
};
use crate::sse::encode_json_event;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v2/chat", post(chat))
        .route("/v2/embed", post(embed))
}

/// Tokens of Cohere's own prompt scaffolding, counted in `usage.tokens` but not billed.
const SCAFFOLD_TOKENS: u64 = 12;

const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "tools",
    "strict_tools",
    "documents",
    "citation_options",
    "response_format",
    "safety_mode",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "k",
    "p",
    "logprobs",
    "tool_choice",
    "thinking",
    "priority",
    "stream",
];

const EMBED_FIELDS: &[&str] = &[
    "model",
    "input_type",
    "texts",
    "images",
    "inputs",
    "max_tokens",
    "output_dimension",
    "embedding_types",
    "truncate",
    "priority",
];

/// Cohere's error body for a status.
pub fn error(status: u16, message: &str) -> Response {
    let body =
        json!({"id": format!("{:0>8}-mock", reply::short_hash(message)), "message": message});
    let mut resp = json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &body,
    );
    if status == 429 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, "1".parse().expect("valid"));
    }
    resp
}

fn default_message(status: u16) -> &'static str {
    match status {
        401 => "invalid api token",
        402 => "Please add or update your payment method at https://dashboard.cohere.com/billing",
        404 => {
            "model not found, make sure the correct model ID was used and that you have access to the model."
        }
        429 => {
            "You are using a Trial key, which is limited to 20 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits."
        }
        499 => "request cancelled",
        500 => "internal server error, this has been reported to our developers",
        503 => "service unavailable, please try again later",
        _ => "invalid request",
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Key check, recording, JSON and unknown-field checks. `Err` is the answer.
fn admit(
    state: &Shared,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    known: &[&str],
) -> Result<Value, Box<Response>> {
    let key = bearer(headers);
    let raw: Option<Value> = serde_json::from_slice(body).ok();
    let model = raw
        .as_ref()
        .and_then(|v| v.get("model"))
        .and_then(Value::as_str);
    state.record(path, headers, key, model, body);
    if let Some(expected) = &state.options.api_key
        && key != Some(expected.as_str())
    {
        return Err(Box::new(error(
            401,
            if key.is_none() {
                "no api key supplied"
            } else {
                "invalid api token"
            },
        )));
    }
    let Some(raw) = raw.filter(Value::is_object) else {
        return Err(Box::new(error(
            400,
            "invalid request: body must be a JSON object",
        )));
    };
    for field in raw.as_object().into_iter().flat_map(|o| o.keys()) {
        if !known.contains(&field.as_str()) {
            return Err(Box::new(error(
                400,
                &format!("invalid request: unknown field: parameter {field} is not a valid field"),
            )));
        }
    }
    Ok(raw)
}

/// The checks the API makes on a chat request. `Err` is the 400 message.
fn validate(req: &CohereRequest) -> Result<(), String> {
    if req.messages.is_empty() {
        return Err("invalid request: messages must not be empty".into());
    }
    if req.tool_choice.is_some() && req.tools.as_ref().is_none_or(Vec::is_empty) {
        return Err("invalid request: tool_choice requires tools to be specified".into());
    }
    if req.response_format.is_some() && req.tools.is_some() {
        return Err("invalid request: response_format is not supported with tools".into());
    }
    if let Some(p) = req.p
        && !(0.01..=0.99).contains(&p)
    {
        return Err(format!(
            "invalid request: p must be between 0.01 and 0.99, received {p}"
        ));
    }
    let mut offered: HashSet<&str> = HashSet::new();
    for (i, m) in req.messages.iter().enumerate() {
        match m {
            ChatMessage::System { .. } if i > 0 => {
                return Err("system turn must be the first in the list".into());
            }
            ChatMessage::Assistant {
                content,
                tool_calls,
                ..
            } => {
                if content.is_none() && tool_calls.is_none() {
                    return Err(format!(
                        "invalid request: messages[{i}]: an assistant message needs content or tool_calls"
                    ));
                }
                for call in tool_calls.iter().flatten() {
                    offered.insert(call.id.as_str());
                }
            }
            ChatMessage::Tool { tool_call_id, .. } if !offered.contains(tool_call_id.as_str()) => {
                return Err(format!(
                    "invalid request: messages[{i}]: tool_call_id {tool_call_id} does not match any tool call"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn content_of(content: Content) -> MessageContent {
    match content {
        Content::Text(t) => MessageContent::Text(t),
        Content::Items(items) => MessageContent::Parts(
            items
                .into_iter()
                .filter_map(|item| match item {
                    ContentItem::Text { text } => Some(ContentPart::text(text)),
                    ContentItem::ImageUrl { image_url } => Some(ContentPart::ImageUrl {
                        image_url: ImageUrl {
                            url: image_url.url,
                            detail: image_url.detail,
                            extra: Extra::new(),
                        },
                        extra: Extra::new(),
                    }),
                    ContentItem::Document { document } => Some(ContentPart::text(
                        document
                            .get("data")
                            .map(|d| match d {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .unwrap_or_default(),
                    )),
                    ContentItem::Thinking { .. } => None,
                })
                .collect(),
        ),
    }
}

/// The Cohere request as a canonical one, for [`reply::plan`].
fn to_canonical(req: CohereRequest) -> ChatRequest {
    let messages = req
        .messages
        .into_iter()
        .map(|m| match m {
            ChatMessage::System { content } => Message::new(Role::System, content_of(content)),
            ChatMessage::User { content } => Message::new(Role::User, content_of(content)),
            ChatMessage::Assistant {
                content,
                tool_calls,
                ..
            } => {
                let mut msg = Message::new(
                    Role::Assistant,
                    content
                        .map(content_of)
                        .unwrap_or(MessageContent::Text(String::new())),
                );
                msg.tool_calls = tool_calls.map(|calls| {
                    calls
                        .into_iter()
                        .map(|c| CanonicalToolCall {
                            id: c.id,
                            kind: "function".into(),
                            function: CanonicalFunctionCall {
                                name: c.function.name.unwrap_or_default(),
                                arguments: c.function.arguments.unwrap_or_default(),
                                extra: Extra::new(),
                            },
                            extra: Extra::new(),
                        })
                        .collect()
                });
                msg
            }
            ChatMessage::Tool {
                tool_call_id,
                content,
            } => {
                let mut msg = Message::new(Role::Tool, content_of(content).text());
                msg.tool_call_id = Some(tool_call_id);
                msg
            }
        })
        .collect();
    ChatRequest {
        model: req.model,
        messages,
        max_tokens: req.max_tokens,
        stop: req.stop_sequences.map(Stop::Many),
        tools: req.tools.map(|tools| {
            tools
                .into_iter()
                .map(|t| Tool {
                    kind: "function".into(),
                    function: Some(FunctionDefinition {
                        name: t.function.name,
                        description: t.function.description,
                        parameters: Some(t.function.parameters),
                        strict: None,
                        extra: Extra::new(),
                    }),
                    extra: Extra::new(),
                })
                .collect()
        }),
        tool_choice: req.tool_choice.map(|c| {
            Box::new(CanonicalToolChoice::Mode(match c {
                ToolChoice::Required => ToolChoiceMode::Required,
                ToolChoice::None => ToolChoiceMode::None,
            }))
        }),
        response_format: match req.response_format {
            Some(ResponseFormat::JsonObject { .. }) => Some(Box::new(CanonicalFormat {
                kind: "json_object".into(),
                json_schema: None,
                extra: Extra::new(),
            })),
            _ => None,
        },
        ..Default::default()
    }
}

fn finish_reason(f: &FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "MAX_TOKENS",
        FinishReason::ToolCalls | FinishReason::FunctionCall => "TOOL_CALL",
        FinishReason::ContentFilter => "ERROR_TOXIC",
        _ => "COMPLETE",
    }
}

fn usage(plan: &Plan) -> Usage {
    let units = |input: u64| Units {
        input_tokens: Some(input),
        output_tokens: Some(plan.completion_tokens),
        extra: Extra::new(),
    };
    Usage {
        billed_units: Some(units(plan.prompt_tokens)),
        tokens: Some(units(plan.prompt_tokens + SCAFFOLD_TOKENS)),
        cached_tokens: Some(0),
        extra: Extra::new(),
    }
}

/// What Cohere models say before calling tools.
fn tool_plan(plan: &Plan) -> Option<String> {
    let names: Vec<&str> = plan.choices[0]
        .tool_calls
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    (!names.is_empty()).then(|| format!("I will use {} to answer this.", names.join(" and ")))
}

fn tool_calls(plan: &Plan) -> Vec<ToolCall> {
    plan.choices[0]
        .tool_calls
        .iter()
        .map(|t| ToolCall {
            id: t.id.clone(),
            kind: "function".into(),
            function: FunctionCall {
                name: Some(t.name.clone()),
                arguments: Some(t.arguments.clone()),
            },
        })
        .collect()
}

fn response(plan: &Plan, id: &str) -> Value {
    let choice = &plan.choices[0];
    let calls = tool_calls(plan);
    let message = AssistantMessage {
        role: "assistant".into(),
        content: choice
            .content
            .as_ref()
            .filter(|c| !c.is_empty())
            .map(|c| vec![ContentItem::Text { text: c.clone() }]),
        tool_calls: (!calls.is_empty()).then_some(calls),
        tool_plan: tool_plan(plan),
        citations: None,
        extra: Extra::new(),
    };
    json!({
        "id": id,
        "finish_reason": finish_reason(&choice.finish),
        "message": message,
        "usage": usage(plan),
    })
}

/// The stream events Cohere sends for a plan, in the API's order.
fn events(plan: &Plan, id: &str) -> Vec<StreamEvent> {
    let choice = &plan.choices[0];
    let mut out = vec![StreamEvent::MessageStart {
        id: Some(id.to_string()),
        delta: Some(
            json!({"message": {"role": "assistant", "content": [], "tool_plan": "",
                                       "tool_calls": [], "citations": []}}),
        ),
    }];
    let content_delta = |kind: Option<&str>, text: &str| ContentDelta {
        message: ContentDeltaMessage {
            content: ContentPiece {
                kind: kind.map(str::to_string),
                text: Some(text.to_string()),
                thinking: None,
            },
        },
    };
    if let Some(text) = choice.content.as_ref().filter(|c| !c.is_empty()) {
        out.push(StreamEvent::ContentStart {
            index: 0,
            delta: content_delta(Some("text"), ""),
        });
        for piece in text.split_inclusive(' ') {
            out.push(StreamEvent::ContentDelta {
                index: 0,
                delta: content_delta(None, piece),
                logprobs: None,
            });
        }
        out.push(StreamEvent::ContentEnd { index: 0 });
    }
    if let Some(plan_text) = tool_plan(plan) {
        for piece in plan_text.split_inclusive(' ') {
            out.push(StreamEvent::ToolPlanDelta {
                delta: ToolPlanDelta {
                    message: ToolPlanMessage {
                        tool_plan: piece.to_string(),
                    },
                },
            });
        }
    }
    for (i, call) in tool_calls(plan).into_iter().enumerate() {
        let index = i as u32;
        let arguments = call.function.arguments.clone().unwrap_or_default();
        out.push(StreamEvent::ToolCallStart {
            index,
            delta: ToolCallStartDelta {
                message: ToolCallStartMessage {
                    tool_calls: ToolCall {
                        function: FunctionCall {
                            name: call.function.name.clone(),
                            arguments: Some(String::new()),
                        },
                        ..call
                    },
                },
            },
        });
        let (a, b) = arguments.split_at(arguments.len() / 2);
        for part in [a, b].into_iter().filter(|p| !p.is_empty()) {
            out.push(StreamEvent::ToolCallDelta {
                index,
                delta: ToolCallDeltaDelta {
                    message: ToolCallDeltaMessage {
                        tool_calls: ToolCallFragment {
                            function: FunctionCall {
                                name: None,
                                arguments: Some(part.to_string()),
                            },
                        },
                    },
                },
            });
        }
        out.push(StreamEvent::ToolCallEnd { index });
    }
    out.push(StreamEvent::MessageEnd {
        id: None,
        delta: MessageEndDelta {
            finish_reason: Some(finish_reason(&choice.finish).into()),
            usage: Some(usage(plan)),
            error: None,
        },
    });
    out
}

async fn chat(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let raw = match admit(&state, "/v2/chat", &headers, &body, CHAT_FIELDS) {
        Ok(raw) => raw,
        Err(resp) => return *resp,
    };
    let req: CohereRequest = match serde_path_to_error::deserialize(raw) {
        Ok(r) => r,
        Err(e) => {
            return error(
                400,
                &format!("invalid request: {}: {}", e.path(), e.inner()),
            );
        }
    };
    if let Err(message) = validate(&req) {
        return error(400, &message);
    }
    let streaming = req.stream == Some(true);
    let scenario = Scenario::from_model(&req.model);
    let error_of = |s| error(s, default_message(s));
    let key = bearer(&headers);
    if let Some(resp) = super::fault_answer(
        &state,
        key,
        &req.model,
        &scenario,
        streaming,
        error_of,
        b"{\"id\":\"",
    )
    .await
    {
        return resp;
    }
    if scenario.too_long {
        return error(
            400,
            "too many tokens: total number of tokens in the prompt cannot exceed 256000 - received 250012. Try using a shorter prompt, or enabling prompt truncating. See https://docs.cohere.com/reference/chat for more details.",
        );
    }
    let plan = reply::plan(&to_canonical(req));
    let id = uuid_like(&body);
    if streaming {
        let frames = events(&plan, &id)
            .iter()
            .map(|e| encode_json_event(e.name(), e).unwrap_or_default())
            .collect();
        let delay = scenario.trickle.unwrap_or(state.options.chunk_delay);
        super::sse_body(frames, delay, &scenario, None)
    } else {
        json_response(StatusCode::OK, &response(&plan, &id))
    }
}

/// A stable id in Cohere's (UUID) format.
fn uuid_like(body: &[u8]) -> String {
    let h = reply::short_hash(&String::from_utf8_lossy(body));
    format!("{}-{}-4{}-8{}-{h}", &h[..8], &h[8..12], &h[..3], &h[3..6])
}

async fn embed(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let raw = match admit(&state, "/v2/embed", &headers, &body, EMBED_FIELDS) {
        Ok(raw) => raw,
        Err(resp) => return *resp,
    };
    if raw.get("input_type").is_none() {
        return error(
            400,
            "invalid request: valid input_type must be provided with the provided model",
        );
    }
    let req: EmbedRequest = match serde_path_to_error::deserialize(raw) {
        Ok(r) => r,
        Err(e) => {
            return error(
                400,
                &format!("invalid request: {}: {}", e.path(), e.inner()),
            );
        }
    };
    if req.texts.is_empty() || req.texts.len() > 96 {
        return error(
            400,
            "invalid request: texts must contain between 1 and 96 items",
        );
    }
    let scenario = Scenario::from_model(&req.model);
    if let Some(Fault::Status(s)) = super::before_answer(&state, &scenario, false).await {
        return error(s, default_message(s));
    }
    let dims = req
        .output_dimension
        .map(|d| d as usize)
        .unwrap_or(state.options.embedding_dims);
    let vectors: Vec<Vec<f64>> = req
        .texts
        .iter()
        .map(|t| reply::embedding_for(t, dims))
        .collect();
    let mut embeddings = serde_json::Map::new();
    for kind in &req.embedding_types {
        let value = match kind.as_str() {
            "float" => json!(vectors),
            "base64" => json!(
                vectors
                    .iter()
                    .map(|v| crate::schema::EmbeddingVector::to_base64(v))
                    .collect::<Vec<_>>()
            ),
            other => {
                return error(
                    400,
                    &format!(
                        "invalid request: embedding type {other} is not supported by this model"
                    ),
                );
            }
        };
        embeddings.insert(kind.clone(), value);
    }
    let tokens: u64 = req
        .texts
        .iter()
        .map(|t| reply::count_tokens(t).max(1))
        .sum();
    json_response(
        StatusCode::OK,
        &json!({
            "id": uuid_like(&body),
            "embeddings": embeddings,
            "texts": req.texts,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
            "response_type": "embeddings_by_type",
        }),
    )
}

/// `GET /v1/models` for a request from a Cohere client.
pub fn models(state: &Shared, headers: &HeaderMap) -> Response {
    let key = bearer(headers);
    state.record("/v1/models", headers, key, None, &Bytes::new());
    if let Some(expected) = &state.options.api_key
        && key != Some(expected.as_str())
    {
        return error(401, default_message(401));
    }
    let model = |name: &str, endpoints: &[&str], context: u64| {
        json!({"name": name, "endpoints": endpoints, "finetuned": false, "context_length": context,
               "default_endpoints": [], "is_deprecated": false})
    };
    json_response(
        StatusCode::OK,
        &json!({"models": [
            model("command-a-03-2025", &["chat"], 256000),
            model("command-r-plus-08-2024", &["chat"], 128000),
            model("embed-v4.0", &["embed"], 128000),
        ]}),
    )
}

/// Whether a request comes from a Cohere client (the official SDKs and the gateway's adapter
/// identify themselves).
pub fn is_cohere_client(headers: &HeaderMap) -> bool {
    headers.contains_key("x-client-name")
        || headers
            .get("x-fern-sdk-name")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("cohere"))
}
