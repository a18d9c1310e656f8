//! Prometheus metrics. Recording goes through the `metrics` facade into
//! `metrics-exporter-prometheus`, whose handles are atomics once a label set has been seen.
//! Finding the handle of a label set through the facade builds a key (label vectors, string
//! copies), hashes it and takes a registry lock; the request path instead keeps the handles it has
//! used in a per-thread cache (`cached_handle`). Gauges that describe state (health, queue depth) are
//! computed at scrape time instead of being kept up to date on every request.
//!
//! Names follow Prometheus conventions: `ferrogate_` prefix, base units (seconds, USD), `_total`
//! for counters.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "ferrogate_requests_total";
pub const REQUEST_DURATION: &str = "ferrogate_request_duration_seconds";
pub const UPSTREAM_REQUESTS: &str = "ferrogate_upstream_requests_total";
pub const UPSTREAM_DURATION: &str = "ferrogate_upstream_duration_seconds";
pub const RETRIES: &str = "ferrogate_retries_total";
pub const FALLBACKS: &str = "ferrogate_fallbacks_total";
pub const TOKENS: &str = "ferrogate_tokens_total";
pub const COST: &str = "ferrogate_cost_usd_total";
pub const TIME_TO_FIRST_TOKEN: &str = "ferrogate_time_to_first_token_seconds";
pub const INTER_TOKEN_LATENCY: &str = "ferrogate_inter_token_latency_seconds";
pub const QUEUE_DEPTH: &str = "ferrogate_queue_depth";
pub const QUEUE_WAIT: &str = "ferrogate_queue_wait_seconds";
pub const IN_FLIGHT: &str = "ferrogate_upstream_in_flight";
pub const KEY_SELECTIONS: &str = "ferrogate_key_selections_total";
pub const HEALTH_STATE: &str = "ferrogate_health_state";
pub const CACHE_HITS: &str = "ferrogate_cache_hits_total";
pub const PLUGIN_FAILURES: &str = "ferrogate_plugin_failures_total";
pub const HTTP_REQUESTS: &str = "ferrogate_http_requests_total";
pub const LOGSTORE_WRITTEN: &str = "ferrogate_log_store_written_total";
pub const LOGSTORE_DROPPED: &str = "ferrogate_log_store_dropped_total";

/// Latency buckets: 1 ms to 2 minutes.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Inter-token latency and queue wait: 100 us to 5 s.
const SHORT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process, before anything is recorded) and returns
/// its handle. If the embedding program installed another recorder first, ours is kept apart and
/// renders only what is recorded through it.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(TIME_TO_FIRST_TOKEN.into()), LATENCY_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(INTER_TOKEN_LATENCY.into()), SHORT_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(QUEUE_WAIT.into()), SHORT_BUCKETS))
                .expect("bucket lists are non-empty")
        };
        let handle = match builder().install_recorder() {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "another metrics recorder is installed; /metrics shows only ferrogate's own");
                builder().build_recorder().handle()
            }
        };
        describe();
        handle
    })
}

fn describe() {
    describe_counter!(REQUESTS, "Requests the engine finished, by outcome.");
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from request to answer (streams: to the last chunk)."
    );
    describe_counter!(
        UPSTREAM_REQUESTS,
        "Calls to providers (attempts), by outcome."
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Time of one provider call (streams: to the first chunk)."
    );
    describe_counter!(RETRIES, "Attempts that were retried, by reason.");
    describe_counter!(FALLBACKS, "Requests answered by a fallback model.");
    describe_counter!(
        TOKENS,
        "Tokens, by kind: input, output, cached (input tokens read from a cache)."
    );
    describe_gauge!(COST, "Cost in USD from the price table; only increases.");
    describe_histogram!(
        TIME_TO_FIRST_TOKEN,
        Unit::Seconds,
        "Streams: time from request to the first content chunk."
    );
    describe_histogram!(
        INTER_TOKEN_LATENCY,
        Unit::Seconds,
        "Streams: time between content chunks."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Requests waiting for a slot of a provider with a concurrency limit."
    );
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time requests waited for a provider slot."
    );
    describe_gauge!(
        IN_FLIGHT,
        "Calls in flight to a provider with a concurrency limit."
    );
    describe_counter!(
        KEY_SELECTIONS,
        "Times each key (by name) was chosen for a call."
    );
    describe_gauge!(
        HEALTH_STATE,
        "Circuit state of keys and deployments: 0 closed, 1 half-open, 2 open."
    );
    describe_counter!(CACHE_HITS, "Requests answered from the response cache.");
    describe_counter!(
        PLUGIN_FAILURES,
        "Plugin hook calls that failed or timed out."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests the server answered, by route and status."
    );
    describe_counter!(LOGSTORE_WRITTEN, "Request log records written.");
    describe_counter!(
        LOGSTORE_DROPPED,
        "Request log records dropped because the writer fell behind."
    );
}

