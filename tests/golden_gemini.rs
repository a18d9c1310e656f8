//! Golden tests of every Gemini / Vertex AI translation: canonical -> native request, native
//! response / stream / error -> canonical, embeddings, the reverse direction used by the `/genai`
//! drop-in route, and the service-account JWT.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_golden, read_fixture};
use ferrogate::ErrorKind;
use ferrogate::GatewayError;
use ferrogate::compat::genai::{
    ChunksToResponses, batch_embed_request, error_envelope, from_chat_response, to_chat_request,
};
use ferrogate::providers::gemini::embed::{
    from_batch_embed_response, from_predict_response, to_batch_embed_request, to_predict_request,
};
use ferrogate::providers::gemini::wire::{GenerateContentRequest, GenerateContentResponse};
use ferrogate::providers::gemini::{
    GeminiStreamTranslator, parse_error_body, to_chat_response, to_generate_content_request,
};
use ferrogate::providers::google_auth::{ServiceAccount, verify_assertion};
use ferrogate::providers::openai::OpenAiStreamTranslator;
use ferrogate::providers::stream::translate_all;
use ferrogate::schema::{ChatChunk, ChatRequest, ChunkAccumulator, EmbeddingRequest, FinishReason};
use ferrogate::sse::SseDecoder;
use serde_json::{Value, json};

fn canonical(name: &str) -> ChatRequest {
    serde_json::from_slice(&read_fixture(&format!("gemini/{name}"))).unwrap()
}

fn native_response(name: &str) -> GenerateContentResponse {
    serde_json::from_slice(&read_fixture(&format!("gemini/{name}"))).unwrap()
}

fn stream(name: &str) -> ferrogate::error::Result<Vec<ChatChunk>> {
    let bytes = read_fixture(&format!("gemini/{name}"));
    let translator = GeminiStreamTranslator::new(Arc::from("gemini"), "gemini-requested");
    translate_all(SseDecoder::new(), translator, &bytes)
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

/// The `created` stamp is the current time; golden files hold 0.
fn without_created(mut v: Value) -> Value {
    if let Some(items) = v.as_array_mut() {
        for c in items {
            c["created"] = json!(0);
        }
    } else {
        v["created"] = json!(0);
    }
    v
}

#[test]
fn request_to_native() {
    let body =
        to_value(&to_generate_content_request(&canonical("chat_request.canonical.json")).unwrap());
    assert_golden("gemini/golden/chat_request.native.json", &body);
    // The points that matter, spelled out:
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "You are a weather assistant."}, {"text": "Answer briefly."}]})
    );
    let roles: Vec<&str> = body["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "model", "user"],
        "both function responses and the next user turn share one turn"
    );
    let user = &body["contents"][0]["parts"];
    assert_eq!(
        user[1]["inlineData"],
        json!({"mimeType": "image/png", "data": "iVBORw0KGgo="})
    );
    assert_eq!(user[2]["fileData"]["mimeType"], "image/jpeg");
    let model = &body["contents"][1]["parts"];
    assert_eq!(
        model[1]["thoughtSignature"], "c2lnbmF0dXJlLWE=",
        "signatures go back with their call"
    );
    assert_eq!(
        model[2]["functionCall"],
        json!({"name": "get_time", "args": {}})
    );
    let responses = &body["contents"][2]["parts"];
    assert_eq!(
        responses[0]["functionResponse"],
        json!({"name": "get_weather", "response": {"temp_c": 18}})
    );
    assert_eq!(
        responses[1]["functionResponse"],
        json!({"name": "get_time", "response": {"output": "14:05"}})
    );
    let decl = &body["tools"][0]["functionDeclarations"];
    assert!(decl[0]["parameters"].get("additionalProperties").is_none());
    assert!(decl[0]["parameters"].get("$schema").is_none());
    assert!(
        decl[1].get("parameters").is_none(),
        "no properties: no parameters"
    );
    assert_eq!(body["tools"][1], json!({"googleSearch": {}}));
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    let g = &body["generationConfig"];
    assert_eq!(g["candidateCount"], 2);
    assert_eq!(g["maxOutputTokens"], 300);
    assert_eq!(g["topK"], 40);
    assert_eq!(g["responseMimeType"], "application/json");
    assert!(g["responseSchema"].get("additionalProperties").is_none());
    assert_eq!(g["thinkingConfig"]["thinkingBudget"], 1024);
    assert_eq!(body["safetySettings"][0]["threshold"], "BLOCK_ONLY_HIGH");
    for dropped in ["user", "store", "top_k", "seed", "n"] {
        assert!(
            body.get(dropped).is_none(),
            "{dropped} must not be sent to Gemini"
        );
    }

    let req: ChatRequest = serde_json::from_value(json!({"model": "g", "reasoning_effort": "low",
        "messages": [{"role": "user", "content": "x"}]}))
    .unwrap();
    let body = to_value(&to_generate_content_request(&req).unwrap());
    assert_eq!(
        body["generationConfig"],
        json!({"thinkingConfig": {"thinkingBudget": 1024}})
    );
    assert!(body.get("reasoning_effort").is_none());
}

