//! The mock's Gemini API and Vertex AI routes, with the checks the real APIs make (unknown
//! fields, roles, schema keywords outside Gemini's subset, function responses matching calls) and
//! Google's error bodies.
//!
//! - Gemini API: `POST /v1beta/models/{model}:{action}` (also `/v1/...`), `GET /v1beta/models`;
//!   the key in `x-goog-api-key` (or `?key=`) when the mock has one. A wrong key gets Google's 400
//!   `API_KEY_INVALID`, a missing one 403.
//! - Vertex AI: `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{action}`
//!   (also `/v1beta1/...`) with `Authorization: Bearer` holding a token issued by the mock's
//!   `/oauth2/token`; express mode `POST /v1/publishers/google/models/...` with the API key;
//!   embeddings via `:predict`; `GET /v1beta1/publishers/google/models`.
//!
//! Actions: `generateContent`, `streamGenerateContent` (`alt=sse`: `data: <json>\r\n\r\n`
//! events, no terminator), `embedContent`, `batchEmbedContents`, `predict` (Vertex). Besides the
//! shared fault words, `blocked` in the model name blocks the prompt (`promptFeedback`).

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::reply::{self, Scenario};
use super::{Shared, json_response};
use crate::compat::genai::{
    ChunksToResponses, from_chat_response, split_model_action, to_chat_request,
};
use crate::providers::gemini::schema::SCHEMA_KEYWORDS;
use crate::providers::gemini::wire::{
    BatchEmbedContentsRequest, EmbedContentRequest, ErrorBody, ErrorEnvelope,
    GenerateContentRequest, GenerateContentResponse, PredictRequest, status_name,
};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1beta/models/{*rest}", post(gemini_action))
        .route("/v1/models/{*rest}", post(gemini_action))
        .route("/v1beta/models", get(gemini_models))
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{*rest}",
            post(vertex_action),
        )
        .route(
            "/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{*rest}",
            post(vertex_action),
        )
        .route("/v1/publishers/google/models/{*rest}", post(vertex_express))
        .route("/v1beta1/publishers/google/models", get(vertex_models))
        .route("/oauth2/token", post(super::google_oauth::token))
}

/// Google's error body for a status.
pub fn error(status: u16, message: &str, details: Vec<Value>) -> Response {
    let env = ErrorEnvelope {
        error: ErrorBody {
            code: status,
            message: message.to_string(),
            status: status_name(status).into(),
            details,
        },
    };
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &serde_json::to_value(env).unwrap_or_default(),
    )
}

fn fault_error(status: u16) -> Response {
    match status {
        401 => error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            vec![],
        ),
        403 => error(403, "The caller does not have permission", vec![]),
        404 => error(
            404,
            "models/mock is not found for API version v1beta, or is not supported for generateContent.",
            vec![],
        ),
        429 => error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            vec![
                json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]}),
                json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}),
            ],
        ),
        503 => error(
            503,
            "The model is overloaded. Please try again later.",
            vec![],
        ),
        504 => error(
            504,
            "Deadline expired before operation could complete.",
            vec![],
        ),
        s if s >= 500 => error(
            s,
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
            vec![],
        ),
        s => error(s, "Request contains an invalid argument.", vec![]),
    }
}

fn invalid_key() -> Response {
    error(
        400,
        "API key not valid. Please pass a valid API key.",
        vec![json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"}
        })],
    )
}

fn query_key(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .map(str::to_string)
}

