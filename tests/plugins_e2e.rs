//! The plugin pipeline's contract with native Rust plugins: request changes, answers and
//! rejections from pre-hooks, ordering, post-hooks seeing and replacing errors, chunk hooks,
//! failures and timeouts (fail-open and fail-closed), live switching.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrogate::ErrorKind;
use ferrogate::config::Config;
use ferrogate::error::GatewayError;
use ferrogate::gateway::{Gateway, RequestOptions};
use ferrogate::mock::{MockOptions, RunningMock};
use ferrogate::plugins::{
    ChunkAction, HookFuture, Hooks, Plugin, PluginError, PreAction, Reply, Request, RequestContext,
};
use ferrogate::schema::{
    ChatChunk, ChatReply, ChatRequest, ChatResponse, MessageContent, RawChunk, StreamChunk,
};
use futures_util::StreamExt;
use serde_json::json;

/// Records the order of hook calls across plugins.
type Log = Arc<Mutex<Vec<String>>>;

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Pass,
    /// Uppercase the user message.
    Shout,
    /// Answer without calling the provider.
    Answer,
    /// Reject with 429.
    Reject,
    /// Fail (a bug).
    Fail,
    /// Take too long.
    Hang,
    /// Post-hook: turn an error into an answer.
    Rescue,
    /// Chunk hook: uppercase content, drop role-only chunks.
    LoudChunks,
}

struct TestPlugin {
    name: String,
    behaviour: Behaviour,
    log: Log,
}

impl TestPlugin {
    fn new(name: &str, behaviour: Behaviour, log: &Log) -> Arc<Self> {
        Arc::new(TestPlugin {
            name: name.into(),
            behaviour,
            log: log.clone(),
        })
    }
}

fn canned(text: &str) -> ChatResponse {
    serde_json::from_value(json!({
        "id": "canned", "object": "chat.completion", "created": 0, "model": "plugin",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    }))
    .unwrap()
}

impl Plugin for TestPlugin {
    fn name(&self) -> &str {
        &self.name
    }
    fn hooks(&self) -> Hooks {
        Hooks {
            pre: true,
            post: true,
            chunk: true,
            raw_chat: false,
            raw_stream: false,
        }
    }
    fn pre_hook<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        request: Request<'a>,
    ) -> HookFuture<'a, PreAction> {
        Box::pin(async move {
            self.log.lock().unwrap().push(format!("pre:{}", self.name));
            ctx.state.insert(self.name.clone(), json!("seen"));
            match self.behaviour {
                Behaviour::Shout => {
                    if let Request::Chat(r) = request {
                        for m in &mut r.messages {
                            if let Some(MessageContent::Text(t)) = &mut m.content {
                                *t = t.to_uppercase();
                            }
                        }
                    }
                    Ok(PreAction::Continue)
                }
                Behaviour::Answer => Ok(PreAction::Respond(Reply::Chat(canned("from the plugin")))),
                Behaviour::Reject => Ok(PreAction::Reject(
                    GatewayError::new(ErrorKind::RateLimited, "over quota")
                        .with_code("quota_exceeded"),
                )),
                Behaviour::Fail => Err(PluginError("boom".into())),
                Behaviour::Hang => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(PreAction::Continue)
                }
                _ => Ok(PreAction::Continue),
            }
        })
    }
    fn post_hook<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        result: &'a mut Result<Reply, GatewayError>,
    ) -> HookFuture<'a, ()> {
        Box::pin(async move {
            let outcome = if result.is_ok() { "ok" } else { "err" };
            let saw_state = ctx.state.contains_key(&self.name);
            self.log.lock().unwrap().push(format!(
                "post:{}:{outcome}:{}",
                self.name,
                if saw_state { "state" } else { "nostate" }
            ));
            if self.behaviour == Behaviour::Rescue && result.is_err() {
                *result = Ok(Reply::Chat(canned("rescued")));
            }
            Ok(())
        })
    }
    fn on_stream_chunk<'a>(
        &'a self,
        _ctx: &'a mut RequestContext,
        chunk: &'a mut ChatChunk,
    ) -> HookFuture<'a, ChunkAction> {
        Box::pin(async move {
            if self.behaviour != Behaviour::LoudChunks {
                return Ok(ChunkAction::Keep);
            }
            let Some(choice) = chunk.choices.first_mut() else {
                return Ok(ChunkAction::Keep);
            };
            match &mut choice.delta.content {
                Some(t) if t.is_empty() => Ok(ChunkAction::Drop),
                Some(t) => {
                    *t = t.to_uppercase();
                    Ok(ChunkAction::Keep)
                }
                None => Ok(ChunkAction::Keep),
            }
        })
    }
}

