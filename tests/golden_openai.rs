//! Golden tests of the OpenAI adapter's translations (the OpenAI-compatible family shares them).

mod common;

use std::sync::Arc;

use common::{assert_golden, read_fixture};
use ferrogate::ErrorKind;
use ferrogate::providers::openai::{
    OpenAiRawTranslator, OpenAiStreamTranslator, parse_chat_response, parse_error_body,
};
use ferrogate::providers::stream::translate_all;
use ferrogate::schema::{ChatChunk, ChunkAccumulator, StreamChunk, StreamSummary};
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

fn translate_raw(fixture: &str) -> ferrogate::error::Result<Vec<StreamChunk>> {
    translate_all(
        SseDecoder::new(),
        OpenAiRawTranslator::new(Arc::from("openai")),
        &read_fixture(fixture),
    )
}

#[test]
fn complete_chunks_are_kept_as_they_came_for_a_caller_that_passes_them_on() {
    let bytes = read_fixture("openai/stream_tool_call.sse");
    let sent: Vec<&[u8]> = bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| line.strip_prefix(b"data: "))
        .map(|data| data.strip_suffix(b"\r").unwrap_or(data)) // the fixture's lines end in CRLF
        .filter(|data| *data != b"[DONE]")
        .collect();
    let chunks = translate_raw("openai/stream_tool_call.sse").unwrap();
    assert_eq!(chunks.len(), sent.len());
    let mut summary = StreamSummary::default();
    for (chunk, data) in chunks.iter().zip(&sent) {
        match chunk {
            StreamChunk::Raw(raw) => assert_eq!(&raw.data[..], *data),
            StreamChunk::Parsed(_) => panic!("a complete chunk was parsed: {chunk:?}"),
        }
        summary.push(chunk);
    }
    // Parsed on demand, they are the chunks the parsing translation gives.
    let parsed: Vec<ChatChunk> = chunks
        .into_iter()
        .map(|c| c.into_parsed().unwrap())
        .collect();
    assert_eq!(parsed, translate("openai/stream_tool_call.sse").unwrap());
    assert_eq!(summary.usage.unwrap().total_tokens, 27);
    assert_eq!(summary.finish_reasons.len(), 1);
}

#[test]
fn incomplete_chunks_errors_and_truncation_take_the_parsing_path() {
    // The first chunk has no `logprobs` (the parsed form writes `null`): it is parsed. The error
    // event after it ends the stream with the upstream's error, as without the pass-through.
    let err = translate_raw("openai/stream_error_event.sse").unwrap_err();
    assert_eq!(err.kind, ErrorKind::UpstreamServer);
    assert!(err.message.contains("The server had an error"));
    let err = translate_raw("openai/stream_truncated.sse").unwrap_err();
    assert_eq!(err.kind, ErrorKind::UpstreamConnection);
    let mut out = std::collections::VecDeque::new();
    let mut t = OpenAiRawTranslator::new(Arc::from("openai"));
    use ferrogate::providers::stream::StreamTranslator;
    let event = |data: &str| ferrogate::sse::SseEvent {
        data: data.to_string(),
        ..Default::default()
    };
    t.frame(event(r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#), &mut out).unwrap();
    assert!(
        matches!(out.pop_front(), Some(StreamChunk::Parsed(c)) if c.choices[0].delta.content.as_deref() == Some("Hi"))
    );
    let err = t.frame(event("{not json"), &mut out).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadUpstreamResponse);
    assert!(
        err.message.contains("invalid stream chunk"),
        "{}",
        err.message
    );
}

#[test]
fn the_done_marker_ends_a_passed_on_stream_whatever_the_whitespace_around_it() {
    use ferrogate::providers::stream::{Flow, StreamTranslator};
    let frame = |data: &str| {
        let mut t = OpenAiRawTranslator::new(Arc::from("openai"));
        let event = ferrogate::sse::SseEvent {
            data: data.to_string(),
            ..Default::default()
        };
        t.frame(event, &mut std::collections::VecDeque::new())
            .map_err(|e| e.kind)
    };
    for done in ["[DONE]", " [DONE]", "[DONE] ", "\t [DONE]\u{a0}"] {
        assert_eq!(frame(done), Ok(Flow::Done), "{done:?}");
    }
    for not_done in ["[DONE]x", "[DONE] [DONE]", "[DONE"] {
        assert_eq!(
            frame(not_done),
            Err(ErrorKind::BadUpstreamResponse),
            "{not_done:?}"
        );
    }
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