pub fn render() -> String {
    install().render()
}

/// One finished request, from the engine's point of view.
pub struct RequestDone<'a> {
    pub endpoint: &'static str,
    pub model: &'a str,
    pub provider: Option<&'a Arc<str>>,
    pub status: u16,
    pub stream: bool,
    pub duration: Duration,
    /// Labels from configured request headers.
    pub custom: &'a [(String, String)],
}

/// Label sets a thread remembers handles for, per kind of handle. A bound, because label values
/// can come from clients (custom header labels): past it, handles are looked up every time.
const MAX_CACHED_HANDLES: usize = 4096;

/// The handles one thread has used, by metric name and label values.
struct HandleCache<H> {
    /// Reused buffer for the lookup key: no allocation once a label set has been seen.
    key: String,
    /// foldhash rather than SipHash: keys are hashed several times per request. It is still
    /// seeded per map, and the map is bounded, so client-chosen label values cannot make it slow.
    handles: HashMap<String, H, foldhash::fast::RandomState>,
}

impl<H: Clone> HandleCache<H> {
    fn new() -> Self {
        HandleCache {
            key: String::new(),
            handles: HashMap::default(),
        }
    }

    fn set_key<'p>(&mut self, parts: impl IntoIterator<Item = &'p str>) {
        self.key.clear();
        for part in parts {
            // NUL cannot be confused with label text, so distinct label sets give distinct keys.
            self.key.push_str(part);
            self.key.push('\0');
        }
    }

    fn lookup<'p>(&mut self, parts: impl IntoIterator<Item = &'p str>) -> Option<H> {
        self.set_key(parts);
        self.handles.get(self.key.as_str()).cloned()
    }

    /// Keeps `handle` under the key of the last [`lookup`](Self::lookup), which missed.
    fn remember(&mut self, handle: &H) {
        if self.handles.len() < MAX_CACHED_HANDLES {
            self.handles.insert(self.key.clone(), handle.clone());
        }
    }
}

thread_local! {
    static COUNTERS: RefCell<HandleCache<Counter>> = RefCell::new(HandleCache::new());
    static HISTOGRAMS: RefCell<HandleCache<Histogram>> = RefCell::new(HandleCache::new());
    static GAUGES: RefCell<HandleCache<Gauge>> = RefCell::new(HandleCache::new());
    static COUNTED_TIMES: RefCell<HandleCache<CountedTime>> = RefCell::new(HandleCache::new());
}

/// A counter and a duration histogram recorded together, found with one lookup. The counter's
/// labels are the histogram's and one more (the outcome), so several entries share one
/// histogram.
#[derive(Clone)]
struct CountedTime {
    counter: Counter,
    duration: Histogram,
}

impl CountedTime {
    fn record(&self, duration: Duration) {
        self.counter.increment(1);
        self.duration.record(duration.as_secs_f64());
    }
}

/// The kinds of handle [`cached_handle`] keeps.
trait Cached: Clone + 'static {
    fn cache() -> &'static std::thread::LocalKey<RefCell<HandleCache<Self>>>;
}

impl Cached for Counter {
    fn cache() -> &'static std::thread::LocalKey<RefCell<HandleCache<Self>>> {
        &COUNTERS
    }
}

