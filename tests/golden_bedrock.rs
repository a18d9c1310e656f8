//! Golden tests of every Bedrock translation: canonical -> Converse request, Converse response /
//! ConverseStream frames / errors -> canonical, and the embedding bodies. The framing and SigV4
//! goldens are in `golden_bedrock_wire.rs`.

mod common;

use std::sync::Arc;

use common::{assert_golden, read_fixture};
use ferrogate::ErrorKind;
use ferrogate::providers::bedrock::embeddings::{self, EmbedFamily};
use ferrogate::providers::bedrock::response::{finish_reason, parse_error};
use ferrogate::providers::bedrock::wire::ConverseResponse;
use ferrogate::providers::bedrock::{
    BedrockFrames, BedrockStreamTranslator, to_chat_response, to_converse_request,
};
use ferrogate::providers::stream::{FrameDecoder, StreamTranslator, translate_all};
use ferrogate::schema::{ChatChunk, ChatRequest, ChunkAccumulator, EmbeddingRequest, FinishReason};
use serde_json::{Value, json};

fn canonical(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn native_response(name: &str) -> ConverseResponse {
    serde_json::from_slice(&read_fixture(&format!("bedrock/{name}"))).unwrap()
}

/// A `.hex` fixture: hex bytes separated by whitespace, `#` starts a comment.
fn hex_fixture(name: &str) -> Vec<u8> {
    let text = String::from_utf8(read_fixture(&format!("bedrock/{name}"))).unwrap();
    text.lines()
        .map(|l| l.split('#').next().unwrap())
        .flat_map(str::split_whitespace)
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn stream(name: &str, json_tool: Option<&str>) -> ferrogate::error::Result<Vec<ChatChunk>> {
    let translator = BedrockStreamTranslator::new(
        Arc::from("bedrock"),
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "chatcmpl-req-1",
        json_tool.map(str::to_string),
    );
    translate_all(
        BedrockFrames::new(Arc::from("bedrock")),
        translator,
        &hex_fixture(name),
    )
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

#[test]
fn request_to_native() {
    let req: ChatRequest =
        serde_json::from_slice(&read_fixture("bedrock/chat_request.canonical.json")).unwrap();
    let translated = to_converse_request(&req).unwrap();
    assert_eq!(translated.json_tool, None);
    let body = to_value(&translated.body);
    assert_golden("bedrock/golden/chat_request.native.json", &body);
    // The points that matter, spelled out:
    assert_eq!(
        body["system"],
        json!([{"text": "You are a weather assistant."}, {"text": "Answer briefly."},
               {"cachePoint": {"type": "default"}}])
    );
    assert_eq!(
        body["inferenceConfig"],
        json!({"maxTokens": 512, "temperature": 1.0, "topP": 0.9, "stopSequences": ["\n\nHuman:"]}),
        "temperature clamped to Converse's 0..1, empty stop sequences dropped"
    );
    assert_eq!(body["toolConfig"]["toolChoice"], json!({"any": {}}));
    assert_eq!(
        body["toolConfig"]["tools"][1],
        json!({"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}}),
        "an empty description is left out, missing parameters become an empty object schema"
    );
    assert_eq!(
        body["toolConfig"]["tools"][2],
        json!({"cachePoint": {"type": "default"}})
    );
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"top_k": 250, "thinking": {"type": "enabled", "budget_tokens": 1024}}),
        "model parameters go to additionalModelRequestFields; OpenAI-only ones are dropped"
    );
    assert_eq!(body["guardrailConfig"]["guardrailIdentifier"], "gr-1");
    assert_eq!(body["serviceTier"], json!({"type": "flex"}));
    for dropped in [
        "seed",
        "presence_penalty",
        "user",
        "stop",
        "reasoning_effort",
        "store",
        "service_tier",
        "model",
        "parallel_tool_calls",
    ] {
        assert!(body.get(dropped).is_none(), "{dropped} must not be sent");
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
    let user = &body["messages"][0]["content"];
    assert_eq!(
        user[1],
        json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
    );
    assert_eq!(
        user[2]["document"],
        json!({"format": "pdf", "name": "forecast notes (v2)", "source": {"bytes": "JVBERi0xLjQK"}})
    );
    let assistant = &body["messages"][1]["content"];
    assert_eq!(
        assistant[0],
        json!({"reasoningContent": {"reasoningText": {"text": "I need the weather tool.", "signature": "sig-abc"}}}),
        "thinking blocks go back first"
    );
    assert_eq!(assistant[3]["toolUse"]["input"], json!({}));
    let results = &body["messages"][2]["content"];
    assert_eq!(
        results[0],
        json!({"toolResult": {"toolUseId": "tooluse_abc123", "content": [{"text": "{\"temp_c\": 18}"}]}})
    );
    assert_eq!(results[2], json!({"text": "And tomorrow?"}));
}

#[test]
fn json_modes() {
    let base =
        json!({"model": "m", "messages": [{"role": "user", "content": "Capital of France?"}]});
    let mut with_schema = base.clone();
    with_schema["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "place",
        "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}});
    let t = to_converse_request(&canonical(with_schema)).unwrap();
    assert_eq!(t.json_tool, None);
    let output = to_value(&t.body.output_config);
    assert_eq!(output["textFormat"]["type"], "json_schema");
    let spec = &output["textFormat"]["structure"]["jsonSchema"];
    assert_eq!(spec["name"], "place");
    let schema: Value = serde_json::from_str(spec["schema"].as_str().unwrap()).unwrap();
    assert_eq!(
        schema["required"],
        json!(["city"]),
        "the schema travels as a JSON string"
    );
    assert!(t.body.tool_config.is_none());

    let mut object = base;
    object["response_format"] = json!({"type": "json_object"});
    let t = to_converse_request(&canonical(object)).unwrap();
    assert_eq!(t.json_tool.as_deref(), Some("json_tool_call"));
    let tools = to_value(&t.body.tool_config);
    assert_eq!(
        tools["toolChoice"],
        json!({"tool": {"name": "json_tool_call"}})
    );
    let resp = to_chat_response(
        native_response("response_json_tool.json"),
        "m",
        "chatcmpl-1",
        t.json_tool.as_deref(),
    );
    let content: Value = serde_json::from_str(&resp.choices[0].message.text()).unwrap();
    assert_eq!(content, json!({"city": "Paris", "country": "France"}));
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
    assert!(resp.choices[0].message.tool_calls.is_none());
}

#[test]
fn tool_choice_none() {
    let tool =
        json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}});
    let req = canonical(json!({"model": "m", "tool_choice": "none", "tools": [tool],
        "messages": [{"role": "user", "content": "hi"}]}));
    assert!(
        to_converse_request(&req)
            .unwrap()
            .body
            .tool_config
            .is_none(),
        "without tool history the tools are left out"
    );
    let req = canonical(
        json!({"model": "m", "tool_choice": "none", "tools": [tool], "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "done"}]}),
    );
    let config = to_converse_request(&req).unwrap().body.tool_config.unwrap();
    assert_eq!(config.tools.len(), 1, "tool history needs toolConfig");
    assert_eq!(config.tool_choice, None);
    let named = canonical(json!({"model": "m", "tools": [tool],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "messages": [{"role": "user", "content": "hi"}]}));
    let config = to_value(&to_converse_request(&named).unwrap().body.tool_config);
    assert_eq!(config["toolChoice"], json!({"tool": {"name": "f"}}));
    let auto = canonical(json!({"model": "m", "tools": [tool], "tool_choice": "auto",
        "messages": [{"role": "user", "content": "hi"}]}));
    let config = to_value(&to_converse_request(&auto).unwrap().body.tool_config);
    assert_eq!(config["toolChoice"], json!({"auto": {}}));
}

#[test]
fn untranslatable_requests_are_clear_400s() {
    let user = |content: Value| {
        canonical(json!({"model": "m", "messages": [{"role": "user", "content": content}]}))
    };
    let cases: Vec<(ChatRequest, &str, Option<&str>)> = vec![
        (
            canonical(
                json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
            ),
            "`n` greater than 1",
            Some("n"),
        ),
        (
            user(
                json!([{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]),
            ),
            "takes images as bytes, not URLs",
            Some("messages[0].content[0]"),
        ),
        (
            user(
                json!([{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]),
            ),
            "image type \"image/tiff\"",
            Some("messages[0].content[0]"),
        ),
        (
            user(json!([{"type": "input_audio", "input_audio": {"data": "xx", "format": "wav"}}])),
            "content part type \"input_audio\" is not supported by Bedrock Converse",
            Some("messages[0].content[0]"),
        ),
        (
            user(json!([{"type": "file", "file": {"file_id": "file-123"}}])),
            "without `file_data`",
            Some("messages[0].content[0]"),
        ),
        (
            user(json!("   ")),
            "without content",
            Some("messages[0].content"),
        ),
        (
            canonical(json!({"model": "m", "messages": [
                {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
                {"role": "user", "content": "x"}]})),
            "only text in system messages",
            Some("messages[0].content"),
        ),
        (
            canonical(
                json!({"model": "m", "messages": [{"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}),
            ),
            "is not valid JSON",
            Some("messages[1].tool_calls[0].function.arguments"),
        ),
        (
            canonical(
                json!({"model": "m", "messages": [{"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            ),
            "must be a JSON object",
            Some("messages[1].tool_calls[0].function.arguments"),
        ),
        (
            canonical(
                json!({"model": "m", "tools": [{"type": "web_search_preview"}],
                "messages": [{"role": "user", "content": "x"}]}),
            ),
            "tool type \"web_search_preview\"",
            Some("tools[0]"),
        ),
        (
            canonical(json!({"model": "m", "additionalModelRequestFields": [1],
                "messages": [{"role": "user", "content": "x"}]})),
            "must be an object",
            Some("additionalModelRequestFields"),
        ),
    ];
    for (req, message, param) in cases {
        let e = to_converse_request(&req).unwrap_err();
        assert_eq!(e.status, 400, "{}", e.message);
        assert!(
            e.message.contains(message),
            "{message:?} not in {:?}",
            e.message
        );
        assert_eq!(e.param.as_deref(), param, "{}", e.message);
    }
}

#[test]
fn responses_to_canonical() {
    let text = to_chat_response(
        native_response("response_text.json"),
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "chatcmpl-req-1",
        None,
    );
    let mut v = to_value(&text);
    v["created"] = json!(0);
    assert_golden("bedrock/golden/response_text.canonical.json", &v);

    let tool = to_chat_response(
        native_response("response_tool_use.json"),
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "chatcmpl-req-2",
        None,
    );
    let mut v = to_value(&tool);
    v["created"] = json!(0);
    assert_golden("bedrock/golden/response_tool_use.canonical.json", &v);
    let usage = tool.usage.unwrap();
    assert_eq!(
        usage.prompt_tokens,
        412 + 1000 + 200,
        "cache reads and writes count as prompt tokens, as OpenAI counts them"
    );
    assert_eq!(usage.cached_tokens(), 1000);
    assert_eq!(usage.total_tokens, usage.prompt_tokens + 14);
    assert_eq!(usage.extra["cache_creation_input_tokens"], 200);
    let choice = &tool.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(
        choice.message.extra["reasoning_content"],
        "The user wants the weather."
    );
    let calls = choice.message.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].function.arguments, r#"{"city":"Paris"}"#);
    assert_eq!(calls[1].function.arguments, "{}");

    // What a response says about thinking goes back unchanged in the next request.
    let mut next = json!({"model": "m", "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather"}}, {"type": "function", "function": {"name": "get_time"}}]});
    next["messages"]
        .as_array_mut()
        .unwrap()
        .push(to_value(&choice.message));
    let echoed = to_value(&to_converse_request(&canonical(next)).unwrap().body);
    let blocks = &echoed["messages"][1]["content"];
    assert_eq!(
        blocks[0]["reasoningContent"]["reasoningText"]["signature"],
        "EqoBCkgIARAB"
    );
    assert_eq!(
        blocks[1]["reasoningContent"]["redactedContent"],
        "c2VjcmV0IHRob3VnaHRz"
    );
}

#[test]
fn every_stop_reason() {
    let cases = [
        ("end_turn", FinishReason::Stop),
        ("stop_sequence", FinishReason::Stop),
        ("max_tokens", FinishReason::Length),
        ("model_context_window_exceeded", FinishReason::Length),
        ("tool_use", FinishReason::ToolCalls),
        ("guardrail_intervened", FinishReason::ContentFilter),
        ("content_filtered", FinishReason::ContentFilter),
        (
            "malformed_model_output",
            FinishReason::Other("malformed_model_output".into()),
        ),
        (
            "malformed_tool_use",
            FinishReason::Other("malformed_tool_use".into()),
        ),
    ];
    for (reason, expected) in cases {
        assert_eq!(finish_reason(reason), expected, "{reason}");
    }
}

#[test]
fn streams_to_chunks() {
    for (fixture, golden) in [
        ("stream_text.hex", "stream_text.chunks.json"),
        ("stream_tool_use.hex", "stream_tool_use.chunks.json"),
        (
            "stream_reasoning_and_unknown_events.hex",
            "stream_reasoning.chunks.json",
        ),
    ] {
        let chunks = stream(fixture, None).unwrap();
        let mut v = to_value(&chunks);
        for c in v.as_array_mut().unwrap() {
            c["created"] = json!(0); // the translator stamps the current time
        }
        assert_golden(&format!("bedrock/golden/{golden}"), &v);
    }
    let mut acc = ChunkAccumulator::default();
    stream("stream_tool_use.hex", None)
        .unwrap()
        .iter()
        .for_each(|c| acc.push(c));
    let usage = acc.usage().unwrap().clone();
    assert_eq!(usage.prompt_tokens, 20 + 1000 + 200);
    assert_eq!(usage.completion_tokens, 15);
    assert_eq!(usage.cached_tokens(), 1000);
    let resp = acc.finish();
    let calls = resp.choices[0].message.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].id, "tooluse_abc123");
    assert_eq!(calls[0].function.arguments, r#"{"city":"Paris"}"#);
    assert_eq!(calls[1].function.name, "get_time");
    assert_eq!(
        calls[1].function.arguments, "{}",
        "a tool called without input"
    );
    assert_eq!(resp.choices[0].message.text(), "Let me check.");
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));

    // The same stream as emulated JSON mode: the forced tool's input is the content.
    let frames = hex_fixture("stream_tool_use.hex");
    let translator =
        BedrockStreamTranslator::new(Arc::from("bedrock"), "m", "id", Some("get_weather".into()));
    let chunks = translate_all(
        BedrockFrames::new(Arc::from("bedrock")),
        translator,
        &frames,
    )
    .unwrap();
    let mut acc = ChunkAccumulator::default();
    chunks.iter().for_each(|c| acc.push(c));
    let resp = acc.finish();
    assert_eq!(
        resp.choices[0].message.text(),
        r#"Let me check.{"city":"Paris"}"#
    );
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
}

#[test]
fn stream_errors() {
    let e = stream("stream_exception.hex", None).unwrap_err();
    assert_eq!(
        (e.kind, e.status, e.code.as_deref()),
        (ErrorKind::RateLimited, 429, Some("ThrottlingException"))
    );
    assert_eq!(
        e.message,
        "Too many tokens, please wait before trying again."
    );
    let e = stream("stream_model_error.hex", None).unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_deref()),
        (ErrorKind::UpstreamServer, Some("ModelStreamErrorException"))
    );
    assert!(e.message.contains("upstream overloaded"), "{}", e.message);
    for truncated in ["stream_truncated.hex", "stream_no_message_stop.hex"] {
        let e = stream(truncated, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UpstreamConnection, "{truncated}");
        assert_eq!(e.provider.as_deref(), Some("bedrock"));
    }
    // Frames arrive before the error, so the chunks produced so far are delivered first.
    let frames = hex_fixture("stream_exception.hex");
    let mut d = BedrockFrames::new(Arc::from("bedrock"));
    d.push(&frames);
    let mut t = BedrockStreamTranslator::new(Arc::from("bedrock"), "m", "id", None);
    let mut out = std::collections::VecDeque::new();
    t.frame(d.next_frame().unwrap().unwrap(), &mut out).unwrap();
    t.frame(d.next_frame().unwrap().unwrap(), &mut out).unwrap();
    assert_eq!(out.len(), 2);
    assert!(t.frame(d.next_frame().unwrap().unwrap(), &mut out).is_err());
}

#[test]
fn error_bodies() {
    let cases: Vec<Value> = serde_json::from_slice(&read_fixture("bedrock/errors.json")).unwrap();
    for case in cases {
        let status = case["status"].as_u64().unwrap() as u16;
        let body = match &case["body"] {
            Value::String(s) => s.clone().into_bytes(),
            v => serde_json::to_vec(v).unwrap(),
        };
        let (parsed, override_status) = parse_error(case["error_type"].as_str(), &body);
        let kind = parsed.kind.unwrap_or(ErrorKind::from_status(status));
        assert_eq!(kind.as_str(), case["kind"], "{case}");
        assert_eq!(
            override_status.unwrap_or(status),
            case["http_status"].as_u64().unwrap() as u16,
            "{case}"
        );
        if let Some(message) = case["body"].get("message").or(case["body"].get("Message")) {
            assert_eq!(parsed.message.as_deref(), message.as_str(), "{case}");
        }
    }
    let (parsed, _) = parse_error(
        Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        br#"{"message":"slow down"}"#,
    );
    assert_eq!(parsed.code.as_deref(), Some("ThrottlingException"));
}

#[test]
fn embedding_bodies() {
    let req: EmbeddingRequest =
        serde_json::from_value(json!({"model": "amazon.titan-embed-text-v2:0",
        "input": ["a", "b"], "dimensions": 256, "normalize": false}))
        .unwrap();
    assert_eq!(EmbedFamily::of(&req.model).unwrap(), EmbedFamily::Titan);
    assert_eq!(
        to_value(&embeddings::titan_request("a", &req)),
        json!({"inputText": "a", "dimensions": 256, "normalize": false})
    );
    let (v, tokens) = embeddings::parse_titan(
        br#"{"embedding": [0.5, -0.25], "inputTextTokenCount": 3, "embeddingsByType": {"float": [0.5, -0.25]}}"#,
    )
    .unwrap();
    assert_eq!((v, tokens), (vec![0.5, -0.25], 3));

    let req: EmbeddingRequest = serde_json::from_value(json!({"model": "us.cohere.embed-v4:0",
        "input": ["a", "b"], "input_type": "search_query"}))
    .unwrap();
    assert_eq!(EmbedFamily::of(&req.model).unwrap(), EmbedFamily::Cohere);
    assert_eq!(
        to_value(&embeddings::cohere_request(&["a", "b"], &req)),
        json!({"texts": ["a", "b"], "input_type": "search_query", "embedding_types": ["float"]})
    );
    let by_type = embeddings::parse_cohere(
        br#"{"id": "x", "response_type": "embeddings_by_type", "embeddings": {"float": [[1.0], [2.0]]}, "texts": ["a", "b"]}"#,
    )
    .unwrap();
    let floats = embeddings::parse_cohere(
        br#"{"id": "x", "response_type": "embeddings_floats", "embeddings": [[1.0], [2.0]], "texts": ["a", "b"]}"#,
    )
    .unwrap();
    assert_eq!(by_type, vec![vec![1.0], vec![2.0]]);
    assert_eq!(floats, by_type);
    assert!(embeddings::parse_cohere(br#"{"embeddings": {"int8": [[1]]}}"#).is_err());

    let resp = embeddings::to_embedding_response(vec![vec![0.5, -0.25]], "m", 3, true);
    assert_eq!(
        resp.data[0].embedding.to_floats().unwrap(),
        vec![0.5, -0.25],
        "base64 when asked"
    );
    assert_eq!(resp.usage.prompt_tokens, 3);

    let e = EmbedFamily::of("anthropic.claude-3-haiku-20240307-v1:0").unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("model")));
    let tokens: EmbeddingRequest =
        serde_json::from_value(json!({"model": "amazon.titan-embed-text-v2:0", "input": [1, 2]}))
            .unwrap();
    assert_eq!(embeddings::input_texts(&tokens).unwrap_err().status, 400);
}
