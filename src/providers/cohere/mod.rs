//! Cohere v2 API: `POST {base}/v2/chat` (JSON and SSE), `POST {base}/v2/embed`,
//! `GET {base}/v1/models`, authenticated with `Authorization: Bearer <key>`.
//!
//! The base URL is the API root (`https://api.cohere.com`); a base URL ending in `/v1` or `/v2`
//! (as some tools write it) is accepted and the version suffix dropped.

pub mod request;
pub mod response;
pub mod wire;

use super::http_client::RequestBuilder;
use super::stream::TranslatedStream;
use super::transport::{self, Fetched, TimedBody};
use super::{Call, ChunkStream, Provider};
use crate::error::{GatewayError, Result};
use crate::schema::{ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Model};
use crate::sse::SseDecoder;

pub use request::{DEFAULT_INPUT_TYPE, to_chat_request, to_embed_request};
pub use response::{CohereStreamTranslator, to_chat_response, to_embedding_response};

/// Sent as `X-Client-Name`, Cohere's header for telling which client made a request.
pub const CLIENT_NAME: &str = "ferrogate";

pub struct Cohere;

/// The API root of a base URL: `https://api.cohere.com/v2` and `.../v1` both mean
/// `https://api.cohere.com`.
pub fn api_root(base_url: &str) -> &str {
    let base = base_url.trim_end_matches('/');
    base.strip_suffix("/v2")
        .or_else(|| base.strip_suffix("/v1"))
        .unwrap_or(base)
}

fn url_call<'a>(call: &Call<'a>) -> Call<'a> {
    Call {
        provider: call.provider,
        credential: call.credential,
        base_url: api_root(call.base_url),
        timeouts: call.timeouts,
        extra_headers: call.extra_headers,
    }
}

fn headers(call: &Call<'_>, builder: RequestBuilder) -> RequestBuilder {
    let builder = builder.header("X-Client-Name", CLIENT_NAME);
    match call.credential.and_then(|c| c.api_key()) {
        Some(key) => builder.bearer_secret(key),
        None => builder,
    }
}

fn error_from(call: &Call<'_>, fetched: &Fetched) -> GatewayError {
    let parsed = response::parse_error_body(fetched.status, &fetched.body);
    let err = transport::status_error(call, fetched, parsed);
    match response::client_status(fetched.status) {
        Some(status) => err.with_status(status),
        None => err,
    }
}

impl Provider for Cohere {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse> {
        let call = &url_call(call);
        let body = transport::request_body(&to_chat_request(req, false)?)?;
        let builder = headers(call, transport::json_post(call, "/v2/chat", body));
        let fetched = transport::fetch(call, builder).await?;
        if !(200..300).contains(&fetched.status) {
            return Err(error_from(call, &fetched));
        }
        let native: wire::ChatResponse =
            transport::parse_answer(call, &fetched.body, "chat response")?;
        Ok(to_chat_response(native, &req.model))
    }

    async fn chat_stream(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChunkStream> {
        let call = &url_call(call);
        let body = transport::request_body(&to_chat_request(req, true)?)?;
        let builder = headers(call, transport::json_post(call, "/v2/chat", body))
            .header(http::header::ACCEPT, "text/event-stream");
        let (resp, deadline) = transport::open(call, builder).await?;
        if !resp.status().is_success() {
            let fetched = transport::read_error_body(call, resp).await;
            return Err(error_from(call, &fetched));
        }
        let body = TimedBody::new(call, resp, deadline);
        let translator = CohereStreamTranslator::new(call.provider.name.clone(), &req.model);
        Ok(Box::pin(TranslatedStream::new(
            body,
            SseDecoder::new(),
            translator,
        )))
    }

    async fn embeddings(
        &self,
        call: &Call<'_>,
        req: &EmbeddingRequest,
    ) -> Result<EmbeddingResponse> {
        let call = &url_call(call);
        let body = transport::request_body(&to_embed_request(req)?)?;
        let builder = headers(call, transport::json_post(call, "/v2/embed", body));
        let fetched = transport::fetch(call, builder).await?;
        if !(200..300).contains(&fetched.status) {
            return Err(error_from(call, &fetched));
        }
        let native: wire::EmbedResponse =
            transport::parse_answer(call, &fetched.body, "embed response")?;
        to_embedding_response(native, &req.model, req.wants_base64())
            .map_err(|e| transport::bad_response(call, "embed response", e))
    }

    async fn list_models(&self, call: &Call<'_>) -> Result<Vec<Model>> {
        let call = &url_call(call);
        let builder = headers(
            call,
            transport::request(call, http::Method::GET, "/v1/models?page_size=1000"),
        );
        let fetched = transport::fetch(call, builder).await?;
        if !(200..300).contains(&fetched.status) {
            return Err(error_from(call, &fetched));
        }
        response::parse_models(&fetched.body)
            .map_err(|e| transport::bad_response(call, "models list", e))
    }
}