impl Cached for Histogram {
    fn cache() -> &'static std::thread::LocalKey<RefCell<HandleCache<Self>>> {
        &HISTOGRAMS
    }
}

impl Cached for Gauge {
    fn cache() -> &'static std::thread::LocalKey<RefCell<HandleCache<Self>>> {
        &GAUGES
    }
}

impl Cached for CountedTime {
    fn cache() -> &'static std::thread::LocalKey<RefCell<HandleCache<Self>>> {
        &COUNTED_TIMES
    }
}

/// The handle for the label set `parts` (the metric's name, then its label values in the order
/// its call site always uses), made by `make` the first time this thread asks.
///
/// Only once [`install`] has run: a global recorder can be set only once, so from then on the
/// handle the facade returns for a label set never changes. Before, the facade hands out no-op
/// handles, which must not be kept.
fn cached_handle<'p, H: Cached>(
    parts: impl IntoIterator<Item = &'p str>,
    make: impl FnOnce() -> H,
) -> H {
    if HANDLE.get().is_none() {
        return make();
    }
    // `try_`: a thread being torn down has no cache left; it looks the handle up. `None`: the
    // cache was not consulted, so there is no key to remember the handle under.
    let found = H::cache()
        .try_with(|cache| cache.try_borrow_mut().ok().map(|mut c| c.lookup(parts)))
        .ok()
        .flatten();
    let handle = match found {
        Some(Some(handle)) => return handle,
        Some(None) => make(),
        None => return make(),
    };
    let _ = H::cache().try_with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut() {
            cache.remember(&handle);
        }
    });
    handle
}

pub fn request_done(r: &RequestDone<'_>) {
    let status = status_label(r.status);
    let stream = if r.stream { "true" } else { "false" };
    let provider: &str = r.provider.map_or("none", |p| p);
    let labels = |with_status: bool| {
        let mut labels = vec![
            metrics::Label::new("endpoint", r.endpoint),
            metrics::Label::new("model", r.model.to_string()),
            metrics::Label::new("provider", provider.to_string()),
        ];
        if with_status {
            labels.push(metrics::Label::new("status", status.clone()));
        }
        labels.push(metrics::Label::new("stream", stream));
        for (k, v) in r.custom {
            labels.push(metrics::Label::new(label_name(k), v.clone()));
        }
        labels
    };
    let custom = r.custom.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]);
    let key = [REQUESTS, r.endpoint, r.model, provider, stream, &status]
        .into_iter()
        .chain(custom);
    cached_handle(key, || CountedTime {
        counter: counter!(REQUESTS, labels(true)),
        duration: histogram!(REQUEST_DURATION, labels(false)),
    })
    .record(r.duration);
}

/// A custom label's name must be a static string for the metrics facade; names come from the
/// config and are few, so each is leaked once.
fn label_name(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(leaked);
    leaked
}

fn status_label(status: u16) -> metrics::SharedString {
    match status {
        200 => "200".into(),
        s => s.to_string().into(),
    }
}

pub fn attempt(
    provider: &Arc<str>,
    deployment: &Arc<str>,
    outcome: &'static str,
    duration: Duration,
) {
    cached_handle([UPSTREAM_REQUESTS, provider, deployment, outcome], || CountedTime {
        counter: counter!(UPSTREAM_REQUESTS, "provider" => provider.clone(), "deployment" => deployment.clone(), "outcome" => outcome),
        duration: histogram!(UPSTREAM_DURATION, "provider" => provider.clone(), "deployment" => deployment.clone()),
    })
    .record(duration);
}

pub fn retry(provider: &Arc<str>, deployment: &Arc<str>, reason: &'static str) {
    counter!(RETRIES, "provider" => provider.clone(), "deployment" => deployment.clone(), "reason" => reason).increment(1);
}

pub fn fallback(model: &str, fallback_index: u32) {
    counter!(FALLBACKS, "model" => model.to_string(), "fallback_index" => fallback_index.to_string()).increment(1);
}

