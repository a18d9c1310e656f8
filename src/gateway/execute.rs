//! The attempt loop: for one request, try deployments of the model (and then its fallbacks) until
//! one answers, within retry budgets and the request's deadline.
//!
//! Per attempt: pick a healthy deployment (adaptive or weighted), pick a key that is not cooling
//! down, take a slot in the provider's queue, call. On failure:
//! - 400/404/413/422/content filtered: answer at once (retrying cannot help);
//! - 401/403: that key is set aside and another key is tried; 429: likewise, honouring
//!   `Retry-After`;
//! - context window exceeded: go to the model's context-window fallbacks;
//! - 5xx, connection errors, timeouts: count against the deployment's circuit breaker and retry,
//!   on another deployment at once if there is one, else after an exponential backoff with
//!   jitter. Retries come out of the provider's retry budget.
//!
//! A model with `hedge` starts a second attempt on another deployment when the first has not
//! answered in time, and keeps whichever answers first.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::ops::Operation;
use super::{RequestOptions, Served, ServedBy, Snapshot};
use crate::config::{HedgeAfter, RoutingConfig};
use crate::error::{ErrorKind, GatewayError, Result};
use crate::providers::Call;
use crate::providers::credentials::Credential;
use crate::router::balancer::{self, Candidate};
use crate::router::health::{Admission, now_ms};
use crate::router::keys::NamedKey;
use crate::router::retry::{self, Disposition, RATE_LIMITED_KEY_COOLDOWN, REJECTED_KEY_COOLDOWN};
use crate::router::{Deployment, ModelRoute};
use crate::telemetry::{metrics, otel};
use tracing::Instrument;

/// Deployments considered per pick (larger models are truncated; config validation warns).
const MAX_CANDIDATES: usize = 32;

/// Hedge delay when `p95` is asked for but nothing has been observed yet.
const DEFAULT_HEDGE_DELAY: Duration = Duration::from_secs(2);

pub async fn execute<O: Operation>(
    snapshot: &Snapshot,
    route: Arc<ModelRoute>,
    opts: &RequestOptions,
    mut op: O,
) -> Result<Served<O::Output>> {
    let deadline = opts.timeout.or(route.timeout).map(|t| Instant::now() + t);
    let mut run = Run {
        opts,
        routing: &snapshot.config.routing,
        deadline,
        attempts: 0,
        last_error: None,
    };
    let fallbacks = if opts.fallbacks.is_empty() {
        route.fallbacks.clone()
    } else {
        opts.fallbacks.clone()
    };
    let mut groups: std::collections::VecDeque<GroupRef> = std::iter::once(GroupRef::Route(route))
        .chain(fallbacks.into_iter().map(GroupRef::Name))
        .collect();
    let mut fallback_index = 0u32;
    let mut switched_to_larger_context = false;
    while let Some(group) = groups.pop_front() {
        let route = match group {
            GroupRef::Route(r) => r,
            GroupRef::Name(name) => match snapshot.router.route(&name, &snapshot.providers) {
                Ok(r) => r,
                Err(e) => {
                    run.last_error = Some(e);
                    fallback_index += 1;
                    continue;
                }
            },
        };
        match run.group(&mut op, &route, fallback_index).await {
            Outcome::Served(served) => return Ok(served),
            Outcome::Fatal(e) => return Err(e),
            Outcome::ContextWindow(e) => {
                if switched_to_larger_context || route.context_window_fallbacks.is_empty() {
                    return Err(e);
                }
                switched_to_larger_context = true;
                groups = route
                    .context_window_fallbacks
                    .iter()
                    .cloned()
                    .map(GroupRef::Name)
                    .collect();
                run.last_error = Some(e);
            }
            Outcome::Exhausted => {}
            Outcome::OutOfTime => break,
        }
        fallback_index += 1;
    }
    Err(run.final_error())
}

enum GroupRef {
    Route(Arc<ModelRoute>),
    Name(String),
}

enum Outcome<T> {
    Served(Served<T>),
    Fatal(GatewayError),
    ContextWindow(GatewayError),
    Exhausted,
    OutOfTime,
}

