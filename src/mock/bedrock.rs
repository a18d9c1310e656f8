//! The mock's AWS Bedrock Runtime: `POST /model/{modelId}/converse` (JSON),
//! `/converse-stream` (binary AWS event stream, payloads padded with a random `"p"` as Bedrock
//! pads them) and `/invoke` (Titan and Cohere embedding models), with Bedrock's request checks,
//! its error bodies (`x-amzn-ErrorType` + `{"message"}`) and its authentication: SigV4 signatures
//! are recomputed from the raw request and compared (see [`super::sigv4`]), a Bedrock API key is
//! a bearer token.

mod convert;

use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::{Value, json};

use super::reply::{self, Scenario};
use super::sigv4::{self, Received};
use super::{MockState, Shared, json_response};
use crate::providers::bedrock::wire::{CohereEmbedRequest, ConverseRequest, TitanEmbedRequest};
use crate::sse::eventstream::Frame;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/model/{model}/converse", post(converse))
        .route("/model/{model}/converse-stream", post(converse_stream))
        .route("/model/{model}/invoke", post(invoke))
}

/// A Bedrock error: `x-amzn-ErrorType: <Name>:http://internal.amazon.com/coral/...`, a request id,
/// and `{"message": ...}`.
pub fn error(status: u16, name: &str, message: &str) -> Response {
    let mut resp = json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({ "message": message }),
    );
    let h = resp.headers_mut();
    if let Ok(v) = format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/").parse() {
        h.insert("x-amzn-errortype", v);
    }
    h.insert("x-amzn-requestid", request_id());
    resp
}

fn request_id() -> http::HeaderValue {
    uuid::Uuid::new_v4()
        .to_string()
        .parse()
        .expect("a UUID is a valid header value")
}

