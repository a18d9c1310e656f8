//! Provider adapters. Each native API has one file with its pure translations (canonical <->
//! native) and a [`Provider`] implementation that sends them; [`ApiKind`] dispatches to them.
//! A [`ProviderRuntime`] is one configured provider: its base URL, keys, timeouts and HTTP client.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod cohere;
pub mod credentials;
pub mod gemini;
pub mod google_auth;
pub mod http_client;
pub mod openai;
pub mod pool;
pub mod presets;
pub mod stream;
pub mod transport;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use serde::{Deserialize, Serialize};
use transport::UpstreamClient;

use crate::config::{Config, ConfigError, ProviderConfig, Timeouts};
use crate::error::Result;
use crate::router::health::HealthRegistry;
use crate::router::keys::KeyPool;
use crate::router::queue::Gate;
use crate::router::retry::RetryBudget;
use crate::schema::{
    ChatChunk, ChatReply, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Model,
    StreamChunk,
};
use crate::secret::Secret;
use credentials::Credential;

pub use presets::Preset;

/// A stream of canonical chunks from one upstream call.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk>> + Send>>;
/// A stream whose chunks may still be in the upstream's JSON ([`StreamChunk::Raw`]), for a caller
/// that passes them on as OpenAI JSON.
pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<StreamChunk>> + Send>>;

/// A stream of parsed chunks, as a [`ReplyStream`].
pub fn reply_stream(stream: ChunkStream) -> ReplyStream {
    use futures_util::TryStreamExt;
    Box::pin(stream.map_ok(|c| StreamChunk::Parsed(Box::new(c))))
}

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ApiKind {
    /// OpenAI Chat Completions, also spoken by the OpenAI-compatible family.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages.
    #[serde(rename = "anthropic")]
    Anthropic,
    /// AWS Bedrock Converse / ConverseStream (SigV4).
    #[serde(rename = "bedrock")]
    Bedrock,
    /// Cohere v2 (chat, embed).
    #[serde(rename = "cohere")]
    Cohere,
    /// Azure OpenAI: OpenAI's wire format at deployment URLs with an `api-version`.
    #[serde(rename = "azure")]
    Azure,
    /// Google Gemini API (`generateContent`, API key).
    #[serde(rename = "gemini")]
    Gemini,
    /// Google Vertex AI (`generateContent` on a project and region, service-account OAuth).
    #[serde(rename = "vertex")]
    Vertex,
}

impl ApiKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKind::OpenAi => "openai",
            ApiKind::Anthropic => "anthropic",
            ApiKind::Bedrock => "bedrock",
            ApiKind::Cohere => "cohere",
            ApiKind::Azure => "azure",
            ApiKind::Gemini => "gemini",
            ApiKind::Vertex => "vertex",
        }
    }
}

/// One request to one upstream, with everything an adapter needs besides the request itself.
/// `req.model` already holds the provider's own model id when an adapter sees the request.
pub struct Call<'a> {
    pub provider: &'a ProviderRuntime,
    pub credential: Option<&'a Credential>,
    pub base_url: &'a str,
    pub timeouts: Timeouts,
    /// Headers the caller asked to add to this request.
    pub extra_headers: &'a [(String, String)],
}