#[test]
fn untranslatable_requests_are_clear_400s() {
    let req: ChatRequest = serde_json::from_value(json!({"model": "g", "messages": [
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "nobody", "content": "42"}]}))
    .unwrap();
    let e = to_generate_content_request(&req).unwrap_err();
    assert_eq!(
        (e.status, e.param.as_deref()),
        (400, Some("messages[1].tool_call_id"))
    );
    assert!(e.message.contains("function name"), "{}", e.message);

    let req: ChatRequest = serde_json::from_value(json!({"model": "g", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/photo"}}]}]}))
    .unwrap();
    let e = to_generate_content_request(&req).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[0].content[0]"));
    assert!(e.message.contains("MIME type"), "{}", e.message);

    let req: ChatRequest = serde_json::from_value(json!({"model": "g", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}))
    .unwrap();
    let e = to_generate_content_request(&req).unwrap_err();
    assert_eq!(
        e.param.as_deref(),
        Some("messages[1].tool_calls[0].function.arguments")
    );

    let req: ChatRequest = serde_json::from_value(
        json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_preview"}]}),
    )
    .unwrap();
    let e = to_generate_content_request(&req).unwrap_err();
    assert!(
        e.message.contains("not supported by Gemini"),
        "{}",
        e.message
    );

    let req: ChatRequest = serde_json::from_value(
        json!({"model": "g", "messages": [{"role": "system", "content": "only a system prompt"}]}),
    )
    .unwrap();
    assert_eq!(to_generate_content_request(&req).unwrap_err().status, 400);
}

#[test]
fn responses_to_canonical() {
    let text = to_chat_response(native_response("response_text.json"), "gemini-requested");
    assert_golden(
        "gemini/golden/response_text.canonical.json",
        &without_created(to_value(&text)),
    );
    let usage = text.usage.as_ref().unwrap();
    assert_eq!(usage.prompt_tokens, 1250);
    assert_eq!(
        usage.completion_tokens,
        11 + 40,
        "thoughts count as completion tokens"
    );
    assert_eq!(usage.cached_tokens(), 1024);
    assert_eq!(
        usage
            .completion_tokens_details
            .as_ref()
            .unwrap()
            .reasoning_tokens,
        Some(40)
    );
    assert_eq!(
        text.choices[0].message.extra["reasoning_content"],
        "The user asks about Paris weather."
    );

    let calls = to_chat_response(native_response("response_function_call.json"), "m");
    assert_golden(
        "gemini/golden/response_function_call.canonical.json",
        &without_created(to_value(&calls)),
    );
    assert_eq!(
        calls.choices[0].finish_reason,
        Some(FinishReason::ToolCalls)
    );
    let tc = calls.choices[0].message.tool_calls.as_ref().unwrap();
    assert!(
        tc[0].id.ends_with("__thought__CiQB0e2Kb2zKg0yR"),
        "{}",
        tc[0].id
    );
    assert_ne!(tc[0].id, tc[1].id);
    assert_eq!(tc[1].function.arguments, "{}");
    // Ids are stable: the same response gives the same ids.
    let again = to_chat_response(native_response("response_function_call.json"), "m");
    assert_eq!(
        again.choices[0].message.tool_calls.as_ref().unwrap()[0].id,
        tc[0].id
    );

    let safety = to_chat_response(native_response("response_safety.json"), "m");
    assert_eq!(
        safety.choices[0].finish_reason,
        Some(FinishReason::ContentFilter)
    );
    assert_eq!(safety.choices[0].message.text(), "");
    let blocked = to_chat_response(native_response("response_blocked.json"), "m");
    assert_eq!(blocked.choices.len(), 1);
    assert_eq!(
        blocked.choices[0].finish_reason,
        Some(FinishReason::ContentFilter)
    );
    assert_eq!(blocked.usage.unwrap().prompt_tokens, 7);
}

#[test]
fn streams_to_chunks() {
    for (fixture, golden) in [
        ("stream_text.sse", "stream_text.chunks.json"),
        (
            "stream_function_call.sse",
            "stream_function_call.chunks.json",
        ),
        ("stream_safety.sse", "stream_safety.chunks.json"),
        ("stream_blocked.sse", "stream_blocked.chunks.json"),
    ] {
        let chunks = stream(fixture).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        assert_golden(
            &format!("gemini/golden/{golden}"),
            &without_created(to_value(&chunks)),
        );
    }
    let mut acc = ChunkAccumulator::default();
    stream("stream_function_call.sse")
        .unwrap()
        .iter()
        .for_each(|c| acc.push(c));
    assert_eq!(acc.usage().unwrap().completion_tokens, 38);
    let resp = acc.finish();
    let calls = resp.choices[0].message.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].function.arguments, r#"{"city":"Paris"}"#);
    assert_eq!(resp.choices[0].message.text(), "Let me look.");
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));

    let mut acc = ChunkAccumulator::default();
    stream("stream_safety.sse")
        .unwrap()
        .iter()
        .for_each(|c| acc.push(c));
    assert_eq!(
        acc.finish().choices[0].finish_reason,
        Some(FinishReason::ContentFilter)
    );
}