pub fn key_selected(provider: &Arc<str>, key: &Arc<str>) {
    cached_handle(
        [KEY_SELECTIONS, provider, key],
        || counter!(KEY_SELECTIONS, "provider" => provider.clone(), "key" => key.clone()),
    )
    .increment(1);
}

pub fn queue_wait(provider: &Arc<str>, waited: Duration) {
    cached_handle(
        [QUEUE_WAIT, provider],
        || histogram!(QUEUE_WAIT, "provider" => provider.clone()),
    )
    .record(waited.as_secs_f64());
}

pub fn tokens(provider: &Arc<str>, model: &str, input: u64, output: u64, cached: u64) {
    for (kind, n) in [("input", input), ("output", output), ("cached", cached)] {
        if n > 0 {
            cached_handle([TOKENS, provider, model, kind], || {
                counter!(TOKENS, "provider" => provider.clone(), "model" => model.to_string(), "kind" => kind)
            })
            .increment(n);
        }
    }
}

pub fn cost(provider: &Arc<str>, model: &str, usd: f64) {
    if usd > 0.0 {
        cached_handle(
            [COST, provider, model],
            || gauge!(COST, "provider" => provider.clone(), "model" => model.to_string()),
        )
        .increment(usd);
    }
}

pub fn time_to_first_token(provider: &Arc<str>, model: &str, t: Duration) {
    cached_handle([TIME_TO_FIRST_TOKEN, provider, model], || {
        histogram!(TIME_TO_FIRST_TOKEN, "provider" => provider.clone(), "model" => model.to_string())
    })
    .record(t.as_secs_f64());
}

/// The inter-token histogram this thread recorded to last, with its label values.
struct LastInterToken {
    provider: String,
    model: String,
    histogram: Histogram,
}

thread_local! {
    static LAST_INTER_TOKEN: RefCell<Option<LastInterToken>> = const { RefCell::new(None) };
}

pub fn inter_token(provider: &Arc<str>, model: &str, t: Duration) {
    // Once per streamed chunk, the hottest of the metrics: a stream's chunks mostly come one
    // after another on its thread, so the last handle is checked first (two comparisons)
    // before the handle cache (a key built and hashed).
    let seconds = t.as_secs_f64();
    let recorded = LAST_INTER_TOKEN.try_with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return false;
        };
        if let Some(l) = &*last
            && *l.provider == **provider
            && l.model == model
        {
            l.histogram.record(seconds);
            return true;
        }
        let histogram = cached_handle([INTER_TOKEN_LATENCY, provider, model], || {
            histogram!(INTER_TOKEN_LATENCY, "provider" => provider.clone(), "model" => model.to_string())
        });
        histogram.record(seconds);
        // Kept only once the recorder is installed, as in `cached_handle`; the buffers are
        // reused when another stream's labels take the place.
        if HANDLE.get().is_some() {
            match &mut *last {
                Some(l) => {
                    l.provider.clear();
                    l.provider.push_str(provider);
                    l.model.clear();
                    l.model.push_str(model);
                    l.histogram = histogram;
                }
                None => {
                    *last = Some(LastInterToken {
                        provider: provider.to_string(),
                        model: model.to_string(),
                        histogram,
                    })
                }
            }
        }
        true
    });
    if recorded != Ok(true) {
        // A thread being torn down (or a re-entrant call) looks the handle up.
        histogram!(INTER_TOKEN_LATENCY, "provider" => provider.clone(), "model" => model.to_string())
            .record(seconds);
    }
}

pub fn plugin_failure(plugin: &str, hook: &'static str) {
    counter!(PLUGIN_FAILURES, "plugin" => plugin.to_string(), "hook" => hook).increment(1);
}

pub fn http(route: &'static str, status: u16) {
    let status = status_label(status);
    cached_handle(
        [HTTP_REQUESTS, route, &status],
        || counter!(HTTP_REQUESTS, "route" => route, "status" => status.clone()),
    )
    .increment(1);
}

pub fn log_store(written: u64, dropped: u64) {
    if written > 0 {
        counter!(LOGSTORE_WRITTEN).increment(written);
    }
    if dropped > 0 {
        counter!(LOGSTORE_DROPPED).increment(dropped);
    }
}

