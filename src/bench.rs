//! `ferrogate bench`: a load generator for a running gateway (or any OpenAI-compatible server).
//! Open loop at a fixed rate (requests start on schedule whatever the latency, up to a cap on
//! requests in flight), or closed loop at full speed with `rate = 0`. Reports throughput, errors,
//! latency percentiles (HDR histograms), the gateway's own overhead from its
//! `x-ferrogate-overhead-us` header, and a per-second timeline of any response header (which
//! deployment served, say) to show traffic shifting.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Semaphore;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Path of the endpoint, `/v1/chat/completions` by default.
    pub path: String,
    pub model: String,
    /// Requests per second; 0 runs closed loop as fast as `concurrency` allows.
    pub rate: f64,
    pub duration: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
    pub stream: bool,
    /// Words in the user message.
    pub prompt_words: usize,
    /// A response header whose values are counted per second.
    pub track_header: Option<String>,
    pub api_key: Option<String>,
    pub progress: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            url: "http://127.0.0.1:8080".into(),
            path: "/v1/chat/completions".into(),
            model: "gpt-4o-mini".into(),
            rate: 100.0,
            duration: Duration::from_secs(10),
            concurrency: 256,
            stream: false,
            prompt_words: 16,
            track_header: None,
            api_key: None,
            progress: true,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Second {
    pub second: u64,
    pub requests: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Values of the tracked header and how many responses carried each.
    pub header_values: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub url: String,
    pub model: String,
    pub stream: bool,
    pub target_rps: f64,
    pub duration_s: f64,
    pub requests: u64,
    pub ok: u64,
    /// Failures by HTTP status, or `connect`/`timeout`/`body` for transport errors.
    pub errors: BTreeMap<String, u64>,
    pub achieved_rps: f64,
    pub latency: Percentiles,
    /// Streams: time to the first body bytes.
    pub time_to_first_byte: Option<Percentiles>,
    /// The gateway's own time per request, from `x-ferrogate-overhead-us`.
    pub gateway_overhead: Option<Percentiles>,
    pub tracked_header: Option<String>,
    pub timeline: Vec<Second>,
}

struct Recorder {
    latency: Histogram<u64>,
    ttfb: Histogram<u64>,
    overhead: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    seconds: Vec<(Histogram<u64>, Second)>,
}

fn histogram() -> Histogram<u64> {
    // 1 us .. 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            latency: histogram(),
            ttfb: histogram(),
            overhead: histogram(),
            ok: 0,
            errors: BTreeMap::new(),
            seconds: Vec::new(),
        }
    }

    fn second(&mut self, s: usize) -> &mut (Histogram<u64>, Second) {
        while self.seconds.len() <= s {
            let n = self.seconds.len() as u64;
            self.seconds.push((
                histogram(),
                Second {
                    second: n,
                    ..Default::default()
                },
            ));
        }
        &mut self.seconds[s]
    }
}

struct Outcome {
    started_at: Duration,
    latency: Duration,
    ttfb: Option<Duration>,
    result: Result<u16, &'static str>,
    overhead_us: Option<u64>,
    header: Option<String>,
}

pub async fn run(opts: BenchOptions) -> Result<BenchReport, String> {
    crate::providers::transport::ensure_crypto_provider();
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(opts.concurrency.max(1))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let url = format!("{}{}", opts.url.trim_end_matches('/'), opts.path);
    let prompt: Vec<&str> = std::iter::repeat_n("word", opts.prompt_words.max(1)).collect();
    let mut body = serde_json::json!({
        "model": opts.model,
        "messages": [{"role": "user", "content": prompt.join(" ")}],
    });
    if opts.stream {
        body["stream"] = true.into();
    }
    let body = Bytes::from(serde_json::to_vec(&body).map_err(|e| e.to_string())?);
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let progress = progress_bar(&opts);

    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while start.elapsed() < opts.duration {
        let due = if opts.rate > 0.0 {
            (start.elapsed().as_secs_f64() * opts.rate) as u64 + 1
        } else {
            sent + 1
        };
        while sent < due && start.elapsed() < opts.duration {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| e.to_string())?;
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            let (recorder, track, key) = (
                recorder.clone(),
                opts.track_header.clone(),
                opts.api_key.clone(),
            );
            let stream = opts.stream;
            tasks.spawn(async move {
                let outcome = one(
                    &client,
                    &url,
                    body,
                    start,
                    stream,
                    track.as_deref(),
                    key.as_deref(),
                )
                .await;
                drop(permit);
                record(&recorder, outcome);
            });
            sent += 1;
        }
        if let Some(pb) = &progress {
            let r = recorder.lock().unwrap_or_else(|p| p.into_inner());
            let errors: u64 = r.errors.values().sum();
            pb.set_position(start.elapsed().as_secs().min(opts.duration.as_secs()));
            pb.set_message(format!("{sent} sent, {} ok, {errors} errors", r.ok));
        }
        while tasks.try_join_next().is_some() {}
        if opts.rate > 0.0 {
            tokio::time::sleep(Duration::from_micros(500)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    let sending = start.elapsed();
    while tasks.join_next().await.is_some() {}
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    let r = Arc::try_unwrap(recorder)
        .map_err(|_| "recorder still shared".to_string())?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let requests = r.ok + r.errors.values().sum::<u64>();
    Ok(BenchReport {
        url,
        model: opts.model,
        stream: opts.stream,
        target_rps: opts.rate,
        duration_s: sending.as_secs_f64(),
        requests,
        ok: r.ok,
        errors: r.errors,
        achieved_rps: requests as f64 / sending.as_secs_f64(),
        latency: Percentiles::of(&r.latency),
        time_to_first_byte: opts.stream.then(|| Percentiles::of(&r.ttfb)),
        gateway_overhead: (!r.overhead.is_empty()).then(|| Percentiles::of(&r.overhead)),
        tracked_header: opts.track_header,
        timeline: r
            .seconds
            .into_iter()
            .map(|(h, mut s)| {
                s.p50_us = if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(0.5)
                };
                s.p99_us = if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(0.99)
                };
                s
            })
            .collect(),
    })
}