/// Checks the API key the way the Gemini API does; `Some` is the refusal.
fn check_key(state: &Shared, key: Option<&str>) -> Option<Response> {
    match (&state.options.api_key, key) {
        (None, _) => None,
        (Some(_), None) => Some(error(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            vec![],
        )),
        (Some(expected), Some(k)) if k == expected => None,
        (Some(_), Some(_)) => Some(invalid_key()),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

const KNOWN_FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "system_instruction",
    "tools",
    "toolConfig",
    "tool_config",
    "safetySettings",
    "safety_settings",
    "generationConfig",
    "generation_config",
    "cachedContent",
    "cached_content",
];

/// Schema keywords outside Gemini's subset, as the API reports them.
fn check_schema(schema: &Value, at: &str) -> Result<(), String> {
    let Some(obj) = schema.as_object() else {
        return Ok(());
    };
    for (k, v) in obj {
        if !SCHEMA_KEYWORDS.contains(&k.as_str()) {
            return Err(format!(
                "Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field."
            ));
        }
        match k.as_str() {
            "properties" => {
                for (name, sub) in v.as_object().into_iter().flatten() {
                    check_schema(sub, &format!("{at}.properties[{name}].value"))?;
                }
            }
            "items" => check_schema(v, &format!("{at}.items"))?,
            "anyOf" => {
                for (i, sub) in v.as_array().into_iter().flatten().enumerate() {
                    check_schema(sub, &format!("{at}.any_of[{i}]"))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The checks the real APIs make before answering. `Err` is the 400 message.
fn validate(raw: &Value, req: &GenerateContentRequest, vertex: bool) -> Result<(), String> {
    for key in raw.as_object().into_iter().flatten().map(|(k, _)| k) {
        let known = KNOWN_FIELDS.contains(&key.as_str()) || (vertex && key == "labels");
        if !known {
            return Err(format!(
                "Invalid JSON payload received. Unknown name \"{key}\": Cannot find field."
            ));
        }
    }
    if let Some(extra) = req.generation_config.as_ref().map(|g| &g.extra)
        && let Some(key) = extra.keys().next()
    {
        return Err(format!(
            "Invalid JSON payload received. Unknown name \"{key}\" at 'generation_config': Cannot find field."
        ));
    }
    if req.contents.is_empty() {
        return Err("* GenerateContentRequest.contents: contents is not specified".into());
    }
    let mut calls_in_last_model_turn = 0;
    for (i, c) in req.contents.iter().enumerate() {
        match c.role.as_deref() {
            Some("user") | Some("model") => {}
            None if !vertex => {}
            _ => return Err("Please use a valid role: user, model.".into()),
        }
        let calls = c.parts.iter().filter(|p| p.function_call.is_some()).count();
        let responses = c
            .parts
            .iter()
            .filter(|p| p.function_response.is_some())
            .count();
        if responses > 0 && responses != calls_in_last_model_turn {
            return Err(format!(
                "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn (contents[{i}])."
            ));
        }
        if c.role.as_deref() == Some("model") {
            calls_in_last_model_turn = calls;
        }
    }
    for (i, tool) in req.tools.iter().flatten().enumerate() {
        for (j, f) in tool.function_declarations.iter().flatten().enumerate() {
            if let Some(p) = &f.parameters {
                check_schema(
                    p,
                    &format!("tools[{i}].function_declarations[{j}].parameters"),
                )?;
            }
        }
    }
    if let Some(s) = req
        .generation_config
        .as_ref()
        .and_then(|g| g.response_schema.as_ref())
    {
        check_schema(s, "generation_config.response_schema")?;
    }
    Ok(())
}

/// Real Gemini responses carry no function call ids; the gateway must make its own.
fn without_call_ids(mut resp: GenerateContentResponse) -> GenerateContentResponse {
    for c in &mut resp.candidates {
        for p in c.content.iter_mut().flat_map(|c| c.parts.iter_mut()) {
            if let Some(call) = &mut p.function_call {
                call.id = None;
            }
        }
        if c.finish_reason.as_deref() == Some("SAFETY") {
            c.extra.insert(
                "safetyRatings".into(),
                json!([{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}]),
            );
        }
    }
    resp
}

/// Answers `generateContent` / `streamGenerateContent` after authentication.
async fn generate(
    state: &Shared,
    model: &str,
    stream: bool,
    raw: Value,
    body: &Bytes,
    vertex: bool,
) -> Response {
    let req: GenerateContentRequest = match serde_path_to_error::deserialize(raw.clone()) {
        Ok(r) => r,
        Err(e) => {
            return error(
                400,
                &format!("Invalid JSON payload received. {}: {}", e.path(), e.inner()),
                vec![],
            );
        }
    };
    if let Err(message) = validate(&raw, &req, vertex) {
        return error(400, &message, vec![]);
    }
    let scenario = Scenario::from_model(model);
    if let Some(fault) = super::before_answer(state, &scenario, stream).await {
        let partial = b"{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Yo";
        return super::fault_response(fault, None, fault_error, partial);
    }
    if scenario.too_long {
        return error(
            400,
            "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576).",
            vec![],
        );
    }
    let canonical = match to_chat_request(req, model, stream) {
        Ok(c) => c,
        Err(e) => return error(400, &e.message, vec![]),
    };
    let plan = reply::plan(&canonical);
    let id = format!("mock{}", reply::short_hash(&String::from_utf8_lossy(body)));
    let blocked = model
        .split(['-', '_', '/', ':', '.'])
        .any(|w| w == "blocked");
    if blocked {
        let resp = json!({
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": plan.prompt_tokens, "totalTokenCount": plan.prompt_tokens},
            "modelVersion": model, "responseId": id,
        });
        return if stream {
            let event = Bytes::from(format!("data: {resp}\r\n\r\n"));
            super::sse_body(vec![event], state.options.chunk_delay, &scenario, None)
        } else {
            json_response(StatusCode::OK, &resp)
        };
    }
    if stream {
        let mut translator = ChunksToResponses::new(model);
        let mut responses = Vec::new();
        for chunk in plan.chunks(&id, model, true) {
            translator.chunk(&chunk, &mut responses);
        }
        translator.finish(&mut responses);
        let events = responses
            .into_iter()
            .map(|r| {
                let json = serde_json::to_string(&without_call_ids(r)).unwrap_or_default();
                Bytes::from(format!("data: {json}\r\n\r\n"))
            })
            .collect();
        let delay = scenario.trickle.unwrap_or(state.options.chunk_delay);
        super::sse_body(events, delay, &scenario, None)
    } else {
        let resp = without_call_ids(from_chat_response(&plan.response(&id, model), model));
        json_response(
            StatusCode::OK,
            &serde_json::to_value(resp).unwrap_or_default(),
        )
    }
}

fn embed(state: &Shared, model: &str, action: &str, raw: Value) -> Response {
    let dims_default = state.options.embedding_dims;
    let values = |text: &str, dims: Option<u32>| {
        reply::embedding_for(text, dims.map(|d| d as usize).unwrap_or(dims_default))
    };
    match action {
        "embedContent" => match serde_json::from_value::<EmbedContentRequest>(raw) {
            Ok(r) => json_response(
                StatusCode::OK,
                &json!({"embedding": {"values": values(&r.content.text(), r.output_dimensionality)}}),
            ),
            Err(e) => error(400, &format!("Invalid JSON payload received. {e}"), vec![]),
        },
        "batchEmbedContents" => match serde_json::from_value::<BatchEmbedContentsRequest>(raw) {
            Ok(batch) => {
                let expected = format!("models/{model}");
                if let Some(r) = batch
                    .requests
                    .iter()
                    .find(|r| r.model.as_deref() != Some(expected.as_str()))
                {
                    return error(
                        400,
                        &format!(
                            "Model name {:?} of a request does not match the model in the URL ({expected}).",
                            r.model.as_deref().unwrap_or("")
                        ),
                        vec![],
                    );
                }
                let embeddings: Vec<Value> = batch
                    .requests
                    .iter()
                    .map(|r| json!({"values": values(&r.content.text(), r.output_dimensionality)}))
                    .collect();
                json_response(StatusCode::OK, &json!({ "embeddings": embeddings }))
            }
            Err(e) => error(400, &format!("Invalid JSON payload received. {e}"), vec![]),
        },
        "predict" => match serde_json::from_value::<PredictRequest>(raw) {
            Ok(p) => {
                let dims = p.parameters.and_then(|p| p.output_dimensionality);
                let predictions: Vec<Value> = p
                    .instances
                    .iter()
                    .map(|i| {
                        json!({"embeddings": {"values": values(&i.content, dims),
                            "statistics": {"token_count": reply::count_tokens(&i.content).max(1), "truncated": false}}})
                    })
                    .collect();
                let chars: usize = p.instances.iter().map(|i| i.content.len()).sum();
                json_response(
                    StatusCode::OK,
                    &json!({"predictions": predictions, "metadata": {"billableCharacterCount": chars}}),
                )
            }
            Err(e) => error(400, &format!("Invalid JSON payload received. {e}"), vec![]),
        },
        other => error(404, &format!("Method not found: {other}"), vec![]),
    }
}

/// Parses the body and dispatches an action; `vertex` selects Vertex AI's checks and actions.
async fn dispatch(
    state: &Shared,
    rest: &str,
    query: Option<&str>,
    body: Bytes,
    vertex: bool,
) -> Response {
    let Some((model, action)) = split_model_action(rest) else {
        return error(
            404,
            &format!("Requested entity was not found: {rest}"),
            vec![],
        );
    };
    let Ok(raw) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "Invalid JSON payload received. Unexpected token.",
            vec![],
        );
    };
    match action {
        "generateContent" => generate(state, model, false, raw, &body, vertex).await,
        "streamGenerateContent" => {
            if !query.is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse")) {
                return error(
                    400,
                    "this mock streams with alt=sse only (add ?alt=sse)",
                    vec![],
                );
            }
            generate(state, model, true, raw, &body, vertex).await
        }
        "embedContent" | "batchEmbedContents" if !vertex => embed(state, model, action, raw),
        "predict" if vertex => embed(state, model, action, raw),
        other => error(404, &format!("Method not found: {other}"), vec![]),
    }
}

fn model_of(rest: &str) -> Option<&str> {
    split_model_action(rest).map(|(m, _)| m)
}

async fn gemini_action(
    State(state): State<Shared>,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query_key(query.as_deref()));
    state.record(
        &format!("/v1beta/models/{rest}"),
        &headers,
        key.as_deref(),
        model_of(&rest),
        &body,
    );
    if let Some(resp) = check_key(&state, key.as_deref()) {
        return resp;
    }
    if let Some(resp) = injected_fault(&state, key.as_deref(), &rest).await {
        return resp;
    }
    dispatch(&state, &rest, query.as_deref(), body, false).await
}

async fn gemini_models(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let key = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok());
    state.record("/v1beta/models", &headers, key, None, &Bytes::new());
    if let Some(resp) = check_key(&state, key) {
        return resp;
    }
    let models: Vec<Value> = [
        ("gemini-2.0-flash", "generateContent"),
        ("gemini-2.5-pro", "generateContent"),
        ("text-embedding-004", "embedContent"),
    ]
    .iter()
    .map(|(id, method)| {
        json!({"name": format!("models/{id}"), "version": "001", "displayName": id,
               "inputTokenLimit": 1048576, "outputTokenLimit": 8192,
               "supportedGenerationMethods": [method, "countTokens"]})
    })
    .collect();
    json_response(StatusCode::OK, &json!({ "models": models }))
}

/// Checks the bearer token of a Vertex AI request; `Some` is the refusal.
fn check_token(state: &Shared, token: Option<&str>) -> Option<Response> {
    if token.is_some_and(|t| state.google_tokens.is_valid(t)) {
        return None;
    }
    Some(error(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        vec![
            json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED", "domain": "googleapis.com"}),
        ],
    ))
}

async fn vertex_action(
    State(state): State<Shared>,
    Path((project, location, rest)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = bearer(&headers);
    state.record(
        &format!("/v1/projects/{project}/locations/{location}/publishers/google/models/{rest}"),
        &headers,
        token,
        model_of(&rest),
        &body,
    );
    if let Some(resp) = check_token(&state, token) {
        return resp;
    }
    if let Some(resp) = injected_fault(&state, token, &rest).await {
        return resp;
    }
    dispatch(&state, &rest, query.as_deref(), body, true).await
}

/// Vertex AI express mode: an API key instead of a project and a token.
async fn vertex_express(
    State(state): State<Shared>,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok());
    state.record(
        &format!("/v1/publishers/google/models/{rest}"),
        &headers,
        key,
        model_of(&rest),
        &body,
    );
    if let Some(resp) = check_key(&state, key) {
        return resp;
    }
    if let Some(resp) = injected_fault(&state, key, &rest).await {
        return resp;
    }
    dispatch(&state, &rest, query.as_deref(), body, true).await
}

/// A runtime fault rule (`POST /mock/faults`) matching this request, answered in Google's shape.
async fn injected_fault(state: &Shared, key: Option<&str>, rest: &str) -> Option<Response> {
    let model = model_of(rest).unwrap_or_default();
    super::runtime_fault_answer(state, key, model, fault_error, b"{\"candidates\": [").await
}

async fn vertex_models(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let token = bearer(&headers);
    state.record(
        "/v1beta1/publishers/google/models",
        &headers,
        token,
        None,
        &Bytes::new(),
    );
    if let Some(resp) = check_token(&state, token) {
        return resp;
    }
    let models: Vec<Value> = [
        "gemini-2.0-flash-001",
        "gemini-2.5-pro",
        "text-embedding-005",
    ]
    .iter()
    .map(|id| json!({"name": format!("publishers/google/models/{id}"), "versionId": "001"}))
    .collect();
    json_response(StatusCode::OK, &json!({ "publisherModels": models }))
}
