//! The HTTP server end to end against the mock upstream, both in this process: routes, streaming,
//! forwarding fidelity, every class of bad input, and graceful shutdown.

use std::time::Duration;

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
    async fn new(extra: Value) -> Setup {
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
        let mut config = json!({
            "providers": {
                "openai": {"base_url": format!("{}/v1", mock.base_url()), "api_key": KEY},
                "badkey": {"base_url": format!("{}/v1", mock.base_url()), "api_key": "sk-wrong-secret-value"},
                "slowpoke": {"base_url": format!("{}/v1", mock.base_url()), "api_key": KEY,
                             "timeouts": {"request": "400ms", "stream_idle": "400ms"}}
            },
            "server": {"max_request_body": 4096, "shutdown_timeout": "5s"}
        });
        merge(&mut config, extra);
        let gateway = Gateway::new(Config::from_value(config).unwrap()).unwrap();
        let server = RunningServer::start(gateway, "127.0.0.1", 0).await.unwrap();
        Setup {
            mock,
            server,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    async fn post(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }

    async fn chat(&self, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let (s, h, text) = self.post("/v1/chat/completions", body.to_string()).await;
        (
            s,
            h,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A streamed chat completion of `text` by `model`: its status, headers and `data:` events.
    async fn stream(
        &self,
        model: &str,
        text: &str,
    ) -> (u16, reqwest::header::HeaderMap, Vec<String>) {
        let body = json!({"model": model, "messages": user(text), "stream": true});
        let (status, headers, body) = self.post("/v1/chat/completions", body.to_string()).await;
        (status, headers, sse_data(&body))
    }

    async fn last_upstream_body(&self) -> Value {
        let v: Value = self
            .http
            .get(format!("{}/mock/requests", self.mock.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["requests"].as_array().unwrap().last().unwrap()["body"].clone()
    }

    /// The Prometheus text of `/metrics`.
    async fn metrics(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }
}

fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        for (k, v) in e {
            match b.get_mut(&k) {
                Some(slot @ Value::Object(_)) if v.is_object() => merge(slot, v),
                _ => {
                    b.insert(k, v);
                }
            }
        }
    }
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// `data:` payloads of an SSE body.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

fn assert_openai_error(body: &Value, kind: &str) {
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_json_and_served_by_headers() {
    let s = Setup::new(json!({})).await;
    let (status, headers, body) = s
        .chat(json!({"model": "openai/gpt-4o-mini", "messages": user("hi there")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: hi there"
    );
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["usage"]["completion_tokens"], 4);
    assert_eq!(headers["x-ferrogate-provider"], "openai");
    assert_eq!(headers["x-ferrogate-model"], "gpt-4o-mini");
    assert_eq!(headers["x-ferrogate-key"], "default");
    assert_eq!(headers["x-ferrogate-attempts"], "1");
    let overhead: u64 = headers["x-ferrogate-overhead-us"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(overhead < 1_000_000);
    assert!(headers.contains_key("x-request-id"));
    // Bare OpenAI model names and paths without /v1 work too.
    let (status, _, text) = s
        .post(
            "/chat/completions",
            json!({"model": "gpt-4o-mini", "messages": user("x")}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_fields_are_forwarded_and_model_is_translated() {
    let s = Setup::new(json!({"aliases": {"fast": "openai/gpt-4o-mini"}})).await;
    let req = json!({"model": "fast", "messages": [{"role": "user", "content": "x", "x_msg": 1}],
                     "x_vendor_param": {"a": [1, null]}, "reasoning_effort": "low", "seed": 7});
    let (status, _, _) = s.chat(req).await;
    assert_eq!(status, 200);
    let upstream = s.last_upstream_body().await;
    assert_eq!(upstream["model"], "gpt-4o-mini");
    assert_eq!(upstream["x_vendor_param"], json!({"a": [1, null]}));
    assert_eq!(upstream["reasoning_effort"], "low");
    assert_eq!(upstream["seed"], 7);
    assert_eq!(upstream["messages"][0]["x_msg"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_with_and_without_usage() {
    let s = Setup::new(json!({})).await;
    let (status, headers, events) = s.stream("gpt-4o-mini", "one two").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "You said: one two");
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "usage only when asked for"
    );
    // The gateway asked the upstream for usage anyway (for its own accounting).
    assert_eq!(
        s.last_upstream_body().await["stream_options"]["include_usage"],
        true
    );

    let (_, _, body) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "gpt-4o-mini", "messages": user("one two"), "stream": true,
                   "stream_options": {"include_usage": true}})
            .to_string(),
        )
        .await;
    let events = sse_data(&body);
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn embeddings_and_models() {
    let s = Setup::new(json!({"aliases": {"embed": "openai/text-embedding-3-small"}})).await;
    let (status, _, text) = s
        .post(
            "/v1/embeddings",
            json!({"model": "embed", "input": ["a", "b"], "dimensions": 4}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][1]["embedding"].as_array().unwrap().len(), 4);
    let (_, _, text) = s
        .post(
            "/v1/embeddings",
            json!({"model": "embed", "input": "a", "encoding_format": "base64"}).to_string(),
        )
        .await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body["data"][0]["embedding"].is_string());

    let models: Value = s
        .http
        .get(s.url("/v1/models"))
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
    assert!(ids.contains(&"embed"), "{ids:?}");
    assert!(ids.contains(&"openai/mock-model"), "{ids:?}");
    let one = s
        .http
        .get(s.url("/v1/models/openai/mock-model"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let missing = s
        .http
        .get(s.url("/v1/models/openai/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_invalid_requests_get_400_naming_the_problem() {
    let s = Setup::new(json!({})).await;
    let cases: Vec<(&str, &str, Option<&str>)> = vec![
        ("{not json", "invalid request body", None),
        ("", "request body is empty", None),
        (
            r#"{"messages": [{"role": "user", "content": "x"}]}"#,
            "missing field `model`",
            None,
        ),
        (
            r#"{"model": "gpt-4o-mini"}"#,
            "missing field `messages`",
            None,
        ),
        (
            r#"{"model": "gpt-4o-mini", "messages": []}"#,
            "at least one message",
            Some("messages"),
        ),
        (
            r#"{"model": "gpt-4o-mini", "messages": "hi"}"#,
            "messages: invalid type",
            Some("messages"),
        ),
        (
            r#"{"model": 42, "messages": []}"#,
            "model: invalid type",
            Some("model"),
        ),
        (
            r#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}"#,
            "temperature",
            Some("temperature"),
        ),
        (
            r#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": -1}"#,
            "n: invalid value",
            Some("n"),
        ),
        (r#"[1, 2]"#, "invalid request body", None),
    ];
    for (body, expected, param) in cases {
        let (status, _, text) = s.post("/v1/chat/completions", body.to_string()).await;
        assert_eq!(status, 400, "{body} -> {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_openai_error(&v, "invalid_request_error");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(expected), "{body}: {msg}");
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], p, "{body}");
        }
    }
    // Bytes that are not UTF-8 inside a string: the field is named, and the gateway stays up.
    let mut body = br#"{"model": "m", "messages": [{"role": "user", "content": "caf"#.to_vec();
    body.extend_from_slice(b"\xe9\"}]}");
    let (status, _, text) = s.post("/v1/chat/completions", body).await;
    assert_eq!(status, 400, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_openai_error(&v, "invalid_request_error");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("messages[0].content") && msg.contains("invalid unicode"),
        "{msg}"
    );
    let (status, _, text) = s
        .post("/v1/embeddings", r#"{"model": "m", "input": []}"#)
        .await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_provider_is_404_listing_known_ones() {
    let s = Setup::new(json!({})).await;
    let (status, _, body) = s
        .chat(json!({"model": "nope/some-model", "messages": user("x")}))
        .await;
    assert_eq!(status, 404);
    assert_openai_error(&body, "not_found_error");
    let msg = body["error"]["message"].as_str().unwrap();
    for known in ["openai", "groq", "mistral", "ollama", "badkey"] {
        assert!(msg.contains(known), "{msg}");
    }
    assert_eq!(body["error"]["code"], "model_not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_body_is_413() {
    let s = Setup::new(json!({})).await;
    let big = json!({"model": "gpt-4o-mini", "messages": user(&"x".repeat(10_000))}).to_string();
    let (status, _, text) = s.post("/v1/chat/completions", big.clone()).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("max_request_body"));
    // Without a Content-Length (chunked upload) the limit still holds.
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(1000)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let (status, _, _) = s
        .post("/v1/chat/completions", reqwest::Body::wrap_stream(stream))
        .await;
    assert_eq!(status, 413);
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_401_keeps_status_and_hides_the_key() {
    let s = Setup::new(json!({})).await;
    let (status, _, body) = s
        .chat(json!({"model": "badkey/gpt-4o-mini", "messages": user("x")}))
        .await;
    assert_eq!(status, 401);
    assert_openai_error(&body, "authentication_error");
    let text = body.to_string();
    assert!(
        !text.contains("sk-wrong-secret-value"),
        "key leaked: {text}"
    );
    assert!(text.contains("[REDACTED]"), "{text}");
    assert_eq!(body["error"]["provider"], "badkey");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_key_is_401_naming_the_variable() {
    let s = Setup::new(json!({})).await;
    let (status, _, body) = s
        .chat(json!({"model": "groq/llama-3.1-8b-instant", "messages": user("x")}))
        .await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GROQ_API_KEY"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_faults_map_to_gateway_statuses() {
    let s = Setup::new(json!({})).await;
    let cases = [
        ("openai/mock-garbage", 502, "bad_response_error"),
        ("openai/mock-drop", 502, "api_connection_error"),
        ("slowpoke/mock-hang", 504, "timeout_error"),
        ("openai/mock-fail-500", 500, "server_error"),
        ("openai/mock-fail-503", 503, "server_error"),
        ("openai/mock-fail-404", 404, "not_found_error"),
    ];
    for (model, status, kind) in cases {
        let (got, _, body) = s.chat(json!({"model": model, "messages": user("x")})).await;
        assert_eq!(got, status, "{model}: {body}");
        assert_openai_error(&body, kind);
    }
    let (status, headers, body) = s
        .chat(json!({"model": "openai/mock-fail-429", "messages": user("x")}))
        .await;
    assert_eq!(status, 429);
    assert_openai_error(&body, "rate_limit_error");
    assert_eq!(headers["retry-after"], "1");
    // The gateway is still fine afterwards.
    let (status, _, _) = s
        .chat(json!({"model": "gpt-4o-mini", "messages": user("x")}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_failures_after_the_head_end_with_an_error_event() {
    let s = Setup::new(json!({})).await;
    for model in ["openai/mock-drop", "slowpoke/mock-stall"] {
        let (status, _, events) = s.stream(model, "a b c d").await;
        assert_eq!(status, 200, "{model}");
        assert_ne!(
            events.last().unwrap(),
            "[DONE]",
            "{model}: a broken stream must not look complete"
        );
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert!(last["error"]["message"].is_string(), "{model}: {last}");
    }
    // A stream that fails before its head gets a proper status.
    let (status, _, _) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "openai/mock-fail-429", "messages": user("x"), "stream": true})
                .to_string(),
        )
        .await;
    assert_eq!(status, 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_is_timed_out_by_its_silences_not_its_length() {
    let s = Setup::new(json!({})).await;
    // `slowpoke` allows 400 ms before the first byte and 400 ms of silence. Chunks 150 ms apart
    // for about a second: never silent that long, so the answer is whole.
    let (status, _, events) = s.stream("slowpoke/mock-trickle-150", "a b c d e f").await;
    assert_eq!(status, 200);
    assert!(events.len() >= 8, "{events:?}");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let text: String = events[..events.len() - 1]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert!(text.contains("a b c d e f"), "{text}");
    // Silent after its first chunk: ended by the idle timeout, which the error names.
    let (status, _, events) = s.stream("slowpoke/mock-stall", "a b c").await;
    assert_eq!(status, 200);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    let message = last["error"]["message"].as_str().unwrap();
    assert!(message.contains("went silent for 0.4s"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_and_methods_answer_json() {
    let s = Setup::new(json!({})).await;
    let r = s.http.get(s.url("/v1/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_openai_error(&r.json().await.unwrap(), "not_found_error");
    let r = s
        .http
        .get(s.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_openai_error(&r.json().await.unwrap(), "invalid_request_error");
    let r = s.http.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_drains_in_flight_requests() {
    let s = Setup::new(json!({})).await;
    let url = s.url("/v1/chat/completions");
    let http = s.http.clone();
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .json(&json!({"model": "openai/mock-slow-600", "messages": user("still here")}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let base = s.server.base_url();
    let started = std::time::Instant::now();
    s.server.stop().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "stop must wait for the in-flight request"
    );
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);
    // Once stopped, no new connections.
    let err = reqwest::Client::new()
        .get(format!("{base}/health"))
        .send()
        .await;
    assert!(err.is_err());
}

/// `ferrogate serve`'s runtime: a thread per core, each with its own socket on one port.
mod per_core {
    use super::*;
    use ferrogate::server::per_core;

    async fn mock(latency: Duration) -> RunningMock {
        RunningMock::start(
            MockOptions {
                api_key: Some(KEY.into()),
                latency,
                ..Default::default()
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap()
    }

    /// A shutdown future and the sender that resolves it.
    fn stop_signal() -> (
        tokio::sync::oneshot::Sender<()>,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        (stop, async move {
            let _ = stopped.await;
        })
    }

    fn gateway(mock: &RunningMock) -> Gateway {
        Gateway::new(
            Config::from_value(json!({
                "providers": {"openai": {"base_url": format!("{}/v1", mock.base_url()), "api_key": KEY}}
            }))
            .unwrap(),
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn serves_concurrent_connections_and_drains_on_shutdown() {
        let mock = mock(Duration::from_millis(300)).await;
        let listeners = per_core::bind("127.0.0.1", 0, 2).unwrap();
        let url = format!("http://{}/v1/chat/completions", listeners.addr);
        let (stop, stopped) = stop_signal();
        let server = tokio::spawn(per_core::serve(
            gateway(&mock),
            listeners,
            stopped,
            Duration::from_secs(5),
        ));
        let body = json!({"model": "openai/gpt-4o-mini", "messages": user("hi")}).to_string();
        let send = |url: String, body: String| async move {
            // A client per request: a connection each, spread over the worker threads.
            let resp = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let json: Value = resp.json().await.unwrap();
            (status, json)
        };

        // 40 requests at once against a 300 ms upstream: served side by side, not one by one.
        let started = std::time::Instant::now();
        let answers =
            futures_util::future::join_all((0..40).map(|_| send(url.clone(), body.clone()))).await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        for (status, json) in &answers {
            assert_eq!(*status, 200, "{json}");
            assert_eq!(json["object"], "chat.completion");
        }

        // Shutdown while a request is in flight: it is answered, then the server stops.
        let in_flight = tokio::spawn(send(url.clone(), body.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        let (status, _) = in_flight.await.unwrap();
        assert_eq!(status, 200);
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stopped after draining")
            .unwrap()
            .unwrap();
        let refused = reqwest::Client::new().post(url).body(body).send().await;
        assert!(refused.is_err(), "no longer listening");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn work_stealing_model_serves_from_one_socket() {
        let mock = mock(Duration::ZERO).await;
        let listeners = per_core::bind("127.0.0.1", 0, 1).unwrap();
        let url = format!("http://{}/v1/chat/completions", listeners.addr);
        let (stop, stopped) = stop_signal();
        let server = tokio::spawn(per_core::serve_shared(
            gateway(&mock),
            listeners,
            stopped,
            Duration::from_secs(5),
        ));
        let resp = reqwest::Client::new()
            .post(&url)
            .json(&json!({"model": "openai/gpt-4o-mini", "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn a_taken_port_is_refused_not_shared() {
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = other.local_addr().unwrap().port();
        let err = per_core::bind("127.0.0.1", port, 2)
            .err()
            .expect("port in use");
        assert!(
            err.to_string()
                .contains(&format!("cannot listen on 127.0.0.1:{port}")),
            "{err}"
        );
        // Nor does a second gateway silently join the first one's sockets.
        let first = per_core::bind("127.0.0.1", 0, 2).unwrap();
        let port = first.addr.port();
        assert!(per_core::bind("127.0.0.1", port, 2).is_err());
    }

    #[test]
    fn thread_count_defaults_to_the_cores() {
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(per_core::thread_count(None), cores);
        assert_eq!(per_core::thread_count(Some(0)), cores);
        assert_eq!(per_core::thread_count(Some(3)), 3);
    }
}

/// An OpenAI-compatible upstream that answers every chat completion with `body`.
async fn fixed_upstream(body: impl Into<bytes::Bytes>) -> String {
    upstream_answering("application/json", body.into()).await
}

/// An OpenAI-compatible upstream that answers every chat completion with `body` as `content_type`.
async fn upstream_answering(content_type: &'static str, body: bytes::Bytes) -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let body = body.clone();
            async move { ([(http::header::CONTENT_TYPE, content_type)], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

/// A complete answer in an order and layout the gateway's own encoder would not produce, with
/// fields the gateway does not know and an explicit null it would leave out.
const UPSTREAM_ANSWER: &str = r#"{
  "usage": {"total_tokens": 12, "prompt_tokens": 5, "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 2}, "x_vendor_usage": 1},
  "choices": [{"message": {"content": "caf\u00e9 \"ok\"", "role": "assistant",
                           "refusal": null, "annotations": []},
               "logprobs": null, "finish_reason": "stop", "index": 0, "x_choice": true}],
  "model": "gpt-fixed", "created": 1700000000, "object": "chat.completion",
  "id": "chatcmpl-fixed", "service_tier": "default"
}"#;

#[tokio::test(flavor = "multi_thread")]
async fn openai_compatible_answers_pass_through_byte_for_byte() {
    let complete = fixed_upstream(UPSTREAM_ANSWER).await;
    // No `object`, `created` or `logprobs`: the gateway's parsed form fills them in.
    let incomplete = fixed_upstream(
        r#"{"id":"c2","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop"}]}"#,
    )
    .await;
    let broken = fixed_upstream(r#"{"id":"c3","choices":[{"index":0,"message":{"role":"#).await;
    // Complete, but its content is Latin-1, not UTF-8: passed on as is, it would not be JSON.
    let mut latin1 = UPSTREAM_ANSWER.replace(r"caf\u00e9", "caf#").into_bytes();
    let at = latin1.iter().position(|&b| b == b'#').unwrap();
    latin1[at] = 0xe9;
    let not_utf8 = fixed_upstream(latin1).await;
    let s = Setup::new(json!({"providers": {
        "fixed": {"api": "openai", "base_url": complete, "api_key": KEY},
        "partial": {"api": "openai", "base_url": incomplete, "api_key": KEY},
        "broken": {"api": "openai", "base_url": broken, "api_key": KEY},
        "latin1": {"api": "openai", "base_url": not_utf8, "api_key": KEY}
    }}))
    .await;
    let ask = |model: &str| json!({"model": model, "messages": user("hi")}).to_string();

    let (status, headers, text) = s.post("/v1/chat/completions", ask("fixed/gpt-fixed")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, UPSTREAM_ANSWER);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-ferrogate-provider"], "fixed");
    // Its usage is accounted for all the same.
    let metrics = s.metrics().await;
    for (kind, n) in [("input", 5), ("output", 7), ("cached", 2)] {
        let line = format!(
            "ferrogate_tokens_total{{provider=\"fixed\",model=\"gpt-fixed\",kind=\"{kind}\"}} {n}"
        );
        assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    }

    let (status, _, body) = s
        .chat(json!({"model": "partial/m", "messages": user("hi")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["created"], 0);
    assert_eq!(body["choices"][0]["logprobs"], Value::Null);
    assert!(
        body["choices"][0]
            .as_object()
            .unwrap()
            .contains_key("logprobs")
    );

    let (status, _, body) = s
        .chat(json!({"model": "broken/m", "messages": user("hi")}))
        .await;
    assert_eq!(status, 502, "{body}");
    assert_openai_error(&body, "bad_response_error");

    let (status, _, body) = s
        .chat(json!({"model": "latin1/m", "messages": user("hi")}))
        .await;
    assert_eq!(status, 502, "{body}");
    assert_openai_error(&body, "bad_response_error");
}

/// An OpenAI-compatible upstream that answers every chat completion with the event stream `body`.
async fn fixed_stream_upstream(body: impl Into<bytes::Bytes>) -> String {
    upstream_answering("text/event-stream", body.into()).await
}

/// Chunks in an order and layout the gateway's own encoder would not produce, with fields it does
/// not know and escapes it would write differently; then the usage chunk and the end.
const UPSTREAM_CHUNKS: [&str; 4] = [
    r#"{"choices":[{"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null,"index":0}],"model":"gpt-fixed","created":1700000000,"object":"chat.completion.chunk","id":"chatcmpl-s","x_vendor":1}"#,
    r#"{"choices":[{"delta":{"content":"caf\u00e9 \"ok\""},"logprobs":null,"finish_reason":null,"index":0}],"model":"gpt-fixed","created":1700000000,"object":"chat.completion.chunk","id":"chatcmpl-s","x_vendor":1}"#,
    r#"{"choices":[{"delta":{},"logprobs":null,"finish_reason":"stop","index":0}],"model":"gpt-fixed","created":1700000000,"object":"chat.completion.chunk","id":"chatcmpl-s","usage":null}"#,
    r#"{"choices":[],"usage":{"completion_tokens":3,"prompt_tokens":9,"total_tokens":12},"model":"gpt-fixed","created":1700000000,"object":"chat.completion.chunk","id":"chatcmpl-s"}"#,
];

#[tokio::test(flavor = "multi_thread")]
async fn openai_compatible_stream_chunks_pass_through_byte_for_byte() {
    // Framed with a comment and mixed line ends between events.
    let [role, text, finish, usage] = UPSTREAM_CHUNKS;
    let complete = fixed_stream_upstream(format!(
        "data: {role}\n\n: keep-alive\n\ndata: {text}\r\n\r\ndata: {finish}\n\ndata: {usage}\n\ndata: [DONE]\n\n"
    ))
    .await;
    // No `logprobs` (the parsed form writes `null`) and the `object` left out: parsed, filled in.
    let incomplete = fixed_stream_upstream(concat!(
        "data: ",
        r#"{"id":"c2","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}"#,
        "\n\ndata: [DONE]\n\n"
    ))
    .await;
    let s = Setup::new(json!({"providers": {
        "streamed": {"api": "openai", "base_url": complete, "api_key": KEY},
        "partial": {"api": "openai", "base_url": incomplete, "api_key": KEY}
    }}))
    .await;
    let ask = |model: &str, usage: bool| {
        json!({"model": model, "messages": user("hi"), "stream": true,
               "stream_options": {"include_usage": usage}})
        .to_string()
    };

    // Asked with usage: every chunk as the upstream sent it, then `[DONE]`.
    let (status, headers, body) = s
        .post("/v1/chat/completions", ask("streamed/gpt-fixed", true))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/event-stream");
    let mut expected: Vec<&str> = UPSTREAM_CHUNKS.to_vec();
    expected.push("[DONE]");
    assert_eq!(sse_data(&body), expected);
    // Without: the usage chunk the gateway asked for on the caller's behalf is not passed on.
    let (status, _, body) = s
        .post("/v1/chat/completions", ask("streamed/gpt-fixed", false))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut expected: Vec<&str> = UPSTREAM_CHUNKS[..3].to_vec();
    expected.push("[DONE]");
    assert_eq!(sse_data(&body), expected);
    // Both streams are accounted with their usage.
    let metrics = s.metrics().await;
    for (kind, n) in [("input", 18), ("output", 6)] {
        let line = format!(
            "ferrogate_tokens_total{{provider=\"streamed\",model=\"gpt-fixed\",kind=\"{kind}\"}} {n}"
        );
        assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    }

    let (status, _, body) = s
        .post("/v1/chat/completions", ask("partial/m", false))
        .await;
    assert_eq!(status, 200, "{body}");
    let events = sse_data(&body);
    assert_eq!(events.len(), 2, "{body}");
    let chunk: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(chunk["object"], "chat.completion.chunk");
    assert!(
        chunk["choices"][0]
            .as_object()
            .unwrap()
            .contains_key("logprobs")
    );
    assert_eq!(chunk["choices"][0]["delta"]["content"], "x");
}