struct Run<'a> {
    opts: &'a RequestOptions,
    routing: &'a RoutingConfig,
    deadline: Option<Instant>,
    attempts: u32,
    /// The most telling error so far: an upstream's answer beats "nothing was available".
    last_error: Option<GatewayError>,
}

/// The key an attempt uses: the caller's own, or one of the deployment's.
#[derive(Clone, Copy)]
enum KeyChoice<'a> {
    Caller(&'a Credential),
    Pool(&'a NamedKey),
    None,
}

impl<'a> KeyChoice<'a> {
    fn credential(self) -> Option<&'a Credential> {
        match self {
            KeyChoice::Caller(c) => Some(c),
            KeyChoice::Pool(k) => Some(&k.credential),
            KeyChoice::None => None,
        }
    }

    fn name(self) -> Option<Arc<str>> {
        match self {
            KeyChoice::Caller(_) => Some(Arc::from("request")),
            KeyChoice::Pool(k) => Some(k.name.clone()),
            KeyChoice::None => None,
        }
    }
}

impl<'a> Run<'a> {
    fn final_error(&mut self) -> GatewayError {
        self.last_error.take().unwrap_or_else(|| {
            GatewayError::new(
                ErrorKind::Unavailable,
                "no deployment could serve the request",
            )
        })
    }

    fn remember(&mut self, e: GatewayError) {
        self.last_error = Some(e);
    }

