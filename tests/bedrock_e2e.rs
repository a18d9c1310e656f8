//! Bedrock end to end, in this process: the gateway's HTTP server in front of the mock speaking
//! Bedrock Runtime, which checks every SigV4 signature by recomputing it. Converse,
//! ConverseStream, tools, images, Titan and Cohere embeddings, API keys, and the errors.

use std::time::{Duration, SystemTime};

use ferrogate::config::Config;
use ferrogate::gateway::Gateway;
use ferrogate::mock::{MockOptions, RunningMock};
use ferrogate::providers::bedrock::sigv4::sign_request;
use ferrogate::providers::credentials::AwsCredential;
use ferrogate::secret::Secret;
use ferrogate::server::RunningServer;
use serde_json::{Value, json};

const API_KEY: &str = "sk-mock-key-0123456789";
const AKID: &str = "AKIDMOCKEXAMPLE01";
const SECRET: &str = "mock/Secret+Key/0123456789abcdefEXAMPLE";
const WRONG_SECRET: &str = "wrong/Secret+Key/0123456789abcdefEXAMPLE";
const TOKEN: &str = "FQoGZXIvYXdzMOCKSESSIONTOKEN0123456789";
const MODEL: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

struct Setup {
    mock: RunningMock,
    server: RunningServer,
    http: reqwest::Client,
}

