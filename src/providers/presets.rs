//! Built-in providers: where each one lives, which environment variables carry its credentials,
//! and the quirks of its API that the adapters need to know.

use super::ApiKind;

#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub api: ApiKind,
    /// Default base URL; the API's paths (`/chat/completions`...) are appended to it.
    pub base_url: &'static str,
    /// Variables holding the API key, the conventional one first.
    pub key_vars: &'static [&'static str],
    /// Variables overriding the base URL, the conventional one first.
    pub base_url_vars: &'static [&'static str],
    /// Whether a call without any key is refused before it is sent (local servers need none).
    pub requires_key: bool,
    /// Whether the provider accepts `stream_options.include_usage` on streamed chat.
    pub stream_usage: bool,
    /// Model-name prefixes that identify this provider when a name has no `provider/` prefix.
    pub model_families: &'static [&'static str],
    /// Variables giving the cloud region (`{region}` in `base_url`), and the default region.
    pub region_vars: &'static [&'static str],
    pub default_region: Option<&'static str>,
    /// Variables giving the cloud project (Vertex AI).
    pub project_vars: &'static [&'static str],
    /// Variables giving the API version, and the default version.
    pub api_version_vars: &'static [&'static str],
    pub default_api_version: Option<&'static str>,
}

impl Preset {
    /// A preset with every optional part empty, to be filled with struct update syntax.
    pub const fn base(name: &'static str, api: ApiKind, base_url: &'static str) -> Preset {
        Preset {
            name,
            api,
            base_url,
            key_vars: &[],
            base_url_vars: &[],
            requires_key: true,
            stream_usage: false,
            model_families: &[],
            region_vars: &[],
            default_region: None,
            project_vars: &[],
            api_version_vars: &[],
            default_api_version: None,
        }
    }
}

const fn openai_compatible(
    name: &'static str,
    base_url: &'static str,
    key_vars: &'static [&'static str],
    base_url_vars: &'static [&'static str],
) -> Preset {
    Preset {
        key_vars,
        base_url_vars,
        stream_usage: true,
        ..Preset::base(name, ApiKind::OpenAi, base_url)
    }
}

const fn local(mut p: Preset) -> Preset {
    p.requires_key = false;
    p
}

const fn without_stream_usage(mut p: Preset) -> Preset {
    p.stream_usage = false;
    p
}

