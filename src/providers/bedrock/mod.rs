//! AWS Bedrock Runtime: Converse (`POST {base}/model/{modelId}/converse`), ConverseStream
//! (`.../converse-stream`, a binary AWS event stream) and InvokeModel (`.../invoke`) for the
//! embedding models.
//!
//! Authentication is SigV4 (signing name `bedrock`) with AWS credentials, or a Bedrock API key
//! sent as `Authorization: Bearer` without signing. The region comes from the provider's
//! settings (config `region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`).

pub mod embeddings;
pub mod request;
pub mod response;
pub mod sigv4;
pub mod wire;

use std::time::SystemTime;

use futures_util::{StreamExt, TryStreamExt};
use http::HeaderMap;

use super::credentials::Credential;
use super::http_client::RequestBuilder;
use super::stream::TranslatedStream;
use super::transport::{self, Fetched, TimedBody};
use super::{Call, ChunkStream, Provider};
use crate::error::{GatewayError, Result};
use crate::schema::{ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Model};
use embeddings::{COHERE_BATCH, EmbedFamily};

pub use request::{Translated, to_converse_request};
pub use response::{BedrockFrames, BedrockStreamTranslator, to_chat_response};

pub const DEFAULT_REGION: &str = "us-east-1";
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";
/// Titan takes one text per call; this many run at once.
const TITAN_CONCURRENCY: usize = 4;

pub struct Bedrock;

/// `/model/{encoded model id}/{operation}`.
pub fn model_path(model: &str, operation: &str) -> String {
    format!("/model/{}/{operation}", sigv4::encode_model_id(model))
}

/// A signed (or bearer-authenticated) JSON POST. Every header this adapter sets is signed; the
/// HTTP client's own (`user-agent`, `content-length`...) are not, which SigV4 allows.
fn post(
    call: &Call<'_>,
    path: &str,
    body: Vec<u8>,
    accept: Option<&str>,
) -> Result<RequestBuilder> {
    let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    if let Some(a) = accept {
        headers.push(("accept", a));
    }
    for (name, value) in &call.provider.headers {
        headers.push((name.as_str(), value.expose()));
    }
    for (name, value) in call.extra_headers {
        headers.push((name.as_str(), value.as_str()));
    }
    let mut builder = transport::request(call, http::Method::POST, path)
        .header(http::header::CONTENT_TYPE, transport::JSON);
    if let Some(a) = accept {
        builder = builder.header(http::header::ACCEPT, a);
    }
    match call.credential {
        Some(Credential::Aws(aws)) => {
            let region = call
                .provider
                .settings
                .region
                .as_deref()
                .unwrap_or(DEFAULT_REGION);
            let url = format!("{}{path}", call.base_url);
            let signed = sigv4::sign_request(
                aws,
                region,
                "POST",
                &url,
                &headers,
                &body,
                SystemTime::now(),
            )
            .map_err(|e| transport::scrub_call_secrets(e, call))?;
            for (name, value) in signed {
                builder = builder.secret_header(name, value);
            }
        }
        Some(Credential::ApiKey(key)) => {
            builder = builder.bearer_secret(key);
        }
        Some(other @ Credential::ServiceAccount(_)) => {
            return Err(GatewayError::invalid_request(format!(
                "provider `{}` (Bedrock) cannot authenticate with {}: give AWS credentials or a Bedrock API key",
                call.provider.name,
                other.describe()
            ))
            .with_provider(call.provider.name.clone()));
        }
        // A keyless endpoint (a local mock or a proxy that signs for us).
        None => {}
    }
    Ok(builder.body(body))
}

fn error_from(call: &Call<'_>, fetched: &Fetched) -> GatewayError {
    let error_type = fetched
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok());
    let (parsed, status) = response::parse_error(error_type, &fetched.body);
    let err = transport::status_error(call, fetched, parsed);
    match status {
        Some(s) => err.with_status(s),
        None => err,
    }
}

/// Bedrock gives no response id; the request id AWS assigned stands in for one.
fn response_id(headers: &HeaderMap) -> String {
    match headers
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
    {
        Some(id) if !id.is_empty() => format!("chatcmpl-{id}"),
        _ => format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
    }
}

/// One InvokeModel call; the answer body and its headers.
async fn invoke(call: &Call<'_>, model: &str, body: Vec<u8>) -> Result<Fetched> {
    let builder = post(
        call,
        &model_path(model, "invoke"),
        body,
        Some("application/json"),
    )?;
    let fetched = transport::fetch(call, builder).await?;
    if !(200..300).contains(&fetched.status) {
        return Err(error_from(call, &fetched));
    }
    Ok(fetched)
}