fn progress_bar(opts: &BenchOptions) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !opts.progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new(opts.duration.as_secs());
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len}s {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(pb)
}

async fn one(
    client: &reqwest::Client,
    url: &str,
    body: Bytes,
    t0: Instant,
    stream: bool,
    track: Option<&str>,
    key: Option<&str>,
) -> Outcome {
    let started = Instant::now();
    let started_at = started - t0;
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let mut outcome = Outcome {
        started_at,
        latency: Duration::ZERO,
        ttfb: None,
        result: Err("connect"),
        overhead_us: None,
        header: None,
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            outcome.result = Err(if e.is_timeout() { "timeout" } else { "connect" });
            outcome.latency = started.elapsed();
            return outcome;
        }
    };
    let status = resp.status().as_u16();
    let headers = resp.headers();
    outcome.overhead_us = headers
        .get("x-ferrogate-overhead-us")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    outcome.header = track
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut resp = resp;
    let mut first = true;
    let read = loop {
        match resp.chunk().await {
            Ok(Some(_)) => {
                if first && stream {
                    outcome.ttfb = Some(started.elapsed());
                }
                first = false;
            }
            Ok(None) => break Ok(()),
            Err(_) => break Err("body"),
        }
    };
    outcome.latency = started.elapsed();
    outcome.result = match read {
        Ok(()) => Ok(status),
        Err(e) => Err(e),
    };
    outcome
}

fn record(recorder: &Mutex<Recorder>, o: Outcome) {
    let mut r = recorder.lock().unwrap_or_else(|p| p.into_inner());
    let us = o.latency.as_micros().max(1) as u64;
    let ok = matches!(o.result, Ok(s) if (200..300).contains(&s));
    if ok {
        r.ok += 1;
        let _ = r.latency.record(us);
        if let Some(t) = o.ttfb {
            let _ = r.ttfb.record(t.as_micros().max(1) as u64);
        }
        if let Some(ov) = o.overhead_us {
            let _ = r.overhead.record(ov.max(1));
        }
    } else {
        let key = match o.result {
            Ok(status) => status.to_string(),
            Err(kind) => kind.to_string(),
        };
        *r.errors.entry(key).or_default() += 1;
    }
    let (h, s) = r.second(o.started_at.as_secs() as usize);
    s.requests += 1;
    if ok {
        let _ = h.record(us);
    } else {
        s.errors += 1;
    }
    if let Some(v) = o.header {
        *s.header_values.entry(v).or_default() += 1;
    }
}

fn fmt_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{us}us")
    }
}

impl BenchReport {
    /// A human-readable summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let p = |name: &str, x: &Percentiles| {
            format!(
                "  {name:<18} p50 {:>8}  p90 {:>8}  p99 {:>8}  p99.9 {:>8}  max {:>8}\n",
                fmt_us(x.p50_us),
                fmt_us(x.p90_us),
                fmt_us(x.p99_us),
                fmt_us(x.p999_us),
                fmt_us(x.max_us)
            )
        };
        let rate = if self.target_rps > 0.0 {
            format!("{}/s", self.target_rps)
        } else {
            "max".into()
        };
        out.push_str(&format!(
            "POST {} model={} stream={} rate={rate} duration={:.1}s\n",
            self.url, self.model, self.stream, self.duration_s
        ));
        let errors: u64 = self.errors.values().sum();
        out.push_str(&format!(
            "  requests {} ({:.1}/s achieved), ok {}, errors {errors} {:?}\n",
            self.requests, self.achieved_rps, self.ok, self.errors
        ));
        out.push_str(&p("latency", &self.latency));
        if let Some(t) = &self.time_to_first_byte {
            out.push_str(&p("first byte", t));
        }
        if let Some(o) = &self.gateway_overhead {
            out.push_str(&p("gateway overhead", o));
        }
        if let Some(h) = &self.tracked_header {
            out.push_str(&format!("  per second ({h}):\n"));
            for s in &self.timeline {
                let values: Vec<String> = s
                    .header_values
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                out.push_str(&format!(
                    "    {:>3}s  {:>6} req  {:>4} err  p50 {:>8}  p99 {:>8}  {}\n",
                    s.second,
                    s.requests,
                    s.errors,
                    fmt_us(s.p50_us),
                    fmt_us(s.p99_us),
                    values.join(" ")
                ));
            }
        }
        out
    }
}

