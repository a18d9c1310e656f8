//! The mock's Anthropic Messages API: `POST /v1/messages` (JSON and SSE events), `GET /v1/models`,
//! with the API's request checks (headers, unknown fields, role alternation, tool results
//! answering tool uses) and its error bodies.

use std::collections::HashSet;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::reply::{self, Scenario};
use super::{Shared, json_response};
use crate::compat::anthropic::{ChunksToEvents, from_chat_response, to_chat_request};
use crate::providers::anthropic::wire::{
    Block, ErrorBody, ErrorEnvelope, MessagesRequest, Role, error_type_for_status,
};
use crate::sse::encode_json_event;

pub fn routes() -> Router<Shared> {
    Router::new().route("/v1/messages", post(messages))
}

/// Fields of the Messages API request body.
const KNOWN_FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "metadata",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
];

pub fn error(status: u16, message: &str) -> Response {
    let env = ErrorEnvelope {
        kind: "error".into(),
        error: ErrorBody {
            kind: error_type_for_status(status).into(),
            message: message.into(),
        },
    };
    let mut resp = json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &serde_json::to_value(env).unwrap_or_default(),
    );
    let h = resp.headers_mut();
    h.insert("request-id", "req_mock".parse().expect("valid"));
    if status == 429 {
        h.insert(header::RETRY_AFTER, "1".parse().expect("valid"));
    }
    resp
}

fn default_message(status: u16) -> &'static str {
    match status {
        401 => "invalid x-api-key",
        403 => "Your API key does not have permission to use the specified resource.",
        404 => "model: not found",
        429 => "Number of request tokens has exceeded your per-minute rate limit",
        529 => "Overloaded",
        500 => "Internal server error",
        _ => "Invalid request",
    }
}

/// The checks the real API makes before answering. `Err` is the 400 message.
fn validate(raw: &Value, req: &MessagesRequest) -> Result<(), String> {
    if let Some(obj) = raw.as_object() {
        for key in obj.keys() {
            if !KNOWN_FIELDS.contains(&key.as_str()) {
                return Err(format!("{key}: Extra inputs are not permitted"));
            }
        }
    }
    if req.messages.first().is_some_and(|m| m.role != Role::User) {
        return Err("messages: first message must use the \"user\" role".into());
    }
    let mut pending_tool_uses: HashSet<String> = HashSet::new();
    for (i, pair) in req.messages.iter().enumerate() {
        if i > 0 && req.messages[i - 1].role == pair.role {
            return Err(format!(
                "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{}\" roles in a row",
                if pair.role == Role::User {
                    "user"
                } else {
                    "assistant"
                }
            ));
        }
        let blocks = pair.content.clone().into_blocks();
        if pair.role == Role::User && !pending_tool_uses.is_empty() {
            let answered: HashSet<String> = blocks
                .iter()
                .filter_map(|b| match b {
                    Block::ToolResult { tool_use_id, .. } => Some(tool_use_id.clone()),
                    _ => None,
                })
                .collect();
            if let Some(missing) = pending_tool_uses.iter().find(|id| !answered.contains(*id)) {
                return Err(format!(
                    "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {missing}"
                ));
            }
            pending_tool_uses.clear();
        }
        for b in &blocks {
            if let Block::ToolUse { id, .. } = b {
                pending_tool_uses.insert(id.clone());
            }
        }
    }
    Ok(())
}

async fn messages(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let raw: Option<Value> = serde_json::from_slice(&body).ok();
    let model = raw
        .as_ref()
        .and_then(|v| v.get("model"))
        .and_then(Value::as_str)
        .map(str::to_string);
    state.record("/v1/messages", &headers, key, model.as_deref(), &body);
    if let Some(expected) = &state.options.api_key
        && key != Some(expected.as_str())
    {
        return error(401, default_message(401));
    }
    if !headers.contains_key("anthropic-version") {
        return error(400, "anthropic-version: header is required");
    }
    let Some(raw) = raw else {
        return error(
            400,
            "There was an issue with your request body: not valid JSON",
        );
    };
    let req: MessagesRequest = match serde_path_to_error::deserialize(raw.clone()) {
        Ok(r) => r,
        Err(e) => return error(400, &format!("{}: {}", e.path(), e.inner())),
    };
    if let Err(message) = validate(&raw, &req) {
        return error(400, &message);
    }
    let streaming = req.stream == Some(true);
    let scenario = Scenario::from_model(&req.model);
    let error_of = |s| error(s, default_message(s));
    let partial = b"{\"id\":\"msg_";
    if let Some(resp) = super::fault_answer(
        &state, key, &req.model, &scenario, streaming, error_of, partial,
    )
    .await
    {
        return resp;
    }
    if scenario.too_long {
        return error(400, "prompt is too long: 250000 tokens > 200000 maximum");
    }
    let model = req.model.clone();
    let canonical = match to_chat_request(req) {
        Ok(c) => c,
        Err(e) => return error(400, &e.message),
    };
    let plan = reply::plan(&canonical);
    let id = format!(
        "msg_mock{}",
        reply::short_hash(&String::from_utf8_lossy(&body))
    );
    if streaming {
        let mut translator = ChunksToEvents::new(&model);
        let mut events = Vec::new();
        for chunk in plan.chunks(&id, &model, true) {
            translator.chunk(&chunk, &mut events);
        }
        translator.finish(&mut events);
        // Some prompt accounting arrives at message_start on the real API.
        let frames = events
            .into_iter()
            .map(|mut e| {
                if let crate::providers::anthropic::wire::StreamEvent::MessageStart { message } =
                    &mut e
                {
                    message.usage.input_tokens = plan.prompt_tokens;
                    message.usage.output_tokens = 1;
                }
                encode_json_event(e.name(), &e).unwrap_or_default()
            })
            .collect();
        let delay = scenario.trickle.unwrap_or(state.options.chunk_delay);
        super::sse_body(frames, delay, &scenario, None)
    } else {
        let resp = from_chat_response(&plan.response(&id, &model), &model);
        json_response(
            StatusCode::OK,
            &serde_json::to_value(resp).unwrap_or_default(),
        )
    }
}

/// `GET /v1/models` for a request that carries `anthropic-version`.
pub fn models(state: &Shared, headers: &HeaderMap) -> Response {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    state.record("/v1/models", headers, key, None, &Bytes::new());
    if let Some(expected) = &state.options.api_key
        && key != Some(expected.as_str())
    {
        return error(401, default_message(401));
    }
    let data: Vec<Value> = ["claude-mock-1", "claude-3-5-haiku-latest"]
        .iter()
        .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"}))
        .collect();
    let (first, last) = (
        data.first().map(|m| m["id"].clone()),
        data.last().map(|m| m["id"].clone()),
    );
    json_response(
        StatusCode::OK,
        &json!({"data": data, "has_more": false, "first_id": first, "last_id": last}),
    )
}
