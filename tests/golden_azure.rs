//! Golden tests of the Azure OpenAI adapter: URL building (deployments, api-version, the v1 API),
//! request bodies, responses and streams with Azure's content-filter additions, error bodies, and
//! how the provider is configured from the environment.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{assert_golden, read_fixture};
use ferrogate::ErrorKind;
use ferrogate::config::Config;
use ferrogate::gateway::{Gateway, RequestOptions};
use ferrogate::providers::ApiSettings;
use ferrogate::providers::azure::{
    AzureStreamTranslator, DEFAULT_API_VERSION, Operation, chat_request_body, parse_error_body,
    target,
};
use ferrogate::providers::openai::parse_chat_response;
use ferrogate::providers::stream::translate_all;
use ferrogate::schema::{ChatChunk, ChatRequest, ChunkAccumulator, FinishReason};
use ferrogate::sse::SseDecoder;
use serde_json::{Value, json};

fn settings(api_version: Option<&str>, deployments: &[(&str, &str)]) -> ApiSettings {
    ApiSettings {
        api_version: api_version.map(str::to_string),
        deployments: deployments
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn stream(name: &str) -> ferrogate::error::Result<Vec<ChatChunk>> {
    let bytes = read_fixture(&format!("azure/{name}"));
    translate_all(
        SseDecoder::new(),
        AzureStreamTranslator::new(Arc::from("azure")),
        &bytes,
    )
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn deployment_urls_and_api_versions() {
    let base = "https://my-resource.openai.azure.com";
    let mapped = settings(
        Some(DEFAULT_API_VERSION),
        &[("gpt-4o-mini", "gpt4o-mini-prod")],
    );
    let url = |base: &str, s: &ApiSettings, op, model: &str| target(base, s, op, model).url();
    assert_eq!(
        url(base, &mapped, Operation::ChatCompletions, "gpt-4o-mini"),
        "https://my-resource.openai.azure.com/openai/deployments/gpt4o-mini-prod/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(
        url(base, &mapped, Operation::ChatCompletions, "gpt-4.1"),
        "https://my-resource.openai.azure.com/openai/deployments/gpt-4.1/chat/completions?api-version=2024-10-21",
        "an unlisted model is its own deployment"
    );
    assert_eq!(
        url(
            base,
            &mapped,
            Operation::Embeddings,
            "text-embedding-3-small"
        ),
        "https://my-resource.openai.azure.com/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
    );
    assert_eq!(
        url(base, &mapped, Operation::Models, ""),
        "https://my-resource.openai.azure.com/openai/models?api-version=2024-10-21"
    );
    let preview = settings(Some("2025-04-01-preview"), &[]);
    assert_eq!(
        url(
            &format!("{base}/openai/"),
            &preview,
            Operation::ChatCompletions,
            "my deployment/x"
        ),
        "https://my-resource.openai.azure.com/openai/deployments/my%20deployment%2Fx/chat/completions?api-version=2025-04-01-preview",
        "`/openai` on the base is accepted; the deployment is one path segment"
    );
    assert_eq!(
        url(base, &settings(None, &[]), Operation::ChatCompletions, "m"),
        format!("{base}/openai/deployments/m/chat/completions?api-version={DEFAULT_API_VERSION}"),
        "a custom Azure provider without api_version gets the GA default"
    );
}

#[test]
fn v1_api_urls() {
    let base = "https://my-resource.openai.azure.com";
    let v1 = settings(Some("v1"), &[("gpt-4o-mini", "gpt4o-mini-prod")]);
    assert_eq!(
        target(base, &v1, Operation::ChatCompletions, "gpt-4o-mini").url(),
        "https://my-resource.openai.azure.com/openai/v1/chat/completions"
    );
    assert_eq!(
        target(base, &v1, Operation::Embeddings, "e").url(),
        "https://my-resource.openai.azure.com/openai/v1/embeddings"
    );
    assert_eq!(
        target(base, &settings(Some("preview"), &[]), Operation::Models, "").url(),
        "https://my-resource.openai.azure.com/openai/v1/models?api-version=preview"
    );
    // A base URL already pointing at the v1 API selects it, whatever the dated version says.
    let t = target(
        &format!("{base}/openai/v1/"),
        &settings(Some(DEFAULT_API_VERSION), &[]),
        Operation::ChatCompletions,
        "m",
    );
    assert_eq!(
        (t.root.as_str(), t.path.as_str()),
        (base, "/openai/v1/chat/completions")
    );
}

#[test]
fn request_body_names_the_deployment() {
    let req: ChatRequest = serde_json::from_value(json!({
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
        "stream": true, "stream_options": {"include_usage": true}, "x_vendor": 1
    }))
    .unwrap();
    let body: Value =
        serde_json::from_slice(&chat_request_body(&req, "gpt4o-mini-prod").unwrap()).unwrap();
    assert_eq!(body["model"], "gpt4o-mini-prod");
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["x_vendor"], 1, "unknown fields are forwarded");
    let same: Value =
        serde_json::from_slice(&chat_request_body(&req, "gpt-4o-mini").unwrap()).unwrap();
    assert_eq!(same["model"], "gpt-4o-mini");
}

#[test]
fn responses_keep_content_filter_results() {
    let resp = parse_chat_response(&read_fixture("azure/chat_response.json")).unwrap();
    assert_golden(
        "azure/golden/chat_response.canonical.json",
        &serde_json::to_value(&resp).unwrap(),
    );
    assert_eq!(
        resp.extra["prompt_filter_results"][0]["content_filter_results"]["jailbreak"]["detected"],
        false
    );
    assert_eq!(
        resp.choices[0].extra["content_filter_results"]["violence"]["severity"],
        "safe"
    );
    let filtered = parse_chat_response(&read_fixture("azure/chat_response_filtered.json")).unwrap();
    assert_eq!(
        filtered.choices[0].finish_reason,
        Some(FinishReason::ContentFilter)
    );
    assert!(filtered.choices[0].message.content.is_none());
}

#[test]
fn streams_fold_the_prompt_filter_chunk() {
    let chunks = stream("stream_tool_call.sse").unwrap();
    assert_golden(
        "azure/golden/stream_tool_call.chunks.json",
        &serde_json::to_value(&chunks).unwrap(),
    );
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| !c.choices.is_empty()),
        "only the final usage chunk has no choices"
    );
    assert!(chunks[0].extra.contains_key("prompt_filter_results"));
    let mut acc = ChunkAccumulator::default();
    chunks.iter().for_each(|c| acc.push(c));
    assert_eq!(acc.usage().unwrap().total_tokens, 76);
    let resp = acc.finish();
    let call = &resp.choices[0].message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        (
            call.function.name.as_str(),
            call.function.arguments.as_str()
        ),
        ("get_weather", r#"{"city":"Oslo"}"#)
    );

    let chunks = stream("stream_content_filtered.sse").unwrap();
    let last = chunks.last().unwrap();
    assert_eq!(
        last.choices[0].finish_reason,
        Some(FinishReason::ContentFilter)
    );
    assert_eq!(
        last.choices[0].extra["content_filter_results"]["violence"]["filtered"],
        true
    );
    assert!(chunks[0].extra.contains_key("prompt_filter_results"));
}

