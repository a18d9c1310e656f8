//! Micro-benchmarks of the per-request hot path: key selection, the routing decision, request
//! parsing and encoding, response parsing, and one stream chunk's translation for each native
//! format. Run with `cargo bench --bench hot_path`.

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrogate::config::{Balancing, Config};
use ferrogate::providers::anthropic::response::AnthropicStreamTranslator;
use ferrogate::providers::bedrock::response::BedrockStreamTranslator;
use ferrogate::providers::cohere::response::CohereStreamTranslator;
use ferrogate::providers::gemini::response::GeminiStreamTranslator;
use ferrogate::providers::openai::{
    OpenAiRawTranslator, OpenAiStreamTranslator, chat_request_body, parse_chat_response,
};
use ferrogate::providers::stream::StreamTranslator;
use ferrogate::providers::{BuildContext, ProviderRegistry};
use ferrogate::router::Router;
use ferrogate::router::balancer::{self, Candidate};
use ferrogate::router::health::HealthRegistry;
use ferrogate::router::keys::{KeyPool, NamedKey};
use ferrogate::schema::{ChatChunk, ChatRequest, StreamChunk, parse_json};
use ferrogate::secret::Secret;
use ferrogate::sse::SseEvent;
use ferrogate::sse::eventstream::Frame;
use serde_json::json;

const REQUEST: &[u8] = br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarize the plot of Hamlet in two sentences, please."}],"temperature":0.2,"max_tokens":200,"stream":false}"#;
const RESPONSE: &[u8] = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Prince Hamlet seeks revenge on his uncle Claudius, who murdered Hamlet's father to seize the throne. His feigned madness and hesitation lead to a tragic chain of deaths, including his own."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":28,"completion_tokens":38,"total_tokens":66},"system_fingerprint":"fp_1"}"#;
const CHUNK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" revenge"},"logprobs":null,"finish_reason":null}]}"#;

fn keys(c: &mut Criterion) {
    let key = |n: &str, w: u32| NamedKey {
        weight: w,
        ..NamedKey::api_key(n, Secret::new(n))
    };
    let one = KeyPool::new(vec![key("a", 1)]);
    let four = KeyPool::new(vec![key("a", 5), key("b", 3), key("c", 1), key("d", 1)]);
    c.bench_function("key_pick/1_key", |b| b.iter(|| black_box(one.pick())));
    c.bench_function("key_pick/4_weighted_keys", |b| {
        b.iter(|| black_box(four.pick()))
    });
}

/// Model name to route (a configured model with three deployments, and a `provider/model` name
/// whose route is cached after first use), then the balancer's pick among the deployments.
fn routing(c: &mut Criterion) {
    let config = Config::from_value(json!({
        "providers": {
            "openai": {"api_key": "sk-a"},
            "groq": {"api_key": "gsk-b"},
            "anthropic": {"api_key": "sk-ant-c"}
        },
        "models": {"gpt-4o": {"deployments": [
            {"model": "openai/gpt-4o", "weight": 5},
            {"model": "groq/llama-3.3-70b-versatile", "weight": 3},
            {"model": "anthropic/claude-3-5-haiku-latest", "weight": 2}
        ]}}
    }))
    .unwrap();
    let env: HashMap<String, String> = HashMap::new();
    let health = HealthRegistry::default();
    let ctx = BuildContext::new(&config, &env, &health).unwrap();
    let providers = ProviderRegistry::build(&ctx).unwrap();
    let router = Router::build(&providers, &ctx, Arc::new(HealthRegistry::default())).unwrap();
    for mode in [Balancing::Weighted, Balancing::Adaptive] {
        let name = format!("route_and_pick/3_deployments_{mode:?}").to_lowercase();
        c.bench_function(&name, |b| {
            b.iter(|| {
                let route = router.route(black_box("gpt-4o"), &providers).unwrap();
                // On the stack, as the gateway builds them.
                let candidates: [Candidate<'_>; 3] = std::array::from_fn(|i| Candidate {
                    weight: route.deployments[i].weight,
                    stats: &route.deployments[i].stats,
                });
                black_box(balancer::pick(&candidates, mode, 0.05))
            })
        });
    }
    c.bench_function("route/provider_model_name_cached", |b| {
        b.iter(|| {
            black_box(
                router
                    .route(black_box("openai/gpt-4o-mini"), &providers)
                    .unwrap(),
            )
        })
    });
}

