//! Cohere and Azure OpenAI end to end: the HTTP server in front of the mock speaking each native
//! format, both in this process. Checks what reaches the upstream (paths, auth, bodies) and what
//! comes back (answers, streams, tool calls, embeddings, errors).

use ferrogate::config::Config;
use ferrogate::gateway::Gateway;
use ferrogate::mock::{MockOptions, RunningMock};
use ferrogate::server::RunningServer;
use serde_json::{Value, json};

const KEY: &str = "sk-mock-key-0123456789";

struct Setup {
    mock: RunningMock,
    server: RunningServer,
    http: reqwest::Client,
}

impl Setup {
    async fn new() -> Setup {
        let mock = RunningMock::start(
            MockOptions {
                api_key: Some(KEY.into()),
                ..Default::default()
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let root = mock.base_url();
        let config = json!({
            "providers": {
                "cohere": {"base_url": format!("{root}/v2"), "api_key": KEY},
                "cohere-badkey": {"api": "cohere", "base_url": root, "api_key": "co-wrong-secret-value"},
                "azure": {"base_url": root, "api_key": KEY,
                          "deployments": {"gpt-4o-mini": "gpt4o-mini-prod"}},
                "azure-v1": {"api": "azure", "base_url": format!("{root}/openai/v1"), "api_key": KEY},
                "azure-badkey": {"api": "azure", "base_url": root, "api_key": "az-wrong-secret-value"}
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
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.server.base_url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }

    async fn chat(&self, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let (s, h, text) = self.post("/v1/chat/completions", body).await;
        (
            s,
            h,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The chunks of a streamed chat, and whether it ended with `[DONE]`.
    async fn stream(&self, mut body: Value) -> (Vec<Value>, bool) {
        body["stream"] = json!(true);
        let (status, _, text) = self.post("/v1/chat/completions", body).await;
        assert_eq!(status, 200, "{text}");
        let events: Vec<&str> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .collect();
        let done = events.last() == Some(&"[DONE]");
        let chunks = events
            .iter()
            .filter(|e| **e != "[DONE]")
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        (chunks, done)
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

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

fn text_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn tool_call_of(chunks: &[Value]) -> (String, String) {
    let mut name = String::new();
    let mut args = String::new();
    for c in chunks {
        for tc in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            name.push_str(tc["function"]["name"].as_str().unwrap_or(""));
            args.push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    (name, args)
}

#[tokio::test(flavor = "multi_thread")]
async fn cohere_chat_tools_and_what_reaches_cohere() {
    let s = Setup::new().await;
    let (status, headers, body) = s
        .chat(
            json!({"model": "cohere/command-a-03-2025", "max_tokens": 50, "user": "u-1",
                     "messages": [{"role": "developer", "content": "Be brief."},
                                  {"role": "user", "content": "hello cohere"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-ferrogate-provider"], "cohere");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: hello cohere"
    );
    assert_eq!(body["model"], "command-a-03-2025");
    assert_eq!(
        (
            &body["usage"]["prompt_tokens"],
            &body["usage"]["completion_tokens"]
        ),
        (&json!(6), &json!(4)),
        "billed units"
    );
    assert_eq!(
        body["usage"]["tokens"]["input_tokens"], 18,
        "model-side tokens"
    );
    let upstream = s.last_upstream().await;
    assert_eq!(upstream["path"], "/v2/chat", "a `/v2` base URL is accepted");
    assert_eq!(upstream["headers"]["x-client-name"], "ferrogate");
    assert_eq!(upstream["key_hint"], "6789");
    assert_eq!(
        upstream["body"],
        json!({"model": "command-a-03-2025", "max_tokens": 50,
               "messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "hello cohere"}]})
    );

    // A tool round trip, the tool plan going back to Cohere with the assistant turn.
    let mut messages = user("weather in Lima");
    let (_, _, first) = s
        .chat(json!({"model": "cohere/command-a-03-2025", "messages": messages, "tools": weather_tool()}))
        .await;
    assert_eq!(
        first["choices"][0]["finish_reason"], "tool_calls",
        "{first}"
    );
    let message = first["choices"][0]["message"].clone();
    assert!(message["tool_plan"].is_string(), "{message}");
    let call = &message["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], r#"{"city":"Lima"}"#);
    messages.as_array_mut().unwrap().extend([
        message.clone(),
        json!({"role": "tool", "tool_call_id": call["id"], "content": "warm"}),
    ]);
    let (status, _, second) = s
        .chat(json!({"model": "cohere/command-a-03-2025", "messages": messages, "tools": weather_tool()}))
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["choices"][0]["message"]["content"],
        "The tool returned: warm"
    );
    let sent = s.last_upstream().await["body"].clone();
    assert_eq!(sent["messages"][1]["tool_plan"], message["tool_plan"]);
    assert_eq!(sent["messages"][2]["role"], "tool");

    // Named tool choice: only that tool, required.
    let (status, _, _) = s
        .chat(json!({"model": "cohere/command-a-03-2025", "messages": user("x"),
                     "tools": weather_tool(), "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.last_upstream().await["body"]["tool_choice"], "REQUIRED");
}

#[tokio::test(flavor = "multi_thread")]
async fn cohere_streams_text_and_tool_calls() {
    let s = Setup::new().await;
    let (chunks, done) = s
        .stream(
            json!({"model": "cohere/command-a-03-2025", "messages": user("stream three words"),
                       "stream_options": {"include_usage": true}}),
        )
        .await;
    assert!(done);
    assert_eq!(text_of(&chunks), "You said: stream three words");
    let last = chunks.last().unwrap();
    assert_eq!(last["usage"]["completion_tokens"], 5);
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(s.last_upstream().await["body"]["stream"], true);

    let (chunks, _) = s
        .stream(
            json!({"model": "cohere/command-a-03-2025", "messages": user("weather in Kyiv"),
                       "tools": weather_tool()}),
        )
        .await;
    assert_eq!(
        tool_call_of(&chunks),
        ("get_weather".into(), r#"{"city":"Kyiv"}"#.into())
    );
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage chunk unless asked for"
    );
    let plan: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_plan"].as_str())
        .collect();
    assert_eq!(plan, "I will use get_weather to answer this.");
}

#[tokio::test(flavor = "multi_thread")]
async fn cohere_embeddings_and_models() {
    let s = Setup::new().await;
    let (status, _, text) = s
        .post(
            "/v1/embeddings",
            json!({"model": "cohere/embed-v4.0", "input": ["a b", "c"], "dimensions": 8,
                   "input_type": "search_query"}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["data"][1]["embedding"].as_array().unwrap().len(), 8);
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    let sent = s.last_upstream().await["body"].clone();
    assert_eq!(
        (
            &sent["input_type"],
            &sent["output_dimension"],
            &sent["embedding_types"]
        ),
        (&json!("search_query"), &json!(8), &json!(["float"]))
    );
    let (_, _, text) = s
        .post(
            "/v1/embeddings",
            json!({"model": "cohere/embed-v4.0", "input": "a", "encoding_format": "base64"}),
        )
        .await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body["data"][0]["embedding"].is_string(), "{body}");

    let models: Value = s
        .http
        .get(format!("{}/v1/models", s.server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in [
        "cohere/command-a-03-2025",
        "cohere/embed-v4.0",
        "azure/gpt-4o-mini",
        "azure-v1/gpt-4o",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cohere_errors() {
    let s = Setup::new().await;
    let cases = [
        ("cohere/command-a-fail-429", 429, "rate_limit_error"),
        ("cohere/command-a-fail-500", 500, "server_error"),
        ("cohere/command-a-garbage", 502, "bad_response_error"),
        ("cohere/command-a-toolong", 400, "invalid_request_error"),
    ];
    for (model, status, kind) in cases {
        let (got, _, body) = s.chat(json!({"model": model, "messages": user("x")})).await;
        assert_eq!(got, status, "{model}: {body}");
        assert_eq!(body["error"]["type"], kind, "{model}: {body}");
    }
    let (_, _, body) = s
        .chat(json!({"model": "cohere/command-a-toolong", "messages": user("x")}))
        .await;
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    let (status, _, body) = s
        .chat(json!({"model": "cohere-badkey/command-a", "messages": user("x")}))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["message"], "invalid api token");
    let (_, _, body) = s
        .chat(json!({"model": "cohere/command-a-refuse", "messages": user("x")}))
        .await;
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    // Untranslatable requests never reach Cohere.
    let (status, _, body) = s
        .chat(json!({"model": "cohere/command-a", "messages": user("x"), "n": 2}))
        .await;
    assert_eq!((status, &body["error"]["param"]), (400, &json!("n")));
    // A stream cut mid-way ends with an error event, not [DONE].
    let (chunks, done) = s
        .stream(json!({"model": "cohere/command-a-drop", "messages": user("a b c d e")}))
        .await;
    assert!(!done);
    assert!(chunks.last().unwrap()["error"]["message"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_deployments_and_v1() {
    let s = Setup::new().await;
    let (status, headers, body) = s
        .chat(json!({"model": "azure/gpt-4o-mini", "messages": user("hello azure")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-ferrogate-provider"], "azure");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: hello azure"
    );
    assert!(body["prompt_filter_results"].is_array(), "{body}");
    assert!(body["choices"][0]["content_filter_results"].is_object());
    let upstream = s.last_upstream().await;
    assert_eq!(
        upstream["path"],
        "/openai/deployments/gpt4o-mini-prod/chat/completions"
    );
    assert_eq!(upstream["key_hint"], "6789", "the key goes in `api-key`");
    assert!(upstream["headers"].get("authorization").is_none());
    assert_eq!(upstream["body"]["model"], "gpt4o-mini-prod");

    let (status, _, body) = s
        .chat(json!({"model": "azure-v1/gpt-4.1", "messages": user("hello v1")}))
        .await;
    assert_eq!(status, 200, "{body}");
    let upstream = s.last_upstream().await;
    assert_eq!(upstream["path"], "/openai/v1/chat/completions");
    assert_eq!(upstream["body"]["model"], "gpt-4.1");

    let (chunks, done) = s
        .stream(
            json!({"model": "azure/gpt-4o-mini", "messages": user("weather in Oslo"),
                       "tools": weather_tool(), "stream_options": {"include_usage": true}}),
        )
        .await;
    assert!(done);
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty()),
        "Azure's choice-less prompt-filter chunk is folded"
    );
    assert!(chunks[0]["prompt_filter_results"].is_array());
    assert_eq!(
        tool_call_of(&chunks),
        ("get_weather".into(), r#"{"city":"Oslo"}"#.into())
    );
    assert!(chunks.last().unwrap()["usage"]["total_tokens"].is_number());

    let (status, _, text) = s
        .post(
            "/v1/embeddings",
            json!({"model": "azure/text-embedding-3-small", "input": ["a"], "dimensions": 4}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let upstream = s.last_upstream().await;
    assert_eq!(
        upstream["path"],
        "/openai/deployments/text-embedding-3-small/embeddings"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_errors_and_content_filters() {
    let s = Setup::new().await;
    let (status, headers, body) = s
        .chat(json!({"model": "azure/gpt-4o-mini-fail-429", "messages": user("x")}))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers["retry-after"], "1");
    let (status, _, body) = s
        .chat(json!({"model": "azure/gpt-4o-mini-jailbreak", "messages": user("x")}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "content_filter");
    assert_eq!(body["error"]["param"], "prompt");
    let (_, _, body) = s
        .chat(json!({"model": "azure/gpt-4o-mini-refuse", "messages": user("x")}))
        .await;
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(
        body["choices"][0]["content_filter_results"]["violence"]["filtered"],
        true
    );
    let (_, _, body) = s
        .chat(json!({"model": "azure/gpt-4o-mini-toolong", "messages": user("x")}))
        .await;
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    let (status, _, body) = s
        .chat(json!({"model": "azure-badkey/gpt-4o", "messages": user("x")}))
        .await;
    assert_eq!(status, 401);
    assert!(
        !body.to_string().contains("az-wrong-secret-value"),
        "{body}"
    );

    // The mock holds Azure to its rules: deployment routes need an api-version.
    let resp = s
        .http
        .post(format!(
            "{}/openai/deployments/d/chat/completions",
            s.mock.base_url()
        ))
        .header("api-key", KEY)
        .body(json!({"messages": user("x")}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api-version")
    );
}
