//! What a mock upstream answers, decided once from the canonical request and rendered by each
//! wire format's mock. Deterministic: the same request always gets the same answer, so tests can
//! assert exact content through any provider translation.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::schema::{
    ChatChunk, ChatRequest, ChatResponse, Choice, ContentPart, Delta, Extra, FinishReason,
    FunctionCall, FunctionCallDelta, Message, MessageContent, PromptTokensDetails, Role, ToolCall,
    ToolCallDelta, ToolChoice, ToolChoiceMode, Usage, unix_now,
};

/// Fault injection, chosen by words in the model name (so it works through any gateway):
/// `fail-<status>`, `garbage`, `hang`, `drop`, `slow-<ms>`, `trickle-<ms>`, `stall`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scenario {
    /// Answer with this error status and the provider's error body (429 carries `Retry-After`).
    pub fail: Option<u16>,
    /// Answer 200 with a body that is not JSON.
    pub garbage: bool,
    /// Never answer.
    pub hang: bool,
    /// Send the head, then break the connection (for streams: after two chunks).
    pub drop: bool,
    /// Wait this long before answering.
    pub slow: Option<Duration>,
    /// Wait this long between stream chunks.
    pub trickle: Option<Duration>,
    /// Stream the first chunk, then go silent forever.
    pub stall: bool,
    /// Answer with the provider's "prompt too long" error.
    pub too_long: bool,
    /// The model refuses (content filter / refusal / safety block, as the provider says it).
    pub refuse: bool,
}

impl Scenario {
    pub fn from_model(model: &str) -> Scenario {
        let mut s = Scenario::default();
        for word in model
            .split(['-', '_', '/', ':', '.'])
            .collect::<Vec<_>>()
            .windows(2)
        {
            let n = word[1].parse::<u64>().ok();
            match (word[0], n) {
                ("fail", Some(code)) if (400..600).contains(&code) => s.fail = Some(code as u16),
                ("slow", Some(ms)) => s.slow = Some(Duration::from_millis(ms)),
                ("trickle", Some(ms)) => s.trickle = Some(Duration::from_millis(ms)),
                _ => {}
            }
        }
        for word in model.split(['-', '_', '/', ':', '.']) {
            match word {
                "garbage" => s.garbage = true,
                "hang" => s.hang = true,
                "drop" => s.drop = true,
                "stall" => s.stall = true,
                "toolong" => s.too_long = true,
                "refuse" => s.refuse = true,
                _ => {}
            }
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedToolCall {
    pub id: String,
    pub name: String,
    /// JSON text of the arguments.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedChoice {
    pub content: Option<String>,
    pub tool_calls: Vec<PlannedToolCall>,
    pub finish: FinishReason,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub choices: Vec<PlannedChoice>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Plan {
    /// The plan as a canonical (OpenAI-shaped) response.
    pub fn response(&self, id: &str, model: &str) -> ChatResponse {
        ChatResponse {
            id: id.to_string(),
            object: "chat.completion".into(),
            created: unix_now(),
            model: model.to_string(),
            choices: self
                .choices
                .iter()
                .enumerate()
                .map(|(i, c)| Choice {
                    index: i as u32,
                    message: Message {
                        role: Role::Assistant,
                        content: c.content.clone().map(MessageContent::Text),
                        name: None,
                        tool_calls: (!c.tool_calls.is_empty()).then(|| {
                            c.tool_calls
                                .iter()
                                .map(|t| ToolCall {
                                    id: t.id.clone(),
                                    kind: "function".into(),
                                    function: FunctionCall {
                                        name: t.name.clone(),
                                        arguments: t.arguments.clone(),
                                        extra: Extra::new(),
                                    },
                                    extra: Extra::new(),
                                })
                                .collect()
                        }),
                        tool_call_id: None,
                        refusal: None,
                        extra: Extra::new(),
                    },
                    finish_reason: Some(c.finish.clone()),
                    logprobs: None,
                    extra: Extra::new(),
                })
                .collect(),
            usage: Some(self.usage()),
            system_fingerprint: Some("fp_mock".into()),
            extra: Extra::new(),
        }
    }

    pub fn usage(&self) -> Usage {
        let mut u = Usage::new(self.prompt_tokens, self.completion_tokens);
        u.prompt_tokens_details = Some(PromptTokensDetails {
            cached_tokens: Some(0),
            ..Default::default()
        });
        u
    }

    /// The plan as canonical chunks, the way OpenAI streams: a role chunk, content word by word
    /// (or tool-call fragments: name first, then arguments in two pieces), a finish chunk, and a
    /// usage chunk when asked for.
    pub fn chunks(&self, id: &str, model: &str, include_usage: bool) -> Vec<ChatChunk> {
        let created = unix_now();
        let chunk = |index: usize, delta: Delta, finish: Option<FinishReason>| {
            let mut c = ChatChunk::new(id, model, created).with_delta(delta, finish);
            c.choices[0].index = index as u32;
            c.system_fingerprint = Some("fp_mock".into());
            c
        };
        let mut out = Vec::new();
        for (i, choice) in self.choices.iter().enumerate() {
            out.push(chunk(
                i,
                Delta {
                    role: Some(Role::Assistant),
                    content: Some(String::new()),
                    ..Default::default()
                },
                None,
            ));
            if let Some(content) = &choice.content {
                for piece in content.split_inclusive(' ') {
                    out.push(chunk(i, Delta::content(piece), None));
                }
            }
            for (ti, call) in choice.tool_calls.iter().enumerate() {
                let fragment = |id: Option<String>, name: Option<String>, arguments: &str| Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index: ti as u32,
                        kind: id.as_ref().map(|_| "function".to_string()),
                        id,
                        function: Some(FunctionCallDelta {
                            name,
                            arguments: Some(arguments.to_string()),
                        }),
                        extra: Extra::new(),
                    }]),
                    ..Default::default()
                };
                out.push(chunk(
                    i,
                    fragment(Some(call.id.clone()), Some(call.name.clone()), ""),
                    None,
                ));
                let (a, b) = call.arguments.split_at(call.arguments.len() / 2);
                for part in [a, b].into_iter().filter(|p| !p.is_empty()) {
                    out.push(chunk(i, fragment(None, None, part), None));
                }
            }
            out.push(chunk(i, Delta::default(), Some(choice.finish.clone())));
        }
        if include_usage {
            let mut c = ChatChunk::new(id, model, created);
            c.system_fingerprint = Some("fp_mock".into());
            c.usage = Some(self.usage());
            out.push(c);
        }
        out
    }
}

