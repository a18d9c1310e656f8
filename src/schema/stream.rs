//! Streamed chat completion chunks (`chat.completion.chunk`), and an accumulator that folds a
//! stream back into one response.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extra::deserialize_with_extra;
use super::{
    ChatResponse, Choice, Extra, FinishReason, FunctionCall, Message, MessageContent, Role,
    ToolCall, Usage,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// Only on the final chunk when `stream_options.include_usage` is set (then `choices` is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn chunk_object() -> String {
    "chat.completion.chunk".to_string()
}

impl ChatChunk {
    /// Some choice carries content text or tool calls: a token, for time-to-first-token and
    /// inter-token latency.
    pub fn has_token(&self) -> bool {
        self.choices.iter().any(|c| {
            c.delta.content.as_deref().is_some_and(|t| !t.is_empty())
                || c.delta.tool_calls.is_some()
        })
    }

    /// An empty chunk carrying the stream's identity, to be filled by a translator.
    pub fn new(id: &str, model: &str, created: u64) -> Self {
        ChatChunk {
            id: id.to_string(),
            object: chunk_object(),
            created,
            model: model.to_string(),
            choices: Vec::new(),
            usage: None,
            system_fingerprint: None,
            extra: Extra::new(),
        }
    }

    /// A chunk with one choice carrying `delta`.
    pub fn with_delta(mut self, delta: Delta, finish_reason: Option<FinishReason>) -> Self {
        self.choices.push(ChunkChoice {
            index: 0,
            delta,
            finish_reason,
            logprobs: None,
            extra: Extra::new(),
        });
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<FinishReason>,
    pub logprobs: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Delta {
    pub fn content(text: impl Into<String>) -> Self {
        Delta {
            content: Some(text.into()),
            ..Default::default()
        }
    }
}

/// A fragment of a tool call: the first fragment of a call carries `id` and `function.name`, later
/// ones append to `function.arguments`. `index` says which call of the message it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Folds chunks into the response a non-streamed call would have returned. Used wherever a
/// complete view of a streamed answer is needed (post-hooks, logs, caches, tests).
#[derive(Debug, Default)]
pub struct ChunkAccumulator {
    id: String,
    model: String,
    created: u64,
    system_fingerprint: Option<String>,
    choices: Vec<AccumulatedChoice>,
    usage: Option<Usage>,
}

#[derive(Debug, Default)]
struct AccumulatedChoice {
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<FinishReason>,
}

impl ChunkAccumulator {
    pub fn push(&mut self, chunk: &ChatChunk) {
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
            self.model.clone_from(&chunk.model);
            self.created = chunk.created;
        }
        if chunk.system_fingerprint.is_some() {
            self.system_fingerprint
                .clone_from(&chunk.system_fingerprint);
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        for c in &chunk.choices {
            let i = c.index as usize;
            if self.choices.len() <= i {
                self.choices.resize_with(i + 1, Default::default);
            }
            let acc = &mut self.choices[i];
            if let Some(text) = &c.delta.content {
                acc.content.get_or_insert_with(String::new).push_str(text);
            }
            if let Some(text) = &c.delta.refusal {
                acc.refusal.get_or_insert_with(String::new).push_str(text);
            }
            for tc in c.delta.tool_calls.iter().flatten() {
                let ti = tc.index as usize;
                if acc.tool_calls.len() <= ti {
                    acc.tool_calls.resize_with(ti + 1, || ToolCall {
                        id: String::new(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: String::new(),
                            arguments: String::new(),
                            extra: Extra::new(),
                        },
                        extra: Extra::new(),
                    });
                }
                let call = &mut acc.tool_calls[ti];
                if let Some(id) = &tc.id {
                    call.id.clone_from(id);
                }
                if let Some(f) = &tc.function {
                    if let Some(name) = &f.name {
                        call.function.name.push_str(name);
                    }
                    if let Some(args) = &f.arguments {
                        call.function.arguments.push_str(args);
                    }
                }
            }
            if c.finish_reason.is_some() {
                acc.finish_reason.clone_from(&c.finish_reason);
            }
        }
    }

    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    pub fn finish(self) -> ChatResponse {
        ChatResponse {
            id: self.id,
            object: "chat.completion".into(),
            created: self.created,
            model: self.model,
            choices: self
                .choices
                .into_iter()
                .enumerate()
                .map(|(i, c)| Choice {
                    index: i as u32,
                    message: Message {
                        role: Role::Assistant,
                        content: c.content.map(MessageContent::Text),
                        name: None,
                        tool_calls: (!c.tool_calls.is_empty()).then_some(c.tool_calls),
                        tool_call_id: None,
                        refusal: c.refusal,
                        extra: Extra::new(),
                    },
                    finish_reason: c.finish_reason,
                    logprobs: None,
                    extra: Extra::new(),
                })
                .collect(),
            usage: self.usage,
            system_fingerprint: self.system_fingerprint,
            extra: Extra::new(),
        }
    }
}

/// A complete response as a stream: per choice one chunk with the whole message and its finish
/// reason, then a usage chunk. Used when a plugin answers a streamed request.
pub fn chunks_from_response(resp: &ChatResponse) -> Vec<ChatChunk> {
    let mut out = Vec::with_capacity(resp.choices.len() + 1);
    for choice in &resp.choices {
        let message = &choice.message;
        let delta = Delta {
            role: Some(Role::Assistant),
            content: message.content.as_ref().map(MessageContent::text),
            tool_calls: message.tool_calls.as_ref().map(|calls| {
                calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| ToolCallDelta {
                        index: i as u32,
                        id: Some(c.id.clone()),
                        kind: Some(c.kind.clone()),
                        function: Some(FunctionCallDelta {
                            name: Some(c.function.name.clone()),
                            arguments: Some(c.function.arguments.clone()),
                        }),
                        extra: Extra::new(),
                    })
                    .collect()
            }),
            refusal: message.refusal.clone(),
            extra: Extra::new(),
        };
        let mut chunk = ChatChunk::new(&resp.id, &resp.model, resp.created)
            .with_delta(delta, choice.finish_reason.clone());
        chunk.choices[0].index = choice.index;
        out.push(chunk);
    }
    if let Some(usage) = &resp.usage {
        let mut chunk = ChatChunk::new(&resp.id, &resp.model, resp.created);
        chunk.usage = Some(usage.clone());
        out.push(chunk);
    }
    out
}

deserialize_with_extra!(ChatChunk {
    id: "id",
    object: "object" = chunk_object(),
    created: "created",
    model: "model",
    choices: "choices",
    usage: "usage",
    system_fingerprint: "system_fingerprint",
});

deserialize_with_extra!(ChunkChoice {
    index: "index",
    delta: "delta",
    finish_reason: "finish_reason",
    logprobs: "logprobs",
});

deserialize_with_extra!(Delta {
    role: "role",
    content: "content",
    tool_calls: "tool_calls",
    refusal: "refusal",
});

deserialize_with_extra!(ToolCallDelta {
    index: "index",
    id: "id",
    kind: "type",
    function: "function",
});
