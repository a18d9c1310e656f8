//! Golden tests of the OpenAI adapter's translations (the OpenAI-compatible family shares them).

mod common;

use std::sync::Arc;

use common::{assert_golden, read_fixture};
use ferrogate::ErrorKind;
use ferrogate::providers::openai::{OpenAiStreamTranslator, parse_chat_response, parse_error_body};
use ferrogate::providers::stream::translate_all;
use ferrogate::schema::{ChatChunk, ChunkAccumulator};
use ferrogate::sse::SseDecoder;

fn translate(fixture: &str) -> ferrogate::error::Result<Vec<ChatChunk>> {
    let bytes = read_fixture(fixture);
    translate_all(
        SseDecoder::new(),
        OpenAiStreamTranslator::new(Arc::from("openai")),
        &bytes,
    )
}

#[test]
fn stream_with_tool_call_and_usage() {
    let chunks = translate("openai/stream_tool_call.sse").unwrap();
    assert_golden(
        "openai/golden/stream_tool_call.chunks.json",
        &serde_json::to_value(&chunks).unwrap(),
    );
    // Folding the chunks gives the complete tool call and the usage.
    let mut acc = ChunkAccumulator::default();
    chunks.iter().for_each(|c| acc.push(c));
    assert_eq!(acc.usage().unwrap().total_tokens, 27);
    let resp = acc.finish();
    let call = &resp.choices[0].message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        (call.id.as_str(), call.function.name.as_str()),
        ("call_9", "get_weather")
    );
    assert_eq!(call.function.arguments, r#"{"city":"Paris"}"#);
}

#[test]
fn truncated_stream_is_an_error_not_a_silent_end() {
    let err = translate("openai/stream_truncated.sse").unwrap_err();
    assert_eq!(err.kind, ErrorKind::UpstreamConnection);
    assert!(err.message.contains("ended before the answer was complete"));
}

#[test]
fn error_event_mid_stream_becomes_an_error() {
    let err = translate("openai/stream_error_event.sse").unwrap_err();
    assert_eq!(err.kind, ErrorKind::UpstreamServer);
    assert!(err.message.contains("The server had an error"));
}

#[test]
fn response_and_error_parsing() {
    let resp = parse_chat_response(&read_fixture("openai/chat_response.json")).unwrap();
    assert_golden(
        "openai/golden/chat_response.canonical.json",
        &serde_json::to_value(&resp).unwrap(),
    );
    assert!(parse_chat_response(b"<html>").is_err());
    let e = parse_error_body(br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#);
    assert_eq!(e.code.as_deref(), Some("invalid_api_key"));
    assert_eq!(e.kind, None, "the status decides (401)");
}