impl Setup {
    async fn new() -> Setup {
        let mock = RunningMock::start(
            MockOptions {
                api_key: Some(API_KEY.into()),
                aws_access_key_id: Some(AKID.into()),
                aws_secret_access_key: Some(SECRET.into()),
                ..Default::default()
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let base = mock.base_url();
        let config = json!({"providers": {
            "bedrock": {"base_url": base, "region": "us-east-1",
                        "aws_access_key_id": AKID, "aws_secret_access_key": SECRET},
            "bedrock-sts": {"api": "bedrock", "base_url": base, "region": "eu-west-1",
                            "aws_access_key_id": AKID, "aws_secret_access_key": SECRET,
                            "aws_session_token": TOKEN},
            "bedrock-key": {"api": "bedrock", "base_url": base, "api_key": API_KEY},
            "bedrock-bad": {"api": "bedrock", "base_url": base,
                            "aws_access_key_id": AKID, "aws_secret_access_key": WRONG_SECRET,
                            "aws_session_token": TOKEN},
            "bedrock-slow": {"api": "bedrock", "base_url": base,
                             "aws_access_key_id": AKID, "aws_secret_access_key": SECRET,
                             "timeouts": {"request": "400ms", "stream_idle": "400ms"}}
        },
        // These tests map each upstream failure; the breaker would turn repeats into 503s.
        "routing": {"circuit_breaker": {"failures": 1000}}});
        let gateway = Gateway::new(Config::from_value(config).unwrap()).unwrap();
        let server = RunningServer::start(gateway, "127.0.0.1", 0).await.unwrap();
        Setup {
            mock,
            server,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.server.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }

    async fn chat(&self, body: Value) -> (u16, Value) {
        let (status, _, text) = self.post("/v1/chat/completions", body).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The `data:` payloads of a streamed chat, `[DONE]` included.
    async fn stream(&self, mut body: Value) -> (u16, Vec<String>) {
        body["stream"] = json!(true);
        let (status, _, text) = self.post("/v1/chat/completions", body).await;
        let events = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_string)
            .collect();
        (status, events)
    }

    async fn last_upstream(&self) -> Value {
        let v: Value = self
            .http
            .get(format!("{}/mock/requests", self.mock.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["requests"].as_array().unwrap().last().unwrap().clone()
    }
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

fn parse_chunks(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

const WEATHER: &str = r#"{"type": "function", "function": {"name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}"#;

#[tokio::test(flavor = "multi_thread")]
async fn converse_signed_and_translated() {
    let s = Setup::new().await;
    let (status, headers, text) = s
        .post(
            "/v1/chat/completions",
            json!({"model": format!("bedrock/{MODEL}"), "max_tokens": 100, "temperature": 1.5,
                   "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello native"}]}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: hello native"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["model"], MODEL);
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let usage = &body["usage"];
    assert_eq!(usage["completion_tokens"], 4);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + 4
    );
    assert_eq!(headers["x-ferrogate-provider"], "bedrock");
    let upstream = s.last_upstream().await;
    assert_eq!(
        upstream["path"],
        "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    assert_eq!(
        upstream["key_hint"], "LE01",
        "signed with the configured access key"
    );
    assert_eq!(upstream["body"]["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        upstream["body"]["inferenceConfig"],
        json!({"maxTokens": 100, "temperature": 1.0})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn arn_model_ids_and_session_tokens_are_signed_as_sent() {
    let s = Setup::new().await;
    let arn = "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-5-haiku-20241022-v1:0";
    let (status, body) = s
        .chat(json!({"model": format!("bedrock-sts/{arn}"), "messages": user("via a profile")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: via a profile"
    );
    let upstream = s.last_upstream().await;
    assert_eq!(
        upstream["path"],
        "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Ainference-profile%2Feu.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    assert!(
        upstream["headers"].get("x-amz-security-token").is_none(),
        "the mock does not record the session token"
    );
    assert!(upstream["headers"]["x-amz-date"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn converse_stream() {
    let s = Setup::new().await;
    let (status, events) = s
        .stream(
            json!({"model": format!("bedrock/{MODEL}"), "messages": user("stream native words"),
                       "stream_options": {"include_usage": true}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks = parse_chunks(&events);
    assert_eq!(streamed_text(&chunks), "You said: stream native words");
    let finishes: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finishes, ["stop"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 5);
    assert!(
        s.last_upstream().await["path"]
            .as_str()
            .unwrap()
            .ends_with("/converse-stream")
    );

    // Without include_usage, no usage chunk.
    let (_, events) = s
        .stream(json!({"model": format!("bedrock/{MODEL}"), "messages": user("a b")}))
        .await;
    assert!(
        parse_chunks(&events)
            .iter()
            .all(|c| c.get("usage").is_none())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_round_trip_plain_and_streamed() {
    let s = Setup::new().await;
    let weather: Value = serde_json::from_str(WEATHER).unwrap();
    let model = format!("bedrock/{MODEL}");
    let mut messages = user("weather in Lima");
    let (status, first) = s
        .chat(json!({"model": model, "messages": messages, "tools": [weather]}))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["choices"][0]["finish_reason"], "tool_calls");
    let call = first["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Lima"}));
    assert!(call["id"].as_str().unwrap().starts_with("tooluse_"));
    let messages_arr = messages.as_array_mut().unwrap();
    messages_arr.push(first["choices"][0]["message"].clone());
    messages_arr.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "warm"}));
    let (status, second) = s
        .chat(json!({"model": model, "messages": messages, "tools": [weather]}))
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["choices"][0]["message"]["content"],
        "The tool returned: warm"
    );
    // The mock checked that the tool use was answered in the next user turn.
    let upstream = s.last_upstream().await;
    assert_eq!(
        upstream["body"]["messages"][2]["content"][0]["toolResult"]["toolUseId"],
        call["id"]
    );

    let (status, events) = s
        .stream(json!({"model": model, "messages": user("weather in Kyiv"), "tools": [weather]}))
        .await;
    assert_eq!(status, 200);
    let chunks = parse_chunks(&events);
    let mut names = Vec::new();
    let mut arguments = String::new();
    for c in &chunks {
        for tc in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(n) = tc["function"]["name"].as_str() {
                names.push(n.to_string());
            }
            arguments.push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(names, ["get_weather"]);
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "Kyiv"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn images_as_bytes() {
    let s = Setup::new().await;
    let pixel = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let (status, body) = s
        .chat(json!({"model": format!("bedrock/{MODEL}"), "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": pixel}}]}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: what is this (and 1 image)"
    );
    let upstream = s.last_upstream().await;
    assert_eq!(
        upstream["body"]["messages"][0]["content"][1]["image"]["format"],
        "png"
    );

    let (status, body) = s
        .chat(
            json!({"model": format!("bedrock/{MODEL}"), "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not URLs"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn titan_and_cohere_embeddings() {
    let s = Setup::new().await;
    let (status, _, text) = s
        .post(
            "/v1/embeddings",
            json!({"model": "bedrock/amazon.titan-embed-text-v2:0", "input": ["one", "two three"], "dimensions": 256}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 256);
    assert_eq!(
        body["usage"]["prompt_tokens"], 3,
        "one call per text, token counts summed"
    );
    assert_eq!(body["model"], "amazon.titan-embed-text-v2:0");

    let (status, _, text) = s
        .post(
            "/v1/embeddings",
            json!({"model": "bedrock/cohere.embed-english-v3", "input": ["a", "b", "c d"],
                   "encoding_format": "base64", "input_type": "search_query"}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 3);
    assert!(
        body["data"][2]["embedding"].is_string(),
        "base64 when asked"
    );
    assert_eq!(
        body["usage"]["prompt_tokens"], 4,
        "from the token-count header"
    );
    let upstream = s.last_upstream().await;
    assert_eq!(upstream["path"], "/model/cohere.embed-english-v3/invoke");
    assert_eq!(upstream["body"]["input_type"], "search_query");
    assert_eq!(upstream["body"]["texts"], json!(["a", "b", "c d"]));

    let (status, _, text) = s
        .post(
            "/v1/embeddings",
            json!({"model": format!("bedrock/{MODEL}"), "input": "x"}),
        )
        .await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_is_a_bearer_token() {
    let s = Setup::new().await;
    let (status, body) = s
        .chat(json!({"model": format!("bedrock-key/{MODEL}"), "messages": user("with a key")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.last_upstream().await["key_hint"], "6789");
    // Unsigned and without a key: the mock refuses like AWS.
    let resp = s
        .http
        .post(format!("{}/model/{MODEL}/converse", s.mock.base_url()))
        .json(&json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers()["x-amzn-errortype"].to_str().unwrap(),
        "MissingAuthenticationTokenException:http://internal.amazon.com/coral/com.amazon.bedrock/"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_secret_is_refused_by_the_signature_check() {
    let s = Setup::new().await;
    // The mock answers 403 InvalidSignatureException, as AWS does...
    let url = format!(
        "{}/model/{}/converse",
        s.mock.base_url(),
        "anthropic.claude-3-5-haiku-20241022-v1%3A0"
    );
    let body = br#"{"messages":[{"role":"user","content":[{"text":"x"}]}]}"#;
    let sign = |secret: &str, at: SystemTime| {
        let credential = AwsCredential {
            access_key_id: Secret::new(AKID),
            secret_access_key: Secret::new(secret),
            session_token: None,
        };
        sign_request(
            &credential,
            "us-east-1",
            "POST",
            &url,
            &[("content-type", "application/json")],
            body,
            at,
        )
        .unwrap()
    };
    let send = |headers: Vec<(String, String)>| {
        let mut req = s
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(&body[..]);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let resp = send(sign(SECRET, SystemTime::now())).await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = send(sign(WRONG_SECRET, SystemTime::now())).await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(
        resp.headers()["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .starts_with("InvalidSignatureException")
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("The request signature we calculated does not match"),
        "{text}"
    );
    let resp = send(sign(SECRET, SystemTime::now() - Duration::from_secs(600)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("Signature expired"));

    // ... which the gateway reports as an authentication error, without any secret in it.
    let (status, body) = s
        .chat(json!({"model": format!("bedrock-bad/{MODEL}"), "messages": user("x")}))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(body["error"]["code"], "InvalidSignatureException");
    assert_eq!(body["error"]["provider"], "bedrock-bad");
    let text = body.to_string();
    assert!(
        text.contains("signature we calculated does not match"),
        "{text}"
    );
    for secret in [WRONG_SECRET, TOKEN, AKID] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bedrock_errors_and_faults() {
    let s = Setup::new().await;
    let chat =
        |word: &str| json!({"model": format!("bedrock/{MODEL}-{word}"), "messages": user("x")});
    let cases = [
        ("fail-401", 401, "authentication_error"),
        ("fail-403", 403, "permission_error"),
        ("fail-404", 404, "not_found_error"),
        ("fail-429", 429, "rate_limit_error"),
        ("fail-500", 500, "server_error"),
        ("fail-503", 503, "service_unavailable_error"),
        ("garbage", 502, "bad_response_error"),
        ("drop", 502, "api_connection_error"),
    ];
    for (word, status, kind) in cases {
        let (got, body) = s.chat(chat(word)).await;
        assert_eq!(
            (got, body["error"]["type"].as_str()),
            (status, Some(kind)),
            "{word}: {body}"
        );
    }
    let (status, body) = s.chat(chat("toolong")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    let (status, body) = s.chat(chat("refuse")).await;
    assert_eq!(status, 200);
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    let (status, body) = s
        .chat(json!({"model": format!("bedrock-slow/{MODEL}-hang"), "messages": user("x")}))
        .await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (504, Some("timeout_error"))
    );
    // A Converse check failing upstream comes back as a 400 with Bedrock's message.
    let (status, body) = s
        .chat(json!({"model": format!("bedrock/{MODEL}"), "messages": [{"role": "assistant", "content": "hi"}]}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("must start with a user message"),
        "{body}"
    );

    // Streams: failures before the head keep their status; after it, an error event ends them.
    let (status, _) = s.stream(chat("fail-429")).await;
    assert_eq!(status, 429);
    let (status, _, text) = s
        .post(
            "/v1/chat/completions",
            json!({"model": format!("bedrock/{MODEL}-garbage"),
        "messages": user("x"), "stream": true}),
        )
        .await;
    assert_eq!(status, 502, "a 200 that is not an event stream: {text}");
    for model in [
        format!("bedrock/{MODEL}-drop"),
        format!("bedrock-slow/{MODEL}-stall"),
    ] {
        let (status, events) = s
            .stream(json!({"model": model, "messages": user("a b c d")}))
            .await;
        assert_eq!(status, 200, "{model}");
        assert_ne!(
            events.last().unwrap(),
            "[DONE]",
            "{model}: a broken stream must not look complete"
        );
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert!(last["error"]["message"].is_string(), "{model}: {last}");
    }
}
