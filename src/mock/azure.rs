//! The mock's Azure OpenAI API: deployment routes
//! (`/openai/deployments/{deployment}/chat/completions`, `/embeddings`, `/openai/models`), which
//! require `?api-version=`, and the v1 routes (`/openai/v1/...`, deployment in `model`). Keys are
//! checked in the `api-key` header (or `Authorization: Bearer`). Answers are OpenAI's with Azure's
//! additions (`prompt_filter_results`, per-choice `content_filter_results`, a leading choice-less
//! prompt-filter chunk in streams) and Azure's error bodies (`{"error": {"code", "message"}}`,
//! `retry-after-ms` on 429).
//!
//! Fault words work as for the other mocks, read from the deployment name (or the v1 `model`).
//! `refuse` filters the completion (200, `finish_reason: content_filter`), as Azure's output
//! filter does; `jailbreak` makes the prompt filter reject the request (400, `code:
//! content_filter`, `innererror.code: ResponsibleAIPolicyViolation`).

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::reply::{self, Scenario};
use super::{Fault, Shared, json_response};
use crate::schema::{ChatRequest, EmbeddingRequest, FinishReason, parse_json};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(deployment_chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(deployment_embeddings),
        )
        .route("/openai/models", get(deployment_models))
        .route("/openai/v1/chat/completions", post(v1_chat))
        .route("/openai/v1/embeddings", post(v1_embeddings))
        .route("/openai/v1/models", get(v1_models))
}

/// Azure's error body, with the headers Azure sends alongside.
pub fn error(status: u16, code: &str, message: &str) -> Response {
    let mut resp = json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"error": {"code": code, "message": message}}),
    );
    let h = resp.headers_mut();
    h.insert("apim-request-id", "00000000-mock".parse().expect("valid"));
    if status == 429 {
        h.insert(header::RETRY_AFTER, "1".parse().expect("valid"));
        h.insert("retry-after-ms", "1000".parse().expect("valid"));
    }
    resp
}

fn status_error(status: u16) -> Response {
    let (code, message) = match status {
        400 => ("BadRequest", "Invalid request."),
        401 => (
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        ),
        403 => (
            "403",
            "Public access is disabled. Please configure private endpoint.",
        ),
        404 => (
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
        ),
        429 => (
            "429",
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second.",
        ),
        503 => (
            "ServiceUnavailable",
            "The service is temporarily unable to process your request. Please try again later.",
        ),
        _ => (
            "InternalServerError",
            "The server had an error while processing your request. Sorry about that!",
        ),
    };
    error(status, code, message)
}

fn filter_results(filtered: bool) -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({
        "hate": safe, "self_harm": safe, "sexual": safe,
        "violence": if filtered { json!({"filtered": true, "severity": "medium"}) } else { safe.clone() },
    })
}

fn prompt_filter_results(jailbreak: bool) -> Value {
    let mut results = filter_results(false);
    results["jailbreak"] = json!({"filtered": jailbreak, "detected": jailbreak});
    json!([{"prompt_index": 0, "content_filter_results": results}])
}

fn prompt_filtered() -> Response {
    let mut inner = filter_results(false);
    inner["jailbreak"] = json!({"filtered": true, "detected": true});
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
            "type": null, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": inner}}}),
    )
}

fn api_version(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "api-version" && !v.is_empty()).then(|| v.to_string())
    })
}

fn key_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
}

/// Which route a request came by: a deployment (with its required `api-version`) or the v1 API.
enum Via {
    Deployment(String),
    V1,
}