    /// Keeps an upstream error over a "nothing available" one.
    fn remember_if_nothing_better(&mut self, e: GatewayError) {
        if self.last_error.is_none() {
            self.last_error = Some(e);
        }
    }

    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Tries the deployments of one model until one answers or the model's retries run out.
    async fn group<O: Operation>(
        &mut self,
        op: &mut O,
        route: &ModelRoute,
        fallback_index: u32,
    ) -> Outcome<O::Output> {
        let mut tries_left = self.opts.retries.unwrap_or(route.retries) + 1;
        // Tried deployments are avoided while others are available; unusable ones (no key left,
        // the only key rejected) are not picked again in this request.
        let mut tried: Vec<usize> = Vec::new();
        let mut unusable: Vec<usize> = Vec::new();
        let mut backoffs = 0u32;
        while tries_left > 0 {
            if self.out_of_time() {
                self.remember_if_nothing_better(GatewayError::new(
                    ErrorKind::Timeout,
                    format!("model `{}`: the request deadline passed", route.name),
                ));
                return Outcome::OutOfTime;
            }
            let now = now_ms();
            let Some(idx) = choose(route, &tried, &unusable, now, self.routing) else {
                self.remember_if_nothing_better(nothing_available(route, now));
                return Outcome::Exhausted;
            };
            let dep = &route.deployments[idx];
            let key = match self.key_for(dep, now) {
                Ok(k) => k,
                Err(e)
                    if e.code.as_deref() == Some("keys_cooling_down")
                        || e.code.as_deref() == Some("keys_rejected") =>
                {
                    // No usable key in this deployment: another deployment may have one.
                    self.remember_if_nothing_better(e);
                    unusable.push(idx);
                    continue;
                }
                Err(e) => return Outcome::Fatal(e),
            };
            let slot = match dep
                .provider
                .gate
                .acquire(&dep.provider.name, self.deadline)
                .await
            {
                Ok(slot) => {
                    if dep.provider.gate.is_limited() {
                        metrics::queue_wait(&dep.provider.name, slot.waited);
                    }
                    slot
                }
                Err(e) => {
                    tries_left -= 1;
                    tried.push(idx);
                    if e.code.as_deref() == Some("queue_timeout") {
                        self.remember(e);
                        return Outcome::OutOfTime;
                    }
                    self.remember(e);
                    continue;
                }
            };
            self.attempts += 1;
            dep.provider.retry_budget.on_request();
            if let KeyChoice::Pool(k) = key {
                metrics::key_selected(&dep.provider.name, &k.name);
            }
            let call = make_call(self.opts, self.deadline, dep, key);
            let started = Instant::now();
            let (result, winner, winner_key, upstream) = match route.hedge {
                Some(after) if route.deployments.len() > 1 => {
                    // Boxed: it holds two attempts' futures (see below).
                    Box::pin(self.hedged(op, route, idx, key, &call, after, &tried)).await
                }
                _ => {
                    let span = otel::attempt_span(
                        &dep.provider.name,
                        &dep.model,
                        &dep.name,
                        key.name().as_deref(),
                    );
                    // Boxed for the same reason as the request's future (Gateway::chat).
                    let r = Box::pin(op.attempt(&call, &dep.model))
                        .instrument(span.clone())
                        .await;
                    if let Err(e) = &r {
                        span.record("error.type", e.kind.as_str());
                        span.record("otel.status_code", "ERROR");
                    }
                    (r, idx, key, started.elapsed())
                }
            };
            drop(slot);
            let dep = &route.deployments[winner];
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.kind.as_str(),
            };
            metrics::attempt(&dep.provider.name, &dep.name, outcome, upstream);
            match result {
                Ok(value) => {
                    record_success(dep, winner_key, upstream);
                    if fallback_index > 0 {
                        metrics::fallback(&route.name, fallback_index);
                    }
                    return Outcome::Served(Served {
                        value,
                        meta: ServedBy {
                            provider: dep.provider.name.clone(),
                            model: dep.model.clone(),
                            deployment: dep.name.clone(),
                            key_name: winner_key.name(),
                            attempts: self.attempts,
                            fallback_index,
                            upstream,
                        },
                    });
                }
                Err(err) => {
                    let now = now_ms();
                    match retry::classify(&err) {
                        Disposition::Fatal => return Outcome::Fatal(err),
                        Disposition::ContextWindow => return Outcome::ContextWindow(err),
                        Disposition::BadKey => {
                            let KeyChoice::Pool(k) = winner_key else {
                                // The caller's own key cannot be swapped for another.
                                return Outcome::Fatal(err);
                            };
                            if err.kind == ErrorKind::RateLimited {
                                dep.stats.record(false, upstream);
                                k.model_health.cool_down(
                                    now,
                                    err.retry_after.unwrap_or(RATE_LIMITED_KEY_COOLDOWN),
                                );
                            } else if dep.keys.len() > 1 {
                                // Rejected: set aside wherever it is used, so another key is tried.
                                k.health.cool_down(now, REJECTED_KEY_COOLDOWN);
                            } else {
                                // The only key: setting it aside would only hide the provider's
                                // answer; another deployment may still serve.
                                unusable.push(winner);
                            }
                            tracing::debug!(deployment = %dep.name, key = %k.name, error = %err, "key set aside");
                            metrics::retry(
                                &dep.provider.name,
                                &dep.name,
                                if err.kind == ErrorKind::RateLimited {
                                    "rate_limited"
                                } else {
                                    "key_rejected"
                                },
                            );
                            self.remember(err);
                            tries_left -= 1;
                        }
                        Disposition::Retry => {
                            dep.health.on_failure(
                                now,
                                &self.routing.circuit_breaker,
                                err.retry_after,
                            );
                            dep.stats.record(false, upstream);
                            tracing::debug!(deployment = %dep.name, error = %err, "attempt failed");
                            let reason = err.kind.as_str();
                            let retry_after = err.retry_after;
                            self.remember(err);
                            tries_left -= 1;
                            if tries_left == 0 {
                                break;
                            }
                            if !dep.provider.retry_budget.try_spend(now) {
                                tracing::warn!(provider = %dep.provider.name, "retry budget exhausted");
                                break;
                            }
                            metrics::retry(&dep.provider.name, &dep.name, reason);
                            tried.push(winner);
                            // Another deployment goes at once; the same one again after a backoff.
                            if !has_other(route, &tried, &unusable, now) {
                                let wait = retry::backoff(&self.routing.backoff, backoffs)
                                    .max(retry_after.unwrap_or_default());
                                backoffs += 1;
                                if self.deadline.is_some_and(|d| Instant::now() + wait >= d) {
                                    return Outcome::OutOfTime;
                                }
                                tokio::time::sleep(wait).await;
                            }
                        }
                    }
                }
            }
        }
        Outcome::Exhausted
    }

    fn key_for<'d>(&self, dep: &'d Deployment, now: u64) -> Result<KeyChoice<'d>>
    where
        'a: 'd,
    {
        let p = &dep.provider;
        if p.base_url.is_empty() && self.opts.api_base.is_none() {
            let var = p
                .hint
                .base_url_var
                .map(|v| format!("{v}, or "))
                .unwrap_or_default();
            return Err(GatewayError::new(
                ErrorKind::InvalidRequest,
                format!("provider `{}` has no endpoint configured: set {var}`providers.{}.base_url` in the config", p.name, p.name),
            )
            .with_provider(p.name.clone())
            .with_code("missing_base_url"));
        }
        if let Some(c) = &self.opts.credential {
            return Ok(KeyChoice::Caller(c));
        }
        if dep.keys.is_empty() {
            if p.requires_key && self.opts.api_base.is_none() {
                let var = p
                    .hint
                    .key_var
                    .map(|v| format!("{v}, or "))
                    .unwrap_or_default();
                return Err(GatewayError::new(
                    ErrorKind::Authentication,
                    format!("no credentials for provider `{}`: set {var}`providers.{}.api_key` in the config", p.name, p.name),
                )
                .with_provider(p.name.clone())
                .with_code("missing_api_key"));
            }
            return Ok(KeyChoice::None);
        }
        match dep.keys.pick_available(now) {
            Some(k) => Ok(KeyChoice::Pool(k)),
            None if dep.keys.all().iter().all(|k| !k.health.is_available(now)) => {
                Err(GatewayError::new(
                    ErrorKind::Authentication,
                    format!(
                        "the provider rejected every key of deployment `{}` within the last minute",
                        dep.name
                    ),
                )
                .with_provider(p.name.clone())
                .with_code("keys_rejected"))
            }
            None => {
                let wait = dep.keys.next_available_in(now).unwrap_or(0);
                Err(GatewayError::new(
                    ErrorKind::RateLimited,
                    format!("every key of deployment `{}` is cooling down; the next is available in {wait} ms", dep.name),
                )
                .with_provider(p.name.clone())
                .with_code("keys_cooling_down")
                .with_retry_after(Some(Duration::from_millis(wait))))
            }
        }
    }

    /// The first attempt, and after the hedge delay a second one on another deployment; the first
    /// success wins and the other is cancelled. Returns the result, the index and key of the
    /// deployment whose result it is, and its upstream time.
    #[allow(clippy::too_many_arguments)]
    async fn hedged<'r, O: Operation>(
        &mut self,
        op: &mut O,
        route: &'r ModelRoute,
        idx: usize,
        key: KeyChoice<'r>,
        call: &Call<'_>,
        after: HedgeAfter,
        tried: &[usize],
    ) -> (Result<O::Output>, usize, KeyChoice<'r>, Duration)
    where
        'a: 'r,
    {
        let dep = &route.deployments[idx];
        let delay = match after {
            HedgeAfter::Fixed(d) => d.0,
            HedgeAfter::P95 => dep.stats.p95().unwrap_or(DEFAULT_HEDGE_DELAY),
        };
        let mut second_op = op.fork();
        let started = Instant::now();
        let mut first = pin!(op.attempt(call, &dep.model));
        if let Ok(r) = tokio::time::timeout(delay, &mut first).await {
            return (r, idx, key, started.elapsed());
        }
        let now = now_ms();
        let mut others: Vec<usize> = tried.to_vec();
        others.push(idx);
        let second = choose(route, &[], &others, now, self.routing)
            .filter(|&i| i != idx)
            .and_then(|i| {
                let dep2 = &route.deployments[i];
                let key2 = self.key_for(dep2, now).ok()?;
                Some((i, key2))
            });
        let Some((idx2, key2)) = second else {
            let r = first.await;
            return (r, idx, key, started.elapsed());
        };
        let dep2 = &route.deployments[idx2];
        tracing::debug!(from = %dep.name, to = %dep2.name, delay_ms = delay.as_millis() as u64, "hedging");
        self.attempts += 1;
        let call2 = make_call(self.opts, self.deadline, dep2, key2);
        let second_started = Instant::now();
        let mut second = pin!(second_op.attempt(&call2, &dep2.model));
        tokio::select! {
            r = &mut first => {
                if r.is_ok() {
                    return (r, idx, key, started.elapsed());
                }
                record_failure(dep, r.as_ref().err(), started.elapsed(), self.routing);
                let r2 = second.await;
                (r2, idx2, key2, second_started.elapsed())
            }
            r = &mut second => {
                if r.is_ok() {
                    return (r, idx2, key2, second_started.elapsed());
                }
                record_failure(dep2, r.as_ref().err(), second_started.elapsed(), self.routing);
                let r1 = first.await;
                (r1, idx, key, started.elapsed())
            }
        }
    }
}