pub static PRESETS: &[Preset] = &[
    Preset {
        key_vars: &["ANTHROPIC_API_KEY"],
        base_url_vars: &["ANTHROPIC_BASE_URL", "ANTHROPIC_API_BASE"],
        model_families: &["claude-"],
        api_version_vars: &["ANTHROPIC_VERSION"],
        default_api_version: Some("2023-06-01"),
        ..Preset::base("anthropic", ApiKind::Anthropic, "https://api.anthropic.com")
    },
    // AWS credentials (AWS_ACCESS_KEY_ID...) are read by `credentials::resolve`; the key
    // variable here is the Bedrock API key.
    Preset {
        key_vars: &["AWS_BEARER_TOKEN_BEDROCK"],
        base_url_vars: &["BEDROCK_BASE_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"],
        model_families: &[
            "amazon.",
            "anthropic.",
            "cohere.",
            "meta.",
            "mistral.",
            "ai21.",
            "us.",
            "eu.",
            "apac.",
            "global.",
        ],
        region_vars: &["AWS_REGION", "AWS_DEFAULT_REGION"],
        default_region: Some("us-east-1"),
        ..Preset::base(
            "bedrock",
            ApiKind::Bedrock,
            "https://bedrock-runtime.{region}.amazonaws.com",
        )
    },
    Preset {
        key_vars: &["COHERE_API_KEY", "CO_API_KEY"],
        base_url_vars: &["COHERE_BASE_URL", "COHERE_API_BASE"],
        model_families: &[
            "command-",
            "embed-english",
            "embed-multilingual",
            "embed-v4",
        ],
        ..Preset::base("cohere", ApiKind::Cohere, "https://api.cohere.com")
    },
    // Azure OpenAI has no public default: every resource has its own endpoint.
    Preset {
        key_vars: &["AZURE_API_KEY", "AZURE_OPENAI_API_KEY"],
        base_url_vars: &["AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"],
        stream_usage: true,
        api_version_vars: &["AZURE_API_VERSION", "OPENAI_API_VERSION"],
        default_api_version: Some(super::azure::DEFAULT_API_VERSION),
        ..Preset::base("azure", ApiKind::Azure, "")
    },
    Preset {
        key_vars: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        base_url_vars: &["GEMINI_BASE_URL", "GEMINI_API_BASE"],
        model_families: &["gemini-"],
        ..Preset::base(
            "gemini",
            ApiKind::Gemini,
            "https://generativelanguage.googleapis.com",
        )
    },
    // Authenticates with a service account (GOOGLE_APPLICATION_CREDENTIALS), not an API key.
    Preset {
        key_vars: &["GOOGLE_APPLICATION_CREDENTIALS"],
        base_url_vars: &["VERTEX_BASE_URL"],
        region_vars: &[
            "VERTEX_LOCATION",
            "VERTEXAI_LOCATION",
            "GOOGLE_CLOUD_REGION",
        ],
        default_region: Some("us-central1"),
        project_vars: &["VERTEX_PROJECT", "VERTEXAI_PROJECT", "GOOGLE_CLOUD_PROJECT"],
        ..Preset::base(
            "vertex",
            ApiKind::Vertex,
            "https://{region}-aiplatform.googleapis.com",
        )
    },
    Preset {
        model_families: &[
            "gpt-",
            "chatgpt-",
            "o1",
            "o3",
            "o4",
            "text-embedding-",
            "davinci",
            "babbage",
            "omni-moderation",
        ],
        ..openai_compatible(
            "openai",
            "https://api.openai.com/v1",
            &["OPENAI_API_KEY"],
            &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
        )
    },
    openai_compatible(
        "groq",
        "https://api.groq.com/openai/v1",
        &["GROQ_API_KEY"],
        &["GROQ_BASE_URL", "GROQ_API_BASE"],
    ),
    without_stream_usage(openai_compatible(
        "mistral",
        "https://api.mistral.ai/v1",
        &["MISTRAL_API_KEY"],
        &["MISTRAL_BASE_URL", "MISTRAL_API_BASE"],
    )),
    openai_compatible(
        "deepseek",
        "https://api.deepseek.com/v1",
        &["DEEPSEEK_API_KEY"],
        &["DEEPSEEK_BASE_URL", "DEEPSEEK_API_BASE"],
    ),
    openai_compatible(
        "xai",
        "https://api.x.ai/v1",
        &["XAI_API_KEY"],
        &["XAI_BASE_URL", "XAI_API_BASE"],
    ),
    openai_compatible(
        "together",
        "https://api.together.xyz/v1",
        &[
            "TOGETHER_API_KEY",
            "TOGETHERAI_API_KEY",
            "TOGETHER_AI_API_KEY",
        ],
        &[
            "TOGETHER_BASE_URL",
            "TOGETHER_API_BASE",
            "TOGETHERAI_API_BASE",
        ],
    ),
    openai_compatible(
        "fireworks",
        "https://api.fireworks.ai/inference/v1",
        &[
            "FIREWORKS_API_KEY",
            "FIREWORKS_AI_API_KEY",
            "FIREWORKSAI_API_KEY",
        ],
        &[
            "FIREWORKS_BASE_URL",
            "FIREWORKS_API_BASE",
            "FIREWORKS_AI_API_BASE",
        ],
    ),
    openai_compatible(
        "openrouter",
        "https://openrouter.ai/api/v1",
        &["OPENROUTER_API_KEY", "OR_API_KEY"],
        &["OPENROUTER_BASE_URL", "OPENROUTER_API_BASE"],
    ),
    without_stream_usage(openai_compatible(
        "perplexity",
        "https://api.perplexity.ai",
        &["PERPLEXITY_API_KEY", "PERPLEXITYAI_API_KEY"],
        &["PERPLEXITY_BASE_URL", "PERPLEXITY_API_BASE"],
    )),
    openai_compatible(
        "cerebras",
        "https://api.cerebras.ai/v1",
        &["CEREBRAS_API_KEY"],
        &["CEREBRAS_BASE_URL", "CEREBRAS_API_BASE"],
    ),
    local(openai_compatible(
        "ollama",
        "http://localhost:11434/v1",
        &["OLLAMA_API_KEY"],
        &["OLLAMA_BASE_URL", "OLLAMA_API_BASE"],
    )),
    local(openai_compatible(
        "vllm",
        "http://localhost:8000/v1",
        &["VLLM_API_KEY", "HOSTED_VLLM_API_KEY"],
        &["VLLM_BASE_URL", "VLLM_API_BASE", "HOSTED_VLLM_API_BASE"],
    )),
    local(openai_compatible(
        "lmstudio",
        "http://localhost:1234/v1",
        &["LMSTUDIO_API_KEY", "LM_STUDIO_API_KEY"],
        &[
            "LMSTUDIO_BASE_URL",
            "LM_STUDIO_API_BASE",
            "LMSTUDIO_API_BASE",
        ],
    )),
    openai_compatible(
        "deepinfra",
        "https://api.deepinfra.com/v1/openai",
        &["DEEPINFRA_API_KEY"],
        &["DEEPINFRA_BASE_URL", "DEEPINFRA_API_BASE"],
    ),
    openai_compatible(
        "sambanova",
        "https://api.sambanova.ai/v1",
        &["SAMBANOVA_API_KEY"],
        &["SAMBANOVA_BASE_URL", "SAMBANOVA_API_BASE"],
    ),
    openai_compatible(
        "nvidia",
        "https://integrate.api.nvidia.com/v1",
        &["NVIDIA_API_KEY", "NVIDIA_NIM_API_KEY"],
        &["NVIDIA_BASE_URL", "NVIDIA_NIM_API_BASE"],
    ),
    openai_compatible(
        "huggingface",
        "https://router.huggingface.co/v1",
        &["HUGGINGFACE_API_KEY", "HF_TOKEN"],
        &["HUGGINGFACE_BASE_URL", "HUGGINGFACE_API_BASE"],
    ),
];

pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// The built-in provider whose model family a bare model name belongs to (`gpt-4o` -> openai).
pub fn infer_from_model(model: &str) -> Option<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.model_families.iter().any(|f| model.starts_with(f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_consistent() {
        let mut seen = std::collections::HashSet::new();
        for p in PRESETS {
            assert!(seen.insert(p.name), "duplicate preset {}", p.name);
            assert!(!p.key_vars.is_empty() && !p.base_url_vars.is_empty());
            let prefix = p.name.to_uppercase();
            if p.api == ApiKind::Azure {
                // Each resource has its own endpoint; the variables are Azure's own names.
                assert!(p.base_url.is_empty());
                assert_eq!(p.base_url_vars[0], format!("{prefix}_API_BASE"));
                continue;
            }
            assert!(p.base_url.starts_with("http") && !p.base_url.ends_with('/'));
            assert_eq!(p.base_url_vars[0], format!("{prefix}_BASE_URL"));
            // Cloud providers take the cloud's own credential variables.
            if p.region_vars.is_empty() {
                assert_eq!(p.key_vars[0], format!("{prefix}_API_KEY"));
            }
        }
        // With Azure's own entry: the 20+ providers usable by name and environment variables.
        assert!(PRESETS.len() >= 20);
    }

    #[test]
    fn inference() {
        assert_eq!(infer_from_model("gpt-4o-mini").unwrap().name, "openai");
        assert_eq!(
            infer_from_model("text-embedding-3-small").unwrap().name,
            "openai"
        );
        assert_eq!(
            infer_from_model("command-a-03-2025").unwrap().name,
            "cohere"
        );
        assert_eq!(infer_from_model("embed-v4.0").unwrap().name, "cohere");
        assert_eq!(infer_from_model("gemini-2.0-flash").unwrap().name, "gemini");
        assert!(infer_from_model("llama-3").is_none());
        assert_eq!(
            infer_from_model("anthropic.claude-3-5-haiku-20241022-v1:0")
                .unwrap()
                .name,
            "bedrock"
        );
        assert_eq!(
            infer_from_model("claude-3-5-haiku-latest").unwrap().name,
            "anthropic"
        );
    }
}
