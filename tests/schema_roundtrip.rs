//! The canonical schema loses nothing: every fixture parses and serializes back to the same JSON,
//! unknown fields included, at every level.

use ferrogate::schema::*;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/openai/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn round_trip<T: Serialize + DeserializeOwned>(name: &str) -> T {
    let original = fixture(name);
    let parsed: T = serde_json::from_value(original.clone()).unwrap();
    let back = serde_json::to_value(&parsed).unwrap();
    assert_eq!(back, original, "{name} changed in a round trip");
    parsed
}

#[test]
fn chat_request_keeps_every_field() {
    let req: ChatRequest = round_trip("chat_request_kitchen_sink.json");
    // Known fields are typed...
    assert_eq!(req.messages.len(), 6);
    assert_eq!(
        req.stop,
        Some(Stop::Many(vec!["END".into(), "STOP".into()]))
    );
    assert_eq!(
        req.tool_choice.as_ref().unwrap().forced_function(),
        Some("get_weather")
    );
    assert_eq!(
        req.response_format
            .as_ref()
            .unwrap()
            .json_schema
            .as_ref()
            .unwrap()
            .name,
        "answer"
    );
    let MessageContent::Parts(parts) = req.messages[2].content.as_ref().unwrap() else {
        panic!("parts expected")
    };
    assert!(
        matches!(&parts[1], ContentPart::ImageUrl { image_url, .. } if image_url.detail.as_deref() == Some("high"))
    );
    assert!(matches!(&parts[3], ContentPart::Other(_)));
    // ...and unknown ones, including explicit nulls, are kept.
    assert_eq!(
        req.extra["x_vendor_param"]["nested"][2]["deep"],
        Value::Null
    );
    assert!(req.extra.contains_key("reasoning_effort"));
    assert_eq!(
        req.messages[0].extra["x_custom_message_field"]["keep"],
        true
    );
    assert_eq!(req.tools.as_ref().unwrap()[1].kind, "custom");
}

#[test]
fn chat_response_keeps_every_field() {
    let resp: ChatResponse = round_trip("chat_response.json");
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(resp.usage.as_ref().unwrap().cached_tokens(), 32);
    assert_eq!(resp.extra["service_tier"], "default");
}

#[test]
fn chunk_embeddings_models_keep_every_field() {
    let chunk: ChatChunk = round_trip("chat_chunk.json");
    assert_eq!(
        chunk.choices[0].delta.tool_calls.as_ref().unwrap()[0]
            .id
            .as_deref(),
        Some("call_1")
    );
    let req: EmbeddingRequest = round_trip("embeddings_request.json");
    assert!(req.wants_base64());
    let resp: EmbeddingResponse = round_trip("embeddings_response.json");
    assert_eq!(resp.data[1].embedding.to_floats().unwrap(), vec![1.0, 2.0]);
    let models: ModelList = round_trip("models_response.json");
    assert_eq!(models.data[1].extra["x_model"], 1);
}

#[test]
fn numbers_reach_the_upstream_as_the_client_wrote_them() {
    // The shortest forms of doubles (as a client's JSON writer gives them) that a parser
    // without correct rounding reads one unit in the last place off, and integers at the
    // limits of their types: the request sent upstream must say the same numbers.
    let numbers = "[-2.568681713227542e+174,-8.583709933403243e-175,6.464469871759015e-257,\
                   3.155944673755724e+31,0.30000000000000004,18446744073709551615,\
                   -9223372036854775808]";
    let body = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],
            "temperature":0.30000000000000004,"x_numbers":{numbers},
            "x_halfway":9007199254740993.0}}"#
    );
    let request: ChatRequest = parse_json(body.as_bytes()).unwrap();
    let sent = String::from_utf8(to_json_vec(&request).unwrap()).unwrap();
    let numbers: String = numbers.split_whitespace().collect();
    assert!(
        sent.contains(&format!(r#""x_numbers":{numbers}"#)),
        "{sent}"
    );
    assert!(
        sent.contains(r#""temperature":0.30000000000000004"#),
        "{sent}"
    );
    // Halfway between two doubles: rounded to the even one, as IEEE 754 says.
    assert!(sent.contains(r#""x_halfway":9007199254740992.0"#), "{sent}");
}

#[test]
fn bad_requests_name_the_field() {
    let cases = [
        (
            r#"{"messages":[{"role":"user","content":"x"}]}"#,
            "missing field `model`",
        ),
        (r#"{"model":"m"}"#, "missing field `messages`"),
        (
            r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
            "messages[0].role: unknown variant `wizard`",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
            "messages[0].content",
        ),
        (
            r#"{"model":"m","messages":[],"temperature":"hot"}"#,
            "temperature: invalid type: string \"hot\"",
        ),
        (
            r#"{"model":"m","messages":"hi"}"#,
            "messages: invalid type: string",
        ),
        (r#"{"model":"m","messages":[]} trailing"#, "trailing"),
        (r#"{"model": "m", "messages": ["#, "EOF"),
    ];
    for (body, expected) in cases {
        let err = parse_json::<ChatRequest>(body.as_bytes()).unwrap_err();
        assert_eq!(err.status, 400, "{body}");
        assert!(
            err.message.contains(expected),
            "{body}: got {:?}, expected to contain {expected:?}",
            err.message
        );
    }
    let err =
        parse_json::<ChatRequest>(br#"{"model":"m","messages":[{"role":"user","content":5}]}"#)
            .unwrap_err();
    assert_eq!(err.param.as_deref(), Some("messages[0].content"));
}

#[test]
fn validation() {
    let mut req: ChatRequest =
        serde_json::from_str(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#)
            .unwrap();
    assert!(req.validate().is_ok());
    req.temperature = Some(3.0);
    assert_eq!(
        req.validate().unwrap_err().param.as_deref(),
        Some("temperature")
    );
    req.temperature = None;
    req.messages.clear();
    assert_eq!(
        req.validate().unwrap_err().param.as_deref(),
        Some("messages")
    );
    let req: ChatRequest =
        serde_json::from_str(r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#)
            .unwrap();
    assert!(req.validate().unwrap_err().message.contains("tool_call_id"));
}

#[test]
fn embedding_inputs() {
    for (input, expected_len) in [
        (r#""a""#, 1),
        (r#"["a","b"]"#, 2),
        ("[1,2,3]", 1),
        ("[[1],[2,3]]", 2),
    ] {
        let body = format!(r#"{{"model":"m","input":{input}}}"#);
        let req = parse_json::<EmbeddingRequest>(body.as_bytes()).unwrap();
        assert_eq!(req.input.len(), expected_len, "{input}");
        assert_eq!(
            serde_json::to_value(&req).unwrap()["input"],
            serde_json::from_str::<Value>(input).unwrap()
        );
    }
    for bad in ["null", "5", r#"[true]"#, r#"["a", 1]"#, r#"{"a":1}"#] {
        let body = format!(r#"{{"model":"m","input":{bad}}}"#);
        let err = parse_json::<EmbeddingRequest>(body.as_bytes()).unwrap_err();
        assert!(
            err.message.contains("input: `input` must be a string"),
            "{bad}: {}",
            err.message
        );
    }
}
