//! Google's `generateContent` family, spoken by two providers:
//!
//! - [`Gemini`], the Gemini API: `POST {base}/v1beta/models/{model}:generateContent` (and
//!   `:streamGenerateContent?alt=sse`, `:batchEmbedContents`, `GET /v1beta/models`), with the key
//!   in the `x-goog-api-key` header (never in the URL);
//! - [`Vertex`], Vertex AI: `POST {base}/v1/projects/{project}/locations/{region}/publishers/
//!   google/models/{model}:generateContent` with an OAuth token from a service account (or, in
//!   express mode, an API key and `{base}/v1/publishers/google/models/...`), embeddings via
//!   `:predict`.
//!
//! Both send the same bodies; the translations live in [`request`], [`response`] and [`embed`].

pub mod embed;
pub mod request;
pub mod response;
pub mod schema;
pub mod wire;

use super::credentials::Credential;
use super::http_client::RequestBuilder;
use super::stream::TranslatedStream;
use super::transport::{self, Fetched, TimedBody};
use super::{Call, ChunkStream, Provider};
use crate::error::{GatewayError, Result};
use crate::schema::{ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Model};
use crate::sse::SseDecoder;

pub use request::to_generate_content_request;
pub use response::{GeminiStreamTranslator, parse_error_body, to_chat_response};

pub struct Gemini;
pub struct Vertex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Gemini,
    Vertex,
}

/// Model ids go into the URL path; anything that could change the URL's meaning is refused.
fn check_model(call: &Call<'_>, model: &str) -> Result<()> {
    let ok = !model.is_empty()
        && !model.contains("..")
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '@' | ':'));
    if ok {
        Ok(())
    } else {
        Err(GatewayError::invalid_request(format!(
            "model {model:?} is not a valid model id for provider `{}`",
            call.provider.name
        ))
        .with_param("model")
        .with_provider(call.provider.name.clone()))
    }
}

/// `base` with an API version appended unless it already ends with one.
fn versioned(base: &str, version: &str) -> String {
    let last = base.rsplit('/').next().unwrap_or("");
    if last.starts_with("v1") {
        base.to_string()
    } else {
        format!("{base}/{version}")
    }
}

/// The URL of a model action (`generateContent`, `streamGenerateContent?alt=sse`, ...).
fn model_url(flavor: Flavor, call: &Call<'_>, model: &str, action: &str) -> Result<String> {
    check_model(call, model)?;
    match flavor {
        Flavor::Gemini => {
            let model = if model.starts_with("models/") || model.starts_with("tunedModels/") {
                model.to_string()
            } else {
                format!("models/{model}")
            };
            Ok(format!(
                "{}/{model}:{action}",
                versioned(call.base_url, "v1beta")
            ))
        }
        Flavor::Vertex => {
            let base = versioned(call.base_url, "v1");
            if model.starts_with("projects/") || model.starts_with("publishers/") {
                return Ok(format!("{base}/{model}:{action}"));
            }
            // Express mode: an API key, no project.
            if matches!(call.credential, Some(Credential::ApiKey(_))) {
                return Ok(format!("{base}/publishers/google/models/{model}:{action}"));
            }
            let (project, region) = vertex_location(call)?;
            Ok(format!(
                "{base}/projects/{project}/locations/{region}/publishers/google/models/{model}:{action}"
            ))
        }
    }
}

fn vertex_location<'a>(call: &'a Call<'_>) -> Result<(&'a str, &'a str)> {
    let settings = &call.provider.settings;
    let project = settings.project.as_deref().or(match call.credential {
        Some(Credential::ServiceAccount(source)) => source.project_id(),
        _ => None,
    });
    let name = &call.provider.name;
    let project = project.ok_or_else(|| {
        GatewayError::invalid_request(format!(
            "provider `{name}` has no Google Cloud project: set VERTEX_PROJECT, or \
             `providers.{name}.project` in the config"
        ))
        .with_provider(name.clone())
        .with_code("missing_project")
    })?;
    Ok((project, settings.region.as_deref().unwrap_or("us-central1")))
}

/// Adds the credential the way each flavour wants it.
async fn authorize(call: &Call<'_>, builder: RequestBuilder) -> Result<RequestBuilder> {
    Ok(match call.credential {
        Some(Credential::ApiKey(key)) => builder.secret_header("x-goog-api-key", key.expose()),
        Some(Credential::ServiceAccount(source)) => {
            // Fetching a token counts against the request's own deadline.
            let limit = call.timeouts.request.0;
            let token = tokio::time::timeout(limit, source.token(&call.provider.client.current()))
                .await
                .map_err(|_| transport::timeout_error(call, limit))?
                .map_err(|e| {
                    transport::scrub_call_secrets(e.with_provider(call.provider.name.clone()), call)
                })?;
            builder.bearer_secret(&token)
        }
        Some(other) => {
            return Err(GatewayError::invalid_request(format!(
                "provider `{}` cannot authenticate with {}",
                call.provider.name,
                other.describe()
            ))
            .with_provider(call.provider.name.clone()));
        }
        None => builder,
    })
}