/// What every adapter does. Implementations hold no per-request state; everything arrives in the
/// [`Call`].
pub trait Provider {
    fn chat(
        &self,
        call: &Call<'_>,
        req: &ChatRequest,
    ) -> impl Future<Output = Result<ChatResponse>> + Send;
    fn chat_stream(
        &self,
        call: &Call<'_>,
        req: &ChatRequest,
    ) -> impl Future<Output = Result<ChunkStream>> + Send;
    fn embeddings(
        &self,
        call: &Call<'_>,
        req: &EmbeddingRequest,
    ) -> impl Future<Output = Result<EmbeddingResponse>> + Send;
    fn list_models(&self, call: &Call<'_>) -> impl Future<Output = Result<Vec<Model>>> + Send;
}

impl ApiKind {
    pub async fn chat(self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse> {
        match self {
            ApiKind::OpenAi => openai::OpenAi.chat(call, req).await,
            ApiKind::Anthropic => anthropic::Anthropic.chat(call, req).await,
            ApiKind::Bedrock => bedrock::Bedrock.chat(call, req).await,
            ApiKind::Cohere => cohere::Cohere.chat(call, req).await,
            ApiKind::Azure => azure::Azure.chat(call, req).await,
            ApiKind::Gemini => gemini::Gemini.chat(call, req).await,
            ApiKind::Vertex => gemini::Vertex.chat(call, req).await,
        }
    }

    /// A chat completion for a caller that passes OpenAI JSON on (the server's OpenAI route): an
    /// OpenAI-format upstream's complete answer is kept as it came ([`ChatReply::Raw`]), with no
    /// parse and encode; the others' are translated as by [`ApiKind::chat`].
    pub async fn chat_reply(self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatReply> {
        match self {
            ApiKind::OpenAi => openai::OpenAi.chat_reply(call, req).await,
            ApiKind::Azure => azure::Azure.chat_reply(call, req).await,
            _ => self.chat(call, req).await.map(ChatReply::Parsed),
        }
    }

    pub async fn chat_stream(self, call: &Call<'_>, req: &ChatRequest) -> Result<ChunkStream> {
        match self {
            ApiKind::OpenAi => openai::OpenAi.chat_stream(call, req).await,
            ApiKind::Anthropic => anthropic::Anthropic.chat_stream(call, req).await,
            ApiKind::Bedrock => bedrock::Bedrock.chat_stream(call, req).await,
            ApiKind::Cohere => cohere::Cohere.chat_stream(call, req).await,
            ApiKind::Azure => azure::Azure.chat_stream(call, req).await,
            ApiKind::Gemini => gemini::Gemini.chat_stream(call, req).await,
            ApiKind::Vertex => gemini::Vertex.chat_stream(call, req).await,
        }
    }

    /// A streamed chat completion for a caller that passes OpenAI JSON on (the server's OpenAI
    /// route): an OpenAI-format upstream's complete chunks are kept as they came
    /// ([`StreamChunk::Raw`]); the others' are translated as by [`ApiKind::chat_stream`]. (Azure's
    /// are parsed: its prompt-filter chunk is folded into the next one.)
    pub async fn chat_stream_reply(
        self,
        call: &Call<'_>,
        req: &ChatRequest,
    ) -> Result<ReplyStream> {
        match self {
            ApiKind::OpenAi => openai::OpenAi.chat_stream_reply(call, req).await,
            _ => self.chat_stream(call, req).await.map(reply_stream),
        }
    }

    pub async fn embeddings(
        self,
        call: &Call<'_>,
        req: &EmbeddingRequest,
    ) -> Result<EmbeddingResponse> {
        match self {
            ApiKind::OpenAi => openai::OpenAi.embeddings(call, req).await,
            ApiKind::Anthropic => anthropic::Anthropic.embeddings(call, req).await,
            ApiKind::Bedrock => bedrock::Bedrock.embeddings(call, req).await,
            ApiKind::Cohere => cohere::Cohere.embeddings(call, req).await,
            ApiKind::Azure => azure::Azure.embeddings(call, req).await,
            ApiKind::Gemini => gemini::Gemini.embeddings(call, req).await,
            ApiKind::Vertex => gemini::Vertex.embeddings(call, req).await,
        }
    }

    pub async fn list_models(self, call: &Call<'_>) -> Result<Vec<Model>> {
        match self {
            ApiKind::OpenAi => openai::OpenAi.list_models(call).await,
            ApiKind::Anthropic => anthropic::Anthropic.list_models(call).await,
            ApiKind::Bedrock => bedrock::Bedrock.list_models(call).await,
            ApiKind::Cohere => cohere::Cohere.list_models(call).await,
            ApiKind::Azure => azure::Azure.list_models(call).await,
            ApiKind::Gemini => gemini::Gemini.list_models(call).await,
            ApiKind::Vertex => gemini::Vertex.list_models(call).await,
        }
    }
}

/// Where configuration reads environment variables from (the process, or a map in tests).
pub trait EnvSource {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// API-specific settings of a provider.
#[derive(Debug, Clone, Default)]
pub struct ApiSettings {
    /// Azure `api-version`, Anthropic `anthropic-version`.
    pub api_version: Option<String>,
    /// Azure: model name -> deployment name.
    pub deployments: HashMap<String, String>,
    /// Cloud region (Bedrock, Vertex AI).
    pub region: Option<String>,
    /// Cloud project (Vertex AI).
    pub project: Option<String>,
}

/// One provider, resolved from its preset, its config and the environment.
#[derive(Debug)]
pub struct ProviderRuntime {
    pub name: Arc<str>,
    pub api: ApiKind,
    /// The root the API's paths are appended to; empty when none is known (Azure without a
    /// resource endpoint), which makes calls fail with a message saying what to set.
    pub base_url: String,
    pub keys: KeyPool,
    /// Static headers from the config, sent on every request.
    pub headers: Vec<(String, Secret)>,
    pub timeouts: Timeouts,
    pub client: UpstreamClient,
    pub requires_key: bool,
    pub stream_usage: bool,
    pub settings: ApiSettings,
    /// Concurrency limit and queue.
    pub gate: Gate,
    pub retry_budget: RetryBudget,
    /// Models from the config, advertised by `GET /v1/models`.
    pub advertised_models: Vec<String>,
    /// Configured, or credentials/base URL found in the environment: worth listing in `/v1/models`.
    pub active: bool,
    /// Where the base URL came from, for error messages (`OPENAI_BASE_URL`, `config`, `default`).
    pub base_url_source: String,
    /// The variables that would configure this provider, for error messages.
    pub hint: ProviderHint,
}

/// Which variables configure a provider (first of each list), for error messages.
#[derive(Debug, Clone, Default)]
pub struct ProviderHint {
    pub key_var: Option<&'static str>,
    pub base_url_var: Option<&'static str>,
}

/// What building providers needs besides each provider's own config.
pub struct BuildContext<'a> {
    pub config: &'a Config,
    pub env: &'a dyn EnvSource,
    /// The pooled client shared by providers with the default connect timeout.
    pub client: UpstreamClient,
    /// Health outlives snapshots: keys take theirs from here by name.
    pub health: &'a HealthRegistry,
}

impl<'a> BuildContext<'a> {
    pub fn new(
        config: &'a Config,
        env: &'a dyn EnvSource,
        health: &'a HealthRegistry,
    ) -> Result<Self, ConfigError> {
        let client = UpstreamClient::new(config.timeouts.connect.0)
            .map_err(|e| ConfigError(format!("cannot build HTTP client: {e}")))?;
        Ok(BuildContext {
            config,
            env,
            client,
            health,
        })
    }
}

impl ProviderRuntime {
    pub fn build(
        name: &str,
        config: Option<&ProviderConfig>,
        ctx: &BuildContext<'_>,
    ) -> Result<ProviderRuntime, ConfigError> {
        let env = ctx.env;
        let global = &ctx.config.timeouts;
        let shared_client = &ctx.client;
        let preset = presets::find(name);
        let api = config
            .and_then(|c| c.api)
            .or(preset.map(|p| p.api))
            .unwrap_or(ApiKind::OpenAi);
        let pick =
            |from_config: Option<String>, vars: &[&'static str], default: Option<&'static str>| {
                from_config
                    .or_else(|| first_var(env, vars).map(|(_, v)| v))
                    .or(default.map(str::to_string))
            };
        let settings = ApiSettings {
            api_version: pick(
                config.and_then(|c| c.api_version.clone()),
                preset.map(|p| p.api_version_vars).unwrap_or(&[]),
                preset.and_then(|p| p.default_api_version),
            ),
            deployments: config
                .map(|c| {
                    c.deployments
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            region: pick(
                config.and_then(|c| c.region.clone()),
                preset.map(|p| p.region_vars).unwrap_or(&[]),
                preset.and_then(|p| p.default_region),
            ),
            project: pick(
                config.and_then(|c| c.project.clone()),
                preset.map(|p| p.project_vars).unwrap_or(&[]),
                None,
            ),
        };

        let mut active = config.is_some();
        let (base_url, base_url_source) = if let Some(url) = config.and_then(|c| c.base_url.clone())
        {
            (url, "config".to_string())
        } else if let Some((var, url)) = preset.and_then(|p| first_var(env, p.base_url_vars)) {
            active = true;
            (url, var.to_string())
        } else if let Some(p) = preset {
            (fill_template(p.base_url, &settings), "default".to_string())
        } else {
            return Err(ConfigError(format!("providers.{name}.base_url: required")));
        };
        let base_url = base_url.trim_end_matches('/').to_string();

        let (mut keys, from_env) = credentials::resolve(name, api, config, preset, env)?;
        active |= from_env;
        for key in &mut keys {
            key.id = Arc::from(format!(
                "key:{name}/{}#{:x}",
                key.name,
                key.credential.fingerprint()
            ));
            key.health = ctx.health.get(&key.id);
        }

        let timeouts = config.map(|c| c.timeouts.over(global)).unwrap_or(*global);
        let client = if timeouts.connect == global.connect {
            shared_client.clone()
        } else {
            UpstreamClient::new(timeouts.connect.0).map_err(|e| {
                ConfigError(format!("providers.{name}: cannot build HTTP client: {e}"))
            })?
        };

        Ok(ProviderRuntime {
            name: Arc::from(name),
            api,
            base_url,
            keys: KeyPool::new(keys),
            headers: config
                .map(|c| {
                    c.headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            timeouts,
            client,
            // A provider pointed somewhere other than its public default may be a local server.
            requires_key: preset.is_some_and(|p| p.requires_key) && base_url_source == "default",
            stream_usage: preset.is_none_or(|p| p.stream_usage),
            settings,
            gate: Gate::new(
                config.and_then(|c| c.max_concurrency),
                config.and_then(|c| c.max_queue),
                config.is_some_and(|c| c.drop_excess_requests),
            ),
            retry_budget: RetryBudget::new(&ctx.config.routing.retry_budget),
            advertised_models: config.map(|c| c.models.clone()).unwrap_or_default(),
            active,
            base_url_source,
            hint: ProviderHint {
                key_var: if api == ApiKind::Bedrock {
                    Some(credentials::AWS_KEY_HINT)
                } else {
                    preset.and_then(|p| p.key_vars.first().copied())
                },
                base_url_var: preset.and_then(|p| p.base_url_vars.first().copied()),
            },
        })
    }
}

/// Fills `{region}` and `{project}` in a preset base URL. Google's `global` region has no
/// regional host (`https://{region}-aiplatform...` becomes `https://aiplatform...`).
fn fill_template(template: &str, settings: &ApiSettings) -> String {
    let mut url = template.to_string();
    if settings.region.as_deref() == Some("global") {
        url = url.replace("{region}-", "");
    }
    if let Some(region) = &settings.region {
        url = url.replace("{region}", region);
    }
    if let Some(project) = &settings.project {
        url = url.replace("{project}", project);
    }
    url
}

pub(crate) fn first_var(
    env: &dyn EnvSource,
    vars: &[&'static str],
) -> Option<(&'static str, String)> {
    vars.iter().find_map(|v| env.var(v).map(|val| (*v, val)))
}

/// Every provider the gateway can reach: all built-in presets plus the configured ones.
#[derive(Debug)]
pub struct ProviderRegistry {
    by_name: HashMap<Arc<str>, Arc<ProviderRuntime>>,
    names: Vec<String>,
}

impl ProviderRegistry {
    pub fn build(ctx: &BuildContext<'_>) -> Result<ProviderRegistry, ConfigError> {
        let config = ctx.config;
        let mut by_name: HashMap<Arc<str>, Arc<ProviderRuntime>> = HashMap::new();
        for name in config.provider_names() {
            let runtime = ProviderRuntime::build(&name, config.providers.get(&name), ctx)?;
            by_name.insert(Arc::from(name.as_str()), Arc::new(runtime));
        }
        let mut names: Vec<String> = by_name.keys().map(|k| k.to_string()).collect();
        names.sort();
        Ok(ProviderRegistry { by_name, names })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ProviderRuntime>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ProviderRuntime>> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn build_registry(config: &Config, e: &HashMap<String, String>) -> ProviderRegistry {
        let health = HealthRegistry::default();
        ProviderRegistry::build(&BuildContext::new(config, e, &health).unwrap()).unwrap()
    }

    #[test]
    fn zero_config_reads_standard_variables() {
        let e = env(&[
            ("OPENAI_API_KEY", "sk-1"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
            ("TOGETHERAI_API_KEY", "tk"),
        ]);
        let (config, health) = (Config::default(), HealthRegistry::default());
        let reg =
            ProviderRegistry::build(&BuildContext::new(&config, &e, &health).unwrap()).unwrap();
        let openai = reg.get("openai").unwrap();
        assert_eq!(openai.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(openai.base_url_source, "OPENAI_BASE_URL");
        assert!(openai.active);
        assert!(
            !openai.requires_key,
            "a redirected base URL may be a keyless local server"
        );
        assert_eq!(openai.keys.len(), 1);
        assert_eq!(&*openai.keys.first().unwrap().name, "OPENAI_API_KEY");
        let together = reg.get("together").unwrap();
        assert_eq!(&*together.keys.first().unwrap().name, "TOGETHERAI_API_KEY");
        assert_eq!(together.base_url, "https://api.together.xyz/v1");
        let groq = reg.get("groq").unwrap();
        assert!(!groq.active && groq.requires_key && groq.keys.is_empty());
        assert!(!reg.get("ollama").unwrap().requires_key);
    }

    #[test]
    fn bedrock_region_credentials_and_endpoint() {
        let e = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        let reg = build_registry(&Config::default(), &e);
        let bedrock = reg.get("bedrock").unwrap();
        assert_eq!(bedrock.api, ApiKind::Bedrock);
        assert_eq!(
            bedrock.base_url,
            "https://bedrock-runtime.eu-west-1.amazonaws.com"
        );
        assert_eq!(bedrock.settings.region.as_deref(), Some("eu-west-1"));
        assert!(bedrock.active && bedrock.requires_key);
        assert_eq!(&*bedrock.keys.first().unwrap().name, "AWS_ACCESS_KEY_ID");
        assert!(
            bedrock
                .hint
                .key_var
                .unwrap()
                .contains("AWS_SECRET_ACCESS_KEY")
        );

        let config = Config::from_text(
            r#"{"providers":{"bedrock":{"region":"ap-south-1"}}}"#,
            "json",
        )
        .unwrap();
        let e = env(&[
            ("AWS_REGION", "us-west-2"),
            ("BEDROCK_BASE_URL", "http://127.0.0.1:9"),
        ]);
        let reg = build_registry(&config, &e);
        let bedrock = reg.get("bedrock").unwrap();
        assert_eq!(bedrock.base_url, "http://127.0.0.1:9");
        assert_eq!(bedrock.settings.region.as_deref(), Some("ap-south-1"));
        let reg = build_registry(&Config::default(), &env(&[]));
        assert_eq!(
            reg.get("bedrock").unwrap().base_url,
            "https://bedrock-runtime.us-east-1.amazonaws.com"
        );
    }

    #[test]
    fn config_wins_over_environment() {
        let config = Config::from_text(
            r#"{"providers":{"openai":{"api_key":"sk-cfg","base_url":"http://h:1/v1"},
                "mine":{"base_url":"http://m:2/v1","timeouts":{"connect":"1s"}}}}"#,
            "json",
        )
        .unwrap();
        let e = env(&[
            ("OPENAI_API_KEY", "sk-env"),
            ("OPENAI_BASE_URL", "http://other/v1"),
        ]);
        let health = HealthRegistry::default();
        let reg =
            ProviderRegistry::build(&BuildContext::new(&config, &e, &health).unwrap()).unwrap();
        let openai = reg.get("openai").unwrap();
        assert_eq!(openai.base_url, "http://h:1/v1");
        assert_eq!(
            openai
                .keys
                .first()
                .unwrap()
                .credential
                .api_key()
                .unwrap()
                .expose(),
            "sk-cfg"
        );
        let mine = reg.get("mine").unwrap();
        assert_eq!(mine.api, ApiKind::OpenAi);
        assert_eq!(mine.timeouts.connect.0.as_secs(), 1);
        assert!(reg.names().contains(&"mine".to_string()));
    }
}