/// Rewrites a gateway config so that every provider it uses is served by the mock upstream at
/// `mock_root` (`ferrogate bench --config`): each provider's endpoint becomes the mock's route for
/// its API, and providers without credentials get a placeholder one (the mock accepts any), so
/// routing, fallbacks, plugins and telemetry run as configured with no real provider called.
/// `model` (the model benchmarked) adds its provider when the config does not name it.
pub fn point_at_mock(config: &mut crate::config::Config, mock_root: &str, model: &str) {
    use crate::providers::{ApiKind, presets};

    let root = mock_root.trim_end_matches('/');
    let api_of = |providers: &BTreeMap<String, crate::config::ProviderConfig>, name: &str| {
        providers
            .get(name)
            .and_then(|p| p.api)
            .or_else(|| presets::find(name).map(|p| p.api))
            .unwrap_or(ApiKind::OpenAi)
    };
    let endpoint = |api: ApiKind| match api {
        // The OpenAI family's base URLs include the version; the others append their own paths.
        ApiKind::OpenAi => format!("{root}/v1"),
        _ => root.to_string(),
    };
    // Providers named by `provider/model` in deployments, fallbacks and the benchmarked model.
    let mut used: Vec<String> = config.providers.keys().cloned().collect();
    let referenced = config
        .models
        .values()
        .flat_map(|m| {
            m.deployments
                .iter()
                .map(|d| d.model.as_str())
                .chain(m.fallbacks.iter().map(String::as_str))
                .chain(m.context_window_fallbacks.iter().map(String::as_str))
        })
        .chain(std::iter::once(model));
    for name in referenced.filter_map(|m| m.split_once('/').map(|(p, _)| p)) {
        if presets::find(name).is_some() && !used.iter().any(|u| u == name) {
            used.push(name.to_string());
        }
    }
    for name in used {
        let api = api_of(&config.providers, &name);
        let p = config.providers.entry(name).or_default();
        p.base_url = Some(endpoint(api));
        if api == ApiKind::Vertex {
            // Vertex AI's express mode (an API key) instead of a service account's OAuth.
            p.credentials_file = None;
        }
        let has_aws = p.aws_access_key_id.is_some() && p.aws_secret_access_key.is_some();
        if p.api_key.is_none() && p.keys.is_empty() && !has_aws {
            p.api_key = Some(crate::secret::Secret::new("mock-key"));
        }
    }
    let providers = &config.providers;
    for d in config
        .models
        .values_mut()
        .flat_map(|m| m.deployments.iter_mut())
    {
        if d.base_url.is_some() {
            let provider = d.model.split_once('/').map_or("", |(p, _)| p);
            d.base_url = Some(endpoint(api_of(providers, provider)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    #[test]
    fn config_is_pointed_at_the_mock() {
        let mut config = Config::from_value(json!({
            "providers": {
                "openai": {"api_key": "sk-real"},
                "claude": {"api": "anthropic", "base_url": "https://api.anthropic.com"},
                "vertex": {"credentials_file": "/etc/sa.json", "project": "p"}
            },
            "models": {"smart": {
                "deployments": [
                    {"model": "openai/gpt-4o"},
                    {"model": "claude/claude-3-5-haiku-latest", "base_url": "https://eu.example"}
                ],
                "fallbacks": ["gemini/gemini-2.0-flash"]
            }}
        }))
        .unwrap();
        point_at_mock(
            &mut config,
            "http://127.0.0.1:9/",
            "groq/llama-3.1-8b-instant",
        );
        let p = &config.providers;
        assert_eq!(
            p["openai"].base_url.as_deref(),
            Some("http://127.0.0.1:9/v1")
        );
        assert_eq!(p["openai"].api_key.as_ref().unwrap().expose(), "sk-real");
        assert_eq!(p["claude"].base_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(p["claude"].api_key.as_ref().unwrap().expose(), "mock-key");
        assert!(p["vertex"].credentials_file.is_none());
        // Referenced only by a fallback and by the benchmarked model.
        assert_eq!(p["gemini"].base_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(p["groq"].base_url.as_deref(), Some("http://127.0.0.1:9/v1"));
        let d = &config.models["smart"].deployments[1];
        assert_eq!(d.base_url.as_deref(), Some("http://127.0.0.1:9"));
    }
}
