//! OpenAI API routes: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`, plus `/health`
//! and the JSON answers for unknown routes and methods.

use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::response::Response;
use http::{HeaderMap, HeaderName, Method, Uri};

use super::AppState;
use super::body::{read_limited, request_id, require_json};
use super::response::{encode_body, error_response, json_response, local_json, sse_response};
use crate::error::{GatewayError, Result};
use crate::gateway::RequestOptions;
use crate::schema::{ChatReply, ChatRequest, EmbeddingRequest, parse_json};

// Header names as constants: a name given as a string is parsed and validated on every lookup.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TAGS: HeaderName = HeaderName::from_static("x-ferrogate-tags");
const TIMEOUT: HeaderName = HeaderName::from_static("x-ferrogate-timeout");

/// Options a client may set with headers: `x-ferrogate-timeout` (seconds) bounds the upstream call.
pub(super) fn options_from_headers(
    headers: &HeaderMap,
    request_id: &str,
    config: &crate::config::Config,
) -> Result<RequestOptions> {
    let mut opts = RequestOptions {
        request_id: Some(request_id.to_string()),
        ..Default::default()
    };
    opts.traceparent = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    for (header, label) in &config.telemetry.metrics.header_labels {
        let value = headers
            .get(header.as_str())
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        opts.labels.push((label.clone(), value.to_string()));
    }
    if let Some(tags) = headers.get(TAGS).and_then(|v| v.to_str().ok()) {
        opts.tags = tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
    }
    if let Some(v) = headers.get(TIMEOUT) {
        let secs = v
            .to_str()
            .ok()
            .and_then(|s| crate::config::parse_duration(s).ok())
            .filter(|d| *d > Duration::ZERO)
            .ok_or_else(|| {
                GatewayError::invalid_request(
                    "x-ferrogate-timeout must be a positive duration such as 30 or \"500ms\"",
                )
            })?;
        opts.timeout = Some(secs);
    }
    Ok(opts)
}

pub async fn chat_completions(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let started = Instant::now();
    let rid = request_id(headers);
    let result = async {
        let config = state.gateway.config();
        let limit = config.server.max_request_body.0 as usize;
        let bytes = read_limited(body, headers, limit).await.map_err(rejected)?;
        require_json(&bytes).map_err(rejected)?;
        let req: ChatRequest = parse_json(&bytes).map_err(rejected)?;
        let opts = options_from_headers(headers, &rid, &config).map_err(rejected)?;
        if req.is_stream() {
            let served = state.gateway.chat_stream_json(req, &opts).await?;
            Ok(sse_response(served.value, &rid, &served.meta, started))
        } else {
            let served = state.gateway.chat_json(req, &opts).await?;
            let json = match served.value {
                // An OpenAI-compatible upstream's answer, passed on as it came.
                ChatReply::Raw(raw) => raw.body,
                ChatReply::Parsed(r) => encode_body(&r)?.into(),
            };
            Ok(json_response(json, &rid, &served.meta, started))
        }
    }
    .await;
    finish("chat.completions", &rid, started, result)
}

pub async fn embeddings(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let started = Instant::now();
    let rid = request_id(headers);
    let result = async {
        let config = state.gateway.config();
        let limit = config.server.max_request_body.0 as usize;
        let bytes = read_limited(body, headers, limit).await.map_err(rejected)?;
        require_json(&bytes).map_err(rejected)?;
        let req: EmbeddingRequest = parse_json(&bytes).map_err(rejected)?;
        let opts = options_from_headers(headers, &rid, &config).map_err(rejected)?;
        let served = state.gateway.embeddings(req, &opts).await?;
        let json = encode_body(&served.value)?;
        Ok(json_response(json, &rid, &served.meta, started))
    }
    .await;
    finish("embeddings", &rid, started, result)
}

pub async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let rid = request_id(&headers);
    let list = state.gateway.list_models().await;
    local_json(serde_json::to_vec(&list).unwrap_or_default(), &rid)
}

pub async fn get_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let rid = request_id(&headers);
    let list = state.gateway.list_models().await;
    match list.data.into_iter().find(|m| m.id == id) {
        Some(model) => local_json(serde_json::to_vec(&model).unwrap_or_default(), &rid),
        None => error_response(
            &GatewayError::not_found(format!("model {id:?} is not known to this gateway"))
                .with_code("model_not_found"),
            &rid,
        ),
    }
}

pub async fn health() -> Response {
    local_json(br#"{"status":"ok"}"#.to_vec(), "health")
}

pub async fn unknown_route(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let err = GatewayError::not_found(format!("unknown route: {method} {}", uri.path()))
        .with_code("unknown_route");
    error_response(&err, &request_id(&headers))
}

pub async fn method_not_allowed(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let err =
        GatewayError::invalid_request(format!("method {method} is not allowed on {}", uri.path()))
            .with_status(405)
            .with_code("method_not_allowed");
    error_response(&err, &request_id(&headers))
}

pub(super) use crate::telemetry::rejected;

fn finish(route: &'static str, rid: &str, started: Instant, result: Result<Response>) -> Response {
    super::response::finish(route, rid, started, result, error_response)
}
