//! Gemini response / stream / error / embeddings -> canonical.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::request::THOUGHT_SEPARATOR;
use super::wire::{
    Candidate, ErrorBody, ErrorEnvelope, FunctionCall, GenerateContentResponse, Part, UsageMetadata,
};
use crate::error::{ErrorKind, GatewayError, Result};
use crate::providers::stream::{Flow, StreamTranslator};
use crate::providers::transport::UpstreamErrorBody;
use crate::schema::{
    ChatChunk, ChatResponse, Choice, CompletionTokensDetails, Delta, Extra, FinishReason,
    FunctionCall as CanonicalFunctionCall, FunctionCallDelta, Message, MessageContent,
    PromptTokensDetails, Role, ToolCall, ToolCallDelta, Usage, unix_now,
};
use crate::sse::SseEvent;

pub fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        "FINISH_REASON_UNSPECIFIED" => FinishReason::Stop,
        // MALFORMED_FUNCTION_CALL, LANGUAGE, OTHER...: passed on as Gemini says them.
        other => FinishReason::Other(other.to_ascii_lowercase()),
    }
}

/// Gemini counts thoughts apart from candidates and cached tokens inside the prompt; OpenAI
/// counts reasoning inside completion tokens.
pub fn usage(u: &UsageMetadata) -> Usage {
    let prompt = u.prompt_token_count + u.tool_use_prompt_token_count.unwrap_or(0);
    let thoughts = u.thoughts_token_count.unwrap_or(0);
    let mut out = Usage::new(prompt, u.candidates_token_count + thoughts);
    if u.total_token_count > 0 {
        out.total_tokens = u.total_token_count;
    }
    out.prompt_tokens_details = Some(PromptTokensDetails {
        cached_tokens: Some(u.cached_content_token_count.unwrap_or(0)),
        ..Default::default()
    });
    if thoughts > 0 {
        out.completion_tokens_details = Some(CompletionTokensDetails {
            reasoning_tokens: Some(thoughts),
            ..Default::default()
        });
    }
    out
}

/// A short stable hash for synthesized ids.
pub fn short_hash(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")[..12].to_string()
}

/// The id of a function call: Gemini's own when it gives one, else a stable synthesized one. A
/// thought signature rides along after [`THOUGHT_SEPARATOR`].
pub fn call_id(part: &Part, call: &FunctionCall, seed: &str) -> String {
    let base = call.id.clone().unwrap_or_else(|| {
        format!(
            "call_{}",
            short_hash(&[seed, &call.name, &call.args.to_string()])
        )
    });
    match &part.thought_signature {
        Some(sig) => format!("{base}{THOUGHT_SEPARATOR}{sig}"),
        None => base,
    }
}

fn arguments_of(args: &Value) -> String {
    match args {
        Value::Null => "{}".into(),
        other => serde_json::to_string(other).unwrap_or_else(|_| "{}".into()),
    }
}

fn candidate_finish(c: &Candidate, has_calls: bool) -> Option<FinishReason> {
    let finish = c.finish_reason.as_deref().map(finish_reason);
    match finish {
        Some(FinishReason::Stop) if has_calls => Some(FinishReason::ToolCalls),
        other => other,
    }
}

/// The non-streamed response. `model` is the requested model, used when Google names none.
pub fn to_chat_response(resp: GenerateContentResponse, model: &str) -> ChatResponse {
    let id = resp
        .response_id
        .clone()
        .unwrap_or_else(|| format!("gemini-{}", uuid::Uuid::new_v4().simple()));
    let mut choices = Vec::new();
    for (pos, c) in resp.candidates.iter().enumerate() {
        let index = c.index.unwrap_or(pos as u32);
        let mut text = String::new();
        let mut reasoning = String::new();
        let mut calls = Vec::new();
        for (k, part) in c.content.iter().flat_map(|c| c.parts.iter()).enumerate() {
            if let Some(call) = &part.function_call {
                let seed = format!("{id}/{index}/{k}");
                calls.push(ToolCall {
                    id: call_id(part, call, &seed),
                    kind: "function".into(),
                    function: CanonicalFunctionCall {
                        name: call.name.clone(),
                        arguments: arguments_of(&call.args),
                        extra: Extra::new(),
                    },
                    extra: Extra::new(),
                });
            } else if let Some(t) = &part.text {
                if part.thought == Some(true) {
                    reasoning.push_str(t);
                } else {
                    text.push_str(t);
                }
            }
        }
        let mut extra = Extra::new();
        if !reasoning.is_empty() {
            extra.insert("reasoning_content".into(), Value::String(reasoning));
        }
        let finish = candidate_finish(c, !calls.is_empty());
        choices.push(Choice {
            index,
            message: Message {
                role: Role::Assistant,
                content: (!text.is_empty() || calls.is_empty())
                    .then_some(MessageContent::Text(text)),
                name: None,
                tool_calls: (!calls.is_empty()).then_some(calls),
                tool_call_id: None,
                refusal: None,
                extra,
            },
            finish_reason: finish,
            logprobs: None,
            extra: Extra::new(),
        });
    }
    // The prompt itself was blocked: no candidates, only the reason.
    if choices.is_empty() {
        choices.push(blocked_choice(resp.prompt_feedback.is_some()));
    }
    ChatResponse {
        id,
        object: "chat.completion".into(),
        created: unix_now(),
        model: resp.model_version.unwrap_or_else(|| model.to_string()),
        choices,
        usage: resp.usage_metadata.as_ref().map(usage),
        system_fingerprint: None,
        extra: Extra::new(),
    }
}

