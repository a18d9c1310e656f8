//! Golden tests of every Cohere v2 translation: canonical -> native chat and embed requests,
//! native responses / stream events / errors / embeddings / models -> canonical.

mod common;

use std::sync::Arc;

use common::{assert_golden, read_fixture};
use ferrogate::ErrorKind;
use ferrogate::providers::cohere::response::{
    client_status, finish_reason, parse_error_body, parse_models,
};
use ferrogate::providers::cohere::wire::{ChatResponse as CohereResponse, EmbedResponse};
use ferrogate::providers::cohere::{
    CohereStreamTranslator, api_root, to_chat_request, to_chat_response, to_embed_request,
    to_embedding_response,
};
use ferrogate::providers::stream::translate_all;
use ferrogate::schema::{
    ChatChunk, ChatRequest, ChunkAccumulator, EmbeddingRequest, EmbeddingVector, FinishReason,
};
use ferrogate::sse::SseDecoder;
use serde_json::{Value, json};

fn canonical(name: &str) -> ChatRequest {
    serde_json::from_slice(&read_fixture(&format!("cohere/{name}"))).unwrap()
}

fn native_response(name: &str) -> CohereResponse {
    serde_json::from_slice(&read_fixture(&format!("cohere/{name}"))).unwrap()
}

fn stream(name: &str) -> ferrogate::error::Result<Vec<ChatChunk>> {
    let bytes = read_fixture(&format!("cohere/{name}"));
    let translator = CohereStreamTranslator::new(Arc::from("cohere"), "command-a-03-2025");
    translate_all(SseDecoder::new(), translator, &bytes)
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

/// Chunks without the current time the translator stamps on them.
fn chunks_value(chunks: &[ChatChunk]) -> Value {
    let mut v = to_value(&chunks);
    for c in v.as_array_mut().unwrap() {
        c["created"] = json!(0);
    }
    v
}

fn response_value(resp: &ferrogate::schema::ChatResponse) -> Value {
    let mut v = to_value(resp);
    v["created"] = json!(0);
    v
}

#[test]
fn request_to_native() {
    let body = to_value(&to_chat_request(&canonical("chat_request.canonical.json"), true).unwrap());
    assert_golden("cohere/golden/chat_request.native.json", &body);
    // The points that matter, spelled out:
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "You are a weather assistant.\n\nAnswer briefly."}),
        "system and developer messages become one leading system message"
    );
    assert_eq!(
        body["messages"][1]["content"][2],
        json!({"type": "image_url", "image_url": {"url": "https://example.com/paris.jpg", "detail": "low"}})
    );
    assert_eq!(
        body["messages"][2]["tool_plan"],
        "I will look up the weather and the time in Paris."
    );
    assert_eq!(
        body["messages"][2]["tool_calls"][1]["function"]["arguments"], "{}",
        "empty arguments are an empty object"
    );
    assert_eq!(
        body["messages"][4],
        json!({"role": "tool", "tool_call_id": "get_time_9x8w7v6u5t4s", "content": "14:05"})
    );
    assert_eq!(body["tool_choice"], "REQUIRED");
    assert_eq!(
        body["tools"].as_array().unwrap().len(),
        1,
        "a named tool choice offers only that tool"
    );
    assert_eq!(body["strict_tools"], true);
    assert_eq!(
        (&body["p"], &body["k"], &body["max_tokens"]),
        (&json!(0.99), &json!(40), &json!(300))
    );
    assert_eq!(body["stop_sequences"], json!(["END", "STOP"]));
    assert_eq!(body["stream"], true);
    assert_eq!(body["safety_mode"], "CONTEXTUAL", "Cohere parameters pass");
    for dropped in [
        "user",
        "top_p",
        "top_k",
        "stop",
        "metadata",
        "reasoning_effort",
        "parallel_tool_calls",
        "stream_options",
        "max_completion_tokens",
    ] {
        assert!(
            body.get(dropped).is_none(),
            "{dropped} must not be sent to Cohere"
        );
    }
}

#[test]
fn json_mode_request() {
    let body =
        to_value(&to_chat_request(&canonical("json_mode_request.canonical.json"), false).unwrap());
    assert_golden("cohere/golden/json_mode_request.native.json", &body);
    assert_eq!(body["response_format"]["type"], "json_object");
    assert_eq!(
        body["response_format"]["json_schema"]["required"],
        json!(["name", "country"])
    );
    assert!(
        body.get("tool_choice").is_none(),
        "no tool choice without tools"
    );
}