fn record_success(dep: &Deployment, key: KeyChoice<'_>, upstream: Duration) {
    dep.health.on_success();
    dep.stats.record(true, upstream);
    if let KeyChoice::Pool(k) = key {
        k.model_health.on_success();
    }
}

/// The losing attempt of a hedge still counts against its deployment when it failed for a
/// retryable reason.
fn record_failure(
    dep: &Deployment,
    err: Option<&GatewayError>,
    latency: Duration,
    routing: &RoutingConfig,
) {
    if let Some(e) = err
        && retry::classify(e) == Disposition::Retry
    {
        dep.health
            .on_failure(now_ms(), &routing.circuit_breaker, e.retry_after);
        dep.stats.record(false, latency);
    }
}

/// Picks a deployment among the available ones, preferring those not tried yet, and claims the
/// probe of a half-open one. `None` when nothing is available.
fn choose(
    route: &ModelRoute,
    tried: &[usize],
    unusable: &[usize],
    now: u64,
    routing: &RoutingConfig,
) -> Option<usize> {
    for allow_tried in [false, true] {
        let mut excluded: [bool; MAX_CANDIDATES] = [false; MAX_CANDIDATES];
        loop {
            let mut idx = [0usize; MAX_CANDIDATES];
            let mut n = 0;
            for (i, d) in route.deployments.iter().enumerate().take(MAX_CANDIDATES) {
                if excluded[i]
                    || unusable.contains(&i)
                    || (!allow_tried && tried.contains(&i))
                    || !d.health.is_available(now)
                {
                    continue;
                }
                idx[n] = i;
                n += 1;
            }
            if n == 0 {
                break;
            }
            let candidates: [Candidate<'_>; MAX_CANDIDATES] = std::array::from_fn(|j| {
                let d = &route.deployments[idx[j.min(n - 1)]];
                Candidate {
                    weight: d.weight,
                    stats: &d.stats,
                }
            });
            let pick = balancer::pick(&candidates[..n], route.balancing, routing.exploration)?;
            let i = idx[pick];
            match route.deployments[i].health.admit(now) {
                Admission::Normal | Admission::Probe => return Some(i),
                // Another request took the probe in the meantime.
                Admission::Denied => excluded[i] = true,
            }
        }
        if tried.is_empty() {
            break;
        }
    }
    None
}