fn blocked_choice(blocked: bool) -> Choice {
    Choice {
        index: 0,
        message: Message::new(Role::Assistant, ""),
        finish_reason: Some(if blocked {
            FinishReason::ContentFilter
        } else {
            FinishReason::Stop
        }),
        logprobs: None,
        extra: Extra::new(),
    }
}

/// `retryDelay` of a `google.rpc.RetryInfo` detail (`"37s"`, `"0.5s"`).
fn retry_delay(details: &[Value]) -> Option<Duration> {
    details
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .filter_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .filter_map(|s| s.strip_suffix('s')?.parse::<f64>().ok())
        .find(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn has_reason(details: &[Value], reason: &str) -> bool {
    details
        .iter()
        .any(|d| d.get("reason").and_then(Value::as_str) == Some(reason))
}

/// What a Google error body says: its kind, message, status name and the retry delay it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedError {
    pub body: UpstreamErrorBody,
    /// A status that says the situation better than the one Google answered with (400 for an
    /// invalid API key is an authentication failure: 401).
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
}

pub fn error_kind(status: &str, message: &str, details: &[Value]) -> Option<ErrorKind> {
    let lower = message.to_ascii_lowercase();
    let key_problem = has_reason(details, "API_KEY_INVALID")
        || lower.contains("api key not valid")
        || lower.contains("api key expired")
        || lower.contains("unregistered callers");
    Some(match status {
        _ if key_problem => ErrorKind::Authentication,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE"
            if lower.contains("exceeds the maximum number of tokens")
                || lower.contains("input token count")
                || lower.contains("context window") =>
        {
            ErrorKind::ContextWindowExceeded
        }
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => ErrorKind::InvalidRequest,
        "UNAUTHENTICATED" => ErrorKind::Authentication,
        "PERMISSION_DENIED" => ErrorKind::PermissionDenied,
        "NOT_FOUND" => ErrorKind::NotFound,
        "RESOURCE_EXHAUSTED" => ErrorKind::RateLimited,
        "UNAVAILABLE" => ErrorKind::Unavailable,
        "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" | "ABORTED" | "CANCELLED" => ErrorKind::UpstreamServer,
        "UNIMPLEMENTED" => ErrorKind::InvalidRequest,
        _ => return None,
    })
}

pub fn parse_error_body(body: &[u8]) -> ParsedError {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(env) => {
            let e = env.error;
            let kind = error_kind(&e.status, &e.message, &e.details);
            let auth = kind == Some(ErrorKind::Authentication);
            // Google answers an invalid key with 400 INVALID_ARGUMENT; callers know it as 401.
            let code = if auth && e.status != "UNAUTHENTICATED" {
                Some("invalid_api_key".to_string())
            } else {
                (!e.status.is_empty()).then_some(e.status)
            };
            ParsedError {
                status: auth.then_some(401),
                retry_after: retry_delay(&e.details),
                body: UpstreamErrorBody {
                    kind,
                    code,
                    message: (!e.message.is_empty()).then_some(e.message),
                    param: None,
                },
            }
        }
        Err(_) => ParsedError {
            body: UpstreamErrorBody::default(),
            status: None,
            retry_after: None,
        },
    }
}

/// Per-candidate progress of a stream.
#[derive(Debug, Default)]
struct CandidateState {
    started: bool,
    tool_calls: u32,
    finished: bool,
}

/// `streamGenerateContent?alt=sse` events -> chunks. Each event is a whole response holding the
/// next piece of each candidate; function calls arrive whole, so each becomes one tool-call delta
/// with its complete arguments. The stream has no terminal event: it ends when Google closes it,
/// and is complete when every candidate has a finish reason. The usage of the last event is sent
/// as a final usage chunk.
#[derive(Debug)]
pub struct GeminiStreamTranslator {
    provider: Arc<str>,
    id: String,
    model: String,
    created: u64,
    candidates: BTreeMap<u32, CandidateState>,
    usage: Option<UsageMetadata>,
    events: u64,
}

impl GeminiStreamTranslator {
    pub fn new(provider: Arc<str>, model: &str) -> Self {
        GeminiStreamTranslator {
            provider,
            id: String::new(),
            model: model.to_string(),
            created: unix_now(),
            candidates: BTreeMap::new(),
            usage: None,
            events: 0,
        }
    }