fn codec(c: &mut Criterion) {
    c.bench_function("chat_request/parse", |b| {
        b.iter(|| black_box(parse_json::<ChatRequest>(black_box(REQUEST)).unwrap()))
    });
    let req: ChatRequest = parse_json(REQUEST).unwrap();
    c.bench_function("chat_request/encode_openai", |b| {
        b.iter(|| black_box(chat_request_body(&req).unwrap()))
    });
    c.bench_function("chat_response/parse_openai", |b| {
        b.iter(|| black_box(parse_chat_response(black_box(RESPONSE)).unwrap()))
    });
    let resp = parse_chat_response(RESPONSE).unwrap();
    c.bench_function("chat_response/encode", |b| {
        b.iter(|| black_box(serde_json::to_vec(&resp).unwrap()))
    });
}

fn stream(c: &mut Criterion) {
    let mut translator = OpenAiStreamTranslator::new(Arc::from("openai"));
    let mut out = VecDeque::new();
    let event = SseEvent {
        event: None,
        data: CHUNK.to_string(),
        id: None,
    };
    c.bench_function("stream_chunk/openai_translate_and_encode", |b| {
        b.iter(|| {
            translator.frame(event.clone(), &mut out).unwrap();
            let chunk = out.pop_front().unwrap();
            black_box(serde_json::to_vec(&chunk).unwrap())
        })
    });
    // The same chunk for a client of the OpenAI API: checked and framed as it came.
    let mut translator = OpenAiRawTranslator::new(Arc::from("openai"));
    let mut out = VecDeque::new();
    c.bench_function("stream_chunk/openai_passed_on", |b| {
        b.iter(|| {
            translator.frame(event.clone(), &mut out).unwrap();
            match out.pop_front().unwrap() {
                StreamChunk::Raw(raw) => black_box(ferrogate::sse::data_event(&raw.data)),
                StreamChunk::Parsed(_) => unreachable!("a complete chunk is passed on"),
            }
        })
    });
}

fn sse(event: &str, data: &str) -> SseEvent {
    SseEvent {
        event: Some(event.to_string()),
        data: data.to_string(),
        id: None,
    }
}

/// Feeds `setup` to a translator, then measures translating `delta` (a text delta, the frame a
/// stream is mostly made of) and encoding the chunk it gives as the client receives it.
fn bench_translator<F: Clone, T: StreamTranslator<F, Chunk = ChatChunk>>(
    c: &mut Criterion,
    name: &str,
    mut translator: T,
    setup: Vec<F>,
    delta: F,
) {
    let mut out = VecDeque::new();
    for frame in setup {
        translator.frame(frame, &mut out).unwrap();
    }
    out.clear();
    c.bench_function(name, |b| {
        b.iter(|| {
            translator.frame(delta.clone(), &mut out).unwrap();
            let chunk = out.pop_front().expect("a text delta gives a chunk");
            out.clear();
            black_box(serde_json::to_vec(&chunk).unwrap())
        })
    });
}

fn native_streams(c: &mut Criterion) {
    bench_translator(
        c,
        "stream_chunk/anthropic_translate_and_encode",
        AnthropicStreamTranslator::new(Arc::from("anthropic"), None),
        vec![
            sse(
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-3-5-haiku-20241022","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#,
            ),
            sse(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
        ],
        sse(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" revenge"}}"#,
        ),
    );
    bench_translator(
        c,
        "stream_chunk/gemini_translate_and_encode",
        GeminiStreamTranslator::new(Arc::from("gemini"), "gemini-2.0-flash"),
        vec![],
        SseEvent {
            event: None,
            data: r#"{"candidates":[{"content":{"parts":[{"text":" revenge"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":12,"totalTokenCount":12},"modelVersion":"gemini-2.0-flash","responseId":"r-1"}"#.to_string(),
            id: None,
        },
    );
    bench_translator(
        c,
        "stream_chunk/cohere_translate_and_encode",
        CohereStreamTranslator::new(Arc::from("cohere"), "command-a-03-2025"),
        vec![
            sse(
                "message-start",
                r#"{"id":"29f14a5a","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}"#,
            ),
            sse(
                "content-start",
                r#"{"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}"#,
            ),
        ],
        sse(
            "content-delta",
            r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":" revenge"}}}}"#,
        ),
    );
    let event = |kind: &str, payload: &str| {
        Frame::new(payload.as_bytes().to_vec())
            .with_header(":message-type", "event")
            .with_header(":event-type", kind)
    };
    bench_translator(
        c,
        "stream_chunk/bedrock_translate_and_encode",
        BedrockStreamTranslator::new(
            Arc::from("bedrock"),
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            "chatcmpl-1",
            None,
        ),
        vec![event("messageStart", r#"{"role":"assistant","p":"abcd"}"#)],
        event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":" revenge"},"p":"abcdefgh"}"#,
        ),
    );
}

criterion_group!(benches, keys, routing, codec, stream, native_streams);
criterion_main!(benches);