fn post(call: &Call<'_>, url: String, body: Vec<u8>) -> RequestBuilder {
    let mut builder = call
        .provider
        .client
        .current()
        .post(&url)
        .header(http::header::CONTENT_TYPE, transport::JSON)
        .body(body);
    for (name, value) in &call.provider.headers {
        builder = builder.secret_header(name.as_str(), value.expose());
    }
    for (name, value) in call.extra_headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
}

fn get(call: &Call<'_>, url: String) -> RequestBuilder {
    let mut builder = call.provider.client.current().get(&url);
    for (name, value) in &call.provider.headers {
        builder = builder.secret_header(name.as_str(), value.expose());
    }
    builder
}

fn error_from(call: &Call<'_>, fetched: &Fetched) -> GatewayError {
    if fetched.status == 401
        && let Some(Credential::ServiceAccount(source)) = call.credential
    {
        // A revoked or expired token: the next call gets a fresh one.
        source.invalidate();
    }
    let parsed = parse_error_body(&fetched.body);
    let mut err = transport::status_error(call, fetched, parsed.body);
    if let Some(status) = parsed.status {
        err = err.with_status(status);
    }
    if err.retry_after.is_none() {
        err.retry_after = parsed.retry_after;
    }
    err
}

async fn fetch_ok(call: &Call<'_>, builder: RequestBuilder) -> Result<Fetched> {
    let fetched = transport::fetch(call, builder).await?;
    if !(200..300).contains(&fetched.status) {
        return Err(error_from(call, &fetched));
    }
    Ok(fetched)
}

