//! Anthropic Messages API (`POST {base}/v1/messages`, `x-api-key`, `anthropic-version`).

pub mod request;
pub mod response;
pub mod wire;

use super::http_client::RequestBuilder;
use super::stream::TranslatedStream;
use super::transport::{self, Fetched, TimedBody};
use super::{Call, ChunkStream, Provider};
use crate::error::{ErrorKind, GatewayError, Result};
use crate::schema::{ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Model};
use crate::sse::SseDecoder;

pub use request::{DEFAULT_MAX_TOKENS, to_messages_request};
pub use response::{AnthropicStreamTranslator, to_chat_response};

pub struct Anthropic;

fn headers(call: &Call<'_>, builder: RequestBuilder) -> RequestBuilder {
    let version = call
        .provider
        .settings
        .api_version
        .as_deref()
        .unwrap_or(wire::DEFAULT_VERSION);
    let builder = builder.header("anthropic-version", version);
    match call.credential.and_then(|c| c.api_key()) {
        Some(key) => builder.secret_header("x-api-key", key.expose()),
        None => builder,
    }
}

fn error_from(call: &Call<'_>, fetched: &Fetched) -> GatewayError {
    let mut parsed = response::parse_error_body(&fetched.body);
    let mut err_status = None;
    if fetched.status == 529 {
        // "Overloaded" is Anthropic-specific; clients know it as 503.
        parsed.kind = Some(ErrorKind::Unavailable);
        err_status = Some(503);
    }
    let err = transport::status_error(call, fetched, parsed);
    match err_status {
        Some(s) => err.with_status(s),
        None => err,
    }
}

impl Provider for Anthropic {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse> {
        let translated = to_messages_request(req, false)?;
        let builder = headers(
            call,
            transport::json_post(
                call,
                "/v1/messages",
                transport::request_body(&translated.body)?,
            ),
        );
        let fetched = transport::fetch(call, builder).await?;
        if !(200..300).contains(&fetched.status) {
            return Err(error_from(call, &fetched));
        }
        let native: wire::MessagesResponse =
            transport::parse_answer(call, &fetched.body, "message")?;
        Ok(to_chat_response(native, translated.json_tool.as_deref()))
    }

    async fn chat_stream(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChunkStream> {
        let translated = to_messages_request(req, true)?;
        let builder = headers(
            call,
            transport::json_post(
                call,
                "/v1/messages",
                transport::request_body(&translated.body)?,
            ),
        )
        .header(http::header::ACCEPT, transport::EVENT_STREAM);
        let (resp, deadline) = transport::open(call, builder).await?;
        if !resp.status().is_success() {
            let fetched = transport::read_error_body(call, resp).await;
            return Err(error_from(call, &fetched));
        }
        let body = TimedBody::new(call, resp, deadline);
        let translator =
            AnthropicStreamTranslator::new(call.provider.name.clone(), translated.json_tool);
        Ok(Box::pin(TranslatedStream::new(
            body,
            SseDecoder::new(),
            translator,
        )))
    }

    async fn embeddings(
        &self,
        call: &Call<'_>,
        _req: &EmbeddingRequest,
    ) -> Result<EmbeddingResponse> {
        Err(GatewayError::invalid_request(format!(
            "provider `{}` (Anthropic) does not offer embeddings",
            call.provider.name
        ))
        .with_provider(call.provider.name.clone())
        .with_code("unsupported_operation"))
    }

    async fn list_models(&self, call: &Call<'_>) -> Result<Vec<Model>> {
        let builder = headers(
            call,
            transport::request(call, http::Method::GET, "/v1/models"),
        );
        let fetched = transport::fetch(call, builder).await?;
        if !(200..300).contains(&fetched.status) {
            return Err(error_from(call, &fetched));
        }
        #[derive(serde::Deserialize)]
        struct Listed {
            data: Vec<ListedModel>,
        }
        #[derive(serde::Deserialize)]
        struct ListedModel {
            id: String,
        }
        let listed: Listed = transport::parse_answer(call, &fetched.body, "models list")?;
        Ok(listed
            .data
            .into_iter()
            .map(|m| Model::new(m.id, "anthropic"))
            .collect())
    }
}