#[test]
fn untranslatable_requests_are_clear_400s() {
    let base = || canonical("json_mode_request.canonical.json");
    let mut req = base();
    req.n = Some(3);
    let e = to_chat_request(&req, false).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("n")));

    let mut req = base();
    req.presence_penalty = Some(-1.0);
    let e = to_chat_request(&req, false).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("presence_penalty"));
    assert!(e.message.contains("between 0 and 1"), "{}", e.message);

    let mut req = base();
    req.logit_bias = Some(serde_json::from_value(json!({"50256": -100})).unwrap());
    assert_eq!(
        to_chat_request(&req, false).unwrap_err().param.as_deref(),
        Some("logit_bias")
    );

    let req: ChatRequest = serde_json::from_value(json!({"model": "c", "messages": [
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "xx", "format": "wav"}}]}]}))
    .unwrap();
    let e = to_chat_request(&req, false).unwrap_err();
    assert!(
        e.message.contains("input_audio") && e.message.contains("not supported by Cohere"),
        "{}",
        e.message
    );
    assert_eq!(e.param.as_deref(), Some("messages[0].content[0]"));

    let req: ChatRequest = serde_json::from_value(json!({"model": "c",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "a"}}],
        "tool_choice": {"type": "function", "function": {"name": "b"}}}))
    .unwrap();
    assert_eq!(
        to_chat_request(&req, false).unwrap_err().param.as_deref(),
        Some("tool_choice")
    );

    let req: ChatRequest = serde_json::from_value(json!({"model": "c",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_preview"}]}))
    .unwrap();
    assert_eq!(
        to_chat_request(&req, false).unwrap_err().param.as_deref(),
        Some("tools[0]")
    );

    let req: ChatRequest = serde_json::from_value(json!({"model": "c", "messages": [
        {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "user", "content": "x"}]}))
    .unwrap();
    assert_eq!(
        to_chat_request(&req, false).unwrap_err().param.as_deref(),
        Some("messages[0].content[0]"),
        "system messages are text only"
    );
}

#[test]
fn responses_to_canonical() {
    let text = to_chat_response(native_response("response_text.json"), "command-a-03-2025");
    assert_golden(
        "cohere/golden/response_text.canonical.json",
        &response_value(&text),
    );
    let usage = text.usage.as_ref().unwrap();
    assert_eq!(
        (usage.prompt_tokens, usage.completion_tokens),
        (5, 18),
        "billed units are the canonical counts"
    );
    assert_eq!(
        usage.extra["tokens"],
        json!({"input_tokens": 71, "output_tokens": 18, "cached_tokens": 64}),
        "the model-side counts, with the cache hits among them"
    );
    assert_eq!(
        text.choices[0].logprobs.as_ref().unwrap()["content"][0]["logprob"],
        -0.75
    );

    let tool = to_chat_response(native_response("response_tool_call.json"), "command-a");
    assert_golden(
        "cohere/golden/response_tool_call.canonical.json",
        &response_value(&tool),
    );
    assert_eq!(tool.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    assert!(tool.choices[0].message.content.is_none());
    assert_eq!(
        tool.choices[0].message.extra["tool_plan"],
        "I will search for the weather in Toronto."
    );
    assert_eq!(tool.usage.unwrap().prompt_tokens, 37, "float counts read");

    let thinking = to_chat_response(
        native_response("response_thinking_citations.json"),
        "command-a-reasoning",
    );
    assert_golden(
        "cohere/golden/response_thinking_citations.canonical.json",
        &response_value(&thinking),
    );
    assert_eq!(
        thinking.choices[0].finish_reason,
        Some(FinishReason::Length)
    );
}

#[test]
fn finish_reasons() {
    for (native, canonical) in [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("MAX_TOKENS", "length"),
        ("TOOL_CALL", "tool_calls"),
        ("ERROR_TOXIC", "content_filter"),
        ("ERROR", "error"),
        ("TIMEOUT", "timeout"),
    ] {
        assert_eq!(finish_reason(native).as_str(), canonical, "{native}");
    }
}

#[test]
fn streams_to_chunks() {
    for (fixture, golden) in [
        ("stream_text.sse", "stream_text.chunks.json"),
        ("stream_tool_call.sse", "stream_tool_call.chunks.json"),
        (
            "stream_thinking_and_unknown_events.sse",
            "stream_thinking.chunks.json",
        ),
    ] {
        let chunks = stream(fixture).unwrap();
        assert_golden(&format!("cohere/golden/{golden}"), &chunks_value(&chunks));
    }

    let mut acc = ChunkAccumulator::default();
    stream("stream_tool_call.sse")
        .unwrap()
        .iter()
        .for_each(|c| acc.push(c));
    let usage = acc.usage().unwrap().clone();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (50, 26));
    assert_eq!(usage.extra["tokens"]["cached_tokens"], 176);
    let resp = acc.finish();
    let calls = resp.choices[0].message.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].function.arguments).unwrap(),
        json!({"location": "Toronto"})
    );
    assert_eq!(
        (calls[1].id.as_str(), calls[1].function.arguments.as_str()),
        ("get_time_a1b2c3d4e5f6", "{}"),
        "arguments sent with tool-call-start are kept"
    );
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(resp.id, "5c1f2b0e-7d3a-4a8e-9c6b-2f1e0d9c8b7a");

    let mut acc = ChunkAccumulator::default();
    stream("stream_text.sse")
        .unwrap()
        .iter()
        .for_each(|c| acc.push(c));
    assert_eq!(acc.finish().choices[0].message.text(), "Hello there!");
}