/// Words as the mock's token unit: simple, deterministic, and easy to assert on.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The answer to a chat request:
/// - with tools offered (and not `tool_choice: none`) after a user turn: a call to the forced tool
///   or the first one, arguments sampled from its JSON schema;
/// - after a tool result: `The tool returned: <result>`;
/// - with `response_format` JSON: a JSON object echoing the prompt;
/// - otherwise: `You said: <last user text>`.
///
/// `max_tokens` truncates (finish `length`), `stop` cuts (finish `stop`), `n` repeats.
pub fn plan(req: &ChatRequest) -> Plan {
    let prompt_tokens = req
        .messages
        .iter()
        .map(|m| count_tokens(&m.text()) + 1)
        .sum::<u64>()
        .max(1);
    let last = req.messages.last();
    let last_user = req.messages.iter().rev().find(|m| m.role == Role::User);
    let last_user_text = last_user.map(|m| m.text()).unwrap_or_default();
    // Images are acknowledged, so a test can tell they survived translation.
    let images = last_user
        .and_then(|m| match &m.content {
            Some(MessageContent::Parts(parts)) => Some(
                parts
                    .iter()
                    .filter(|p| matches!(p, ContentPart::ImageUrl { .. }))
                    .count(),
            ),
            _ => None,
        })
        .unwrap_or(0);
    let image_note = match images {
        0 => String::new(),
        1 => " (and 1 image)".to_string(),
        n => format!(" (and {n} images)"),
    };
    let tools: Vec<_> = req
        .tools
        .iter()
        .flatten()
        .filter_map(|t| t.function.as_ref())
        .collect();
    let tools_allowed = !matches!(
        req.tool_choice.as_deref(),
        Some(ToolChoice::Mode(ToolChoiceMode::None))
    );
    let after_user = last.is_some_and(|m| m.role == Role::User);

    let mut choice = if !tools.is_empty() && tools_allowed && after_user {
        let forced = req.tool_choice.as_ref().and_then(|c| c.forced_function());
        let tool = forced
            .and_then(|name| tools.iter().find(|t| t.name == name))
            .unwrap_or(&tools[0]);
        let args = sample_arguments(tool.parameters.as_ref(), &last_user_text);
        PlannedChoice {
            content: None,
            tool_calls: vec![PlannedToolCall {
                id: format!(
                    "call_{}",
                    short_hash(&format!("{}{last_user_text}", tool.name))
                ),
                name: tool.name.clone(),
                arguments: args.to_string(),
            }],
            finish: FinishReason::ToolCalls,
        }
    } else if let Some(m) = last.filter(|m| m.role == Role::Tool) {
        PlannedChoice {
            content: Some(format!("The tool returned: {}", m.text())),
            tool_calls: vec![],
            finish: FinishReason::Stop,
        }
    } else if req
        .response_format
        .as_ref()
        .is_some_and(|f| f.kind == "json_object" || f.kind == "json_schema")
    {
        PlannedChoice {
            content: Some(json!({"mock": true, "echo": clip(&last_user_text, 200)}).to_string()),
            tool_calls: vec![],
            finish: FinishReason::Stop,
        }
    } else {
        PlannedChoice {
            content: Some(format!(
                "You said: {}{image_note}",
                clip(&last_user_text, 2000)
            )),
            tool_calls: vec![],
            finish: FinishReason::Stop,
        }
    };

    if let Some(content) = &mut choice.content {
        if let Some(stop) = &req.stop {
            for s in stop.to_vec() {
                if !s.is_empty()
                    && let Some(i) = content.find(&s)
                {
                    content.truncate(i);
                }
            }
        }
        if let Some(max) = req.max_output_tokens() {
            let words: Vec<&str> = content.split_inclusive(' ').collect();
            if words.len() as u64 > max as u64 {
                *content = words[..max as usize].concat().trim_end().to_string();
                choice.finish = FinishReason::Length;
            }
        }
    }
    if Scenario::from_model(&req.model).refuse {
        choice = PlannedChoice {
            content: Some(String::new()),
            tool_calls: vec![],
            finish: FinishReason::ContentFilter,
        };
    }
    let per_choice = match &choice.content {
        Some(c) => count_tokens(c),
        None => choice
            .tool_calls
            .iter()
            .map(|t| count_tokens(&t.arguments) + 1)
            .sum(),
    };
    let n = req.n.unwrap_or(1).clamp(1, 16) as usize;
    Plan {
        choices: vec![choice; n],
        prompt_tokens,
        completion_tokens: per_choice * n as u64,
    }
}