async fn setup() -> (RunningMock, Gateway) {
    let m = RunningMock::start(MockOptions::default(), "127.0.0.1", 0)
        .await
        .unwrap();
    let config = json!({"providers": {"p": {"api": "openai", "base_url": format!("{}/v1", m.base_url())}},
                        "routing": {"retries": 0}});
    (
        m,
        Gateway::new(Config::from_value(config).unwrap()).unwrap(),
    )
}

fn request(text: &str) -> ChatRequest {
    serde_json::from_value(
        json!({"model": "p/gpt-4o-mini", "messages": [{"role": "user", "content": text}]}),
    )
    .unwrap()
}

fn add(gw: &Gateway, name: &str, b: Behaviour, log: &Log, fail_closed: bool) {
    gw.register_plugin(
        TestPlugin::new(name, b, log),
        fail_closed,
        Duration::from_millis(200),
    )
    .unwrap();
}

async fn answer(gw: &Gateway, text: &str) -> Result<String, GatewayError> {
    gw.chat(request(text), &RequestOptions::default())
        .await
        .map(|s| s.value.choices[0].message.text())
}

#[tokio::test(flavor = "multi_thread")]
async fn pre_hooks_modify_in_order_and_post_hooks_run_in_reverse() {
    let (_m, gw) = setup().await;
    let log = Log::default();
    add(&gw, "a", Behaviour::Pass, &log, false);
    add(&gw, "b", Behaviour::Shout, &log, false);
    assert_eq!(
        answer(&gw, "quiet please").await.unwrap(),
        "You said: QUIET PLEASE"
    );
    assert_eq!(
        *log.lock().unwrap(),
        ["pre:a", "pre:b", "post:b:ok:state", "post:a:ok:state"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn short_circuits_stop_later_pre_hooks_and_skip_their_post_hooks() {
    let (m, gw) = setup().await;
    let log = Log::default();
    add(&gw, "a", Behaviour::Pass, &log, false);
    add(&gw, "answer", Behaviour::Answer, &log, false);
    add(&gw, "c", Behaviour::Pass, &log, false);
    let served = gw
        .chat(request("x"), &RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(served.value.choices[0].message.text(), "from the plugin");
    assert_eq!(&*served.meta.deployment, "plugin:answer");
    assert_eq!(
        *log.lock().unwrap(),
        [
            "pre:a",
            "pre:answer",
            "post:answer:ok:state",
            "post:a:ok:state"
        ]
    );
    let stats: serde_json::Value = reqwest::get(format!("{}/mock/stats", m.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats.get("total").is_none(), "no upstream call");

    // A streamed request gets the plugin's answer as a stream.
    let mut req = request("x");
    req.stream = Some(true);
    let chunks: Vec<_> = gw
        .chat_stream(req, &RequestOptions::default())
        .await
        .unwrap()
        .value
        .collect()
        .await;
    let text: String = chunks
        .iter()
        .filter_map(|c| c.as_ref().ok()?.choices.first()?.delta.content.clone())
        .collect();
    assert_eq!(text, "from the plugin");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_ends_the_request_with_its_error() {
    let (_m, gw) = setup().await;
    let log = Log::default();
    add(&gw, "quota", Behaviour::Reject, &log, false);
    add(&gw, "never", Behaviour::Pass, &log, false);
    let e = answer(&gw, "x").await.unwrap_err();
    assert_eq!((e.status, e.code.as_deref()), (429, Some("quota_exceeded")));
    assert_eq!(*log.lock().unwrap(), ["pre:quota"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn post_hooks_see_errors_and_may_replace_them() {
    let (_m, gw) = setup().await;
    let log = Log::default();
    add(&gw, "rescue", Behaviour::Rescue, &log, false);
    add(&gw, "watch", Behaviour::Pass, &log, false);
    let mut req = request("x");
    req.model = "p/mock-fail-500".into();
    let served = gw.chat(req, &RequestOptions::default()).await.unwrap();
    assert_eq!(served.value.choices[0].message.text(), "rescued");
    assert_eq!(
        *log.lock().unwrap(),
        [
            "pre:rescue",
            "pre:watch",
            "post:watch:err:state",
            "post:rescue:err:state"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_and_timeouts_fail_open_unless_fail_closed() {
    let (_m, gw) = setup().await;
    let log = Log::default();
    add(&gw, "buggy", Behaviour::Fail, &log, false);
    add(&gw, "slow", Behaviour::Hang, &log, false);
    let started = std::time::Instant::now();
    assert_eq!(
        answer(&gw, "still served").await.unwrap(),
        "You said: still served"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the hanging hook was cut at its timeout"
    );

    let (_m, gw) = setup().await;
    add(&gw, "strict", Behaviour::Fail, &log, true);
    let e = answer(&gw, "x").await.unwrap_err();
    assert_eq!((e.status, e.code.as_deref()), (500, Some("plugin_error")));
    assert!(
        e.message.contains("strict") && e.message.contains("boom"),
        "{}",
        e.message
    );

    let (_m, gw) = setup().await;
    add(&gw, "strict_slow", Behaviour::Hang, &log, true);
    let e = answer(&gw, "x").await.unwrap_err();
    assert!(e.message.contains("timed out"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn chunk_hooks_change_and_drop_chunks() {
    let (_m, gw) = setup().await;
    let log = Log::default();
    add(&gw, "loud", Behaviour::LoudChunks, &log, false);
    let mut req = request("make noise");
    req.stream = Some(true);
    let chunks: Vec<_> = gw
        .chat_stream(req, &RequestOptions::default())
        .await
        .unwrap()
        .value
        .collect()
        .await;
    let chunks: Vec<ChatChunk> = chunks.into_iter().map(Result::unwrap).collect();
    assert!(
        chunks
            .iter()
            .all(|c| c.choices.first().and_then(|x| x.delta.content.as_deref()) != Some("")),
        "the empty role chunk was dropped"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.content.clone())
        .collect();
    assert_eq!(text, "YOU SAID: MAKE NOISE");
    // The post-hook ran after the stream ended, with the folded answer.
    assert_eq!(log.lock().unwrap().last().unwrap(), "post:loud:ok:state");
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_switch_off_and_on_live() {
    let (_m, gw) = setup().await;
    let log = Log::default();
    add(&gw, "shout", Behaviour::Shout, &log, false);
    assert_eq!(answer(&gw, "abc").await.unwrap(), "You said: ABC");
    assert!(gw.set_plugin_enabled("shout", false));
    assert_eq!(answer(&gw, "abc").await.unwrap(), "You said: abc");
    assert!(gw.set_plugin_enabled("shout", true));
    assert_eq!(answer(&gw, "abc").await.unwrap(), "You said: ABC");
    assert!(!gw.set_plugin_enabled("nope", true));
    assert!(
        gw.register_plugin(
            TestPlugin::new("shout", Behaviour::Pass, &log),
            false,
            Duration::from_secs(1)
        )
        .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_plugins_and_their_errors() {
    let e = Config::from_value(json!({"plugins": [{"builtin": "nope"}]})).unwrap_err();
    assert!(
        e.0.contains("plugins[0].builtin: unknown built-in plugin `nope`"),
        "{}",
        e.0
    );
    let config = Config::from_value(json!({"plugins": [{"python": "x.y:Z"}]})).unwrap();
    let e = Gateway::new(config).err().unwrap();
    assert!(
        e.0.contains("plugins[0].python: Python plugins need the ferrogate Python package"),
        "{}",
        e.0
    );
    let config =
        Config::from_value(json!({"plugins": [{"builtin": "noop"}, {"builtin": "noop"}]})).unwrap();
    assert!(
        Gateway::new(config)
            .err()
            .unwrap()
            .0
            .contains("two plugins are named `noop`")
    );
    let config = Config::from_value(
        json!({"plugins": [{"builtin": "noop", "name": "measure", "enabled": false}]}),
    )
    .unwrap();
    let gw = Gateway::new(config).unwrap();
    let names: Vec<_> = gw
        .pipeline()
        .slots()
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(
        names,
        ["telemetry", "measure"],
        "the built-in observer comes first"
    );
    assert!(!gw.pipeline().find("measure").unwrap().is_enabled());
}

/// Records which form of a chat answer its post-hook was given.
struct FormProbe {
    name: String,
    raw_chat: bool,
    log: Log,
}

impl Plugin for FormProbe {
    fn name(&self) -> &str {
        &self.name
    }
    fn hooks(&self) -> Hooks {
        Hooks {
            post: true,
            raw_chat: self.raw_chat,
            ..Hooks::default()
        }
    }
    fn post_hook<'a>(
        &'a self,
        _ctx: &'a mut RequestContext,
        result: &'a mut Result<Reply, GatewayError>,
    ) -> HookFuture<'a, ()> {
        Box::pin(async move {
            let form = match &*result {
                Ok(Reply::Chat(_)) => "parsed",
                Ok(Reply::RawChat(_)) => "raw",
                Ok(Reply::StreamSummary(_)) => "summary",
                Ok(Reply::Embeddings(_)) => "embeddings",
                Err(_) => "error",
            };
            self.log
                .lock()
                .unwrap()
                .push(format!("{}:{form}", self.name));
            Ok(())
        })
    }
}

fn form_of(reply: &ChatReply) -> &'static str {
    match reply {
        ChatReply::Parsed(_) => "parsed",
        ChatReply::Raw(_) => "raw",
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_answers_stay_unparsed_only_when_every_post_hook_takes_them() {
    let (_m, gw) = setup().await;
    let log = Log::default();
    let probe = |name: &str, raw_chat| {
        Arc::new(FormProbe {
            name: name.into(),
            raw_chat,
            log: log.clone(),
        })
    };
    let json_answer = || async {
        let served = gw
            .chat_json(request("hi"), &RequestOptions::default())
            .await
            .unwrap();
        let form = form_of(&served.value);
        if let ChatReply::Raw(raw) = &served.value {
            // What the gateway accounts with is read from the unparsed answer.
            assert_eq!(raw.usage.as_ref().unwrap().completion_tokens, 3);
            assert_eq!(raw.finish_reasons.len(), 1);
            assert_eq!(
                raw.parse().unwrap().choices[0].message.text(),
                "You said: hi"
            );
        }
        form
    };
    let take = |log: &Log| std::mem::take(&mut *log.lock().unwrap());

    // No plugin: an OpenAI-compatible upstream's answer comes back as it was sent.
    assert_eq!(json_answer().await, "raw");
    gw.register_plugin(probe("accounting", true), false, Duration::from_secs(1))
        .unwrap();
    assert_eq!(json_answer().await, "raw");
    assert_eq!(take(&log), ["accounting:raw"]);
    // One post-hook that needs it parsed: every post-hook gets it parsed.
    gw.register_plugin(probe("reader", false), false, Duration::from_secs(1))
        .unwrap();
    assert_eq!(json_answer().await, "parsed");
    assert_eq!(take(&log), ["reader:parsed", "accounting:parsed"]);
    // Switched off, it no longer counts.
    assert!(gw.set_plugin_enabled("reader", false));
    assert_eq!(json_answer().await, "raw");
    assert_eq!(take(&log), ["accounting:raw"]);
    // The parsed API (the Python facade's) always gets the parsed form.
    let served = gw
        .chat(request("hi"), &RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(served.value.choices[0].message.text(), "You said: hi");
    assert_eq!(take(&log), ["accounting:parsed"]);
}

/// Records which form of chunk its chunk hook and which form of answer its post-hook got.
struct StreamProbe {
    name: String,
    raw_stream: bool,
    log: Log,
}

impl StreamProbe {
    fn note(&self, what: &str) {
        let mut log = self.log.lock().unwrap();
        let entry = format!("{}:{what}", self.name);
        // One entry for all the chunks of one form.
        if !log.contains(&entry) {
            log.push(entry);
        }
    }
}

impl Plugin for StreamProbe {
    fn name(&self) -> &str {
        &self.name
    }
    fn hooks(&self) -> Hooks {
        Hooks {
            post: true,
            chunk: true,
            raw_stream: self.raw_stream,
            ..Hooks::default()
        }
    }
    fn on_stream_chunk<'a>(
        &'a self,
        _ctx: &'a mut RequestContext,
        _chunk: &'a mut ChatChunk,
    ) -> HookFuture<'a, ChunkAction> {
        self.note("parsed chunks");
        Box::pin(async { Ok(ChunkAction::Keep) })
    }
    fn on_raw_stream_chunk<'a>(
        &'a self,
        _ctx: &'a mut RequestContext,
        chunk: &'a RawChunk,
    ) -> HookFuture<'a, ChunkAction> {
        assert!(serde_json::from_slice::<serde_json::Value>(&chunk.data).is_ok());
        self.note("raw chunks");
        Box::pin(async { Ok(ChunkAction::Keep) })
    }
    fn post_hook<'a>(
        &'a self,
        _ctx: &'a mut RequestContext,
        result: &'a mut Result<Reply, GatewayError>,
    ) -> HookFuture<'a, ()> {
        let form = match &*result {
            Ok(Reply::Chat(r)) => format!("answer {:?}", r.choices[0].message.text()),
            Ok(Reply::StreamSummary(s)) => format!(
                "summary {} tokens, {:?}",
                s.usage.as_ref().map_or(0, |u| u.total_tokens),
                s.finish_reasons
            ),
            Ok(_) => "other".into(),
            Err(e) => format!("error {}", e.message),
        };
        self.note(&form);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_chunks_stay_unparsed_only_when_every_chunk_and_post_hook_takes_them() {
    let (_m, gw) = setup().await;
    let log = Log::default();
    let probe = |name: &str, raw_stream| {
        Arc::new(StreamProbe {
            name: name.into(),
            raw_stream,
            log: log.clone(),
        })
    };
    let stream_request = || {
        let mut req = request("hi");
        req.stream = Some(true);
        req
    };
    // The forms of the chunks the OpenAI route would send on, and their text.
    let json_stream = || async {
        let chunks: Vec<_> = gw
            .chat_stream_json(stream_request(), &RequestOptions::default())
            .await
            .unwrap()
            .value
            .collect()
            .await;
        let mut forms: Vec<&str> = Vec::new();
        let mut text = String::new();
        for chunk in chunks {
            let chunk = chunk.unwrap();
            let form = match &chunk {
                StreamChunk::Raw(_) => "raw",
                StreamChunk::Parsed(_) => "parsed",
            };
            if forms.last() != Some(&form) {
                forms.push(form);
            }
            let parsed = chunk.into_parsed().unwrap();
            text.extend(
                parsed
                    .choices
                    .iter()
                    .filter_map(|c| c.delta.content.clone()),
            );
        }
        assert_eq!(text, "You said: hi");
        forms
    };
    let take = |log: &Log| std::mem::take(&mut *log.lock().unwrap());
    // The usage the gateway asked for on the caller's behalf (the mock counts 5 tokens).
    let summary = "summary 5 tokens, [Some(Stop)]";

    // No plugin (the built-in telemetry takes them): chunks come as the upstream sent them.
    assert_eq!(json_stream().await, ["raw"]);
    gw.register_plugin(probe("accounting", true), false, Duration::from_secs(1))
        .unwrap();
    assert_eq!(json_stream().await, ["raw"]);
    assert_eq!(
        take(&log),
        [
            "accounting:raw chunks".to_string(),
            format!("accounting:{summary}")
        ]
    );
    // One plugin that needs them parsed: every hook gets them parsed, and the folded answer.
    gw.register_plugin(probe("reader", false), false, Duration::from_secs(1))
        .unwrap();
    assert_eq!(json_stream().await, ["parsed"]);
    let answer = "answer \"You said: hi\"";
    assert_eq!(
        take(&log),
        [
            "reader:parsed chunks".to_string(),
            "accounting:parsed chunks".to_string(),
            format!("reader:{answer}"),
            format!("accounting:{answer}"),
        ]
    );
    // Switched off, it no longer counts.
    assert!(gw.set_plugin_enabled("reader", false));
    assert_eq!(json_stream().await, ["raw"]);
    assert_eq!(
        take(&log),
        [
            "accounting:raw chunks".to_string(),
            format!("accounting:{summary}")
        ]
    );
    // The parsed API (the Python facade's, the other front doors') gets parsed chunks; the
    // stream is still not folded for post-hooks that take a summary.
    let chunks: Vec<_> = gw
        .chat_stream(stream_request(), &RequestOptions::default())
        .await
        .unwrap()
        .value
        .collect()
        .await;
    assert!(chunks.iter().all(Result::is_ok));
    assert_eq!(
        take(&log),
        [
            "accounting:parsed chunks".to_string(),
            format!("accounting:{summary}")
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_are_accounted_with_the_usage_the_caller_did_not_ask_for() {
    let m = RunningMock::start(MockOptions::default(), "127.0.0.1", 0)
        .await
        .unwrap();
    // The `openai` preset streams usage when asked: the gateway always asks.
    let config = json!({"providers": {"openai": {"base_url": format!("{}/v1", m.base_url()), "api_key": "sk-test"}}});
    let gw = Gateway::new(Config::from_value(config).unwrap()).unwrap();
    let log = Log::default();
    gw.register_plugin(
        Arc::new(StreamProbe {
            name: "accounting".into(),
            raw_stream: true,
            log: log.clone(),
        }),
        false,
        Duration::from_secs(1),
    )
    .unwrap();
    for include_usage in [false, true] {
        let mut req: ChatRequest = serde_json::from_value(json!({
            "model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "count me"}],
            "stream": true, "stream_options": {"include_usage": include_usage}
        }))
        .unwrap();
        if !include_usage {
            req.stream_options = None;
        }
        let chunks: Vec<ChatChunk> = gw
            .chat_stream_json(req, &RequestOptions::default())
            .await
            .unwrap()
            .value
            .map(|c| c.unwrap().into_parsed().unwrap())
            .collect()
            .await;
        let with_usage = chunks.iter().filter(|c| c.usage.is_some()).count();
        assert_eq!(
            with_usage,
            usize::from(include_usage),
            "include_usage {include_usage}"
        );
        // The post-hook saw the usage either way (7 tokens as the mock counts them).
        assert_eq!(
            std::mem::take(&mut *log.lock().unwrap()),
            [
                "accounting:raw chunks".to_string(),
                "accounting:summary 7 tokens, [Some(Stop)]".to_string()
            ],
            "include_usage {include_usage}"
        );
    }
}