fn has_other(route: &ModelRoute, tried: &[usize], unusable: &[usize], now: u64) -> bool {
    route.deployments.iter().enumerate().any(|(i, d)| {
        !tried.contains(&i) && !unusable.contains(&i) && d.weight > 0 && d.health.is_available(now)
    })
}

fn nothing_available(route: &ModelRoute, now: u64) -> GatewayError {
    let next = route
        .deployments
        .iter()
        .map(|d| d.health.remaining_ms(now))
        .min()
        .unwrap_or(0);
    GatewayError::new(
        ErrorKind::Unavailable,
        format!(
            "no deployment of model `{}` is available (all are cooling down after failures; the next is probed in {next} ms)",
            route.name
        ),
    )
    .with_code("no_healthy_deployment")
    .with_retry_after(Some(Duration::from_millis(next)))
}

/// The call for one attempt: the deployment's provider and key, the caller's base URL and headers,
/// and a request timeout that never runs past the request's deadline.
fn make_call<'c>(
    opts: &'c RequestOptions,
    deadline: Option<Instant>,
    dep: &'c Deployment,
    key: KeyChoice<'c>,
) -> Call<'c> {
    let mut timeouts = dep.provider.timeouts;
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        timeouts.request = crate::config::Dur(timeouts.request.0.min(left));
    }
    Call {
        provider: &dep.provider,
        credential: key.credential(),
        base_url: opts
            .api_base
            .as_deref()
            .map(|b| b.trim_end_matches('/'))
            .unwrap_or(&dep.provider.base_url),
        timeouts,
        extra_headers: &opts.extra_headers,
    }
}