#[test]
fn stream_errors() {
    let e = stream("stream_error.sse").unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_deref()),
        (ErrorKind::Unavailable, Some("UNAVAILABLE"))
    );
    let e = stream("stream_truncated.sse").unwrap_err();
    assert_eq!(e.kind, ErrorKind::UpstreamConnection);
    assert!(
        e.message.contains("before a finish reason"),
        "{}",
        e.message
    );
}

#[test]
fn error_bodies() {
    // An invalid key is a 400 INVALID_ARGUMENT on the wire; callers see an authentication error.
    let e = parse_error_body(br#"{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}"#);
    assert_eq!(
        (e.body.kind, e.status),
        (Some(ErrorKind::Authentication), Some(401))
    );
    assert_eq!(e.body.code.as_deref(), Some("invalid_api_key"));
    let e = parse_error_body(br#"{"error": {"code": 403, "message": "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", "status": "PERMISSION_DENIED"}}"#);
    assert_eq!(e.body.kind, Some(ErrorKind::Authentication));
    let e = parse_error_body(br#"{"error": {"code": 403, "message": "Permission denied on resource project x.", "status": "PERMISSION_DENIED"}}"#);
    assert_eq!(
        (e.body.kind, e.status),
        (Some(ErrorKind::PermissionDenied), None)
    );
    let e = parse_error_body(br#"{"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}"#);
    assert_eq!(e.body.kind, Some(ErrorKind::ContextWindowExceeded));
    let e = parse_error_body(br#"{"error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}"#);
    assert_eq!(e.body.kind, Some(ErrorKind::RateLimited));
    assert_eq!(e.retry_after, Some(Duration::from_secs(37)));
    let e = parse_error_body(br#"{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}"#);
    assert_eq!(e.body.kind, Some(ErrorKind::Unavailable));
    let e = parse_error_body(br#"{"error": {"code": 404, "message": "models/gemini-9 is not found for API version v1beta", "status": "NOT_FOUND"}}"#);
    assert_eq!(
        (e.body.kind, e.body.message.as_deref()),
        (
            Some(ErrorKind::NotFound),
            Some("models/gemini-9 is not found for API version v1beta")
        )
    );
    assert_eq!(parse_error_body(b"<html>502</html>").body.kind, None);
}

#[test]
fn embeddings() {
    let req: EmbeddingRequest = serde_json::from_value(json!({"model": "text-embedding-004",
        "input": ["a", "b"], "dimensions": 8, "task_type": "RETRIEVAL_QUERY"}))
    .unwrap();
    assert_golden(
        "gemini/golden/embeddings_request.native.json",
        &to_value(&to_batch_embed_request(&req).unwrap()),
    );
    assert_eq!(
        to_value(&to_predict_request(&req).unwrap()),
        json!({"instances": [{"content": "a", "task_type": "RETRIEVAL_QUERY"}, {"content": "b", "task_type": "RETRIEVAL_QUERY"}],
               "parameters": {"outputDimensionality": 8}})
    );
    let resp = from_batch_embed_response(
        serde_json::from_value(
            json!({"embeddings": [{"values": [0.5, -0.25]}, {"values": [1.0, 0.0]}]}),
        )
        .unwrap(),
        &req,
    );
    assert_eq!(resp.data[1].index, 1);
    assert_eq!(resp.data[1].embedding.to_floats().unwrap(), vec![1.0, 0.0]);
    let resp = from_predict_response(
        serde_json::from_value(json!({"predictions": [
            {"embeddings": {"values": [0.5], "statistics": {"token_count": 3, "truncated": false}}},
            {"embeddings": {"values": [0.25], "statistics": {"token_count": 4, "truncated": false}}}],
            "metadata": {"billableCharacterCount": 2}})).unwrap(),
        &req,
    );
    assert_eq!(resp.usage.prompt_tokens, 7);
    let tokens: EmbeddingRequest =
        serde_json::from_value(json!({"model": "m", "input": [1, 2, 3]})).unwrap();
    assert_eq!(
        to_batch_embed_request(&tokens)
            .unwrap_err()
            .param
            .as_deref(),
        Some("input")
    );
}

#[test]
fn drop_in_route_translations() {
    // What the google-genai SDK sends (snake_case `mime_type`, upper-case schema types).
    let native: GenerateContentRequest =
        serde_json::from_slice(&read_fixture("gemini/genai_sdk_request.json")).unwrap();
    let canonical = to_chat_request(native.clone(), "openai/gpt-4o-mini", false).unwrap();
    assert_golden(
        "gemini/golden/genai_sdk_request.canonical.json",
        &to_value(&canonical),
    );
    // ... and back to Gemini: the thought signature survives the round trip.
    let again = to_value(&to_generate_content_request(&canonical).unwrap());
    assert_eq!(
        again["contents"][1]["parts"][0]["thoughtSignature"],
        "c2lnLTE="
    );
    assert_eq!(
        again["contents"][2]["parts"][0]["functionResponse"]["response"],
        json!({"output": "18 C, sunny"})
    );

    // The canonical form of an OpenAI stream, rendered as Gemini stream events.
    let chunks = translate_all(
        SseDecoder::new(),
        OpenAiStreamTranslator::new(Arc::from("openai")),
        &read_fixture("openai/stream_tool_call.sse"),
    )
    .unwrap();
    let mut events = Vec::new();
    let mut translator = ChunksToResponses::new("gpt-4o-mini");
    chunks.iter().for_each(|c| translator.chunk(c, &mut events));
    translator.finish(&mut events);
    assert_golden(
        "gemini/golden/openai_stream_as_genai.json",
        &to_value(&events),
    );
    let mut acc = ChunkAccumulator::default();
    chunks.iter().for_each(|c| acc.push(c));
    let resp = from_chat_response(&acc.finish(), "openai/gpt-4o-mini");
    assert_golden(
        "gemini/golden/openai_response_as_genai.json",
        &to_value(&resp),
    );

    let err = GatewayError::new(ErrorKind::RateLimited, "slow down")
        .with_retry_after(Some(Duration::from_secs(2)));
    assert_eq!(
        to_value(&error_envelope(&err)),
        json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]}})
    );
    let batch = serde_json::from_value(json!({"requests": [
        {"model": "models/e", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4},
        {"model": "models/e", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 8}]}))
    .unwrap();
    assert_eq!(batch_embed_request(batch, "e").unwrap_err().status, 400);
}

#[test]
fn service_account_assertion() {
    let text = String::from_utf8(read_fixture("gemini/test_service_account.json")).unwrap();
    let account = ServiceAccount::from_json(&text).unwrap();
    let iat = 1_750_000_000;
    let jwt = account.assertion(iat).unwrap();
    let (header, claims) = verify_assertion(&jwt, Some(&account.public_key_der())).unwrap();
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef0123456789abcdef01234567"})
    );
    assert_eq!(
        claims,
        json!({
            "iss": "gateway-test@ferrogate-test.iam.gserviceaccount.com",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": "https://oauth2.googleapis.com/token",
            "iat": iat,
            "exp": iat + 3600,
        })
    );
    // RS256 is deterministic: the same claims give the same assertion.
    assert_eq!(account.assertion(iat).unwrap(), jwt);
    // A tampered assertion fails verification.
    let mut parts: Vec<&str> = jwt.split('.').collect();
    let other = account.assertion(iat + 1).unwrap();
    parts[1] = other.split('.').nth(1).unwrap();
    assert!(verify_assertion(&parts.join("."), Some(&account.public_key_der())).is_err());
    // Debug output never shows the key.
    let shown = format!("{account:?}");
    assert!(
        !shown.contains("PRIVATE KEY") && shown.contains("gateway-test@"),
        "{shown}"
    );
    assert_eq!(account.project_id.as_deref(), Some("ferrogate-test"));

    let e =
        ServiceAccount::from_json(r#"{"type": "authorized_user", "client_id": "x"}"#).unwrap_err();
    assert!(e.contains("authorized_user"), "{e}");
    let e = ServiceAccount::from_json(
        r#"{"type": "service_account", "client_email": "a@b", "private_key": "not a key"}"#,
    )
    .unwrap_err();
    assert!(e.contains("private_key") && !e.contains("not a key"), "{e}");
}
