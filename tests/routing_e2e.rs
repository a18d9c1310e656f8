//! Routing and reliability against live mock upstreams: weights, key rotation and cooldowns,
//! circuit breaking and probing, retries, fallbacks, context-window fallbacks, queues, hedging,
//! and stream failover.

use std::time::{Duration, Instant};

use ferrogate::ErrorKind;
use ferrogate::config::Config;
use ferrogate::gateway::{Gateway, RequestOptions, ServedBy};
use ferrogate::mock::{MockOptions, RunningMock};
use ferrogate::schema::ChatRequest;
use futures_util::StreamExt;
use serde_json::{Value, json};

async fn mock() -> RunningMock {
    RunningMock::start(MockOptions::default(), "127.0.0.1", 0)
        .await
        .unwrap()
}

async fn mock_with_key(key: &str) -> RunningMock {
    let options = MockOptions {
        api_key: Some(key.into()),
        ..Default::default()
    };
    RunningMock::start(options, "127.0.0.1", 0).await.unwrap()
}

fn provider(m: &RunningMock) -> Value {
    json!({"api": "openai", "base_url": format!("{}/v1", m.base_url()), "api_key": "sk-test-0000"})
}

fn gateway(config: Value) -> Gateway {
    Gateway::new(Config::from_value(config).unwrap()).unwrap()
}

fn request(model: &str) -> ChatRequest {
    serde_json::from_value(
        json!({"model": model, "messages": [{"role": "user", "content": "ping"}]}),
    )
    .unwrap()
}

async fn chat(gw: &Gateway, model: &str) -> Result<ServedBy, ferrogate::GatewayError> {
    gw.chat(request(model), &RequestOptions::default())
        .await
        .map(|s| s.meta)
}