fn header_tokens(headers: &HeaderMap) -> u64 {
    headers
        .get("x-amzn-bedrock-input-token-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

impl Provider for Bedrock {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse> {
        let translated = to_converse_request(req)?;
        let builder = post(
            call,
            &model_path(&req.model, "converse"),
            transport::request_body(&translated.body)?,
            None,
        )?;
        let fetched = transport::fetch(call, builder).await?;
        if !(200..300).contains(&fetched.status) {
            return Err(error_from(call, &fetched));
        }
        let native: wire::ConverseResponse =
            transport::parse_answer(call, &fetched.body, "Converse response")?;
        Ok(to_chat_response(
            native,
            &req.model,
            &response_id(&fetched.headers),
            translated.json_tool.as_deref(),
        ))
    }

    async fn chat_stream(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChunkStream> {
        let translated = to_converse_request(req)?;
        let builder = post(
            call,
            &model_path(&req.model, "converse-stream"),
            transport::request_body(&translated.body)?,
            None,
        )?;
        let (resp, deadline) = transport::open(call, builder).await?;
        if !resp.status().is_success() {
            let fetched = transport::read_error_body(call, resp).await;
            return Err(error_from(call, &fetched));
        }
        // A 200 that is not an event stream (a proxy's page) fails here, with a status, rather
        // than as a broken stream.
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(EVENT_STREAM)
            .to_string();
        if !content_type.starts_with(EVENT_STREAM) {
            let fetched = transport::read_error_body(call, resp).await;
            let body = String::from_utf8_lossy(&fetched.body);
            return Err(transport::bad_response(
                call,
                "ConverseStream response",
                format!(
                    "expected {EVENT_STREAM}, got {content_type}: {}",
                    transport::truncate(body.trim(), 200)
                ),
            ));
        }
        let id = response_id(resp.headers());
        let body = TimedBody::new(call, resp, deadline);
        let translator = BedrockStreamTranslator::new(
            call.provider.name.clone(),
            &req.model,
            &id,
            translated.json_tool,
        );
        Ok(Box::pin(TranslatedStream::new(
            body,
            BedrockFrames::new(call.provider.name.clone()),
            translator,
        )))
    }

    async fn embeddings(
        &self,
        call: &Call<'_>,
        req: &EmbeddingRequest,
    ) -> Result<EmbeddingResponse> {
        let family = EmbedFamily::of(&req.model)?;
        let texts = embeddings::input_texts(req)?;
        let bad = |e: String| transport::bad_response(call, "InvokeModel response", e);
        let mut vectors = Vec::with_capacity(texts.len());
        let mut tokens = 0u64;
        match family {
            EmbedFamily::Titan => {
                let bodies = texts
                    .iter()
                    .map(|t| transport::request_body(&embeddings::titan_request(t, req)))
                    .collect::<Result<Vec<_>>>()?;
                let answers: Vec<Fetched> = futures_util::stream::iter(
                    bodies.into_iter().map(|b| invoke(call, &req.model, b)),
                )
                .buffered(TITAN_CONCURRENCY)
                .try_collect()
                .await?;
                for fetched in answers {
                    let (vector, count) = embeddings::parse_titan(&fetched.body).map_err(bad)?;
                    vectors.push(vector);
                    tokens += count;
                }
            }
            EmbedFamily::Cohere => {
                for batch in texts.chunks(COHERE_BATCH) {
                    let body = transport::request_body(&embeddings::cohere_request(batch, req))?;
                    let fetched = invoke(call, &req.model, body).await?;
                    let batch_vectors = embeddings::parse_cohere(&fetched.body).map_err(bad)?;
                    if batch_vectors.len() != batch.len() {
                        return Err(bad(format!(
                            "{} vectors for {} texts",
                            batch_vectors.len(),
                            batch.len()
                        )));
                    }
                    vectors.extend(batch_vectors);
                    tokens += header_tokens(&fetched.headers);
                }
            }
        }
        Ok(embeddings::to_embedding_response(
            vectors,
            &req.model,
            tokens,
            req.wants_base64(),
        ))
    }

    /// Always an empty list: Bedrock's model list (ListFoundationModels) belongs to the `bedrock`
    /// control-plane API, not to `bedrock-runtime`, and needs other permissions. Models listed
    /// under the provider's `models` in the config are advertised instead.
    async fn list_models(&self, _call: &Call<'_>) -> Result<Vec<Model>> {
        Ok(Vec::new())
    }
}
