//! Gemini API and Vertex AI end to end: the gateway server and the mock upstream in this process,
//! the mock speaking Google's wire formats and issuing OAuth tokens for a test service account.

mod common;

use std::path::PathBuf;

use ferrogate::config::Config;
use ferrogate::gateway::Gateway;
use ferrogate::mock::google_oauth::MockGoogleAccount;
use ferrogate::mock::{MockOptions, RunningMock};
use ferrogate::providers::google_auth::ServiceAccount;
use ferrogate::server::RunningServer;
use serde_json::{Value, json};

const KEY: &str = "gm-mock-key-0123456789";
const WRONG_KEY: &str = "gm-wrong-secret-value";

fn test_account_json() -> Value {
    serde_json::from_slice(&common::read_fixture("gemini/test_service_account.json")).unwrap()
}

/// The test service account with `token_uri` at the mock, written to a fresh temp file.
fn service_account_file(mock: &RunningMock, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut sa = test_account_json();
    sa["token_uri"] = json!(format!("{}/oauth2/token", mock.base_url()));
    edit(&mut sa);
    let path = std::env::temp_dir().join(format!(
        "ferrogate-sa-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, sa.to_string()).unwrap();
    path
}

struct Setup {
    mock: RunningMock,
    server: RunningServer,
    http: reqwest::Client,
    files: Vec<PathBuf>,
}

impl Setup {
    async fn new() -> Setup {
        let account = ServiceAccount::from_json(&test_account_json().to_string()).unwrap();
        let mock = RunningMock::start(
            MockOptions {
                api_key: Some(KEY.into()),
                google_account: Some(MockGoogleAccount::from_service_account(&account)),
                ..Default::default()
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let good = service_account_file(&mock, |_| {});
        // Signed with the right key but claiming another identity: the mock refuses it.
        let impostor = service_account_file(&mock, |sa| {
            sa["client_email"] = json!("someone-else@ferrogate-test.iam.gserviceaccount.com");
        });
        let base = mock.base_url();
        let config = json!({
            "providers": {
                "openai": {"base_url": format!("{base}/v1"), "api_key": KEY},
                "gemini": {"base_url": base, "api_key": KEY},
                "badgemini": {"api": "gemini", "base_url": base, "api_key": WRONG_KEY},
                "vertex": {"base_url": base, "credentials_file": good.to_string_lossy(), "region": "europe-west4"},
                "badvertex": {"api": "vertex", "base_url": base, "project": "other-project",
                              "credentials_file": impostor.to_string_lossy()}
            },
            // The error tests must reach the mock each time, not an open circuit.
            "routing": {"circuit_breaker": {"failures": 1000}}
        });
        let gateway = Gateway::new(Config::from_value(config).unwrap()).unwrap();
        let server = RunningServer::start(gateway, "127.0.0.1", 0).await.unwrap();
        Setup {
            mock,
            server,
            http: reqwest::Client::new(),
            files: vec![good, impostor],
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.server.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn chat(&self, body: Value) -> (u16, Value) {
        let (s, text) = self.post("/v1/chat/completions", body).await;
        (
            s,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn mock_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.mock.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn token_requests(&self) -> u64 {
        self.mock_get("/mock/stats").await["path:/oauth2/token"]
            .as_u64()
            .unwrap_or(0)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// `data:` payloads of an SSE body (`\n\n` or `\r\n\r\n` framed).
fn sse_data(body: &str) -> Vec<Value> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_chat_stream_and_key_header() {
    let s = Setup::new().await;
    let (status, body) = s
        .chat(json!({"model": "gemini/gemini-2.0-flash", "messages": user("hi gemini")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: hi gemini"
    );
    assert_eq!(body["usage"]["completion_tokens"], 4);
    // A bare `gemini-` name goes to the gemini provider.
    let (status, _) = s
        .chat(json!({"model": "gemini-2.0-flash", "messages": user("bare name")}))
        .await;
    assert_eq!(status, 200);
    let recorded = s.mock_get("/mock/requests").await;
    let last = recorded["requests"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["path"],
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(
        last["key_hint"], "6789",
        "the key travels in x-goog-api-key"
    );
    assert_eq!(last["body"]["contents"][0]["parts"][0]["text"], "bare name");

    let (status, text) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "gemini/gemini-2.0-flash", "messages": user("one two three"),
                   "stream": true, "stream_options": {"include_usage": true}}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let chunks = sse_data(&text);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "You said: one two three");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 5);
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_errors_and_wrong_key() {
    let s = Setup::new().await;
    let (status, body) = s
        .chat(json!({"model": "badgemini/gemini-2.0-flash", "messages": user("x")}))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert!(!body.to_string().contains(WRONG_KEY));

    let (status, body) = s
        .chat(json!({"model": "gemini/gemini-2.0-flash-toolong", "messages": user("x")}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("context_length_exceeded"))
    );
    let resp = s
        .http
        .post(format!("{}/v1/chat/completions", s.server.base_url()))
        .json(&json!({"model": "gemini/gemini-2.0-flash-fail-429", "messages": user("x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(
        resp.headers()["retry-after"],
        "1",
        "from Google's RetryInfo"
    );
    let (status, body) = s
        .chat(json!({"model": "gemini/gemini-2.0-flash-refuse", "messages": user("x")}))
        .await;
    assert_eq!(
        (status, &body["choices"][0]["finish_reason"]),
        (200, &json!("content_filter"))
    );
    // A stream cut mid-way ends with an error event, not a finish.
    let (_, text) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "gemini/gemini-2.0-flash-drop", "messages": user("a b c d e f"), "stream": true}),
        )
        .await;
    let events = sse_data(&text);
    assert!(events.last().unwrap().get("error").is_some(), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn vertex_token_is_fetched_once_and_cached() {
    let s = Setup::new().await;
    // Concurrent first requests share one token fetch.
    let first = futures_util::future::join_all((0..4).map(|i| {
        s.chat(json!({"model": "vertex/gemini-2.0-flash", "messages": user(&format!("hello {i}"))}))
    }))
    .await;
    for (status, body) in &first {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(
        first[2].1["choices"][0]["message"]["content"],
        "You said: hello 2"
    );
    let (status, text) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "vertex/gemini-2.0-flash", "messages": user("streamed"), "stream": true}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = s
        .post(
            "/v1/embeddings",
            json!({"model": "vertex/text-embedding-005", "input": ["a", "b"], "dimensions": 3}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let emb: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(emb["data"][1]["embedding"].as_array().unwrap().len(), 3);
    assert_eq!(
        s.token_requests().await,
        1,
        "the token is cached across requests"
    );

    let recorded = s.mock_get("/mock/requests").await;
    let paths: Vec<&str> = recorded["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["path"].as_str())
        .collect();
    assert!(paths.contains(
        &"/v1/projects/ferrogate-test/locations/europe-west4/publishers/google/models/gemini-2.0-flash:generateContent"
    ), "project from the key file, region from the config: {paths:?}");
    // The assertion never lands in the mock's request log.
    assert!(!recorded.to_string().contains("assertion="));
}

#[tokio::test(flavor = "multi_thread")]
async fn vertex_refused_token_is_401_without_secrets() {
    let s = Setup::new().await;
    let (status, body) = s
        .chat(json!({"model": "badvertex/gemini-2.0-flash", "messages": user("x")}))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("invalid_grant"), "{message}");
    assert!(
        !message.contains("PRIVATE KEY") && !message.contains("eyJ"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_credentials_file_is_a_config_error() {
    let config = json!({"providers": {"vertex": {"credentials_file": "/nonexistent/sa.json"}}});
    let err = Gateway::new(Config::from_value(config).unwrap())
        .err()
        .expect("the config must be refused");
    assert!(
        err.0.contains("providers.vertex.credentials_file")
            && err.0.contains("/nonexistent/sa.json"),
        "{}",
        err.0
    );
    let path = std::env::temp_dir().join(format!(
        "ferrogate-adc-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(
        &path,
        r#"{"type": "authorized_user", "refresh_token": "secret-refresh"}"#,
    )
    .unwrap();
    let config = json!({"providers": {"vertex": {"credentials_file": path.to_string_lossy()}}});
    let err = Gateway::new(Config::from_value(config).unwrap())
        .err()
        .expect("the config must be refused");
    let _ = std::fs::remove_file(&path);
    assert!(
        err.0.contains("service_account") && !err.0.contains("secret-refresh"),
        "{}",
        err.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn genai_route_serves_any_provider() {
    let s = Setup::new().await;
    for model in [
        "openai/gpt-4o-mini",
        "gemini-2.0-flash",
        "vertex/gemini-2.0-flash",
    ] {
        let (status, text) = s
            .post(
                &format!("/genai/v1beta/models/{model}:generateContent"),
                json!({"contents": [{"role": "user", "parts": [{"text": "via genai"}]}],
                       "systemInstruction": {"parts": [{"text": "be brief"}]}}),
            )
            .await;
        assert_eq!(status, 200, "{model}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            body["candidates"][0]["content"]["parts"][0]["text"],
            "You said: via genai"
        );
        assert_eq!(body["candidates"][0]["finishReason"], "STOP");
        assert_eq!(body["usageMetadata"]["candidatesTokenCount"], 4);

        let (status, text) = s
            .post(
                &format!("/genai/v1/models/{model}:streamGenerateContent?alt=sse"),
                json!({"contents": [{"role": "user", "parts": [{"text": "streamed via genai"}]}]}),
            )
            .await;
        assert_eq!(status, 200, "{model}: {text}");
        assert!(text.contains("\r\n\r\n"));
        let events = sse_data(&text);
        let joined: String = events
            .iter()
            .flat_map(|e| e["candidates"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| {
                c["content"]["parts"][0]["text"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(joined, "You said: streamed via genai", "{model}");
        let last = events.last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 5);
    }
    let (status, text) = s
        .post(
            "/genai/v1beta/models/gemini-2.0-flash-fail-429:generateContent",
            json!({"contents": [{"parts": [{"text": "x"}]}]}),
        )
        .await;
    assert_eq!(status, 429);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    let (status, text) = s
        .post(
            "/genai/v1beta/models/gemini-2.0-flash:countTokens",
            json!({"contents": [{"parts": [{"text": "x"}]}]}),
        )
        .await;
    assert_eq!(status, 404, "{text}");
    let (status, text) = s
        .post(
            "/genai/v1beta/models/text-embedding-004:batchEmbedContents",
            json!({"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 5}]}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["embeddings"][0]["values"].as_array().unwrap().len(), 5);
}
