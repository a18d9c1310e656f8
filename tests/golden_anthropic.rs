//! Golden tests of every Anthropic translation: canonical -> native request, native response /
//! stream / error -> canonical, and the reverse direction used by the `/anthropic` drop-in route.

mod common;

use std::sync::Arc;

use common::{assert_golden, read_fixture};
use ferrogate::ErrorKind;
use ferrogate::compat::anthropic::{ChunksToEvents, from_chat_response, to_chat_request};
use ferrogate::providers::anthropic::response::parse_error_body;
use ferrogate::providers::anthropic::wire::{MessagesRequest, MessagesResponse};
use ferrogate::providers::anthropic::{
    AnthropicStreamTranslator, to_chat_response, to_messages_request,
};
use ferrogate::providers::openai::OpenAiStreamTranslator;
use ferrogate::providers::stream::translate_all;
use ferrogate::schema::{ChatChunk, ChatRequest, ChunkAccumulator, FinishReason};
use ferrogate::sse::SseDecoder;
use serde_json::{Value, json};

fn canonical(name: &str) -> ChatRequest {
    serde_json::from_slice(&read_fixture(&format!("anthropic/{name}"))).unwrap()
}

fn native_response(name: &str) -> MessagesResponse {
    serde_json::from_slice(&read_fixture(&format!("anthropic/{name}"))).unwrap()
}

fn stream(name: &str, json_tool: Option<&str>) -> ferrogate::error::Result<Vec<ChatChunk>> {
    let bytes = read_fixture(&format!("anthropic/{name}"));
    let translator =
        AnthropicStreamTranslator::new(Arc::from("anthropic"), json_tool.map(str::to_string));
    translate_all(SseDecoder::new(), translator, &bytes)
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

#[test]
fn request_to_native() {
    let translated = to_messages_request(&canonical("chat_request.canonical.json"), false).unwrap();
    let body = to_value(&translated.body);
    assert_golden("anthropic/golden/chat_request.native.json", &body);
    // The points that matter, spelled out:
    assert_eq!(
        body["system"],
        "You are a weather assistant.\n\nAnswer briefly."
    );
    assert_eq!(body["temperature"], 1.0, "clamped to Anthropic's range");
    assert_eq!(
        body["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(body["metadata"], json!({"user_id": "user-42"}));
    assert_eq!(body["top_k"], 40);
    assert_eq!(
        body["thinking"]["budget_tokens"], 1024,
        "unknown fields are forwarded"
    );
    for dropped in ["seed", "presence_penalty", "user", "stop"] {
        assert!(
            body.get(dropped).is_none(),
            "{dropped} must not be sent to Anthropic"
        );
    }
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user"],
        "tool results and the next user turn are merged"
    );
    assert_eq!(body["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(
        body["messages"][2]["content"][2],
        json!({"type": "text", "text": "And tomorrow?"})
    );
    assert_eq!(
        body["messages"][1]["content"][2]["input"],
        json!({}),
        "empty arguments are an empty object"
    );
}

#[test]
fn json_mode_is_a_forced_tool_and_comes_back_as_content() {
    let translated =
        to_messages_request(&canonical("json_mode_request.canonical.json"), false).unwrap();
    assert_golden(
        "anthropic/golden/json_mode_request.native.json",
        &to_value(&translated.body),
    );
    let resp = to_chat_response(
        native_response("response_json_mode.json"),
        translated.json_tool.as_deref(),
    );
    let content = resp.choices[0].message.text();
    assert_eq!(
        serde_json::from_str::<Value>(&content).unwrap(),
        json!({"city": "Paris", "country": "France"})
    );
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
    assert!(resp.choices[0].message.tool_calls.is_none());
}

#[test]
fn untranslatable_requests_are_clear_400s() {
    let mut req = canonical("json_mode_request.canonical.json");
    req.n = Some(2);
    let e = to_messages_request(&req, false).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("n")));

    let req: ChatRequest = serde_json::from_value(
        json!({"model": "c", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "xx", "format": "wav"}}]}]}),
    )
    .unwrap();
    let e = to_messages_request(&req, false).unwrap_err();
    assert!(
        e.message.contains("input_audio") && e.message.contains("not supported by Anthropic"),
        "{}",
        e.message
    );

    let req: ChatRequest = serde_json::from_value(json!({"model": "c", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}))
    .unwrap();
    let e = to_messages_request(&req, false).unwrap_err();
    assert_eq!(
        e.param.as_deref(),
        Some("messages[1].tool_calls[0].function.arguments")
    );

    let req: ChatRequest = serde_json::from_value(json!({"model": "c", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}))
    .unwrap();
    assert_eq!(
        to_messages_request(&req, false)
            .unwrap_err()
            .param
            .as_deref(),
        Some("messages[0].content[0]")
    );
}