/// The exception Bedrock answers with for a status, and its usual message.
fn exception_for(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => (
            "ValidationException",
            "Malformed input request, please reformat your input and try again.",
        ),
        401 => (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        403 => (
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        404 => (
            "ResourceNotFoundException",
            "The requested resource could not be found.",
        ),
        408 => (
            "ModelTimeoutException",
            "Model has timed out in processing the request. Try your request again.",
        ),
        424 => ("ModelErrorException", "The model returned an error."),
        429 => (
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
        503 => (
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        ),
        s if s >= 500 => (
            "InternalServerException",
            "The server encountered an internal error while processing the request.",
        ),
        _ => ("ValidationException", "The request was rejected."),
    }
}

fn status_error(status: u16) -> Response {
    let (name, message) = exception_for(status);
    error(status, name, message)
}

/// The credential a request carries, for the recorded key hint: the API key, or the access key
/// id of a SigV4 signature.
fn credential_hint(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = auth.strip_prefix("Bearer ") {
        return Some(token.to_string());
    }
    sigv4::parse_authorization(auth).map(|a| a.access_key_id)
}

/// Authentication as Bedrock does it. With nothing configured, anything passes. A bearer token
/// must equal `--api-key` (when set); a SigV4 signature must verify with the configured AWS
/// credentials (when set); no `Authorization` at all is refused when either is configured.
/// An early answer (an error), boxed: responses are large.
type Refusal = Box<Response>;

fn authenticate(state: &MockState, received: Received<'_>) -> Result<(), Refusal> {
    let options = &state.options;
    let aws = options
        .aws_access_key_id
        .as_deref()
        .zip(options.aws_secret_access_key.as_deref());
    let auth = received
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let refuse = |r: sigv4::Rejection| Box::new(error(403, r.error_type(), &r.message()));
    match auth {
        None if options.api_key.is_none() && aws.is_none() => Ok(()),
        None => Err(refuse(sigv4::Rejection::Missing)),
        Some(a) if a.starts_with("Bearer ") => match &options.api_key {
            Some(expected) if a["Bearer ".len()..] != *expected => Err(Box::new(error(
                403,
                "UnrecognizedClientException",
                "Authentication failed: the Bedrock API key is invalid.",
            ))),
            _ => Ok(()),
        },
        Some(_) => match aws {
            Some(credentials) => {
                sigv4::verify(received, credentials, "bedrock", SystemTime::now()).map_err(refuse)
            }
            None => Ok(()),
        },
    }
}

/// Recording, authentication and fault injection shared by the routes. `Err` is the answer.
async fn admit(
    state: &Shared,
    model: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    streaming: bool,
) -> Result<Scenario, Response> {
    let hint = credential_hint(headers);
    state.record(uri.path(), headers, hint.as_deref(), Some(model), body);
    authenticate(
        state,
        Received {
            method: Method::POST.as_str(),
            raw_path: uri.path(),
            raw_query: uri.query().unwrap_or(""),
            headers,
            body,
        },
    )
    .map_err(|r| *r)?;
    let scenario = Scenario::from_model(model);
    let partial = b"{\"output\":{\"message\":";
    let fault = super::fault_answer(
        state,
        hint.as_deref(),
        model,
        &scenario,
        streaming,
        status_error,
        partial,
    );
    match fault.await {
        Some(resp) => Err(resp),
        None => Ok(scenario),
    }
}

/// The Converse body, checked. `Err` is the 400.
fn parse_converse(body: &Bytes) -> Result<ConverseRequest, Refusal> {
    let invalid = |m: &str| Box::new(error(400, "ValidationException", m));
    let req: ConverseRequest = serde_json::from_slice(body)
        .map_err(|e| invalid(&format!("Malformed input request: {e}")))?;
    convert::validate(&req).map_err(|m| invalid(&m))?;
    Ok(req)
}

async fn converse(
    State(state): State<Shared>,
    Path(model): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let scenario = match admit(&state, &model, &uri, &headers, &body, false).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let (req, plan) = match plan_for(&model, &body, &scenario) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let guardrail = req.extra.contains_key("guardrailConfig");
    let resp = convert::converse_response(&plan, guardrail);
    let mut out = json_response(
        StatusCode::OK,
        &serde_json::to_value(resp).unwrap_or_default(),
    );
    out.headers_mut().insert("x-amzn-requestid", request_id());
    out
}

/// Parses, checks and plans a Converse request. `Err` is the error answer.
fn plan_for(
    model: &str,
    body: &Bytes,
    scenario: &Scenario,
) -> Result<(ConverseRequest, reply::Plan), Refusal> {
    let req = parse_converse(body)?;
    if scenario.too_long {
        return Err(Box::new(error(
            400,
            "ValidationException",
            "Input is too long for requested model.",
        )));
    }
    let canonical = convert::to_chat_request(model, &req)
        .map_err(|m| Box::new(error(400, "ValidationException", &m)))?;
    let plan = reply::plan(&canonical);
    Ok((req, plan))
}

/// A random `"p"` field like the one Bedrock pads stream events with.
fn padding() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let len = fastrand::usize(1..48);
    (0..len)
        .map(|i| LETTERS[i % LETTERS.len()] as char)
        .collect()
}

async fn converse_stream(
    State(state): State<Shared>,
    Path(model): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let scenario = match admit(&state, &model, &uri, &headers, &body, true).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let (req, plan) = match plan_for(&model, &body, &scenario) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let guardrail = req.extra.contains_key("guardrailConfig");
    let frames = convert::stream_events(&plan, guardrail)
        .into_iter()
        .map(|event| {
            let mut payload = event.payload();
            if let Value::Object(map) = &mut payload {
                map.insert("p".into(), Value::String(padding()));
            }
            let frame = Frame::new(serde_json::to_vec(&payload).unwrap_or_default())
                .with_header(":event-type", event.name())
                .with_header(":content-type", "application/json")
                .with_header(":message-type", "event");
            Bytes::from(frame.encode())
        })
        .collect();
    let delay = scenario.trickle.unwrap_or(state.options.chunk_delay);
    let mut resp = super::streamed_body(
        "application/vnd.amazon.eventstream",
        frames,
        delay,
        &scenario,
    );
    resp.headers_mut().insert("x-amzn-requestid", request_id());
    resp
}

/// InvokeModel for the embedding models: Titan (one text) and Cohere (a batch). The token count
/// is also given in `X-Amzn-Bedrock-Input-Token-Count`, as Bedrock does.
async fn invoke(
    State(state): State<Shared>,
    Path(model): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(resp) = admit(&state, &model, &uri, &headers, &body, false).await {
        return resp;
    }
    let malformed = |m: String| {
        error(
            400,
            "ValidationException",
            &format!("Malformed input request: {m}, please reformat your input and try again."),
        )
    };
    let dims = state.options.embedding_dims;
    let (answer, tokens) = if model.contains("amazon.titan-embed") {
        let req: TitanEmbedRequest = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return malformed(format!("#: {e}")),
        };
        if req.input_text.is_empty() {
            return malformed("#/inputText: expected minLength: 1, actual: 0".into());
        }
        if let Some(d) = req.dimensions
            && ![256, 512, 1024].contains(&d)
        {
            return malformed(format!("#/dimensions: {d} is not a valid enum value"));
        }
        let v = reply::embedding_for(&req.input_text, req.dimensions.map_or(dims, |d| d as usize));
        let tokens = reply::count_tokens(&req.input_text).max(1);
        (
            json!({"embedding": v, "inputTextTokenCount": tokens, "embeddingsByType": {"float": v}}),
            tokens,
        )
    } else if model.contains("cohere.embed") {
        let req: CohereEmbedRequest = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return malformed(format!("#: {e}")),
        };
        if req.texts.len() > 96 {
            return malformed(format!(
                "#/texts: expected maximum item count: 96, found: {}",
                req.texts.len()
            ));
        }
        if ![
            "search_document",
            "search_query",
            "classification",
            "clustering",
        ]
        .contains(&req.input_type.as_str())
        {
            return malformed(format!(
                "#/input_type: {} is not a valid enum value",
                req.input_type
            ));
        }
        let dims = req.output_dimension.map_or(dims, |d| d as usize);
        let vectors: Vec<Vec<f64>> = req
            .texts
            .iter()
            .map(|t| reply::embedding_for(t, dims))
            .collect();
        let tokens: u64 = req
            .texts
            .iter()
            .map(|t| reply::count_tokens(t).max(1))
            .sum();
        let id = reply::short_hash(&String::from_utf8_lossy(&body));
        let answer = match &req.embedding_types {
            Some(types) => {
                let by_type: serde_json::Map<String, Value> =
                    types.iter().map(|t| (t.clone(), json!(vectors))).collect();
                json!({"id": id, "response_type": "embeddings_by_type", "embeddings": by_type, "texts": req.texts})
            }
            None => {
                json!({"id": id, "response_type": "embeddings_floats", "embeddings": vectors, "texts": req.texts})
            }
        };
        (answer, tokens)
    } else {
        return error(
            400,
            "ValidationException",
            &format!(
                "The mock answers InvokeModel for amazon.titan-embed-* and cohere.embed-* models only, not {model}."
            ),
        );
    };
    let mut resp = json_response(StatusCode::OK, &answer);
    let h = resp.headers_mut();
    h.insert("x-amzn-requestid", request_id());
    h.insert(
        "x-amzn-bedrock-input-token-count",
        tokens
            .to_string()
            .parse()
            .expect("a number is a valid header value"),
    );
    resp
}