#[test]
fn error_bodies() {
    let e = parse_error_body(&read_fixture("azure/error_content_filter.json"));
    assert_eq!(e.kind, Some(ErrorKind::ContentFiltered));
    assert_eq!(e.param.as_deref(), Some("prompt"));
    // Recognised by `innererror` alone too.
    let e = parse_error_body(
        br#"{"error":{"message":"filtered","code":"BadRequest","innererror":{"code":"ResponsibleAIPolicyViolation"}}}"#,
    );
    assert_eq!(e.kind, Some(ErrorKind::ContentFiltered));
    let e = parse_error_body(
        br#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds."}}"#,
    );
    assert_eq!((e.kind, e.code.as_deref()), (None, Some("429")));
    let e = parse_error_body(
        br#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}"#,
    );
    assert_eq!(e.code.as_deref(), Some("DeploymentNotFound"));
    let e = parse_error_body(
        br#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    );
    assert_eq!(e.kind, Some(ErrorKind::ContextWindowExceeded));
}

#[test]
fn configured_from_azure_variables() {
    let e = env(&[
        ("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/"),
        ("AZURE_OPENAI_API_KEY", "azure-key-123456"),
        ("OPENAI_API_VERSION", "2025-04-01-preview"),
    ]);
    let snapshot = Gateway::with_env(Config::default(), &e).unwrap().snapshot();
    let azure = snapshot.providers.get("azure").unwrap();
    assert_eq!(azure.base_url, "https://res.openai.azure.com");
    assert_eq!(azure.base_url_source, "AZURE_OPENAI_ENDPOINT");
    assert_eq!(
        azure.settings.api_version.as_deref(),
        Some("2025-04-01-preview")
    );
    assert_eq!(&*azure.keys.first().unwrap().name, "AZURE_OPENAI_API_KEY");
    assert!(azure.active);

    let snapshot = Gateway::with_env(Config::default(), &env(&[]))
        .unwrap()
        .snapshot();
    let azure = snapshot.providers.get("azure").unwrap();
    assert_eq!(azure.base_url, "");
    assert_eq!(
        azure.settings.api_version.as_deref(),
        Some(DEFAULT_API_VERSION)
    );
    let cohere = snapshot.providers.get("cohere").unwrap();
    assert_eq!(cohere.base_url, "https://api.cohere.com");
    assert!(cohere.requires_key);
}

#[tokio::test]
async fn azure_without_an_endpoint_says_what_to_set() {
    let gw = Gateway::with_env(
        Config::default(),
        &env(&[("AZURE_API_KEY", "azure-key-123456")]),
    )
    .unwrap();
    let req: ChatRequest = serde_json::from_value(
        json!({"model": "azure/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .unwrap();
    let e = gw.chat(req, &RequestOptions::default()).await.unwrap_err();
    assert_eq!(e.status, 400);
    assert!(
        e.message
            .contains("provider `azure` has no endpoint configured: set AZURE_API_BASE"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("azure-key-123456"));
}
