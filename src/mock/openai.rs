//! The mock's OpenAI wire format: Chat Completions (JSON and SSE), Embeddings, Models, and
//! OpenAI's error bodies.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::reply::{self, Scenario};
use super::{Shared, json_response};
use crate::schema::{ChatRequest, EmbeddingInput, EmbeddingRequest, EmbeddingVector, parse_json};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/models", get(models))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// OpenAI's error body for a status, with the headers OpenAI sends alongside.
pub fn error(status: u16, message: Option<String>) -> Response {
    let (kind, code, default_message) = match status {
        400 => ("invalid_request_error", Value::Null, "Invalid request."),
        401 => (
            "invalid_request_error",
            json!("invalid_api_key"),
            "Incorrect API key provided.",
        ),
        403 => (
            "invalid_request_error",
            json!("unsupported_country_region_territory"),
            "Country, region, or territory not supported.",
        ),
        404 => (
            "invalid_request_error",
            json!("model_not_found"),
            "The model does not exist or you do not have access to it.",
        ),
        429 => (
            "requests",
            json!("rate_limit_exceeded"),
            "Rate limit reached for requests. Please try again in 1s.",
        ),
        503 => (
            "server_error",
            Value::Null,
            "The engine is currently overloaded, please try again later.",
        ),
        _ => (
            "server_error",
            Value::Null,
            "The server had an error while processing your request.",
        ),
    };
    let body = json!({"error": {
        "message": message.unwrap_or_else(|| default_message.to_string()),
        "type": kind, "param": Value::Null, "code": code,
    }});
    let mut resp = json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &body,
    );
    if status == 429 {
        let h = resp.headers_mut();
        h.insert(header::RETRY_AFTER, "1".parse().expect("valid"));
        h.insert(
            "x-ratelimit-remaining-requests",
            "0".parse().expect("valid"),
        );
    }
    resp
}

/// Authentication, body parsing and fault injection shared by the routes. `Err` is the answer.
async fn admit<T: for<'a> serde::Deserialize<'a>>(
    state: &Shared,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    model_of: impl Fn(&T) -> &str,
    streaming: impl Fn(&T) -> bool,
) -> Result<(T, Scenario), Response> {
    let key = bearer(headers);
    let parsed: crate::error::Result<T> = parse_json(body);
    state.record(
        path,
        headers,
        key,
        parsed.as_ref().ok().map(&model_of),
        body,
    );
    if let Some(expected) = &state.options.api_key
        && key != Some(expected.as_str())
    {
        // Like several real providers, echo what was sent: the gateway must scrub it.
        let shown = key.unwrap_or("(none)");
        return Err(error(
            401,
            Some(format!("Incorrect API key provided: {shown}.")),
        ));
    }
    let req = parsed.map_err(|e| error(400, Some(e.message)))?;
    let scenario = Scenario::from_model(model_of(&req));
    let partial = b"{\"id\":\"chatcmpl-";
    let fault = super::fault_answer(
        state,
        key,
        model_of(&req),
        &scenario,
        streaming(&req),
        |s| error(s, None),
        partial,
    );
    match fault.await {
        Some(resp) => Err(resp),
        None => Ok((req, scenario)),
    }
}

async fn chat(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, scenario) = match admit::<ChatRequest>(
        &state,
        "/v1/chat/completions",
        &headers,
        &body,
        |r| &r.model,
        |r| r.is_stream(),
    )
    .await
    {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if scenario.too_long {
        let body = json!({"error": {
            "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 250000 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}});
        return json_response(StatusCode::BAD_REQUEST, &body);
    }
    let plan = reply::plan(&req);
    let id = format!(
        "chatcmpl-mock{}",
        reply::short_hash(&String::from_utf8_lossy(&body))
    );
    if req.is_stream() {
        let include_usage = req
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let events = plan
            .chunks(&id, &req.model, include_usage)
            .iter()
            .map(|c| {
                Bytes::from(format!(
                    "data: {}\n\n",
                    serde_json::to_string(c).unwrap_or_default()
                ))
            })
            .collect();
        let delay = scenario.trickle.unwrap_or(state.options.chunk_delay);
        super::sse_body(
            events,
            delay,
            &scenario,
            Some(Bytes::from_static(b"data: [DONE]\n\n")),
        )
    } else {
        json_response(
            StatusCode::OK,
            &serde_json::to_value(plan.response(&id, &req.model)).unwrap_or_default(),
        )
    }
}

async fn embeddings(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, _) = match admit::<EmbeddingRequest>(
        &state,
        "/v1/embeddings",
        &headers,
        &body,
        |r| &r.model,
        |_| false,
    )
    .await
    {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    json_response(
        StatusCode::OK,
        &embeddings_answer(&req, state.options.embedding_dims),
    )
}

/// The embeddings list for a request (shared with the Azure mock, which speaks the same format).
pub(super) fn embeddings_answer(req: &EmbeddingRequest, default_dims: usize) -> Value {
    let texts: Vec<String> = match &req.input {
        EmbeddingInput::Text(t) => vec![t.clone()],
        EmbeddingInput::Texts(v) => v.clone(),
        EmbeddingInput::Tokens(t) => vec![format!("{t:?}")],
        EmbeddingInput::TokenLists(v) => v.iter().map(|t| format!("{t:?}")).collect(),
    };
    let dims = req.dimensions.map(|d| d as usize).unwrap_or(default_dims);
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = reply::embedding_for(t, dims);
            let embedding = if req.wants_base64() {
                json!(EmbeddingVector::to_base64(&v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = texts.iter().map(|t| reply::count_tokens(t).max(1)).sum();
    json!({"object": "list", "data": data, "model": req.model,
           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
}

async fn models(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if headers.contains_key("anthropic-version") {
        return super::anthropic::models(&state, &headers);
    }
    if super::cohere::is_cohere_client(&headers) {
        return super::cohere::models(&state, &headers);
    }
    let key = bearer(&headers);
    state.record("/v1/models", &headers, key, None, &Bytes::new());
    if let Some(expected) = &state.options.api_key
        && key != Some(expected.as_str())
    {
        return error(401, None);
    }
    let data: Vec<Value> = ["mock-model", "gpt-4o-mini", "text-embedding-3-small"]
        .iter()
        .map(
            |id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "mock"}),
        )
        .collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}