/// Checks the api-version, records, checks the key, and parses the body with the deployment as
/// its model. `Err` is the answer.
fn admit(
    state: &Shared,
    via: &Via,
    route: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, Box<Response>> {
    let key = key_of(headers);
    let mut raw: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (path, deployment) = match via {
        Via::Deployment(d) => (format!("/openai/deployments/{d}/{route}"), Some(d.as_str())),
        Via::V1 => (format!("/openai/v1/{route}"), None),
    };
    let model = deployment
        .or_else(|| raw.get("model").and_then(Value::as_str))
        .map(str::to_string);
    state.record(&path, headers, key, model.as_deref(), body);
    match (via, api_version(query).as_deref()) {
        (Via::Deployment(_), None) => {
            return Err(Box::new(error(
                400,
                "BadRequest",
                "Missing required query parameter: api-version",
            )));
        }
        (Via::V1, Some(v)) if !matches!(v, "preview" | "v1") => {
            return Err(Box::new(error(
                400,
                "BadRequest",
                &format!(
                    "API version {v} is not supported by the v1 API; omit it or use `preview`"
                ),
            )));
        }
        _ => {}
    }
    if let Some(expected) = &state.options.api_key
        && key != Some(expected.as_str())
    {
        return Err(Box::new(status_error(401)));
    }
    let Some(obj) = raw.as_object_mut() else {
        return Err(Box::new(error(
            400,
            "BadRequest",
            "The request body is not valid JSON.",
        )));
    };
    match (deployment, obj.get("model")) {
        // The deployment decides; a body `model` is ignored on these routes.
        (Some(d), _) => {
            obj.insert("model".into(), Value::String(d.to_string()));
        }
        (None, Some(Value::String(_))) => {}
        (None, _) => {
            return Err(Box::new(error(400, "BadRequest", "model is required.")));
        }
    }
    Ok(raw)
}

async fn deployment_chat(
    State(state): State<Shared>,
    Path(deployment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat(state, Via::Deployment(deployment), query, headers, body).await
}

async fn v1_chat(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat(state, Via::V1, query, headers, body).await
}

async fn chat(
    state: Shared,
    via: Via,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = match admit(
        &state,
        &via,
        "chat/completions",
        query.as_deref(),
        &headers,
        &body,
    ) {
        Ok(raw) => raw,
        Err(resp) => return *resp,
    };
    let req: ChatRequest = match parse_json(raw.to_string().as_bytes()) {
        Ok(r) => r,
        Err(e) => return error(400, "BadRequest", &e.message),
    };
    let scenario = Scenario::from_model(&req.model);
    let key = key_of(&headers);
    let partial = b"{\"choices\":[";
    if let Some(resp) = super::fault_answer(
        &state,
        key,
        &req.model,
        &scenario,
        req.is_stream(),
        status_error,
        partial,
    )
    .await
    {
        return resp;
    }
    if req
        .model
        .split(['-', '_', '/', ':', '.'])
        .any(|w| w == "jailbreak")
    {
        return prompt_filtered();
    }
    if scenario.too_long {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": {
                "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 250000 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        );
    }
    let plan = reply::plan(&req);
    let id = format!(
        "chatcmpl-mock{}",
        reply::short_hash(&String::from_utf8_lossy(&body))
    );
    let filtered = |finish: Option<&FinishReason>| finish == Some(&FinishReason::ContentFilter);
    if req.is_stream() {
        let include_usage = req
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let first = json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                           "prompt_filter_results": prompt_filter_results(false)});
        let mut events = vec![Bytes::from(format!("data: {first}\n\n"))];
        for chunk in plan.chunks(&id, &req.model, include_usage) {
            let mut value = serde_json::to_value(&chunk).unwrap_or_default();
            for (choice, c) in chunk.choices.iter().zip(
                value["choices"]
                    .as_array_mut()
                    .into_iter()
                    .flat_map(|a| a.iter_mut()),
            ) {
                if choice.delta.content.as_ref().is_some_and(|t| !t.is_empty())
                    || choice.finish_reason.is_some()
                {
                    c["content_filter_results"] =
                        filter_results(filtered(choice.finish_reason.as_ref()));
                }
            }
            events.push(Bytes::from(format!("data: {value}\n\n")));
        }
        let delay = scenario.trickle.unwrap_or(state.options.chunk_delay);
        super::sse_body(
            events,
            delay,
            &scenario,
            Some(Bytes::from_static(b"data: [DONE]\n\n")),
        )
    } else {
        let resp = plan.response(&id, &req.model);
        let mut value = serde_json::to_value(&resp).unwrap_or_default();
        value["prompt_filter_results"] = prompt_filter_results(false);
        for (choice, c) in resp.choices.iter().zip(
            value["choices"]
                .as_array_mut()
                .into_iter()
                .flat_map(|a| a.iter_mut()),
        ) {
            c["content_filter_results"] = filter_results(filtered(choice.finish_reason.as_ref()));
        }
        json_response(StatusCode::OK, &value)
    }
}

async fn deployment_embeddings(
    State(state): State<Shared>,
    Path(deployment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    embeddings(state, Via::Deployment(deployment), query, headers, body).await
}

async fn v1_embeddings(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    embeddings(state, Via::V1, query, headers, body).await
}

async fn embeddings(
    state: Shared,
    via: Via,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = match admit(
        &state,
        &via,
        "embeddings",
        query.as_deref(),
        &headers,
        &body,
    ) {
        Ok(raw) => raw,
        Err(resp) => return *resp,
    };
    let req: EmbeddingRequest = match parse_json(raw.to_string().as_bytes()) {
        Ok(r) => r,
        Err(e) => return error(400, "BadRequest", &e.message),
    };
    let scenario = Scenario::from_model(&req.model);
    if let Some(Fault::Status(s)) = super::before_answer(&state, &scenario, false).await {
        return status_error(s);
    }
    json_response(
        StatusCode::OK,
        &super::openai::embeddings_answer(&req, state.options.embedding_dims),
    )
}

async fn deployment_models(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    state.record(
        "/openai/models",
        &headers,
        key_of(&headers),
        None,
        &Bytes::new(),
    );
    if api_version(query.as_deref()).is_none() {
        return error(
            400,
            "BadRequest",
            "Missing required query parameter: api-version",
        );
    }
    models(&state, &headers)
}

async fn v1_models(State(state): State<Shared>, headers: HeaderMap) -> Response {
    state.record(
        "/openai/v1/models",
        &headers,
        key_of(&headers),
        None,
        &Bytes::new(),
    );
    models(&state, &headers)
}

/// The models the resource can deploy, in Azure's shape.
fn models(state: &Shared, headers: &HeaderMap) -> Response {
    if let Some(expected) = &state.options.api_key
        && key_of(headers) != Some(expected.as_str())
    {
        return status_error(401);
    }
    let model = |id: &str, chat: bool| {
        json!({"id": id, "object": "model", "created_at": 1_721_260_800, "status": "succeeded",
               "lifecycle_status": "generally-available",
               "capabilities": {"chat_completion": chat, "completion": false, "embeddings": !chat,
                                "fine_tune": false, "inference": true}})
    };
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": [
            model("gpt-4o-mini", true),
            model("gpt-4o", true),
            model("text-embedding-3-small", false),
        ]}),
    )
}
