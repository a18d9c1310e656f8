//! Azure OpenAI. The wire format is OpenAI's (the translations and the stream translator of
//! [`super::openai`] are reused); Azure differs in where requests go and how they authenticate:
//!
//! - the base URL is the resource endpoint, `https://<resource>.openai.azure.com` (a base URL
//!   ending in `/openai` or `/openai/v1` is accepted too);
//! - `api_version` chooses the API surface:
//!   - a dated version (default [`DEFAULT_API_VERSION`], the current GA data-plane version):
//!     `{base}/openai/deployments/{deployment}/chat/completions?api-version=<version>`, likewise
//!     `/embeddings`; the deployment is `deployments[model]` from the config, else the model name;
//!   - `v1`: the versionless v1 API, `{base}/openai/v1/chat/completions` (GA since August 2025),
//!     with the deployment name as `model`; `preview` is the same with `?api-version=preview`,
//!     for preview features during the v1 API's preview; a base URL ending in `/openai/v1` also
//!     selects the v1 API;
//! - keys go in the `api-key` header;
//! - content-filter errors (400, `code: content_filter`, details in `innererror`) become
//!   `ContentFiltered`; filtered completions keep `finish_reason: content_filter`;
//!   `prompt_filter_results` and `content_filter_results` are kept as extra fields (in a stream,
//!   Azure's leading prompt-filter chunk, which has no choices, is folded into the next chunk);
//! - 429s carry `retry-after-ms`, which the transport honours.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::http_client::RequestBuilder;
use super::openai::{self, OpenAiStreamTranslator};
use super::stream::{Flow, StreamTranslator, TranslatedStream};
use super::transport::{self, Fetched, UpstreamErrorBody};
use super::{ApiSettings, Call, ChunkStream, Provider};
use crate::error::{ErrorKind, GatewayError, Result};
use crate::schema::{
    ChatChunk, ChatReply, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Model,
};
use crate::sse::{SseDecoder, SseEvent};

/// The latest GA `api-version` of the Azure OpenAI data-plane inference API.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

pub struct Azure;

/// Which Azure OpenAI API surface requests go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Surface {
    /// `/openai/deployments/{deployment}/...?api-version=<version>`.
    Deployments { api_version: String },
    /// `/openai/v1/...`, with `?api-version=` only when set (`preview`).
    V1 { api_version: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ChatCompletions,
    Embeddings,
    Models,
}

/// Where a request goes: the resource root and the path (with query) under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub root: String,
    pub path: String,
}

impl Target {
    pub fn url(&self) -> String {
        format!("{}{}", self.root, self.path)
    }
}

/// The API surface for a base URL and configured `api_version`.
pub fn surface(base_url: &str, api_version: Option<&str>) -> (String, Surface) {
    let base = base_url.trim_end_matches('/');
    if let Some(root) = base.strip_suffix("/openai/v1") {
        let api_version = api_version.filter(|v| *v == "preview").map(str::to_string);
        return (root.to_string(), Surface::V1 { api_version });
    }
    let root = base.strip_suffix("/openai").unwrap_or(base).to_string();
    let surface = match api_version.map(str::trim) {
        Some("v1") => Surface::V1 { api_version: None },
        Some("preview") => Surface::V1 {
            api_version: Some("preview".into()),
        },
        Some(v) if !v.is_empty() => Surface::Deployments {
            api_version: v.to_string(),
        },
        _ => Surface::Deployments {
            api_version: DEFAULT_API_VERSION.into(),
        },
    };
    (root, surface)
}

/// The deployment serving a model: `deployments[model]` from the config, else the model name.
pub fn deployment<'a>(settings: &'a ApiSettings, model: &'a str) -> &'a str {
    settings
        .deployments
        .get(model)
        .map(String::as_str)
        .unwrap_or(model)
}