#[test]
fn responses_to_canonical() {
    let mut text = to_chat_response(native_response("response_text.json"), None);
    text.created = 0; // the translator stamps the current time
    assert_golden(
        "anthropic/golden/response_text.canonical.json",
        &to_value(&text),
    );
    let mut tool = to_chat_response(native_response("response_tool_use.json"), None);
    tool.created = 0;
    assert_golden(
        "anthropic/golden/response_tool_use.canonical.json",
        &to_value(&tool),
    );
    let usage = tool.usage.unwrap();
    assert_eq!(
        usage.prompt_tokens,
        472 + 2000 + 100,
        "cached tokens count as prompt tokens, as OpenAI counts them"
    );
    assert_eq!(usage.cached_tokens(), 2000);
    assert_eq!(tool.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(
        tool.choices[0].message.extra["reasoning_content"],
        "The user wants the weather."
    );
}

#[test]
fn streams_to_chunks() {
    for (fixture, golden) in [
        ("stream_text.sse", "stream_text.chunks.json"),
        ("stream_tool_use.sse", "stream_tool_use.chunks.json"),
        (
            "stream_thinking_and_unknown_events.sse",
            "stream_thinking.chunks.json",
        ),
    ] {
        let chunks = stream(fixture, None).unwrap();
        let mut v = to_value(&chunks);
        for c in v.as_array_mut().unwrap() {
            c["created"] = json!(0); // the translator stamps the current time
        }
        assert_golden(&format!("anthropic/golden/{golden}"), &v);
    }
    let mut acc = ChunkAccumulator::default();
    stream("stream_tool_use.sse", None)
        .unwrap()
        .iter()
        .for_each(|c| acc.push(c));
    assert_eq!(acc.usage().unwrap().completion_tokens, 89);
    assert_eq!(acc.usage().unwrap().prompt_tokens, 572);
    let resp = acc.finish();
    let call = &resp.choices[0].message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        call.function.arguments,
        r#"{"location": "San Francisco, CA"}"#
    );
    assert_eq!(resp.choices[0].message.text(), "Okay,");
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
}

#[test]
fn stream_errors() {
    let e = stream("stream_error.sse", None).unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_deref()),
        (ErrorKind::Unavailable, Some("overloaded_error"))
    );
    let e = stream("stream_truncated.sse", None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::UpstreamConnection);
}

#[test]
fn error_bodies() {
    let e = parse_error_body(br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#);
    assert_eq!(e.kind, Some(ErrorKind::ContextWindowExceeded));
    let e = parse_error_body(
        br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
    );
    assert_eq!(
        (e.kind, e.message.as_deref()),
        (Some(ErrorKind::RateLimited), Some("slow down"))
    );
    assert_eq!(parse_error_body(b"not json").kind, None);
}

#[test]
fn drop_in_route_translations() {
    let native: MessagesRequest =
        serde_json::from_slice(&read_fixture("anthropic/sdk_request.json")).unwrap();
    let canonical = to_chat_request(native).unwrap();
    assert_golden(
        "anthropic/golden/sdk_request.canonical.json",
        &to_value(&canonical),
    );

    // The canonical form of an OpenAI stream, rendered as Anthropic events.
    let chunks = translate_all(
        SseDecoder::new(),
        OpenAiStreamTranslator::new(Arc::from("openai")),
        &read_fixture("openai/stream_tool_call.sse"),
    )
    .unwrap();
    let mut events = Vec::new();
    let mut translator = ChunksToEvents::new("claude-via-gateway");
    chunks.iter().for_each(|c| translator.chunk(c, &mut events));
    translator.finish(&mut events);
    assert_golden(
        "anthropic/golden/openai_stream_as_events.json",
        &to_value(&events),
    );

    let mut acc = ChunkAccumulator::default();
    chunks.iter().for_each(|c| acc.push(c));
    let message = from_chat_response(&acc.finish(), "claude-via-gateway");
    assert_golden(
        "anthropic/golden/openai_response_as_message.json",
        &to_value(&message),
    );
}