async fn stats(m: &RunningMock) -> Value {
    reqwest::get(format!("{}/mock/stats", m.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn count(stats: &Value, key: &str) -> u64 {
    stats.get(key).and_then(Value::as_u64).unwrap_or(0)
}

async fn fault(m: &RunningMock, rule: Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/mock/faults", m.base_url()))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

async fn clear_faults(m: &RunningMock) {
    reqwest::Client::new()
        .delete(format!("{}/mock/faults", m.base_url()))
        .send()
        .await
        .unwrap();
}

async fn key_hints(m: &RunningMock) -> Vec<String> {
    let v: Value = reqwest::get(format!("{}/mock/requests", m.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/v1/chat/completions")
        .filter_map(|r| r["key_hint"].as_str().map(str::to_string))
        .collect()
}

/// Sends `n` requests, `concurrency` at a time; returns how many each deployment served.
async fn spread(
    gw: &Gateway,
    model: &str,
    n: usize,
    concurrency: usize,
) -> std::collections::HashMap<String, usize> {
    let results: Vec<_> = futures_util::stream::iter(0..n)
        .map(|_| chat(gw, model))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut by = std::collections::HashMap::new();
    for r in results {
        *by.entry(r.unwrap().deployment.to_string()).or_default() += 1;
    }
    by
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_deployments_split_traffic_by_weight() {
    let (a, b) = (mock().await, mock().await);
    let gw = gateway(json!({
        "providers": {"a": provider(&a), "b": provider(&b)},
        "models": {"m": {"balancing": "weighted", "deployments": [
            {"model": "a/gpt-4o-mini", "weight": 3}, {"model": "b/gpt-4o-mini", "weight": 1}]}}
    }));
    let by = spread(&gw, "m", 2000, 32).await;
    let share_a = by["a/gpt-4o-mini"] as f64 / 2000.0;
    assert!((share_a - 0.75).abs() < 0.04, "{by:?}");
    assert_eq!(
        count(&stats(&a).await, "total") + count(&stats(&b).await, "total"),
        2000
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_key_is_skipped_until_its_cooldown_ends() {
    let m = mock().await;
    let gw = gateway(json!({
        "providers": {"p": {"api": "openai", "base_url": format!("{}/v1", m.base_url()), "keys": [
            {"name": "one", "value": "sk-key-one-1111"}, {"name": "two", "value": "sk-key-two-2222"}]}}
    }));
    fault(&m, json!({"key": "1111", "status": 429, "retry_after": 1})).await;
    for _ in 0..30 {
        let served = chat(&gw, "p/gpt-4o-mini").await.unwrap();
        assert_eq!(served.key_name.as_deref(), Some("two"));
    }
    let hints = key_hints(&m).await;
    assert_eq!(
        hints.iter().filter(|h| *h == "1111").count(),
        1,
        "the limited key is tried once, then set aside: {hints:?}"
    );
    clear_faults(&m).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut used_one = 0;
    for _ in 0..40 {
        if chat(&gw, "p/gpt-4o-mini")
            .await
            .unwrap()
            .key_name
            .as_deref()
            == Some("one")
        {
            used_one += 1;
        }
    }
    assert!(
        used_one > 5,
        "after its Retry-After the key is used again ({used_one}/40)"
    );
    // The cooldown applies to the model that was limited, not to every model of the key.
    fault(
        &m,
        json!({"key": "1111", "model": "gpt-4o-mini", "status": 429, "retry_after": 5}),
    )
    .await;
    let _ = chat(&gw, "p/gpt-4o-mini").await;
    let _ = chat(&gw, "p/gpt-4o-mini").await;
    let mut one_on_other_model = 0;
    for _ in 0..40 {
        if chat(&gw, "p/other-model")
            .await
            .unwrap()
            .key_name
            .as_deref()
            == Some("one")
        {
            one_on_other_model += 1;
        }
    }
    assert!(one_on_other_model > 5, "{one_on_other_model}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_key_rotates_to_a_good_one() {
    let m = mock_with_key("sk-the-good-key-9999").await;
    let gw = gateway(json!({
        "providers": {"p": {"api": "openai", "base_url": format!("{}/v1", m.base_url()), "keys": [
            {"name": "revoked", "value": "sk-revoked-key-1111", "weight": 10}, {"name": "good", "value": "sk-the-good-key-9999"}]}}
    }));
    for _ in 0..20 {
        assert_eq!(
            chat(&gw, "p/gpt-4o-mini")
                .await
                .unwrap()
                .key_name
                .as_deref(),
            Some("good")
        );
    }
    let revoked = key_hints(&m).await.iter().filter(|h| *h == "1111").count();
    assert!(
        revoked <= 1,
        "a rejected key is set aside after its first 401 ({revoked})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_deployment_stops_receiving_traffic_and_is_probed_back() {
    let (a, b) = (mock().await, mock().await);
    let b_addr = b.addr;
    let gw = gateway(json!({
        "providers": {"a": provider(&a), "b": provider(&b)},
        "models": {"m": {"deployments": [{"model": "a/gpt-4o-mini"}, {"model": "b/gpt-4o-mini"}]}},
        "routing": {"circuit_breaker": {"failures": 2, "cooldown": "300ms", "max_cooldown": "300ms"},
                    "backoff": {"initial": "1ms", "max": "5ms"}}
    }));
    let by = spread(&gw, "m", 200, 8).await;
    assert!(
        by.get("b/gpt-4o-mini").copied().unwrap_or(0) > 40,
        "both serve while healthy: {by:?}"
    );
    b.stop().await;
    // Every request still succeeds: failures on b are retried on a, and b's circuit opens.
    let by = spread(&gw, "m", 300, 8).await;
    assert_eq!(by.get("a/gpt-4o-mini"), Some(&300), "{by:?}");
    // b comes back on the same address: after the cooldown a probe succeeds and traffic returns.
    let listener = tokio::net::TcpListener::bind(b_addr).await.unwrap();
    let b2 = RunningMock::start_on(MockOptions::default(), listener)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut back = 0;
    for _ in 0..60 {
        let by = spread(&gw, "m", 20, 4).await;
        back = by.get("b/gpt-4o-mini").copied().unwrap_or(0);
        if back > 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back > 3, "the recovered deployment earns traffic back");
    assert!(count(&stats(&b2).await, "total") > 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn fallbacks_run_in_order_each_with_its_own_retries() {
    let (a, b) = (mock().await, mock().await);
    let gw = gateway(json!({
        "providers": {"a": provider(&a), "b": provider(&b)},
        "models": {
            "primary": {"deployments": [{"model": "a/mock-fail-503"}], "retries": 1, "fallbacks": ["second", "third"]},
            "second": {"deployments": [{"model": "a/mock-fail-500"}], "retries": 2},
            "third": {"deployments": [{"model": "b/gpt-4o-mini"}]}
        },
        "routing": {"backoff": {"initial": "1ms", "max": "2ms"}, "circuit_breaker": {"failures": 100}}
    }));
    let served = chat(&gw, "primary").await.unwrap();
    assert_eq!(
        (&*served.deployment, served.fallback_index),
        ("b/gpt-4o-mini", 2)
    );
    assert_eq!(served.attempts, 2 + 3 + 1);
    let s = stats(&a).await;
    assert_eq!(
        (
            count(&s, "model:mock-fail-503"),
            count(&s, "model:mock-fail-500")
        ),
        (2, 3)
    );
    // Per request fallbacks replace the configured ones (as `fallbacks` in the body).
    let mut req = request("a/mock-fail-500");
    req.extra
        .insert("fallbacks".into(), json!(["b/answer-from-b"]));
    req.extra.insert("num_retries".into(), json!(0));
    let served = gw.chat(req, &RequestOptions::default()).await.unwrap();
    assert_eq!(
        (
            &*served.meta.deployment,
            served.meta.fallback_index,
            served.meta.attempts
        ),
        ("b/answer-from-b", 1, 2)
    );
    assert!(key_hints(&b).await.len() >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn non_retryable_errors_are_returned_at_once() {
    let (a, b) = (mock().await, mock().await);
    let gw = gateway(json!({
        "providers": {"a": provider(&a), "b": provider(&b)},
        "models": {"m400": {"deployments": [{"model": "a/mock-fail-400"}, {"model": "b/mock-fail-400"}], "fallbacks": ["b/ok"]},
                   "m404": {"deployments": [{"model": "a/mock-fail-404"}], "fallbacks": ["b/ok"]},
                   "m422": {"deployments": [{"model": "a/mock-fail-422"}]}}
    }));
    for (model, status) in [("m400", 400), ("m404", 404), ("m422", 422)] {
        let started = Instant::now();
        let e = chat(&gw, model).await.unwrap_err();
        assert_eq!(e.status, status);
        assert!(started.elapsed() < Duration::from_millis(200));
    }
    let total = count(&stats(&a).await, "total") + count(&stats(&b).await, "total");
    assert_eq!(
        total, 3,
        "one upstream call per request, no retry, no fallback"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn context_window_errors_fall_back_to_a_larger_model() {
    let (a, b) = (mock().await, mock().await);
    let gw = gateway(json!({
        "providers": {"a": provider(&a), "b": provider(&b)},
        "models": {"small": {"deployments": [{"model": "a/mock-toolong"}], "context_window_fallbacks": ["big"],
                             "fallbacks": ["never-used"]},
                   "never-used": {"deployments": [{"model": "a/gpt-4o-mini"}]},
                   "big": {"deployments": [{"model": "b/gpt-4o-128k"}]}}
    }));
    let served = chat(&gw, "small").await.unwrap();
    assert_eq!(
        (&*served.deployment, served.fallback_index, served.attempts),
        ("b/gpt-4o-128k", 1, 2)
    );
    let e = chat(&gw, "a/mock-toolong").await.unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::ContextWindowExceeded,
        "without a larger model the error is returned"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_overflow_drops_or_waits() {
    let m = mock().await;
    let mut dropping = provider(&m);
    dropping["max_concurrency"] = json!(1);
    dropping["drop_excess_requests"] = json!(true);
    let mut waiting = provider(&m);
    waiting["max_concurrency"] = json!(1);
    waiting["max_queue"] = json!(10);
    let gw = gateway(
        json!({"providers": {"dropping": dropping, "waiting": waiting}, "routing": {"retries": 0}}),
    );

    let started = Instant::now();
    let results: Vec<_> =
        futures_util::future::join_all((0..4).map(|_| chat(&gw, "dropping/mock-slow-300"))).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let full: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(ok, 1);
    assert_eq!(full.len(), 3);
    assert!(
        full.iter()
            .all(|e| e.status == 429 && e.code.as_deref() == Some("queue_full"))
    );
    assert!(started.elapsed() < Duration::from_millis(600));

    let started = Instant::now();
    let results: Vec<_> =
        futures_util::future::join_all((0..4).map(|_| chat(&gw, "waiting/mock-slow-150"))).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "one at a time: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hedging_answers_from_the_faster_deployment() {
    let (a, b) = (mock().await, mock().await);
    let gw = gateway(json!({
        "providers": {"a": provider(&a), "b": provider(&b)},
        "models": {"h": {"balancing": "weighted", "hedge": {"after": "100ms"},
            "deployments": [{"model": "a/mock-slow-2000", "weight": 1000}, {"model": "b/gpt-4o-mini", "weight": 1}]}}
    }));
    let started = Instant::now();
    let served = chat(&gw, "h").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(&*served.deployment, "b/gpt-4o-mini");
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_fail_over_until_the_first_chunk() {
    let (a, b) = (mock().await, mock().await);
    let gw = gateway(json!({
        "providers": {"a": provider(&a), "b": provider(&b)},
        "models": {"s": {"balancing": "weighted",
            "deployments": [{"model": "a/gpt-4o-mini", "weight": 1000}, {"model": "b/gpt-4o-mini", "weight": 1}]}}
    }));
    fault(&a, json!({"status": 500})).await;
    let mut req = request("s");
    req.stream = Some(true);
    let served = gw
        .chat_stream(req, &RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(&*served.meta.deployment, "b/gpt-4o-mini");
    let chunks: Vec<_> = served.value.collect().await;
    assert!(chunks.iter().all(|c| c.is_ok()));
    let text: String = chunks
        .iter()
        .filter_map(|c| c.as_ref().ok()?.choices.first()?.delta.content.clone())
        .collect();
    assert_eq!(text, "You said: ping");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_deadline_bounds_retries() {
    let m = mock().await;
    let gw = gateway(json!({"providers": {"a": provider(&m)}, "routing": {"retries": 5}}));
    let opts = RequestOptions {
        timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let started = Instant::now();
    let e = gw.chat(request("a/mock-hang"), &opts).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}