#[test]
fn stream_errors() {
    let e = stream("stream_error.sse").unwrap_err();
    assert_eq!(e.kind, ErrorKind::UpstreamServer);
    assert!(
        e.message.contains("reported to our developers"),
        "{}",
        e.message
    );
    let e = stream("stream_truncated.sse").unwrap_err();
    assert_eq!(e.kind, ErrorKind::UpstreamConnection);
    assert!(e.message.contains("before message-end"), "{}", e.message);
}

#[test]
fn error_bodies() {
    let e = parse_error_body(
        400,
        br#"{"id":"4e2b7c44-0d4b-4a4b-9e5c-3e1f5b6c7d8e","message":"too many tokens: total number of tokens in the prompt cannot exceed 4081 - received 4292. Try using a shorter prompt, or enabling prompt truncating."}"#,
    );
    assert_eq!(e.kind, Some(ErrorKind::ContextWindowExceeded));
    assert!(e.message.unwrap().starts_with("too many tokens"));
    let e = parse_error_body(
        400,
        br#"{"id":"x","message":"too many tokens: max tokens must be less than or equal to 4096, the maximum output for this model - received 8192."}"#,
    );
    assert_eq!(e.kind, None, "an output limit is a plain invalid request");
    let e = parse_error_body(401, br#"{"id":"x","message":"invalid api token"}"#);
    assert_eq!(
        (e.kind, e.message.as_deref()),
        (None, Some("invalid api token"))
    );
    assert_eq!(
        parse_error_body(402, br#"{"message":"Please add a payment method"}"#).kind,
        Some(ErrorKind::PermissionDenied)
    );
    assert_eq!(
        parse_error_body(498, b"").kind,
        Some(ErrorKind::Authentication)
    );
    assert_eq!(
        (client_status(498), client_status(499)),
        (Some(401), Some(503))
    );
    assert_eq!(client_status(429), None);
    assert_eq!(parse_error_body(500, b"<html>").message, None);
}

#[test]
fn embeddings_both_ways() {
    let req: EmbeddingRequest = serde_json::from_value(json!({
        "model": "embed-v4.0", "input": ["hello", "goodbye"], "dimensions": 256,
        "encoding_format": "base64", "user": "u-1", "input_type": "search_query", "truncate": "END"
    }))
    .unwrap();
    let body = to_value(&to_embed_request(&req).unwrap());
    assert_eq!(
        body,
        json!({"model": "embed-v4.0", "texts": ["hello", "goodbye"], "input_type": "search_query",
               "embedding_types": ["float"], "output_dimension": 256, "truncate": "END"})
    );
    let req: EmbeddingRequest =
        serde_json::from_value(json!({"model": "embed-v4.0", "input": "one"})).unwrap();
    assert_eq!(
        to_value(&to_embed_request(&req).unwrap())["input_type"],
        "search_document"
    );
    let req: EmbeddingRequest =
        serde_json::from_value(json!({"model": "embed-v4.0", "input": [1, 2, 3]})).unwrap();
    assert_eq!(
        to_embed_request(&req).unwrap_err().param.as_deref(),
        Some("input")
    );

    let native: EmbedResponse =
        serde_json::from_slice(&read_fixture("cohere/embed_response.json")).unwrap();
    let floats = to_embedding_response(native.clone(), "embed-v4.0", false).unwrap();
    assert_golden(
        "cohere/golden/embed_response.canonical.json",
        &to_value(&floats),
    );
    let b64 = to_embedding_response(native, "embed-v4.0", true).unwrap();
    let EmbeddingVector::Base64(encoded) = &b64.data[1].embedding else {
        panic!("base64 was asked for");
    };
    let decoded = EmbeddingVector::Base64(encoded.clone())
        .to_floats()
        .unwrap();
    assert!((decoded[1] - 0.032562256).abs() < 1e-7);
    assert_eq!(b64.usage.prompt_tokens, 2);
}

#[test]
fn models_and_base_urls() {
    let models = parse_models(&read_fixture("cohere/models_response.json")).unwrap();
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["command-a-03-2025", "embed-v4.0"]);
    assert_eq!(models[1].extra["endpoints"], json!(["embed", "embed_jobs"]));
    assert_eq!(models[0].owned_by, "cohere");
    for base in [
        "https://api.cohere.com",
        "https://api.cohere.com/",
        "https://api.cohere.com/v2",
        "https://api.cohere.com/v1/",
    ] {
        assert_eq!(api_root(base), "https://api.cohere.com", "{base}");
    }
}