/// Where `op` for `model` goes.
pub fn target(base_url: &str, settings: &ApiSettings, op: Operation, model: &str) -> Target {
    let (root, surface) = surface(base_url, settings.api_version.as_deref());
    let path = match &surface {
        Surface::Deployments { api_version } => {
            let version = encode_component(api_version);
            let deployment = encode_component(deployment(settings, model));
            match op {
                Operation::ChatCompletions => format!(
                    "/openai/deployments/{deployment}/chat/completions?api-version={version}"
                ),
                Operation::Embeddings => {
                    format!("/openai/deployments/{deployment}/embeddings?api-version={version}")
                }
                Operation::Models => format!("/openai/models?api-version={version}"),
            }
        }
        Surface::V1 { api_version } => {
            let route = match op {
                Operation::ChatCompletions => "chat/completions",
                Operation::Embeddings => "embeddings",
                Operation::Models => "models",
            };
            match api_version {
                Some(v) => format!("/openai/v1/{route}?api-version={}", encode_component(v)),
                None => format!("/openai/v1/{route}"),
            }
        }
    };
    Target { root, path }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The chat body: OpenAI's, with the deployment as `model` (which the v1 API routes on).
pub fn chat_request_body(req: &ChatRequest, deployment: &str) -> Result<Vec<u8>> {
    if req.model == deployment {
        return openai::chat_request_body(req);
    }
    let mut req = req.clone();
    req.model = deployment.to_string();
    openai::chat_request_body(&req)
}

pub fn embeddings_request_body(req: &EmbeddingRequest, deployment: &str) -> Result<Vec<u8>> {
    if req.model == deployment {
        return openai::embeddings_request_body(req);
    }
    let mut req = req.clone();
    req.model = deployment.to_string();
    openai::embeddings_request_body(&req)
}

#[derive(Deserialize)]
struct InnerErrorEnvelope {
    error: InnerErrorHolder,
}

#[derive(Deserialize)]
struct InnerErrorHolder {
    #[serde(default)]
    innererror: Option<InnerError>,
}

#[derive(Deserialize)]
struct InnerError {
    #[serde(default)]
    code: Option<String>,
}

/// An Azure error body: OpenAI's shape, plus `innererror` on content-filter errors.
pub fn parse_error_body(body: &[u8]) -> UpstreamErrorBody {
    let mut parsed = openai::parse_error_body(body);
    let inner = serde_json::from_slice::<InnerErrorEnvelope>(body)
        .ok()
        .and_then(|e| e.error.innererror)
        .and_then(|i| i.code);
    if inner.as_deref() == Some("ResponsibleAIPolicyViolation") {
        parsed.kind = Some(ErrorKind::ContentFiltered);
    }
    parsed
}

fn error_from(call: &Call<'_>, fetched: &Fetched) -> GatewayError {
    transport::status_error(call, fetched, parse_error_body(&fetched.body))
}

/// OpenAI's stream translation, with Azure's choice-less prompt-filter chunk folded into the
/// chunk after it (clients index `choices[0]` of every chunk but the final usage one).
#[derive(Debug)]
pub struct AzureStreamTranslator {
    inner: OpenAiStreamTranslator,
    prompt_filter_results: Option<Value>,
}

impl AzureStreamTranslator {
    pub fn new(provider: Arc<str>) -> Self {
        AzureStreamTranslator {
            inner: OpenAiStreamTranslator::new(provider),
            prompt_filter_results: None,
        }
    }
}

impl StreamTranslator<SseEvent> for AzureStreamTranslator {
    type Chunk = ChatChunk;

    fn frame(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
        let start = out.len();
        let flow = self.inner.frame(event, out)?;
        let mut i = start;
        while i < out.len() {
            let chunk = &mut out[i];
            if chunk.choices.is_empty()
                && chunk.usage.is_none()
                && let Some(results) = chunk.extra.remove("prompt_filter_results")
            {
                self.prompt_filter_results = Some(results);
                out.remove(i);
                continue;
            }
            if let Some(results) = self.prompt_filter_results.take() {
                chunk
                    .extra
                    .entry("prompt_filter_results")
                    .or_insert(results);
            }
            i += 1;
        }
        Ok(flow)
    }

    fn end(&mut self, truncated: bool, out: &mut VecDeque<ChatChunk>) -> Result<()> {
        self.inner.end(truncated, out)
    }
}

fn authorized(call: &Call<'_>, builder: RequestBuilder) -> RequestBuilder {
    match call.credential.and_then(|c| c.api_key()) {
        Some(key) => builder.secret_header("api-key", key.expose()),
        None => builder,
    }
}

/// The call aimed at the resource root (the base URL may carry `/openai` or `/openai/v1`).
fn rooted<'a>(call: &Call<'a>, root: &'a str) -> Call<'a> {
    Call {
        provider: call.provider,
        credential: call.credential,
        base_url: root,
        timeouts: call.timeouts,
        extra_headers: call.extra_headers,
    }
}

impl Azure {
    /// The upstream's answer to a chat completion, checked for an error status.
    async fn fetch_chat(call: &Call<'_>, req: &ChatRequest) -> Result<Fetched> {
        let body = chat_request_body(req, deployment(&call.provider.settings, &req.model))?;
        let target = target(
            call.base_url,
            &call.provider.settings,
            Operation::ChatCompletions,
            &req.model,
        );
        let call = &rooted(call, &target.root);
        let builder = authorized(call, transport::json_post(call, &target.path, body));
        let fetched = transport::fetch(call, builder).await?;
        if !openai::is_success(fetched.status) {
            return Err(error_from(call, &fetched));
        }
        Ok(fetched)
    }

    /// As [`Provider::chat`], for a caller that passes OpenAI JSON on: a complete answer is kept
    /// as it came ([`openai::read_chat_reply`]).
    pub async fn chat_reply(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatReply> {
        let fetched = Self::fetch_chat(call, req).await?;
        openai::read_chat_reply(&fetched.body)
            .map_err(|e| transport::bad_response(call, "chat completion", e))
    }
}

impl Provider for Azure {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse> {
        let fetched = Self::fetch_chat(call, req).await?;
        openai::parse_chat_response(&fetched.body)
            .map_err(|e| transport::bad_response(call, "chat completion", e))
    }

    async fn chat_stream(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChunkStream> {
        let body = chat_request_body(req, deployment(&call.provider.settings, &req.model))?;
        let target = target(
            call.base_url,
            &call.provider.settings,
            Operation::ChatCompletions,
            &req.model,
        );
        let call = &rooted(call, &target.root);
        let builder = authorized(call, transport::json_post(call, &target.path, body));
        let body = openai::open_event_stream(call, builder, error_from).await?;
        let translator = AzureStreamTranslator::new(call.provider.name.clone());
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
        let body = embeddings_request_body(req, deployment(&call.provider.settings, &req.model))?;
        let target = target(
            call.base_url,
            &call.provider.settings,
            Operation::Embeddings,
            &req.model,
        );
        let call = &rooted(call, &target.root);
        let builder = authorized(call, transport::json_post(call, &target.path, body));
        let fetched = transport::fetch(call, builder).await?;
        if !openai::is_success(fetched.status) {
            return Err(error_from(call, &fetched));
        }
        openai::parse_embeddings_response(&fetched.body)
            .map_err(|e| transport::bad_response(call, "embeddings response", e))
    }

    /// The configured deployments when there are any (what callers can use); otherwise the
    /// models the resource offers.
    async fn list_models(&self, call: &Call<'_>) -> Result<Vec<Model>> {
        let settings = &call.provider.settings;
        if !settings.deployments.is_empty() {
            let mut names: Vec<&String> = settings.deployments.keys().collect();
            names.sort();
            return Ok(names
                .into_iter()
                .map(|m| Model::new(m.clone(), call.provider.name.to_string()))
                .collect());
        }
        if call.base_url.is_empty() {
            return Err(GatewayError::invalid_request(format!(
                "provider `{}` has no endpoint configured",
                call.provider.name
            ))
            .with_provider(call.provider.name.clone())
            .with_code("missing_base_url"));
        }
        let target = target(call.base_url, settings, Operation::Models, "");
        let call = &rooted(call, &target.root);
        let builder = authorized(
            call,
            transport::request(call, http::Method::GET, &target.path),
        );
        let fetched = transport::fetch(call, builder).await?;
        if !openai::is_success(fetched.status) {
            return Err(error_from(call, &fetched));
        }
        openai::parse_models(&fetched.body)
            .map_err(|e| transport::bad_response(call, "models list", e))
    }
}