    fn chunk(&self, index: u32, delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        let mut c = ChatChunk::new(&self.id, &self.model, self.created).with_delta(delta, finish);
        c.choices[0].index = index;
        c
    }

    fn error(&self, kind: ErrorKind, message: String) -> GatewayError {
        GatewayError::new(kind, message).with_provider(self.provider.clone())
    }

    fn start(&mut self, index: u32, out: &mut VecDeque<ChatChunk>) {
        let state = self.candidates.entry(index).or_default();
        if !state.started {
            state.started = true;
            let delta = Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Default::default()
            };
            out.push_back(self.chunk(index, delta, None));
        }
    }

    pub fn response(&mut self, resp: GenerateContentResponse, out: &mut VecDeque<ChatChunk>) {
        self.events += 1;
        if self.id.is_empty() {
            self.id = resp
                .response_id
                .clone()
                .unwrap_or_else(|| format!("gemini-{}", uuid::Uuid::new_v4().simple()));
        }
        if let Some(v) = resp.model_version {
            self.model = v;
        }
        if resp.usage_metadata.is_some() {
            self.usage = resp.usage_metadata;
        }
        if resp.candidates.is_empty()
            && resp
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
        {
            self.start(0, out);
            out.push_back(self.chunk(0, Delta::default(), Some(FinishReason::ContentFilter)));
            if let Some(s) = self.candidates.get_mut(&0) {
                s.finished = true;
            }
            return;
        }
        for (pos, c) in resp.candidates.iter().enumerate() {
            let index = c.index.unwrap_or(pos as u32);
            self.start(index, out);
            for (k, part) in c.content.iter().flat_map(|c| c.parts.iter()).enumerate() {
                if let Some(call) = &part.function_call {
                    let seed = format!("{}/{index}/{}/{k}", self.id, self.events);
                    let state = self.candidates.entry(index).or_default();
                    let tool_index = state.tool_calls;
                    state.tool_calls += 1;
                    let delta = Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index: tool_index,
                            id: Some(call_id(part, call, &seed)),
                            kind: Some("function".into()),
                            function: Some(FunctionCallDelta {
                                name: Some(call.name.clone()),
                                arguments: Some(arguments_of(&call.args)),
                            }),
                            extra: Extra::new(),
                        }]),
                        ..Default::default()
                    };
                    out.push_back(self.chunk(index, delta, None));
                } else if let Some(t) = part.text.as_ref().filter(|t| !t.is_empty()) {
                    let delta = if part.thought == Some(true) {
                        let mut d = Delta::default();
                        d.extra
                            .insert("reasoning_content".into(), Value::String(t.clone()));
                        d
                    } else {
                        Delta::content(t.clone())
                    };
                    out.push_back(self.chunk(index, delta, None));
                }
            }
            let has_calls = self
                .candidates
                .get(&index)
                .is_some_and(|s| s.tool_calls > 0);
            if let Some(finish) = candidate_finish(c, has_calls) {
                if let Some(s) = self.candidates.get_mut(&index) {
                    s.finished = true;
                }
                out.push_back(self.chunk(index, Delta::default(), Some(finish)));
            }
        }
    }
}

impl StreamTranslator<SseEvent> for GeminiStreamTranslator {
    type Chunk = ChatChunk;

    fn frame(&mut self, frame: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
        if frame.data.trim().is_empty() {
            return Ok(Flow::Continue);
        }
        // Every field of a response is optional and unknown ones are kept, so an error event
        // (`{"error": {...}}`) parses as a response too: each chunk is parsed once.
        let mut parsed = serde_json::from_str::<GenerateContentResponse>(&frame.data);
        if let Ok(resp) = &mut parsed
            && resp.candidates.is_empty()
            && let Some(Ok(e)) = resp
                .extra
                .remove("error")
                .map(serde_json::from_value::<ErrorBody>)
        {
            let kind =
                error_kind(&e.status, &e.message, &e.details).unwrap_or(ErrorKind::UpstreamServer);
            let mut err = self.error(kind, e.message);
            err.code = Some(e.status);
            return Err(err);
        }
        match parsed {
            Ok(resp) => {
                self.response(resp, out);
                Ok(Flow::Continue)
            }
            Err(e) => Err(self.error(
                ErrorKind::BadUpstreamResponse,
                format!(
                    "provider `{}` sent an invalid stream event: {e}",
                    self.provider
                ),
            )),
        }
    }

    fn end(&mut self, truncated: bool, out: &mut VecDeque<ChatChunk>) -> Result<()> {
        let complete = !self.candidates.is_empty() && self.candidates.values().all(|s| s.finished);
        if truncated || !complete {
            return Err(self.error(
                ErrorKind::UpstreamConnection,
                format!(
                    "stream from provider `{}` ended before a finish reason",
                    self.provider
                ),
            ));
        }
        if let Some(u) = &self.usage {
            let mut chunk = ChatChunk::new(&self.id, &self.model, self.created);
            chunk.usage = Some(usage(u));
            out.push_back(chunk);
        }
        Ok(())
    }
}
