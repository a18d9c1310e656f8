//! Micro-benchmarks of the per-request hot path: key selection, request parsing and encoding,
//! response parsing, stream chunk translation. Run with `cargo bench --bench hot_path`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrogate::providers::openai::{
    OpenAiStreamTranslator, chat_request_body, parse_chat_response,
};
use ferrogate::providers::stream::StreamTranslator;
use ferrogate::router::keys::{KeyPool, NamedKey};
use ferrogate::schema::{ChatRequest, parse_json};
use ferrogate::secret::Secret;
use ferrogate::sse::SseEvent;

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
}

criterion_group!(benches, keys, codec, stream);
criterion_main!(benches);