async fn chat(flavor: Flavor, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse> {
    let body = transport::request_body(&to_generate_content_request(req)?)?;
    let url = model_url(flavor, call, &req.model, "generateContent")?;
    let builder = authorize(call, post(call, url, body)).await?;
    let fetched = fetch_ok(call, builder).await?;
    let native: wire::GenerateContentResponse =
        transport::parse_answer(call, &fetched.body, "response")?;
    Ok(to_chat_response(native, &req.model))
}

async fn chat_stream(flavor: Flavor, call: &Call<'_>, req: &ChatRequest) -> Result<ChunkStream> {
    let body = transport::request_body(&to_generate_content_request(req)?)?;
    let url = model_url(flavor, call, &req.model, "streamGenerateContent?alt=sse")?;
    let builder = authorize(call, post(call, url, body))
        .await?
        .header(http::header::ACCEPT, transport::EVENT_STREAM);
    let (resp, deadline) = transport::open(call, builder).await?;
    if !resp.status().is_success() {
        let fetched = transport::read_error_body(call, resp).await;
        return Err(error_from(call, &fetched));
    }
    let body = TimedBody::new(call, resp, deadline);
    let translator = GeminiStreamTranslator::new(call.provider.name.clone(), &req.model);
    Ok(Box::pin(TranslatedStream::new(
        body,
        SseDecoder::new(),
        translator,
    )))
}

impl Provider for Gemini {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse> {
        chat(Flavor::Gemini, call, req).await
    }

    async fn chat_stream(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChunkStream> {
        chat_stream(Flavor::Gemini, call, req).await
    }

    async fn embeddings(
        &self,
        call: &Call<'_>,
        req: &EmbeddingRequest,
    ) -> Result<EmbeddingResponse> {
        let body = transport::request_body(&embed::to_batch_embed_request(req)?)?;
        let url = model_url(Flavor::Gemini, call, &req.model, "batchEmbedContents")?;
        let builder = authorize(call, post(call, url, body)).await?;
        let fetched = fetch_ok(call, builder).await?;
        let native: wire::BatchEmbedContentsResponse =
            transport::parse_answer(call, &fetched.body, "embeddings response")?;
        if native.embeddings.len() != req.input.len() {
            return Err(transport::bad_response(
                call,
                "embeddings response",
                format!(
                    "{} embeddings for {} inputs",
                    native.embeddings.len(),
                    req.input.len()
                ),
            ));
        }
        Ok(embed::from_batch_embed_response(native, req))
    }

    async fn list_models(&self, call: &Call<'_>) -> Result<Vec<Model>> {
        let url = format!(
            "{}/models?pageSize=1000",
            versioned(call.base_url, "v1beta")
        );
        list_model_names(call, url, "models").await
    }
}

impl Provider for Vertex {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse> {
        chat(Flavor::Vertex, call, req).await
    }

    async fn chat_stream(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChunkStream> {
        chat_stream(Flavor::Vertex, call, req).await
    }

    async fn embeddings(
        &self,
        call: &Call<'_>,
        req: &EmbeddingRequest,
    ) -> Result<EmbeddingResponse> {
        let body = transport::request_body(&embed::to_predict_request(req)?)?;
        let url = model_url(Flavor::Vertex, call, &req.model, "predict")?;
        let builder = authorize(call, post(call, url, body)).await?;
        let fetched = fetch_ok(call, builder).await?;
        let native: wire::PredictResponse =
            transport::parse_answer(call, &fetched.body, "embeddings response")?;
        if native.predictions.len() != req.input.len() {
            return Err(transport::bad_response(
                call,
                "embeddings response",
                format!(
                    "{} predictions for {} inputs",
                    native.predictions.len(),
                    req.input.len()
                ),
            ));
        }
        Ok(embed::from_predict_response(native, req))
    }

    /// Google's publisher models (`GET {base}/v1beta1/publishers/google/models`).
    async fn list_models(&self, call: &Call<'_>) -> Result<Vec<Model>> {
        let base = call.base_url.trim_end_matches("/v1");
        let url = format!("{base}/v1beta1/publishers/google/models?pageSize=1000");
        list_model_names(call, url, "publisherModels").await
    }
}

/// A models list: `{"<field>": [{"name": "models/gemini-2.0-flash"}, ...]}` (the Gemini API's
/// `models`, Vertex AI's `publisherModels` with `publishers/google/models/...` names).
async fn list_model_names(call: &Call<'_>, url: String, field: &str) -> Result<Vec<Model>> {
    let builder = authorize(call, get(call, url)).await?;
    let fetched = fetch_ok(call, builder).await?;
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }
    let mut listed: serde_json::Map<String, serde_json::Value> =
        transport::parse_answer(call, &fetched.body, "models list")?;
    let entries: Vec<Named> = match listed.remove(field) {
        Some(v) => serde_json::from_value(v)
            .map_err(|e| transport::bad_response(call, "models list", e))?,
        None => Vec::new(),
    };
    Ok(entries
        .into_iter()
        .map(|m| Model::new(m.name.rsplit('/').next().unwrap_or(&m.name), "google"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::providers::ProviderRegistry;
    use std::collections::HashMap;

    fn registry(pairs: &[(&str, &str)]) -> ProviderRegistry {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (config, health) = (
            Config::default(),
            crate::router::health::HealthRegistry::default(),
        );
        let context = crate::providers::BuildContext::new(&config, &env, &health).unwrap();
        ProviderRegistry::build(&context).unwrap()
    }

    #[test]
    fn presets_read_google_variables() {
        let reg = registry(&[("GOOGLE_API_KEY", "g-key"), ("VERTEX_PROJECT", "proj")]);
        let gemini = reg.get("gemini").unwrap();
        assert_eq!(gemini.base_url, "https://generativelanguage.googleapis.com");
        assert_eq!(&*gemini.keys.first().unwrap().name, "GOOGLE_API_KEY");
        let vertex = reg.get("vertex").unwrap();
        assert_eq!(
            vertex.base_url,
            "https://us-central1-aiplatform.googleapis.com"
        );
        assert_eq!(vertex.settings.project.as_deref(), Some("proj"));
        assert!(vertex.keys.is_empty() && vertex.requires_key);

        let reg = registry(&[("VERTEX_LOCATION", "global")]);
        assert_eq!(
            reg.get("vertex").unwrap().base_url,
            "https://aiplatform.googleapis.com"
        );
        let reg = registry(&[("GOOGLE_CLOUD_REGION", "europe-west4")]);
        assert_eq!(
            reg.get("vertex").unwrap().base_url,
            "https://europe-west4-aiplatform.googleapis.com"
        );
        let reg = registry(&[("VERTEX_BASE_URL", "http://127.0.0.1:9/")]);
        let vertex = reg.get("vertex").unwrap();
        assert_eq!(vertex.base_url, "http://127.0.0.1:9");
        assert!(vertex.active && !vertex.requires_key);
        // A stale GOOGLE_APPLICATION_CREDENTIALS does not stop a gateway that does not use Vertex.
        let reg = registry(&[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/adc.json")]);
        assert!(reg.get("vertex").unwrap().keys.is_empty());
    }

    #[test]
    fn versions_are_appended_once() {
        assert_eq!(versioned("https://h", "v1beta"), "https://h/v1beta");
        assert_eq!(versioned("https://h/v1beta", "v1beta"), "https://h/v1beta");
        assert_eq!(
            versioned("http://127.0.0.1:9/v1", "v1beta"),
            "http://127.0.0.1:9/v1"
        );
    }
}