/// Scrape-time gauges: circuit states, queue depths and in-flight calls.
pub fn set_state_gauges(gateway: &crate::gateway::Gateway) {
    let now = crate::router::health::now_ms();
    for (name, state) in gateway.health().states(now) {
        // Registry names: `deployment:<name>`, `key:<provider>/<key>#<fingerprint>`, and
        // `key:<provider>/<key>#<fingerprint>@<model>` for a key's rate limit on one model.
        let (kind, target) = match name.split_once(':') {
            Some((k, t)) => {
                let (base, model) = match t.split_once('@') {
                    Some((b, m)) => (b, Some(m)),
                    None => (t, None),
                };
                let base = base.split('#').next().unwrap_or(base);
                match model {
                    Some(m) => (format!("{k}_model"), format!("{base}@{m}")),
                    None => (k.to_string(), base.to_string()),
                }
            }
            None => ("other".to_string(), name.clone()),
        };
        let value = match state {
            crate::router::health::State::Closed => 0.0,
            crate::router::health::State::HalfOpen => 1.0,
            crate::router::health::State::Open => 2.0,
        };
        gauge!(HEALTH_STATE, "kind" => kind, "target" => target).set(value);
    }
    for p in gateway.snapshot().providers.iter() {
        if p.gate.is_limited() {
            gauge!(QUEUE_DEPTH, "provider" => p.name.clone()).set(p.gate.queued() as f64);
            gauge!(IN_FLIGHT, "provider" => p.name.clone()).set(p.gate.in_flight() as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_cache_tells_label_sets_apart() {
        let mut cache: HandleCache<u32> = HandleCache::new();
        assert_eq!(cache.lookup(["m", "a", "bc"]), None);
        cache.remember(&1);
        // Same text, split differently: another label set.
        assert_eq!(cache.lookup(["m", "ab", "c"]), None);
        cache.remember(&2);
        assert_eq!(cache.lookup(["m", "a", "bc"]), Some(1));
        assert_eq!(cache.lookup(["m", "ab", "c"]), Some(2));
        assert_eq!(cache.lookup(["other", "a", "bc"]), None);
    }

    #[test]
    fn handle_cache_is_bounded() {
        let mut cache: HandleCache<usize> = HandleCache::new();
        for i in 0..MAX_CACHED_HANDLES + 10 {
            assert_eq!(cache.lookup(["m", i.to_string().as_str()]), None);
            cache.remember(&i);
        }
        assert_eq!(cache.handles.len(), MAX_CACHED_HANDLES);
        assert_eq!(cache.lookup(["m", "0"]), Some(0));
        assert_eq!(
            cache.lookup(["m", MAX_CACHED_HANDLES.to_string().as_str()]),
            None
        );
    }

    #[test]
    fn inter_token_latency_lands_under_each_streams_labels() {
        install();
        let a: Arc<str> = Arc::from("itl-test-a");
        let b: Arc<str> = Arc::from("itl-test-b");
        // Interleaved as chunks of concurrent streams are, with the same model under two
        // providers and two models under one.
        let sends = [
            (&a, "m1"),
            (&a, "m1"),
            (&b, "m1"),
            (&a, "m1"),
            (&a, "m2"),
            (&b, "m1"),
            (&a, "m2"),
            (&a, "m1"),
        ];
        for (provider, model) in sends {
            inter_token(provider, model, Duration::from_millis(5));
        }
        let text = render();
        let count = |provider: &str, model: &str| {
            text.lines()
                .filter(|l| l.starts_with(&format!("{INTER_TOKEN_LATENCY}_count")))
                .filter(|l| l.contains(&format!("provider=\"{provider}\"")))
                .find(|l| l.contains(&format!("model=\"{model}\"")))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        };
        assert_eq!(count("itl-test-a", "m1"), Some(4));
        assert_eq!(count("itl-test-a", "m2"), Some(2));
        assert_eq!(count("itl-test-b", "m1"), Some(2));
        assert_eq!(count("itl-test-b", "m2"), None);
    }
}