fn clip(s: &str, max: usize) -> &str {
    crate::providers::transport::truncate(s, max)
}

/// Arguments that satisfy a JSON schema's required properties with simple sample values. String
/// properties get the last word of the user's message, so a round trip can be followed.
pub fn sample_arguments(schema: Option<&Value>, user_text: &str) -> Value {
    let word = user_text
        .split_whitespace()
        .last()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .unwrap_or("mock");
    sample_value(schema.unwrap_or(&json!({"type": "object"})), word, 0)
}

fn sample_value(schema: &Value, word: &str, depth: usize) -> Value {
    if depth > 4 {
        return Value::Null;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && let Some(first) = options.first()
    {
        return first.clone();
    }
    match schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
    {
        "string" => Value::String(word.to_string()),
        "integer" => json!(1),
        "number" => json!(1.5),
        "boolean" => json!(true),
        "array" => match schema.get("items") {
            Some(items) => json!([sample_value(items, word, depth + 1)]),
            None => json!([]),
        },
        "null" => Value::Null,
        _ => {
            let mut out = Map::new();
            let props = schema.get("properties").and_then(Value::as_object);
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_else(|| {
                    props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default()
                });
            for name in required {
                let sub = props
                    .and_then(|p| p.get(name))
                    .cloned()
                    .unwrap_or(json!({"type": "string"}));
                out.insert(name.to_string(), sample_value(&sub, word, depth + 1));
            }
            Value::Object(out)
        }
    }
}

/// A short stable hash for ids.
pub fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:016x}", h)[..12].to_string()
}

/// A deterministic unit vector for a text.
pub fn embedding_for(text: &str, dims: usize) -> Vec<f64> {
    let mut state: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        state ^= b as u64;
        state = state.wrapping_mul(0x100000001b3);
    }
    let mut v: Vec<f64> = (0..dims)
        .map(|_| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let x = state.wrapping_mul(0x2545F4914F6CDD1D);
            (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for x in &mut v {
        // Round through f32 so float and base64 encodings carry the same values.
        *x = ((*x / norm) as f32) as f64;
    }
    v
}

/// Text of a content value (string or parts), for token counting of native formats.
pub fn content_text(c: &Option<MessageContent>) -> String {
    c.as_ref().map(MessageContent::text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_from_model_names() {
        assert_eq!(Scenario::from_model("mock-fail-429").fail, Some(429));
        assert_eq!(
            Scenario::from_model("x-slow-250").slow,
            Some(Duration::from_millis(250))
        );
        assert!(Scenario::from_model("mock-hang").hang);
        assert_eq!(Scenario::from_model("gpt-4o-mini"), Scenario::default());
        assert_eq!(Scenario::from_model("fail-999").fail, None);
    }

    #[test]
    fn plans() {
        let req: ChatRequest = serde_json::from_value(json!({
            "model": "m", "messages": [{"role": "user", "content": "weather in Paris"}],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                               "required": ["city"]}}}]
        }))
        .unwrap();
        let p = plan(&req);
        assert_eq!(p.choices[0].finish, FinishReason::ToolCalls);
        assert_eq!(p.choices[0].tool_calls[0].arguments, r#"{"city":"Paris"}"#);

        let req: ChatRequest = serde_json::from_value(json!({
            "model": "m", "max_tokens": 2, "n": 2,
            "messages": [{"role": "user", "content": "one two three"}]
        }))
        .unwrap();
        let p = plan(&req);
        assert_eq!(p.choices.len(), 2);
        assert_eq!(p.choices[0].content.as_deref(), Some("You said:"));
        assert_eq!(p.choices[0].finish, FinishReason::Length);
        assert_eq!(p.prompt_tokens, 4);
    }

    #[test]
    fn embeddings_are_unit_and_stable() {
        let a = embedding_for("hello", 16);
        assert_eq!(a, embedding_for("hello", 16));
        assert_ne!(a, embedding_for("world", 16));
        let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6);
    }
}
